"""§7 indicators (两底线 两降低 四提升) per district, platform and corridor and year.

Read from the zone sums of gis/economy/per_mu.py (temp table ``_zsum`` of the same transaction):
each enterprise's CC figures allocated to zones in proportion to its land there.

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

import json
from datetime import date

from sqlalchemy import Connection, text

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


def _prefix_values(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return "SELECT NULL::text AS name, NULL::text AS prefix WHERE false"
    rows = ", ".join(f"('{a.replace(chr(39), '')}', '{b.replace(chr(39), '')}')" for a, b in pairs)
    return f"SELECT * FROM (VALUES {rows}) v(name, prefix)"


def _flags_sql(rules: IndicatorRules) -> str:
    """A SELECT of (uscc, in_platform, featured, hightech): featured = its industry is one of its
    primary platform's featured industries (TSCY)."""
    featured, hightech = _featured_sql(rules), _hightech_sql(rules)
    return f"""
        WITH fp AS (  -- each platform's featured prefixes as LIKE patterns
            SELECT pt.code, array_agg(f.prefix || '%') AS pats
            FROM platforms pt CROSS JOIN LATERAL unnest(pt.featured_industries) n
            JOIN ({featured}) f ON f.name = trim(n)
            GROUP BY pt.code
        )
        SELECT e.uscc, zp.to_key IS NOT NULL AS in_platform,
            coalesce(e.industry_code LIKE ANY (fp.pats), false) AS featured,
            coalesce(e.industry_code LIKE ANY (
                ARRAY(SELECT h.prefix || '%' FROM ({hightech}) h)), false) AS hightech
        FROM enterprises e
        LEFT JOIN links zp ON zp.kind = 'enterprise_platform'
             AND zp.from_key = e.uscc AND zp.is_primary AND zp.to_key IS NOT NULL
        LEFT JOIN fp ON fp.code = zp.to_key
    """


def _share_sum(flag: str) -> str:
    """GYZCZ of the enterprises with ``flag`` allocated to the zone (``w``: zone land rows),
    summed exactly (per_mu.exact_sum: the same whatever order the rows come in)."""
    return per_mu.exact_sum("w.land_m2 / el.area_m2 * o.gross_output", where=flag)


def _featured_sql(rules: IndicatorRules) -> str:
    return _prefix_values(
        [(n, pfx) for n, pfxs in rules.featured_industry_codes.items() for pfx in pfxs]
    )


def _hightech_sql(rules: IndicatorRules) -> str:
    return _prefix_values([("", pfx) for pfx in rules.high_tech_prefixes])


def compute(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: IndicatorRules,
    years: list[int] | None,
    full: bool = True,
) -> dict:
    """Recompute ``area_indicators`` of ``years`` (every year when None) from the zone rows of
    ``per_mu``; returns the changed keys (``level:code:year``; ``{ALL}`` for a ``full``
    recompute) and notes."""
    years_arg = years
    import pandas as pd

    featured = _featured_sql(rules)
    notes: list[str] = []
    unmapped = conn.execute(
        text(
            f"""
            SELECT DISTINCT trim(n) FROM platforms, unnest(featured_industries) n
            WHERE trim(n) <> '' AND trim(n) NOT IN (SELECT name FROM ({featured}) f)
            ORDER BY 1
            """
        )
    ).scalars()
    unmapped = list(unmapped)
    if unmapped:
        notes.append(
            "featured industries with no GB/T 4754 mapping (count as no match): "
            + "、".join(unmapped)
        )
    all_years = [
        r[0] for r in conn.execute(text("SELECT DISTINCT year FROM outputs ORDER BY 1")).all()
    ]
    # the years computed: those asked for and their neighbours (previous values, changes)
    calc = (
        all_years
        if years is None
        else sorted({y + d for y in years for d in (-1, 0, 1)} & set(all_years))
    )
    write = all_years if years is None else sorted({y + d for y in years for d in (0, 1)})
    yl = "CAST(:years AS int[])"
    wide = pd.DataFrame(
        conn.execute(
            text(
                f"""
                SELECT z.level, z.code, z.year, z.gross_output, x.out_featured, x.out_hightech,
                       x.out_platform, z.tax_paid, z.area_m2, z.energy_tce,
                       z.va_per_energy * z.energy_tce AS va_e, z.emissions_t
                FROM per_mu z
                LEFT JOIN (  -- outputs of featured, high-tech and platform enterprises
                    SELECT w.level, w.code, w.year,
                        {_share_sum("fl.featured")} AS out_featured,
                        {_share_sum("fl.hightech")} AS out_hightech,
                        {_share_sum("fl.in_platform")} AS out_platform
                    FROM ({per_mu.zone_land_sql(None, yl)}) w
                    JOIN enterprise_land el ON el.year = w.year AND el.uscc = w.uscc
                    JOIN outputs o ON o.year = w.year AND o.uscc = w.uscc
                    JOIN ({_flags_sql(rules)}) fl ON fl.uscc = w.uscc
                    GROUP BY 1, 2, 3
                ) x ON x.level = z.level AND x.code = z.code AND x.year = z.year
                WHERE z.level IN ('district', 'platform', 'corridor')
                  AND z.year = ANY(CAST(:years AS int[]))
                ORDER BY z.level, z.code, z.year  -- the city's sums add in one order
                """
            ),
            {"years": calc},
        ).all(),
        columns=[
            "level", "code", "year", "output", "out_featured", "out_hightech", "out_platform",
            "tax", "land_m2", "energy", "va_e", "emissions",
        ],
    )  # fmt: skip
    years = calc
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
    land = pd.DataFrame(
        conn.execute(
            text(
                f"""
                SELECT substr(l.kind, 8) AS level, l.to_key AS code,
                       {per_mu.exact_sum("pa.area_m2 * l.share")} / :m2mu AS mu
                FROM links l JOIN parcels pa ON pa.parcel_no = l.from_key
                WHERE l.kind IN ('parcel_district', 'parcel_platform', 'parcel_corridor')
                  AND l.to_key IS NOT NULL AND pa.land_use_code = ANY(:codes)
                GROUP BY 1, 2
                """
            ),
            {"m2mu": M2_PER_MU, "codes": list(INDUSTRIAL_LAND_CODES)},
        ).all(),
        columns=["level", "code", "industrial_land_mu"],
    )
    stats = pd.DataFrame(
        conn.execute(
            text(
                "SELECT 'district' AS level, district_code AS code, year, gdp, "
                "value_added AS tj_va, industrial_land_m2 FROM district_stats"
            )
        ).all(),
        columns=["level", "code", "year", "gdp", "tj_va", "tj_land_m2"],
    )
    if years and not zones.empty:
        records = _records(wide, zones, land, stats, years, run_id, as_of)
        records = [r for r in records if r["year"] in write]
    else:
        records = []
    conn.exec_driver_sql("DROP TABLE IF EXISTS _ai_new")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _ai_new ON COMMIT DROP AS SELECT * FROM area_indicators WITH NO DATA"
    )
    if records:
        conn.execute(
            text(
                """
                INSERT INTO _ai_new (level, code, name, year, indicator, category, value,
                    unit, previous, change, rank, better, restricted, figures, rule, run_id,
                    as_of)
                VALUES (:level, :code, :name, :year, :indicator, :category, :value, :unit,
                    :previous, :change, :rank, :better, :restricted, CAST(:figures AS jsonb),
                    :rule, :run, :as_of)
                """
            ),
            records,
        )
    changed = per_mu.replace_rows(
        conn, "area_indicators", "_ai_new", ("level", "code", "year", "indicator"),
        ("name", "category", "value", "unit", "previous", "change", "rank", "better",
         "restricted", "figures"),
        "year = ANY(CAST(:write AS int[]))" if years_arg is not None
        else None if full else "true",
        "level || ':' || code || ':' || year", "rule, run_id, as_of", ":rule, :run, :as_of",
        {"write": write, "rule": RULE, "run": run_id, "as_of": as_of},
    )  # fmt: skip
    conn.exec_driver_sql("DROP TABLE _ai_new")
    return {"rows": len(records), "notes": notes, "changed": changed}


def _records(wide, zones, land, stats, years, run_id, as_of) -> list[dict]:
    """The indicator rows of ``years`` (long format) from the zone figures."""
    import numpy as np
    import pandas as pd

    grid = zones.merge(pd.DataFrame({"year": years}), how="cross")
    df = grid.merge(wide, on=["level", "code", "year"], how="left")
    df = df.merge(land, on=["level", "code"], how="left").merge(
        stats, on=["level", "code", "year"], how="left"
    )
    city = wide[wide.level == "district"].groupby("year").output.sum(min_count=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = df.land_m2 / M2_PER_MU
        vals = {
            "va_gdp_share": df.tj_va / df.gdp * 100,
            "industrial_land_mu": df.industrial_land_mu.fillna(0.0),
            "energy_per_va": df.energy / df.va_e,
            "emissions_t": df.emissions,
            "output_per_mu": df.output / mu,
            "tax_per_mu": df.tax / mu,
            "platform_output_share": np.where(
                df.level == "platform",
                df.output / df.year.map(city) * 100,
                df.out_platform.fillna(0) / df.output * 100,
            ),
            "featured_output_share": df.out_featured.fillna(0) / df.output * 100,
            "high_tech_output_share": df.out_hightech.fillna(0) / df.output * 100,
        }
    figures = {
        "va_gdp_share": ("tj_va", "gdp"),
        "energy_per_va": ("energy", "va_e"),
        "output_per_mu": ("output", "land_m2"),
        "tax_per_mu": ("tax", "land_m2"),
        "featured_output_share": ("out_featured", "output"),
        "high_tech_output_share": ("out_hightech", "output"),
        "platform_output_share": ("out_platform", "output"),
    }
    parts = []
    for name, v in vals.items():
        cat, unit, better, restricted = INDICATORS[name]
        part = df[["level", "code", "name", "year"]].copy()
        part["indicator"] = name
        part["value"] = pd.Series(np.asarray(v, dtype=float), index=df.index).replace(
            [np.inf, -np.inf], np.nan
        )
        part["category"], part["unit"], part["better"] = cat, unit, better
        part["restricted"] = restricted
        num, den = figures.get(name, (None, None))
        if num:
            part["figures"] = [
                json.dumps({num: _f(a), den: _f(b)}, ensure_ascii=False)
                for a, b in zip(df[num], df[den], strict=True)
            ]
        else:
            part["figures"] = "{}"
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    prev = long[["level", "code", "indicator", "year", "value"]].copy()
    prev["year"] += 1
    long = long.merge(
        prev.rename(columns={"value": "previous"}),
        on=["level", "code", "indicator", "year"],
        how="left",
    )
    long["change"] = long.value - long.previous
    asc = long.better == "lower"
    # ranked on values rounded to 1e-6: zone sums are floating-point sums whose last digits
    # follow the order the database added them in, and equal figures must tie whatever it was
    by = long.value.round(6).groupby([long.level, long.year, long.indicator])
    rank_hi = by.rank(method="min", ascending=False)
    rank_lo = by.rank(method="min", ascending=True)
    long["rank"] = np.where(asc, rank_lo, rank_hi)
    long = long.astype(object).where(long.notna(), None)
    records = long.to_dict("records")
    for r in records:
        r["rank"] = int(r["rank"]) if r["rank"] is not None else None
        r.update(run=run_id, as_of=as_of, rule=RULE)
    return records


def _f(v) -> float | None:
    import pandas as pd

    return None if v is None or pd.isna(v) else round(float(v), 6)


def run(conn: Connection, ctx, changes: Changes | None) -> Changes:
    """Producer ``indicators``: ``area_indicators`` of the years whose zone rows of ``per_mu``
    changed (and the year after each: its previous value and change), every zone of the level
    (ranks are per level and year); every year when ``changes`` is None or names anything but
    ``per_mu`` zone rows (enterprises' industries, platforms' featured industries, links,
    parcels, TJ). Returns ``Changes(area_indicators={"level:code:year"})`` of the rows that
    changed (``ALL`` only when ``changes`` is None)."""
    years: list[int] | None = None
    if changes is not None and not any(
        changes.get(t)
        for t in ("enterprises", "links", "parcels", "platforms", "districts", "corridors",
                  "district_stats")
    ) and not changes.everything("per_mu"):  # fmt: skip
        years = sorted(
            {
                int(k.rsplit(":", 1)[1])
                for k in changes.get("per_mu", ())
                if k.split(":", 1)[0] in LEVEL_TABLES
            }
        )
        if not years:
            return Changes()
    r = compute(conn, ctx.run_id or 0, ctx.as_of, ctx.rules.indicators, years, full=changes is None)
    ctx.notes.extend(n for n in r["notes"] if n not in ctx.notes)
    ctx.counts["area_indicators"] = "all" if ALL in r["changed"] else len(r["changed"])
    return Changes(area_indicators=r["changed"])


PRODUCERS = (
    Producer(
        name="indicators",
        reads=(
            "per_mu", "enterprise_land", "outputs", "enterprises", "links", "parcels",
            "platforms", "districts", "corridors", "district_stats",
        ),
        writes=("area_indicators",),
        run=run,
        doc="§7 两底线 两降低 四提升 per district, platform and corridor and year",
    ),
)  # fmt: skip
