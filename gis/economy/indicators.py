"""§7 indicators (两底线 两降低 四提升) per district, platform and corridor and year.

Read from the zone rows of ``per_mu`` and the zone sums (``zone_sums``: the GYZCZ of the
featured, high-tech and platform enterprises, gis/economy/industry_flags.py), both kept by
gis/economy/per_mu.py: each enterprise's CC figures allocated to zones in proportion to its land
there.

两底线 (floors):   ``va_gdp_share`` 工业增加值 ÷ GDP (%, districts only: TJ's GYZJZ ÷ GDP);
                   ``industrial_land_mu`` surveyed industrial parcels (DLBM industrial) in the zone,
                   by area share (亩; the current survey, so the same in every year).
两降低 (lower):    ``energy_per_va`` ZHNH ÷ GYZJZ (tce/万元, enterprises reporting ZHNH);
                   ``emissions_t`` Σ PFDL (t).
四提升 (raise):    ``output_per_mu`` 亩均产值 and ``tax_per_mu`` 亩均税收 (万元/亩);
                   ``platform_output_share``: a platform's share of the city's GYZCZ; for a
                   district or corridor, the share of its GYZCZ from enterprises in a platform;
                   ``featured_output_share``: GYZCZ of enterprises whose industry is one of their
                   platform's featured industries (TSCY, mapped to GB/T 4754 prefixes by
                   ``[indicators.featured_industry_codes]``) ÷ GYZCZ (%);
                   ``high_tech_output_share``: GYZCZ of high-tech industries ÷ GYZCZ (%).

Each value has the previous year's value, the change (value − previous) and a rank among the
level's zones that year (1 = best; "lower" indicators rank ascending; ties share the rank; values
are compared rounded to 1e-6, so equal figures tie whatever order their sums were added in).
Tax, energy and emission indicators are ``restricted`` (analysts only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, text

from gis.core.analysis_columns import SHARE_COLUMNS
from gis.core.graph import ALL, Changes, Producer
from gis.core.layers import INDUSTRIAL_LAND_CODES, M2_PER_MU
from gis.core.rules import IndicatorRules
from gis.economy import per_mu

RULE = "§7 两底线 两降低 四提升"  # docs/EVALUATION.md
# indicator -> (category, unit, better, restricted)
INDICATORS = {
    "va_gdp_share": ("两底线", "%", "higher", False),
    "industrial_land_mu": ("两底线", "亩", "higher", False),
    "energy_per_va": ("两降低", "tce/万元", "lower", True),
    "emissions_t": ("两降低", "t", "lower", True),
    "output_per_mu": ("四提升", "万元/亩", "higher", False),
    "tax_per_mu": ("四提升", "万元/亩", "higher", True),
    "platform_output_share": ("四提升", "%", "higher", False),
    "featured_output_share": ("四提升", "%", "higher", False),
    "high_tech_output_share": ("四提升", "%", "higher", False),
}
LEVEL_TABLES = {"district": "districts", "platform": "platforms", "corridor": "corridors"}


# The zone's industrial land (a sum over its parcels): a refresh by keys recomputes it only for
# the zones in question and keeps the stored one of the others (every other indicator is read
# afresh from per_mu, zone_sums and TJ).
LAND = "industrial_land_mu"


@dataclass
class Scope:
    """What a refresh by keys recomputes (see ``run``).

    ``years``: the years whose rows may change (the year after each follows: its previous value
    and change; every year when ``every_year``); ``land``: the zones (level, code) whose
    industrial land is recomputed, and every year too where it moved (it is the same in every
    year). The other zones keep their stored industrial land; all of them are ranked again."""

    years: set[int] = field(default_factory=set)
    every_year: bool = False
    land: set[tuple[str, str]] = field(default_factory=set)


def compute(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: IndicatorRules,
    scope: Scope | None,
    full: bool = True,
) -> dict:
    """Recompute ``area_indicators``: every row when ``scope`` is None, else the rows of the
    scope's years and the years after them, every zone of the three levels (ranks are per
    level, year and indicator), with the industrial land recomputed only for the scope's
    zones (every year's rows when one of theirs moved). Returns the changed keys
    (``level:code:year``; ``{ALL}`` for a ``full`` recompute) and notes."""
    import pandas as pd

    all_years = per_mu.years_of(conn, "outputs")
    zones = pd.DataFrame(
        conn.execute(
            text(
                " UNION ALL ".join(
                    f"SELECT '{lv}' AS level, code, name FROM {t}" for lv, t in LEVEL_TABLES.items()
                )
            )
        ).all(),
        columns=["level", "code", "name"],
    )
    if scope is None:
        calc = write = all_years
        land = _land(conn, None)
    else:
        stored = set(
            conn.execute(text("SELECT DISTINCT year FROM area_indicators")).scalars().all()
        )
        if not all_years and not stored:  # no year to make or delete
            return {"rows": 0, "notes": [], "changed": set()}
        # industrial land: recomputed for the scope's zones and those with nothing stored (a
        # new zone), the stored value kept for the others
        stored_land = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT DISTINCT ON (level, code) level, code, value FROM area_indicators "
                    "WHERE indicator = :land ORDER BY level, code, year"
                ),
                {"land": LAND},
            ).all(),
            columns=["level", "code", "value"],
        )
        kept = dict(zip(zip(stored_land.level, stored_land.code, strict=True),
                        stored_land.value, strict=True))  # fmt: skip
        land_zones = set(scope.land) | (set(zip(zones.level, zones.code, strict=True)) - set(kept))
        land = _land(conn, sorted(land_zones))
        new_land = dict(zip(zip(land.level, land.code, strict=True),
                            land.industrial_land_mu, strict=True))  # fmt: skip
        # a zone's industrial land is the same in every year: where it moved (a zone without
        # industrial parcels has 0), every year's row of it changes; where no zone's did (a
        # parcel moved within its zones, a non-industrial one changed zones), no year has to
        # be made for it
        land_moved = any(
            z not in kept or new_land.get(z, 0.0) != (kept[z] or 0.0) for z in land_zones
        )
        # a year that appeared in (or went from) the outputs has rows for every zone to make
        # (or to delete)
        every_year = scope.every_year or land_moved
        years = (set(all_years) | stored) if every_year else set(scope.years)
        years |= set(all_years) ^ stored
        if not years:
            return {"rows": 0, "notes": [], "changed": set()}
        # the years computed: those in question and their neighbours (previous values, changes)
        calc = sorted({y + d for y in years for d in (-1, 0, 1)} & set(all_years))
        write = sorted({y + d for y in years for d in (0, 1)})
        kept_land = pd.DataFrame(
            [(*z, v) for z, v in kept.items() if z not in land_zones], columns=land.columns
        )
        land = pd.concat([land, kept_land], ignore_index=True)
    notes = _notes(conn, rules)
    conn.exec_driver_sql("DROP TABLE IF EXISTS _ai_new")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _ai_new ON COMMIT DROP AS SELECT * FROM area_indicators WITH NO DATA"
    )
    n_rows = (
        conn.execute(text(_INSERT), _parameters(land, calc, write, run_id, as_of)).rowcount
        if calc and not zones.empty
        else 0
    )
    changed = per_mu.replace_rows(
        conn, "area_indicators", "_ai_new", ("level", "code", "year", "indicator"),
        ("name", "category", "value", "unit", "previous", "change", "rank", "better",
         "restricted", "figures"),
        # every row of the years written (all three levels: a zone's change moves the others'
        # ranks, a district's output the platforms' shares of the city): _ai_new holds them all
        "year = ANY(CAST(:write AS int[]))" if scope is not None
        else None if full else "true",
        "level || ':' || code || ':' || year", "rule, run_id, as_of", ":rule, :run, :as_of",
        {"write": write, "rule": RULE, "run": run_id, "as_of": as_of},
    )  # fmt: skip
    conn.exec_driver_sql("DROP TABLE _ai_new")
    return {"rows": n_rows, "notes": notes, "changed": changed}


def _notes(conn: Connection, rules: IndicatorRules) -> list[str]:
    """The run's note on platforms' featured industries that have no GB/T 4754 mapping."""
    unmapped = conn.execute(
        text(
            """
            SELECT DISTINCT trim(n) FROM platforms, unnest(featured_industries) n
            WHERE trim(n) <> '' AND trim(n) <> ALL(CAST(:mapped AS text[]))
            ORDER BY 1
            """
        ),
        {"mapped": [n for n, pfxs in rules.featured_industry_codes.items() if pfxs]},
    ).scalars()
    unmapped = list(unmapped)
    if not unmapped:
        return []
    return [
        "featured industries with no GB/T 4754 mapping (count as no match): " + "、".join(unmapped)
    ]


def _land(conn: Connection, zones: list[tuple[str, str]] | None):
    """A DataFrame of (level, code, industrial_land_mu) of ``zones`` (every zone when None): the
    surveyed industrial parcels in the zone by area share (a zone without any has no row)."""
    import pandas as pd

    cols = ["level", "code", "industrial_land_mu"]
    if zones is not None and not zones:
        return pd.DataFrame(columns=cols)
    only = (
        ""
        if zones is None
        else "AND (substr(l.kind, 8), l.to_key) IN (SELECT * FROM unnest(CAST(:zl AS text[]), "
        "CAST(:zc AS text[])))"
    )
    return pd.DataFrame(
        conn.execute(
            text(
                f"""
                SELECT substr(l.kind, 8) AS level, l.to_key AS code,
                       {per_mu.exact_sum("pa.area_m2 * l.share")} / :m2mu AS mu
                FROM links l JOIN parcels pa ON pa.parcel_no = l.from_key
                WHERE l.kind IN ('parcel_district', 'parcel_platform', 'parcel_corridor')
                  AND l.to_key IS NOT NULL AND pa.land_use_code = ANY(:codes) {only}
                GROUP BY 1, 2
                """
            ),
            {
                "m2mu": M2_PER_MU,
                "codes": list(INDUSTRIAL_LAND_CODES),
                "zl": [lv for lv, _ in zones or ()],
                "zc": [c for _, c in zones or ()],
            },
        ).all(),
        columns=cols,
    )


# Each indicator's value and its figures (numerator, denominator) from the zone-year row ``d``
# (one row per zone and year: per_mu's zone figures, zone_sums' output shares' numerators,
# TJ, the zone's industrial land and the city's output). A zero denominator gives no value.
_VALUES = {
    "va_gdp_share": "d.tj_va / nullif(d.gdp, 0) * 100",
    "industrial_land_mu": "coalesce(d.industrial_land_mu, 0)",
    "energy_per_va": "d.energy / nullif(d.va_e, 0)",
    "emissions_t": "d.emissions",
    "output_per_mu": "d.output / nullif(d.land_m2 / CAST(:m2mu AS float8), 0)",
    "tax_per_mu": "d.tax / nullif(d.land_m2 / CAST(:m2mu AS float8), 0)",
    # a platform's share of the city's GYZCZ; a district's or corridor's: the share of its own
    # GYZCZ from enterprises in a platform
    "platform_output_share": "CASE WHEN d.level = 'platform' THEN d.output / nullif(d.city, 0) "
    "* 100 ELSE coalesce(d.out_platform, 0) / nullif(d.output, 0) * 100 END",
    "featured_output_share": "coalesce(d.out_featured, 0) / nullif(d.output, 0) * 100",
    "high_tech_output_share": "coalesce(d.out_hightech, 0) / nullif(d.output, 0) * 100",
}
_FIGURES = {
    "va_gdp_share": ("tj_va", "gdp"),
    "energy_per_va": ("energy", "va_e"),
    "output_per_mu": ("output", "land_m2"),
    "tax_per_mu": ("tax", "land_m2"),
    "featured_output_share": ("out_featured", "output"),
    "high_tech_output_share": ("out_hightech", "output"),
    "platform_output_share": ("out_platform", "output"),
}


def _figures(name: str) -> str:
    """The indicator's figures as JSON: its numerator and denominator rounded to 6 decimals
    (``{}`` for an indicator that is a figure itself)."""
    if name not in _FIGURES:
        return "'{}'::jsonb"
    pairs = ", ".join(f"'{c}', round(CAST(d.{c} AS numeric), 6)::float8" for c in _FIGURES[name])
    return f"jsonb_build_object({pairs})"


def _case(parts: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{n}' THEN {e}" for n, e in parts.items())
    return f"CASE i.indicator {whens} END"


# The indicator rows of the years ``:write`` from the zone figures of the years ``:calc``
# (``:write``'s and the year before each: previous value and change), every zone of the three
# levels. Ranked per level, year and indicator on values rounded to 1e-6 (zone sums are sums
# whose last digits follow the order they were added in; equal figures tie), ties sharing the
# lowest rank, no rank without a value. The city's output is the exact sum of its districts'.
_INSERT = f"""
INSERT INTO _ai_new (level, code, name, year, indicator, category, value, unit, previous,
                     change, rank, better, restricted, figures, rule, run_id, as_of)
WITH z AS (
    {
    " UNION ALL ".join(
        f"SELECT '{lv}' AS level, code, name FROM {t}" for lv, t in LEVEL_TABLES.items()
    )
}
), w AS (
    SELECT z.level, z.code, z.year, z.gross_output AS output, z.tax_paid AS tax,
           z.area_m2 AS land_m2,
           z.energy_tce AS energy, z.va_per_energy * z.energy_tce AS va_e,
           z.emissions_t AS emissions, {per_mu.zone_sum_values(SHARE_COLUMNS)}
    FROM per_mu z
    LEFT JOIN zone_sums s USING (level, code, year)
    WHERE z.level IN ('district', 'platform', 'corridor')
      AND z.year = ANY(CAST(:calc AS int[]))
), city AS (
    SELECT year, {per_mu.exact_sum("output")} AS output FROM w WHERE level = 'district'
    GROUP BY year
), d AS (
    SELECT z.level, z.code, z.name, y.year, w.output, w.tax, w.land_m2, w.energy, w.va_e,
           w.emissions, w.out_featured, w.out_hightech, w.out_platform,
           l.mu AS industrial_land_mu, st.gdp, st.value_added AS tj_va, c.output AS city
    FROM z
    CROSS JOIN unnest(CAST(:calc AS int[])) AS y(year)
    LEFT JOIN w ON w.level = z.level AND w.code = z.code AND w.year = y.year
    LEFT JOIN unnest(CAST(:land_level AS text[]), CAST(:land_code AS text[]),
                     CAST(:land_mu AS float8[])) AS l(level, code, mu)
           ON l.level = z.level AND l.code = z.code
    LEFT JOIN district_stats st
           ON z.level = 'district' AND st.district_code = z.code AND st.year = y.year
    LEFT JOIN city c ON c.year = y.year
), v AS (
    SELECT d.level, d.code, d.name, d.year, i.indicator, i.better,
           {_case(_VALUES)} AS value,
           {_case({n: _figures(n) for n in INDICATORS})} AS figures
    FROM d
    CROSS JOIN unnest(CAST(:names AS text[]), CAST(:betters AS text[])) AS i(indicator, better)
), r AS (
    SELECT v.*,
           CASE WHEN v.value IS NULL THEN NULL
                WHEN v.better = 'lower' THEN rank() OVER (
                    PARTITION BY v.level, v.year, v.indicator, v.value IS NULL
                    ORDER BY round(CAST(v.value AS numeric), 6))
                ELSE rank() OVER (
                    PARTITION BY v.level, v.year, v.indicator, v.value IS NULL
                    ORDER BY round(CAST(v.value AS numeric), 6) DESC)
           END AS rank
    FROM v
)
SELECT r.level, r.code, r.name, r.year, r.indicator, m.category, r.value, m.unit, p.value,
       r.value - p.value, r.rank, r.better, m.restricted, r.figures, :rule, :run, :as_of
FROM r
JOIN unnest(CAST(:names AS text[]), CAST(:categories AS text[]), CAST(:units AS text[]),
            CAST(:restricted AS bool[])) AS m(indicator, category, unit, restricted)
  ON m.indicator = r.indicator
LEFT JOIN r p ON p.level = r.level AND p.code = r.code AND p.indicator = r.indicator
             AND p.year = r.year - 1
WHERE r.year = ANY(CAST(:write AS int[]))
"""


def _parameters(land, calc: list[int], write: list[int], run_id: int, as_of: date) -> dict:
    """The parameters of ``_INSERT``: ``land`` a DataFrame of (level, code, industrial_land_mu)."""
    return {
        "calc": list(calc),
        "write": list(write),
        "m2mu": M2_PER_MU,
        "land_level": land.level.tolist(),
        "land_code": land.code.tolist(),
        "land_mu": [float(v) for v in land.industrial_land_mu],
        "names": list(INDICATORS),
        "categories": [c for c, _, _, _ in INDICATORS.values()],
        "units": [u for _, u, _, _ in INDICATORS.values()],
        "betters": [b for _, _, b, _ in INDICATORS.values()],
        "restricted": [r for _, _, _, r in INDICATORS.values()],
        "rule": RULE,
        "run": run_id,
        "as_of": as_of,
    }


# a refresh by keys that cannot tell which zones these changed recomputes every row
WHOLE = ("per_mu", "zone_sums", "outputs", "links", "parcels", "platforms", "districts",
         "corridors", "zone_links")  # fmt: skip


def _scope(conn: Connection, changes: Changes | None) -> Scope | None:
    """The rows to recompute for ``changes`` (see ``run``); None: every row."""
    if changes is None or any(changes.everything(t) for t in WHOLE):
        return None
    # links or parcels changed without the linkage's account of the zones they left
    if (changes.get("links") or changes.get("parcels")) and "zone_links" not in changes:
        return None
    s = Scope()
    # the zone-years whose figures or output shares' numerators changed
    for k in (*changes.get("per_mu", ()), *changes.get("zone_sums", ())):
        level, _, rest = k.partition(":")
        code, _, year = rest.rpartition(":")
        if level in LEVEL_TABLES and code and year.isdigit():
            s.years.add(int(year))
    for k in changes.get("zone_links", ()):
        level, _, code = k.partition(":")
        if level in LEVEL_TABLES:
            s.land.add((level, code))
    parcels = sorted(changes.get("parcels", ()))
    if parcels:  # their area or land use: the zones they are in now (those left: zone_links)
        s.land |= set(
            conn.execute(
                text(
                    f"""
                    SELECT DISTINCT substr(kind, 8), to_key FROM links
                    WHERE kind IN {per_mu.ZONE_LINKS} AND to_key IS NOT NULL
                      AND from_key = ANY(CAST(:p AS text[]))
                    """
                ),
                {"p": parcels},
            ).all()
        )
    # (industrial land is the current survey's, the same in every year: ``compute`` makes every
    # year where a zone's land moved)
    # a zone's name, or the zone itself, in every year
    s.every_year |= any(changes.get(t) for t in LEVEL_TABLES.values())
    for k in changes.get("district_stats", ()):
        code, _, year = k.rpartition(":")
        if code and year.isdigit():
            s.years.add(int(year))
        else:
            s.every_year = True
    return s


def run(conn: Connection, ctx, changes: Changes | None) -> Changes:
    """Producer ``indicators``: ``area_indicators`` of the rows that ``changes`` may move
    (everything when None). Returns ``Changes(area_indicators={"level:code:year"})`` of the rows
    that changed (``ALL`` only when ``changes`` is None).

    Every figure is read from per_mu's zone rows and ``zone_sums`` (the output shares'
    numerators, kept by differences there: per_mu re-flags an enterprise whose industry or
    primary platform changed, and those of a platform whose featured industries changed), and
    TJ, except the industrial land (a sum over the zone's parcels), recomputed only for the
    zones whose parcel links changed (the linkage's ``zone_links``, those left as well as those
    entered), the zones a changed parcel is in now, and zones with none stored; the others keep
    theirs.

    The rows written are those of every zone of the three levels in the years in question and
    the year after each (its previous value and change): the years of the zone-years whose
    ``per_mu`` or ``zone_sums`` rows changed, of changed TJ rows
    (``district_stats`` ``code:year``), a year appearing in or going from the outputs, and every
    year for a changed zone (its name, or the zone itself) or a zone whose industrial land
    moved (recomputed first: a parcel moved within its zones moves none). Everything else
    of those years is read afresh (per_mu, TJ: a few hundred rows) and ranked again per level,
    year and indicator: one zone's change moves the others' ranks, a district's output the
    platforms' shares of the city. ``replace_rows`` writes only the rows that differ.

    Every row is recomputed when ``changes`` names ``ALL`` of a table read, or links or
    parcels without the linkage's ``zone_links`` (the zones a parcel left are then unknown).
    Keys of ``outputs`` and ``enterprises`` need nothing of their own: they reach the zones
    through the ``per_mu`` and ``zone_sums`` rows they changed."""
    scope = _scope(conn, changes)
    r = compute(conn, ctx.run_id or 0, ctx.as_of, ctx.rules.indicators, scope, full=changes is None)
    ctx.notes.extend(n for n in r["notes"] if n not in ctx.notes)
    ctx.counts["area_indicators"] = "all" if ALL in r["changed"] else len(r["changed"])
    return Changes(area_indicators=r["changed"])


PRODUCERS = (
    Producer(
        name="indicators",
        reads=(
            "per_mu", "zone_sums", "outputs", "links", "parcels", "platforms", "districts",
            "corridors", "district_stats",
        ),
        writes=("area_indicators",),
        run=run,
        doc="§7 两底线 两降低 四提升 per district, platform and corridor and year",
    ),
)  # fmt: skip
