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
from datetime import date

from sqlalchemy import Connection, text

from gis.core.analysis_columns import RATIO_COLUMNS, SUM_COLUMNS
from gis.core.layers import M2_PER_MU
from gis.economy.linkage import bulk_reload, run_sql

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


OWN_TEMP = ("_ep", "_share", "_ez", "_fig", "_psum", "_zsum")
# and those made before compute: _entflags (gis/economy/indicators.py), _ep_link, _sp_link and
# _pzone (gis/economy/linkage.py)
TEMP_TABLES = (*OWN_TEMP, "_entflags", "_ep_link", "_sp_link", "_pzone")


def drop_temp(conn: Connection) -> None:
    """Drop the chain's temp tables (kept until then for gis/economy/indicators.py; ``_entflags`` is
    made by ``gis.economy.indicators.prepare_flags`` before ``compute``)."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(TEMP_TABLES)}")


def compute(conn: Connection, run_id: int, as_of: date) -> dict:
    """Rebuild ``enterprise_land`` and ``per_mu``; returns counts."""
    p = {"run": run_id, "as_of": as_of, "mu": MU, "lrule": LAND_RULE, "prule": PER_MU_RULE}
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(OWN_TEMP)}")
    with bulk_reload(conn, "enterprise_land"):
        run_sql(
            conn,
            """
            -- each enterprise -> parcel link with the number of enterprises on the parcel
            -- (n_ent) and of the enterprise's parcels (n_par)
            CREATE TEMP TABLE _ep ON COMMIT DROP AS
            SELECT l.uscc, l.parcel_no, l.method, l.parcel_m2, pc.n AS n_ent, ec.n AS n_par
            FROM _ep_link l
            JOIN (SELECT parcel_no, count(*) AS n FROM _ep_link GROUP BY 1) pc USING (parcel_no)
            JOIN (SELECT uscc, count(*) AS n FROM _ep_link GROUP BY 1) ec USING (uscc);
            ANALYZE _ep;
            -- a parcel only one enterprise is linked to is its whole (share 1, n 1) in every
            -- year; only the shared parcels need the split of each year (and its sort)
            CREATE TEMP TABLE _share ON COMMIT DROP AS
            SELECT o.year, o.uscc, ep.parcel_no, ep.method, ep.parcel_m2, 1::float8 AS share,
                   ep.parcel_m2 AS land_m2, 1::bigint AS n, ep.n_par
            FROM _ep ep JOIN outputs o ON o.uscc = ep.uscc
            WHERE ep.n_ent = 1
            UNION ALL
            SELECT year, uscc, parcel_no, method, parcel_m2, share, parcel_m2 * share, n, n_par
            FROM (
                SELECT o.year, o.uscc, ep.parcel_no, ep.method, ep.parcel_m2,
                       CASE WHEN count(o.declared_land_m2) FILTER (WHERE o.declared_land_m2 > 0)
                                 OVER w = count(*) OVER w
                            THEN o.declared_land_m2 / sum(o.declared_land_m2) OVER w
                            ELSE 1.0 / count(*) OVER w END AS share,
                       count(*) OVER w AS n, ep.n_par
                FROM _ep ep JOIN outputs o ON o.uscc = ep.uscc
                WHERE ep.n_ent > 1
                WINDOW w AS (PARTITION BY o.year, ep.parcel_no)
            ) x;
            ANALYZE _share;
            INSERT INTO enterprise_land (year, uscc, area_m2, area_mu, basis, parcel_nos,
                                         parcel_shares, reason, rule, run_id, as_of)
            SELECT o.year, o.uscc,
                   CASE WHEN s.m2 IS NOT NULL THEN s.m2
                        WHEN o.declared_land_m2 > 0 THEN o.declared_land_m2 END,
                   CASE WHEN s.m2 IS NOT NULL THEN s.m2
                        WHEN o.declared_land_m2 > 0 THEN o.declared_land_m2 END * :mu,
                   CASE WHEN s.m2 IS NOT NULL THEN 'parcels'
                        WHEN o.declared_land_m2 > 0 THEN 'declared' ELSE 'none' END,
                   coalesce(s.nos, '{}'), coalesce(s.shares, '{}'),
                   CASE WHEN s.m2 IS NULL AND NOT coalesce(o.declared_land_m2 > 0, false)
                        THEN 'no land: no parcel linked ('
                             || coalesce(u.reason, 'no link') || ') and no declared YDMJ for '
                             || o.year END,
                   :lrule, :run, :as_of
            FROM outputs o
            LEFT JOIN (
                -- an enterprise on one parcel needs no aggregate; for the others one sort by
                -- (year, uscc, parcel_no) feeds the arrays in parcel order (and the sum in a
                -- fixed order) instead of a sort per enterprise-year and array
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
            """,
            p,
        )
    # each enterprise's primary zones (for counts and evaluations); parcel -> zone shares are
    # linkage's _pzone
    run_sql(
        conn,
        """
        CREATE TEMP TABLE _ez ON COMMIT DROP AS
        SELECT from_key AS uscc,
               max(to_key) FILTER (WHERE kind = 'enterprise_district') AS district,
               max(to_key) FILTER (WHERE kind = 'enterprise_platform') AS platform,
               max(to_key) FILTER (WHERE kind = 'enterprise_corridor') AS corridor,
               bool_or(method = 'contains') AS by_point
        FROM links
        WHERE kind IN ('enterprise_district', 'enterprise_platform', 'enterprise_corridor')
          AND is_primary AND to_key IS NOT NULL
        GROUP BY from_key;
        ANALYZE _ez
        """,
        p,
    )
    sums = ", ".join(SUM_COLUMNS)
    ratios = ", ".join(RATIO_COLUMNS)
    cols = SUM_COLUMNS + ("va_e", "va_p", "va_l", "rd_r", "rev_r")
    extras = ("out_featured", "out_hightech", "out_platform")
    allc = cols + extras
    ratios_if_land = ", ".join(
        f"CASE WHEN basis <> 'none' THEN {r} END AS {c}"
        for r, c in zip(_ratio_exprs(), RATIOS, strict=True)
    )
    with bulk_reload(conn, "per_mu"):
        run_sql(
            conn,
            f"""
            -- every enterprise-year with output: its land, CC figures and (with land) per-mu
            -- ratios, for the per_mu rows, the zone sums and the evaluation
            CREATE TEMP TABLE _fig ON COMMIT DROP AS
            SELECT *, {ratios_if_land} FROM (
            SELECT o.year, o.uscc, el.area_m2, el.area_mu, el.basis, el.reason,
                   o.gross_output, o.revenue, o.value_added, o.tax_paid,
                   CASE WHEN o.energy_tce > 0 THEN o.energy_tce END AS energy_tce,
                   CASE WHEN o.emissions_t > 0 THEN o.emissions_t END AS emissions_t,
                   o.rd_spending,
                   CASE WHEN o.employees > 0 THEN o.employees END AS employees,
                   CASE WHEN o.energy_tce > 0 THEN o.value_added END AS va_e,
                   CASE WHEN o.emissions_t > 0 THEN o.value_added END AS va_p,
                   CASE WHEN o.employees > 0 THEN o.value_added END AS va_l,
                   CASE WHEN o.revenue > 0 THEN o.rd_spending END AS rd_r,
                   CASE WHEN o.rd_spending IS NOT NULL AND o.revenue > 0 THEN o.revenue END
                       AS rev_r,
                   CASE WHEN fl.featured THEN o.gross_output END AS out_featured,
                   CASE WHEN fl.hightech THEN o.gross_output END AS out_hightech,
                   CASE WHEN fl.in_platform THEN o.gross_output END AS out_platform
            FROM outputs o JOIN enterprise_land el ON el.year = o.year AND el.uscc = o.uscc
            LEFT JOIN _entflags fl ON fl.uscc = o.uscc
            ) f;
            ANALYZE _fig;
            INSERT INTO per_mu (level, code, year, area_m2, area_mu, n_enterprises, {sums}, {
                ratios
            },
                                rule, run_id, as_of)
            SELECT 'enterprise', uscc, year, area_m2, area_mu, 1, {sums}, {ratios},
                   :prule, :run, :as_of
            FROM _fig WHERE basis <> 'none';
            CREATE TEMP TABLE _psum ON COMMIT DROP AS
            -- a parcel-year with one enterprise needs no aggregate (the sums of one row)
            SELECT s.parcel_no AS code, s.year, s.parcel_m2 AS area_m2, s.land_m2,
                   1::bigint AS n, {
                ", ".join(f"s.land_m2 / f.area_m2 * f.{c} AS {c}" for c in allc)
            }
            FROM _share s JOIN _fig f ON f.year = s.year AND f.uscc = s.uscc
            WHERE s.n = 1
            UNION ALL
            SELECT s.parcel_no AS code, s.year, min(s.parcel_m2) AS area_m2,
                   sum(s.land_m2) AS land_m2, count(*) AS n,
                   {", ".join(f"sum(s.land_m2 / f.area_m2 * f.{c}) AS {c}" for c in allc)}
            FROM _share s JOIN _fig f ON f.year = s.year AND f.uscc = s.uscc
            WHERE s.n > 1
            GROUP BY s.parcel_no, s.year;
            ANALYZE _psum;
            INSERT INTO per_mu (level, code, year, area_m2, area_mu, n_enterprises, {sums}, {
                ratios
            },
                                rule, run_id, as_of)
            SELECT 'parcel', code, year, area_m2, area_mu, n, {sums}, {_ratio_sql()},
                   :prule, :run, :as_of
            FROM (SELECT *, area_m2 * :mu AS area_mu FROM _psum) g;
            CREATE TEMP TABLE _zsum ON COMMIT DROP AS
            SELECT g.level, g.code, g.year, g.area_m2, coalesce(cnt.n, 0) AS n, {
                ", ".join(f"g.{c}" for c in allc)
            }
            FROM (
                SELECT level, code, year, sum(land_m2) AS area_m2,
                       {", ".join(f"sum({c}) AS {c}" for c in allc)}
                FROM (
                    SELECT z.level, z.code, p.year, p.land_m2 * z.share AS land_m2,
                           {", ".join(f"p.{c} * z.share AS {c}" for c in allc)}
                    FROM _psum p JOIN _pzone z ON z.parcel_no = p.code
                    UNION ALL
                    SELECT v.level, v.code, f.year, f.area_m2, {", ".join(f"f.{c}" for c in allc)}
                    FROM _fig f JOIN _ez ez ON ez.uscc = f.uscc
                    CROSS JOIN LATERAL (VALUES ('district', ez.district),
                        ('platform', ez.platform), ('corridor', ez.corridor)) v(level, code)
                    WHERE f.basis = 'declared' AND ez.by_point AND v.code IS NOT NULL
                ) x
                GROUP BY level, code, year
            ) g
            LEFT JOIN (  -- enterprises whose primary zone this is (one pass, three groupings)
                SELECT CASE WHEN GROUPING(ez.district) = 0 THEN 'district'
                            WHEN GROUPING(ez.platform) = 0 THEN 'platform'
                            ELSE 'corridor' END AS level,
                       coalesce(ez.district, ez.platform, ez.corridor) AS code, f.year,
                       count(*) AS n
                FROM _fig f JOIN _ez ez ON ez.uscc = f.uscc
                WHERE f.basis <> 'none'
                GROUP BY GROUPING SETS ((ez.district, f.year), (ez.platform, f.year),
                                        (ez.corridor, f.year))
            ) cnt ON cnt.level = g.level AND cnt.code = g.code AND cnt.year = g.year;
            INSERT INTO per_mu (level, code, year, area_m2, area_mu, n_enterprises, {sums}, {
                ratios
            },
                                rule, run_id, as_of)
            SELECT level, code, year, area_m2, area_mu, n, {sums}, {_ratio_sql()},
                   :prule, :run, :as_of
            FROM (SELECT *, area_m2 * :mu AS area_mu FROM _zsum) g
            """,
            p,
        )
    return {
        "enterprise_land": dict(
            conn.exec_driver_sql(
                "SELECT basis, count(*) FROM enterprise_land GROUP BY 1 ORDER BY 1"
            ).all()
        ),
        "per_mu": dict(
            conn.exec_driver_sql("SELECT level, count(*) FROM per_mu GROUP BY 1 ORDER BY 1").all()
        ),
    }


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
