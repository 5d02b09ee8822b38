"""An enterprise's land and the per-mu figures (亩均) of every level and year (§Units, §2).

``enterprise_land`` (per year, for every enterprise with output (CC) that year):

- ``parcels``: the parcels it is linked to (``links`` enterprise_parcel). A parcel shared by
  several enterprises is split among those with output that year in proportion to their declared
  YDMJ when every one of them declares one, else equally (§Units).
- ``declared``: no parcel, but a declared YDMJ > 0 (rented land).
- ``none``: neither; the reason says why (the enterprise is then not evaluated).

``per_mu`` (level, code, year): sums of the CC figures and the ratios

    亩均产值 output_per_mu = GYZCZ / 亩, 亩均营业收入 revenue_per_mu = YYSR / 亩,
    亩均增加值 va_per_mu = GYZJZ / 亩, 亩均税收 tax_per_mu = SJSJ / 亩            (万元/亩)
    单位能耗增加值 va_per_energy = GYZJZ / ZHNH (万元/tce), 单位排放增加值 va_per_emission =
    GYZJZ / PFDL (万元/t), 全员劳动生产率 labour_productivity = GYZJZ / CYRS (万元/人),
    R&D 强度 rd_intensity = YFFY / YYSR × 100 (%)

for enterprises, and for parcels, platforms, districts and corridors from the enterprises'
figures allocated in proportion to their land there: an enterprise's land on a parcel ÷ its
land, times the parcel's area share in the zone; an enterprise on declared land goes wholly to the
zone holding its point. The area of a parcel row is the parcel's area; of a zone row, the land of
the enterprises allocated there. Ratios of aggregates use only enterprises that report the
denominator (e.g. va_per_energy sums GYZJZ over those with ZHNH > 0). 亩 = m² × 0.0015.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from gis.core.analysis_columns import (
    ALLOCATED_COLUMNS,
    RATIO_COLUMNS,
    SHARE_COLUMNS,
    SUM_COLUMNS,
)
from gis.core.db import run_sql
from gis.core.graph import ALL, Changes, Producer
from gis.core.layers import M2_PER_MU
from gis.economy.industry_flags import flags_sql

# rule ids stored with every row; docs/EVALUATION.md spells each out
LAND_RULE = "§Units parcel share by YDMJ, else YDMJ"
PER_MU_RULE = "§2 per-mu by land share"
MU = 1 / M2_PER_MU

# ratio column -> (numerator sum column, denominator SQL on the summed columns, factor)
RATIOS = {
    "output_per_mu": ("gross_output", "area_mu", 1),
    "revenue_per_mu": ("revenue", "area_mu", 1),
    "va_per_mu": ("value_added", "area_mu", 1),
    "tax_per_mu": ("tax_paid", "area_mu", 1),
    "va_per_energy": ("va_e", "energy_tce", 1),
    "va_per_emission": ("va_p", "emissions_t", 1),
    "labour_productivity": ("va_l", "employees", 1),
    "rd_intensity": ("rd_r", "rev_r", 100),
}
assert set(RATIOS) == set(RATIO_COLUMNS)


def _ratio_exprs() -> list[str]:
    return [
        f"CASE WHEN {den} > 0 AND {num} IS NOT NULL THEN {num} / {den} * {k} END"
        for num, den, k in RATIOS.values()
    ]


def _ratio_sql() -> str:
    return ", ".join(_ratio_exprs())


def exact_sum(expr: str, agg: str = "sum", where: str | None = None) -> str:
    """``sum(expr)`` (or ``agg``: ``avg``; ``FILTER (WHERE where)``) in numeric, back to float8:
    a float sum depends on the order the rows arrive in, which differs between a refresh by
    keys and a full recompute; the numeric sum of the same terms does not (incremental must
    equal from scratch)."""
    filt = f" FILTER (WHERE {where})" if where else ""
    return f"{agg}(({expr})::numeric){filt}::float8"


ZONE_LINKS = "('parcel_district', 'parcel_platform', 'parcel_corridor')"
ENTERPRISE_ZONE_LINKS = "('enterprise_district', 'enterprise_platform', 'enterprise_corridor')"


def zone_land_sql(enterprise_years: str | None = None) -> str:
    """The one allocation of enterprise land to zones: a SELECT of (level, code, year, uscc,
    land_m2), the land (m², EPSG:4549 areas) of the enterprise-year lying in the zone. Its
    figures go to the zone in proportion ``land_m2 / enterprise_land.area_m2`` (a parcel's
    share in the zone times the enterprise's land on the parcel); an enterprise on declared
    land goes wholly to the zone holding its point. An enterprise's parcels and shares are read
    from ``enterprise_land`` (made from ``links``). ``enterprise_years``: a query of (uscc,
    year) to restrict to. Stored in
    ``zone_allocations`` by ``run``; readers read that table."""
    uf = f"AND (el.uscc, el.year) IN ({enterprise_years})" if enterprise_years else ""
    return f"""
        SELECT pz.level, pz.code, el.year, el.uscc,
               {exact_sum("pa.area_m2 * x.share * pz.share")} AS land_m2
        FROM enterprise_land el
        CROSS JOIN LATERAL unnest(el.parcel_nos, el.parcel_shares) x(parcel_no, share)
        JOIN (SELECT substr(kind, 8) AS level, from_key AS parcel_no, to_key AS code, share
              FROM links WHERE kind IN {ZONE_LINKS} AND to_key IS NOT NULL) pz
             ON pz.parcel_no = x.parcel_no
        JOIN parcels pa ON pa.parcel_no = x.parcel_no
        WHERE el.basis = 'parcels' {uf}
        GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT substr(l.kind, 12), l.to_key, el.year, el.uscc, el.area_m2
        FROM enterprise_land el
        JOIN links l ON l.kind IN {ENTERPRISE_ZONE_LINKS} AND l.from_key = el.uscc
             AND l.is_primary AND l.method = 'contains' AND l.to_key IS NOT NULL
        WHERE el.basis = 'declared' {uf}
    """


def _reported_cols() -> str:
    """The SUM_COLUMNS of an enterprise-year from its CC row (``o``: outputs), as stored in its
    ``per_mu`` row: a figure that must be positive to count (ZHNH, PFDL, CYRS) is NULL
    otherwise."""
    return """o.gross_output, o.revenue, o.value_added, o.tax_paid,
           CASE WHEN o.energy_tce > 0 THEN o.energy_tce END AS energy_tce,
           CASE WHEN o.emissions_t > 0 THEN o.emissions_t END AS emissions_t,
           o.rd_spending,
           CASE WHEN o.employees > 0 THEN o.employees END AS employees"""


def _paired_cols() -> str:
    """The rest of ALLOCATED_COLUMNS from the SUM_COLUMNS of ``_reported_cols`` (the GYZJZ of an
    enterprise reporting ZHNH, PFDL, CYRS; its YFFY and YYSR when it reports both): the same
    from its CC row and from its stored ``per_mu`` row."""
    return """CASE WHEN energy_tce IS NOT NULL THEN value_added END AS va_e,
           CASE WHEN emissions_t IS NOT NULL THEN value_added END AS va_p,
           CASE WHEN employees IS NOT NULL THEN value_added END AS va_l,
           CASE WHEN revenue > 0 THEN rd_spending END AS rd_r,
           CASE WHEN rd_spending IS NOT NULL AND revenue > 0 THEN revenue END AS rev_r"""


CALC_COLS = ALLOCATED_COLUMNS
ZONE_COLS = CALC_COLS + SHARE_COLUMNS  # zone_sums: SHARE_COLUMNS only there


def _share_cols(el: str, o: str) -> str:
    """SHARE_COLUMNS of an enterprise-year: its GYZCZ (``o``) where its land row (``el``: columns
    featured, hightech, platform_code) flags it."""
    return f"""CASE WHEN {el}.featured THEN {o}.gross_output END AS out_featured,
           CASE WHEN {el}.hightech THEN {o}.gross_output END AS out_hightech,
           CASE WHEN {el}.platform_code IS NOT NULL THEN {o}.gross_output END AS out_platform"""


_INSERT = (
    f"INSERT INTO per_mu (level, code, year, area_m2, area_mu, n_enterprises, "
    f"{', '.join(SUM_COLUMNS)}, {', '.join(RATIO_COLUMNS)}, rule, run_id, as_of)"
)
_VALUES = f"{', '.join(SUM_COLUMNS)}, {_ratio_sql()}, :prule, :run, :as_of"


def years_of(conn: Connection, *tables: str) -> list[int]:
    """The distinct ``year`` values of ``tables`` (each with an index leading on year), sorted:
    one index probe per year (a recursive skip scan) instead of reading every row (373,000 CC
    rows on a 98,048-parcel city)."""
    parts = [
        f"""(WITH RECURSIVE y(v) AS (
                SELECT min(year) FROM {t}
                UNION ALL SELECT (SELECT min(year) FROM {t} WHERE year > y.v) FROM y
                WHERE y.v IS NOT NULL)
             SELECT v FROM y WHERE v IS NOT NULL)"""
        for t in tables
    ]
    return list(conn.exec_driver_sql(" UNION ".join(parts) + " ORDER BY 1").scalars())


def _scope(conn: Connection, changes) -> list[int] | None:
    """Fill ``_aff`` (uscc, year: enterprise-years to recompute) and ``_apar`` (parcel_no:
    parcels whose rows to recompute) from ``changes``; returns the years in question, or None
    when everything must be recomputed."""
    if changes is None:
        return None
    # the links of the kinds read here (the linkage's land_links), or every link's keys
    links = "land_links" if "land_links" in changes else "links"
    if any(
        changes.everything(t) for t in (links, "outputs", "parcels", "enterprises", "platforms")
    ):
        return None
    pairs = [k.rsplit(":", 1) for k in changes.get("outputs", ())]
    pairs = [(u, int(y)) for u, y in pairs if y.isdigit()]
    named = set(changes.get(links, ())) | set(changes.get("enterprises", ()))
    named |= set(changes.get("parcels", ()))
    platforms = sorted(changes.get("platforms", ()))
    if platforms:  # its featured industries: the flags of the enterprises in it, now and before
        named |= set(
            conn.execute(
                text(
                    "SELECT from_key FROM links WHERE kind = 'enterprise_platform' "
                    "AND is_primary AND to_key = ANY(CAST(:p AS text[])) "
                    "UNION SELECT uscc FROM enterprise_land "
                    "WHERE platform_code = ANY(CAST(:p AS text[]))"
                ),
                {"p": platforms},
            ).scalars()
        )
    # the named keys that are enterprises (relinked), the others parcels
    ents = (
        conn.execute(
            text(
                "SELECT uscc FROM enterprises WHERE uscc = ANY(CAST(:k AS text[])) "
                "UNION SELECT uscc FROM enterprise_land WHERE uscc = ANY(CAST(:k AS text[]))"
            ),
            {"k": sorted(named)},
        ).scalars()
        if named
        else []
    )
    keys = set(ents)
    parcels = named - keys
    if parcels:
        years = years_of(conn, "outputs", "enterprise_land")
    else:
        years = sorted(
            {y for _, y in pairs}
            | set(
                conn.execute(
                    text(
                        "SELECT year FROM outputs WHERE uscc = ANY(CAST(:k AS text[])) "
                        "UNION SELECT year FROM enterprise_land "
                        "WHERE uscc = ANY(CAST(:k AS text[]))"
                    ),
                    {"k": sorted(keys)},
                ).scalars()
            )
        )
    conn.exec_driver_sql("DROP TABLE IF EXISTS _u0, _aff, _apar")
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _u0 ON COMMIT DROP AS
            SELECT DISTINCT uscc FROM (
                SELECT unnest(CAST(:us AS text[])) AS uscc
                UNION ALL SELECT uscc FROM enterprises WHERE uscc = ANY(CAST(:keys AS text[]))
                UNION ALL SELECT from_key FROM links
                WHERE kind = 'enterprise_parcel' AND to_key = ANY(CAST(:parcels AS text[]))
                UNION ALL SELECT uscc FROM enterprise_land
                WHERE uscc = ANY(CAST(:keys AS text[]))
            ) x WHERE uscc IS NOT NULL
            """
        ),
        {"us": [u for u, _ in pairs], "keys": sorted(keys), "parcels": sorted(parcels)},
    )
    run_sql(
        conn,
        """
        ANALYZE _u0;
        -- the parcels of those enterprises, before (enterprise_land) and now (links), and the
        -- parcels named as changed
        CREATE TEMP TABLE _apar ON COMMIT DROP AS
        SELECT DISTINCT parcel_no FROM (
            SELECT unnest(el.parcel_nos) AS parcel_no FROM enterprise_land el
            JOIN _u0 USING (uscc) WHERE el.year = ANY(CAST(:years AS int[]))
            UNION ALL SELECT l.to_key FROM links l JOIN _u0 ON _u0.uscc = l.from_key
            WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NOT NULL
            UNION ALL SELECT p.parcel_no FROM parcels p
            WHERE p.parcel_no = ANY(CAST(:parcels AS text[]))
        ) x;
        -- every enterprise sharing one of them: its share of the parcel may change
        CREATE TEMP TABLE _aff ON COMMIT DROP AS
        SELECT u.uscc, y.year FROM (
            SELECT uscc FROM _u0
            UNION SELECT l.from_key FROM links l JOIN _apar a ON a.parcel_no = l.to_key
            WHERE l.kind = 'enterprise_parcel'
        ) u CROSS JOIN unnest(CAST(:years AS int[])) y(year);
        -- and every parcel of theirs (their land, hence the allocation, may change)
        INSERT INTO _apar
        SELECT DISTINCT l.to_key FROM links l JOIN (SELECT DISTINCT uscc FROM _aff) a
             ON a.uscc = l.from_key
        WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _apar x WHERE x.parcel_no = l.to_key);
        INSERT INTO _apar
        SELECT DISTINCT p FROM enterprise_land el JOIN _aff a USING (uscc, year),
             unnest(el.parcel_nos) p
        WHERE NOT EXISTS (SELECT 1 FROM _apar x WHERE x.parcel_no = p);
        ANALYZE _aff;
        ANALYZE _apar
        """,
        {"years": years, "parcels": sorted(parcels)},
    )
    return years


def run(conn: Connection, ctx, changes) -> Changes:
    """Producer ``per_mu``: ``enterprise_land`` and ``per_mu`` of the enterprise-years, parcels
    and zones that depend on ``changes`` (everything when None).

    Reads ``outputs`` keys ``USCC:year``, ``links`` and ``enterprises`` keys (the enterprises whose
    parcels changed, as USCC; parcels whose links changed, as DKBH) and ``parcels`` keys (DKBH).
    Of the links it takes the linkage's ``land_links`` where given (the enterprise and zone
    kinds: a supply record's or a project's links are not read here).

    The zone rows written are those of the zone-years whose sums the enterprise-years in
    question move, in or out (see ``_zone_sums``): the zones an enterprise or a parcel left are
    known from the stored allocations.
    Returns ``Changes(enterprise_land={"USCC:year"}, per_mu={"level:code:year"})``: the rows whose
    values changed (``per_mu`` keys like ``enterprise:USCC:2023``, ``parcel:DKBH:2023``,
    ``platform:PT01:2023``; a row that appeared or went away counts as changed).
    """
    if changes is not None and zone_sums_missing(conn):
        changes = None  # the first refresh after zone_sums came (migration 0016) fills it
    years = _scope(conn, changes)
    full = years is None
    p = {"run": ctx.run_id or 0, "as_of": ctx.as_of, "mu": MU, "lrule": LAND_RULE,
         "prule": PER_MU_RULE, "years": years}  # fmt: skip
    out = Changes()
    if not full and not years:
        return out
    conn.exec_driver_sql(
        "DROP TABLE IF EXISTS _ep, _share, _el_new, _fig, _pm_new, _za_new, _zd, _zk, _pkeys"
    )
    aff = "" if full else "JOIN _aff a ON a.uscc = o.uscc AND a.year = o.year"
    aff_links = (
        ""
        if full
        else "AND to_key IN (SELECT to_key FROM links WHERE kind = 'enterprise_parcel' "
        "AND from_key IN (SELECT uscc FROM _aff))"
    )
    run_sql(
        conn,
        f"""
        -- each enterprise -> parcel link with the number of enterprises on the parcel
        -- (n_ent) and of the enterprise's parcels (n_par); incrementally, every link of the
        -- parcels of the enterprises in question (so that both counts are whole for them)
        CREATE TEMP TABLE _ep ON COMMIT DROP AS
        SELECT l.uscc, l.parcel_no, l.method, pa.area_m2 AS parcel_m2,
               count(*) OVER (PARTITION BY l.parcel_no) AS n_ent,
               count(*) OVER (PARTITION BY l.uscc) AS n_par
        FROM (SELECT from_key AS uscc, to_key AS parcel_no, method FROM links
              WHERE kind = 'enterprise_parcel' AND to_key IS NOT NULL {aff_links}) l
        JOIN parcels pa ON pa.parcel_no = l.parcel_no;
        ANALYZE _ep;
        -- a parcel only one enterprise is linked to is its whole (share 1, n 1) in every
        -- year; only the shared parcels need the split of each year
        CREATE TEMP TABLE _share ON COMMIT DROP AS
        SELECT o.year, o.uscc, ep.parcel_no, ep.parcel_m2, 1::float8 AS share,
               ep.parcel_m2 AS land_m2, ep.n_par
        FROM _ep ep JOIN outputs o ON o.uscc = ep.uscc {aff}
        WHERE ep.n_ent = 1
        UNION ALL
        SELECT year, uscc, parcel_no, parcel_m2, share, parcel_m2 * share, n_par
        FROM (
            SELECT o.year, o.uscc, ep.parcel_no, ep.parcel_m2, ep.n_par,
                   CASE WHEN count(o.declared_land_m2) FILTER (WHERE o.declared_land_m2 > 0)
                             OVER w = count(*) OVER w
                        THEN o.declared_land_m2 / (sum(o.declared_land_m2::numeric) OVER w)::float8
                        ELSE 1.0 / count(*) OVER w END AS share
            FROM _ep ep JOIN outputs o ON o.uscc = ep.uscc
            WHERE ep.n_ent > 1 {"" if full else "AND o.year = ANY(CAST(:years AS int[]))"}
            WINDOW w AS (PARTITION BY o.year, ep.parcel_no)
        ) x
        {"" if full else "WHERE (uscc, year) IN (SELECT uscc, year FROM _aff)"};
        ANALYZE _share;
        CREATE TEMP TABLE _el_new ON COMMIT DROP AS
        SELECT o.year, o.uscc,
               CASE WHEN s.m2 IS NOT NULL THEN s.m2
                    WHEN o.declared_land_m2 > 0 THEN o.declared_land_m2 END AS area_m2,
               CASE WHEN s.m2 IS NOT NULL THEN s.m2
                    WHEN o.declared_land_m2 > 0 THEN o.declared_land_m2 END * :mu AS area_mu,
               CASE WHEN s.m2 IS NOT NULL THEN 'parcels'
                    WHEN o.declared_land_m2 > 0 THEN 'declared' ELSE 'none' END AS basis,
               coalesce(s.nos, '{{}}') AS parcel_nos, coalesce(s.shares, '{{}}') AS parcel_shares,
               CASE WHEN s.m2 IS NULL AND NOT coalesce(o.declared_land_m2 > 0, false)
                    THEN 'no land: no parcel linked ('
                         || coalesce(u.reason, 'no link') || ') and no declared YDMJ for '
                         || o.year END AS reason,
               z.district_code, z.platform_code, z.corridor_code,
               coalesce(fl.featured, false) AS featured, coalesce(fl.hightech, false) AS hightech
        FROM outputs o {aff}
        LEFT JOIN (
            SELECT year, uscc, land_m2 AS m2, ARRAY[parcel_no] AS nos, ARRAY[share] AS shares
            FROM _share WHERE n_par = 1
            UNION ALL
            SELECT year, uscc, sum(land_m2) AS m2, array_agg(parcel_no) AS nos,
                   array_agg(share) AS shares
            FROM (SELECT * FROM _share WHERE n_par > 1 ORDER BY year, uscc, parcel_no) o
            GROUP BY year, uscc
        ) s ON s.year = o.year AND s.uscc = o.uscc
        LEFT JOIN links u ON u.kind = 'enterprise_parcel' AND u.from_key = o.uscc
                         AND u.to_key IS NULL
        LEFT JOIN (  -- its primary zones (the linkage's enterprise_<zone> links)
            SELECT from_key AS uscc,
                   max(to_key) FILTER (WHERE kind = 'enterprise_district') AS district_code,
                   max(to_key) FILTER (WHERE kind = 'enterprise_platform') AS platform_code,
                   max(to_key) FILTER (WHERE kind = 'enterprise_corridor') AS corridor_code
            FROM links WHERE kind IN {ENTERPRISE_ZONE_LINKS} AND is_primary
                 AND to_key IS NOT NULL
                 {"" if full else "AND from_key IN (SELECT uscc FROM _aff)"}
            GROUP BY from_key
        ) z ON z.uscc = o.uscc
        LEFT JOIN ({flags_sql(ctx.rules.indicators, None if full else "SELECT uscc FROM _aff")}) fl
             ON fl.uscc = o.uscc;
        ANALYZE _el_new
        """,
        p,
    )
    if not full:  # the zones the enterprise-years counted in before (see _zone_sums)
        run_sql(
            conn,
            f"""
            DROP TABLE IF EXISTS _zm_old, _fl_old;
            CREATE TEMP TABLE _zm_old ON COMMIT DROP AS
            SELECT z.level, z.code, el.year FROM enterprise_land el
            JOIN _aff a USING (uscc, year), {_MEMBER_ZONES}
            WHERE el.basis <> 'none' AND z.code IS NOT NULL;
            -- and the flags their GYZCZ was counted under in the zones' output shares
            CREATE TEMP TABLE _fl_old ON COMMIT DROP AS
            SELECT el.uscc, el.year, el.featured, el.hightech, el.platform_code
            FROM enterprise_land el JOIN _aff a USING (uscc, year)
            """,
            p,
        )
    out.add("enterprise_land", replace_rows(
        conn, "enterprise_land", "_el_new", ("year", "uscc"),
        ("area_m2", "area_mu", "basis", "parcel_nos", "parcel_shares", "reason",
         "district_code", "platform_code", "corridor_code", "featured", "hightech"),
        None if full else "(uscc, year) IN (SELECT uscc, year FROM _aff)",
        "uscc || ':' || year", "rule, run_id, as_of", ":lrule, :run, :as_of", p,
    ))  # fmt: skip
    ratios_if_land = ", ".join(
        f"CASE WHEN basis <> 'none' THEN {r} END AS {c}"
        for r, c in zip(_ratio_exprs(), RATIOS, strict=True)
    )
    # every enterprise-year whose figures a recomputed row needs (all, when full)
    fig_scope = (
        ""
        if full
        else """WHERE (o.uscc, o.year) IN (
                SELECT uscc, year FROM _aff
                UNION SELECT el.uscc, el.year FROM enterprise_land el
                JOIN links l ON l.kind = 'enterprise_parcel' AND l.from_key = el.uscc
                JOIN _apar a ON a.parcel_no = l.to_key
                WHERE el.year = ANY(CAST(:years AS int[])))"""
    )
    sums = ", ".join(SUM_COLUMNS)
    run_sql(
        conn,
        f"""
        CREATE TEMP TABLE _fig ON COMMIT DROP AS
        SELECT *, {ratios_if_land} FROM (
            SELECT *, {_paired_cols()} FROM (
                SELECT o.year, o.uscc, el.area_m2, el.area_mu, el.basis, el.parcel_nos,
                       el.parcel_shares, {_reported_cols()}, {_share_cols("el", "o")}
                FROM outputs o JOIN enterprise_land el ON el.year = o.year AND el.uscc = o.uscc
                {fig_scope}
            ) r
        ) f;
        ANALYZE _fig;
        CREATE TEMP TABLE _pm_new ON COMMIT DROP AS
        SELECT 'enterprise'::text AS level, uscc AS code, year, area_m2, area_mu,
               1 AS n_enterprises, {sums}, {", ".join(RATIOS)}
        FROM _fig f WHERE basis <> 'none'
          {"" if full else "AND (uscc, year) IN (SELECT uscc, year FROM _aff)"};
        -- parcel rows: the enterprises' figures in proportion to their land on the parcel
        -- (float terms summed in a fixed order, by enterprise: the same sum however the
        -- rows in question were found)
        INSERT INTO _pm_new
        SELECT 'parcel', code, year, area_m2, area_mu, n, {_VALUES.rsplit(", :prule", 1)[0]}
        FROM (
            SELECT code, year, min(parcel_m2) AS area_m2, min(parcel_m2) * :mu AS area_mu,
                   count(*) AS n, {", ".join(f"sum({c}) AS {c}" for c in CALC_COLS)}
            FROM (
                SELECT x.parcel_no AS code, f.year, pa.area_m2 AS parcel_m2,
                       {
            ", ".join(f"x.share * pa.area_m2 / f.area_m2 * f.{c} AS {c}" for c in CALC_COLS)
        }
                FROM _fig f CROSS JOIN LATERAL unnest(f.parcel_nos, f.parcel_shares)
                     x(parcel_no, share)
                JOIN parcels pa ON pa.parcel_no = x.parcel_no
                WHERE f.basis = 'parcels'
                  {"" if full else "AND x.parcel_no IN (SELECT parcel_no FROM _apar)"}
                ORDER BY x.parcel_no, f.year, f.uscc
            ) t
            GROUP BY code, year
        ) g
        """,
        p,
    )
    out.add("zone_sums", _zone_sums(conn, p))
    zone_sums = zone_sum_values(CALC_COLS)
    run_sql(
        conn,
        f"""
        -- zone rows: the zone's exact sums (zone_sums), where enterprise land was allocated
        INSERT INTO _pm_new
        SELECT g.level, g.code, g.year, g.area_m2, g.area_mu, g.n_enterprises,
               {_VALUES.rsplit(", :prule", 1)[0]}
        FROM (
            SELECT s.level, s.code, s.year, s.n_enterprises, s.land_m2::float8 AS area_m2,
                   s.land_m2::float8 * :mu AS area_mu, {zone_sums}
            FROM zone_sums s JOIN _zk k USING (level, code, year)
            WHERE s.n > 0
        ) g
        """,
        p,
    )
    if full:
        where = None
    else:
        run_sql(
            conn,
            """
            CREATE TEMP TABLE _pkeys ON COMMIT DROP AS
            SELECT 'enterprise'::text AS level, uscc AS code, year FROM _aff
            UNION SELECT 'parcel', parcel_no, y FROM _apar, unnest(CAST(:years AS int[])) y
            UNION SELECT level, code, year FROM _zk
            """,
            p,
        )
        where = "(level, code, year) IN (SELECT level, code, year FROM _pkeys)"
    out.add("per_mu", replace_rows(
        conn, "per_mu", "_pm_new", ("level", "code", "year"),
        ("area_m2", "area_mu", "n_enterprises", *SUM_COLUMNS, *RATIO_COLUMNS), where,
        "level || ':' || code || ':' || year", "rule, run_id, as_of", ":prule, :run, :as_of", p,
    ))  # fmt: skip
    conn.exec_driver_sql(
        "DROP TABLE IF EXISTS _ep, _share, _el_new, _fig, _pm_new, _za_new, _zd, _zk, _u0, _aff, "
        "_apar, _pkeys"
    )
    ctx.counts["per_mu"] = {t: (len(k) if ALL not in k else "all") for t, k in out.items()}
    return out


# an enterprise_land row's primary zones as (level, code) rows (a LATERAL of ``el``)
_MEMBER_ZONES = """LATERAL (VALUES ('district', el.district_code), ('platform', el.platform_code),
                             ('corridor', el.corridor_code)) z(level, code)"""


def zone_sums_missing(conn: Connection) -> bool:
    """True when ``per_mu`` has zone rows but ``zone_sums`` none (a database analysed before the
    sums were kept, or a migration reset them): they cannot be kept by differences until
    computed whole once."""
    return conn.exec_driver_sql(
        "SELECT NOT EXISTS (SELECT 1 FROM zone_sums) AND EXISTS (SELECT 1 FROM per_mu "
        "WHERE level IN ('district', 'platform', 'corridor'))"
    ).scalar_one()


def zone_sum_values(cols: Iterable[str], alias: str = "s") -> str:
    """The select list of ``cols`` of ``zone_sums`` (alias ``alias``) as float8: a sum of no
    reported figure (``n_<col>`` 0) is NULL, not 0."""
    return ", ".join(
        f"CASE WHEN {alias}.n_{c} > 0 THEN {alias}.{c}::float8 END AS {c}" for c in cols
    )


def _terms(sign: str, fig: str) -> str:
    """The signed numeric terms of ``zone_sums`` for allocations ``w`` joined to the figures
    ``fig`` of their enterprise-years (columns area_m2 and ALLOCATED_COLUMNS): 1 allocation, its
    land, each figure × land_m2 ÷ the enterprise's land, and 1 where that figure is reported.
    The float products are the same wherever the figures come from (``_fig``, or the stored
    ``per_mu`` enterprise row they were written from), so taking away an allocation's terms
    undoes exactly what adding them did."""
    t = [f"{sign}1 AS n", f"{sign}w.land_m2::numeric AS land_m2"]
    t += [f"{sign}(w.land_m2 / {fig}.area_m2 * {fig}.{c})::numeric AS {c}" for c in ZONE_COLS]
    t += [f"{sign}({fig}.{c} IS NOT NULL)::int AS n_{c}" for c in ZONE_COLS]
    return ", ".join([*t, "0 AS n_enterprises"])


def _member(sign: str) -> str:
    """The terms of an enterprise-year with land counted in its primary zone (``sign`` "-":
    no longer): only ``n_enterprises``."""
    t = ["0 AS n", "0::numeric AS land_m2", *(f"NULL::numeric AS {c}" for c in ZONE_COLS)]
    t += [f"0 AS n_{c}" for c in ZONE_COLS]
    return ", ".join([*t, f"{sign}1 AS n_enterprises"])


_ZS_COLS = ("n", "land_m2", *ZONE_COLS, *(f"n_{c}" for c in ZONE_COLS), "n_enterprises")


def _zone_sums(conn: Connection, p: dict) -> set[str]:
    """Keep ``zone_allocations`` and ``zone_sums`` for the enterprise-years of ``_aff`` (every
    one when ``p["years"]`` is None: a full recompute) and leave in ``_zk`` (level, code, year)
    the zone-years whose per_mu rows to write.

    By keys: the allocations of ``_aff`` are made afresh (``zone_land_sql``); each zone-year's
    sums change by the new allocations' terms less the old ones' (read from the stored
    allocations and the enterprises' stored ``per_mu`` rows, before they are replaced), and
    its ``n_enterprises`` by the enterprise-years with land counted in it now (their
    ``enterprise_land`` primary zones) less those counted before (``_zm_old``). Numeric sums
    of the same float terms are exact, so the sums kept this way equal those summed afresh
    (tests/test_incremental_property.py compares them); the zones an enterprise or a parcel
    left are found from what was stored, with no help from the linkage. The GYZCZ of flagged
    enterprises (SHARE_COLUMNS) is kept the same way, the old terms under the flags stored with
    the enterprise-years' land before (``_fl_old``).

    Returns the keys (``level:code:year``) of the ``zone_sums`` rows that changed, ``{ALL}``
    for a full recompute."""
    full = p["years"] is None
    conn.exec_driver_sql("DROP TABLE IF EXISTS _za_new, _zd, _zk")
    # the figures the stored allocations were summed with: the enterprise's per_mu row and the
    # flags of its land row, both as they were (before this run replaced them)
    fig = f"""SELECT *, {_share_cols("fo", "pm")} FROM (
                SELECT code AS uscc, year, area_m2, {", ".join(SUM_COLUMNS)}, {_paired_cols()}
                FROM per_mu WHERE level = 'enterprise') pm
              LEFT JOIN _fl_old fo USING (uscc, year)"""
    sums = ", ".join(
        f"sum({c}){'::int' if c == 'n' or c.startswith('n_') else ''} AS {c}" for c in _ZS_COLS
    )
    members = f"""SELECT z.level, z.code, el.year, {_member("")}
                  FROM enterprise_land el {"" if full else "JOIN _aff a USING (uscc, year)"},
                  {_MEMBER_ZONES}
                  WHERE el.basis <> 'none' AND z.code IS NOT NULL"""
    if full:
        run_sql(
            conn,
            f"""
            CREATE TEMP TABLE _za_new ON COMMIT DROP AS {zone_land_sql()};
            CREATE TEMP TABLE _zd ON COMMIT DROP AS
            SELECT level, code, year, {sums} FROM (
                SELECT w.level, w.code, w.year, {_terms("", "f")}
                FROM _za_new w JOIN _fig f USING (year, uscc)
                UNION ALL {members}
            ) t GROUP BY 1, 2, 3
            """,
            p,
        )
        replace_rows(conn, "zone_allocations", "_za_new", ("level", "code", "year", "uscc"),
                     ("land_m2",), None, "''", "", "", p)  # fmt: skip
        replace_rows(conn, "zone_sums", "_zd", ("level", "code", "year"), _ZS_COLS, None,
                     "''", "", "", p)  # fmt: skip
        run_sql(
            conn,
            "CREATE TEMP TABLE _zk ON COMMIT DROP AS SELECT level, code, year FROM zone_sums",
            p,
        )
        return {ALL}
    changed = " OR ".join(f"d.{c} <> 0" for c in _ZS_COLS)
    kept = ", ".join(
        f"{c} = CASE WHEN s.n_{c} + d.n_{c} > 0 THEN coalesce(s.{c}, 0) + coalesce(d.{c}, 0) END"
        for c in ZONE_COLS
    )
    counts = ", ".join(f"{c} = s.{c} + d.{c}" for c in _ZS_COLS if c == "n" or c.startswith("n_"))
    run_sql(
        conn,
        f"""
        CREATE TEMP TABLE _za_new ON COMMIT DROP AS
        {zone_land_sql(enterprise_years="SELECT uscc, year FROM _aff")};
        -- the change of each zone-year's sums: the new allocations' terms less the old ones',
        -- and the enterprises counted in it now less those counted before
        CREATE TEMP TABLE _zd ON COMMIT DROP AS
        SELECT level, code, year, {sums} FROM (
            SELECT w.level, w.code, w.year, {_terms("", "f")}
            FROM _za_new w JOIN _fig f USING (year, uscc)
            UNION ALL
            SELECT w.level, w.code, w.year, {_terms("-", "f")}
            FROM zone_allocations w JOIN _aff a USING (uscc, year)
            JOIN ({fig}) f USING (uscc, year)
            UNION ALL {members}
            UNION ALL SELECT level, code, year, {_member("-")} FROM _zm_old
        ) t GROUP BY 1, 2, 3;
        DELETE FROM zone_allocations z USING _aff a
        WHERE z.uscc = a.uscc AND z.year = a.year AND NOT EXISTS (
            SELECT 1 FROM _za_new n WHERE (n.level, n.code, n.year, n.uscc, n.land_m2)
                = (z.level, z.code, z.year, z.uscc, z.land_m2));
        INSERT INTO zone_allocations (level, code, year, uscc, land_m2)
        SELECT level, code, year, uscc, land_m2 FROM _za_new
        ON CONFLICT (level, code, year, uscc) DO NOTHING;
        UPDATE zone_sums s SET land_m2 = s.land_m2 + d.land_m2, {kept}, {counts}
        FROM _zd d
        WHERE (s.level, s.code, s.year) = (d.level, d.code, d.year) AND ({changed});
        INSERT INTO zone_sums (level, code, year, {", ".join(_ZS_COLS)})
        SELECT level, code, year, {", ".join(_ZS_COLS)} FROM _zd d
        WHERE NOT EXISTS (SELECT 1 FROM zone_sums s
                          WHERE (s.level, s.code, s.year) = (d.level, d.code, d.year));
        DELETE FROM zone_sums s USING _zd d
        WHERE (s.level, s.code, s.year) = (d.level, d.code, d.year)
          AND s.n = 0 AND s.n_enterprises = 0;
        CREATE TEMP TABLE _zk ON COMMIT DROP AS SELECT DISTINCT level, code, year FROM _zd;
        ANALYZE _zk;
        DROP TABLE _zm_old, _fl_old
        """,
        p,
    )
    return set(
        conn.exec_driver_sql(
            f"SELECT level || ':' || code || ':' || year FROM _zd d WHERE {changed}"
        ).scalars()
    )


def replace_rows(
    conn: Connection,
    table: str,
    new: str,
    keys: tuple[str, ...],
    values: tuple[str, ...],
    where: str | None,
    key_text: str,
    extra_cols: str,
    extra_vals: str,
    params: dict,
) -> set[str]:
    """Make the rows of ``table`` within ``where`` (every row when None) those of the temp table
    ``new`` (``keys`` + ``values`` columns): rows whose values are unchanged are left as they are,
    the others deleted and inserted (no TRUNCATE: readers see the rows before or after). A full
    recompute that finds most rows as they were so writes little (rewriting every row of a
    table costs more than comparing them, and leaves as many dead rows). ``extra_cols`` are
    filled with ``extra_vals`` (rule, run_id, as_of; both may be empty). Returns the keys
    (``key_text``, an SQL expression over the key columns) of the rows that changed, appeared
    or went away; ``{ALL}`` when ``where`` is None (everything was recomputed)."""
    vc = ", ".join(f'"{v}"' for v in values)
    kq = ", ".join(f'"{k}"' for k in keys)
    within = "true" if where is None else where
    conn.exec_driver_sql("DROP TABLE IF EXISTS _chg")
    run_sql(
        conn,
        f"""
        -- one join on the keys, the values compared as one record (NULLs equal, as EXCEPT
        -- compares them): half the work of two EXCEPTs over every column
        CREATE TEMP TABLE _chg ON COMMIT DROP AS
        SELECT {kq} FROM (SELECT {kq}, ROW({vc}) AS r FROM {table} WHERE {within}) o
        FULL JOIN (SELECT {kq}, ROW({vc}) AS r FROM {new}) n USING ({kq})
        WHERE o.r IS DISTINCT FROM n.r;
        ANALYZE _chg;
        DELETE FROM {table} t WHERE ({", ".join(f't."{k}"' for k in keys)}) IN (
            SELECT {kq} FROM _chg);
        INSERT INTO {table} ({kq}, {vc}{extra_cols and ", " + extra_cols})
        SELECT {kq}, {vc}{extra_vals and ", " + extra_vals} FROM {new} n
        WHERE ({kq}) IN (SELECT {kq} FROM _chg)
        """,
        params,
    )
    if where is None:
        conn.exec_driver_sql("DROP TABLE _chg")
        return {ALL}
    changed = set(conn.exec_driver_sql(f"SELECT {key_text} FROM _chg").scalars())
    conn.exec_driver_sql("DROP TABLE _chg")
    return changed


ZONE_LEVELS = ("district", "platform", "corridor")
FIGURE_COLUMNS = ("area_m2", "area_mu", "n_enterprises", *SUM_COLUMNS, *RATIO_COLUMNS)


def zone_figures(
    conn: Connection, level: str, year: int | None = None, codes: Iterable[str] | None = None
) -> dict[str, dict[str, float | int | None]]:
    """The one definition of a zone's figures (亩均产值 ``output_per_mu``, 亩均税收
    ``tax_per_mu``, ...): its ``per_mu`` row of ``level`` (district, platform or corridor) and
    ``year`` (the latest year with zone rows when None), for ``codes`` (every zone when None).

    Returns ``{code: {"year", "area_m2", "area_mu", "n_enterprises", <sums>, <ratios>}}`` with the
    columns of gis/core/analysis_columns.py; a zone with no enterprise land that year is absent.
    ``tax_paid``, ``energy_tce``, ``emissions_t`` and their ratios are restricted (analysts only):
    the caller redacts them for others.
    """
    if level not in ZONE_LEVELS:
        raise ValueError(f"level must be one of {ZONE_LEVELS}, not {level!r}")
    cols = ", ".join(FIGURE_COLUMNS)
    rows = conn.execute(
        text(
            f"""
            SELECT code, year, {cols} FROM per_mu
            WHERE level = :level
              AND year = coalesce(CAST(:year AS int),
                                  (SELECT max(year) FROM per_mu WHERE level = :level))
              AND (CAST(:codes AS text[]) IS NULL OR code = ANY(CAST(:codes AS text[])))
            ORDER BY code
            """
        ),
        {"level": level, "year": year, "codes": None if codes is None else list(codes)},
    ).all()
    return {r.code: {k: v for k, v in r._mapping.items() if k != "code"} for r in rows}


PRODUCERS = (
    Producer(
        name="per_mu",
        reads=("links", "outputs", "parcels", "enterprises", "platforms"),
        writes=("enterprise_land", "per_mu", "zone_allocations", "zone_sums"),
        run=run,
        doc="an enterprise's land (§Units) and the per-mu figures of every level (§2)",
    ),
)
