"""Platforms: the four kinds (四类平台), DOMAIN_RULES §4 (杭政办函〔2017〕127号 三(三)1).

Rules, applied in this order; the first that holds decides:

1. ``consolidate_host`` (整合托管型, host): PTJB in ``host_levels`` (国家级), or PTJB 省级
   with PTLX in ``host_provincial_types`` (经济技术开发区 / 经济开发区; provincial 高新区 are
   not hosts by default).
2. ``consolidate_member`` (整合托管型, member): any other platform touching or within
   ``member_max_distance_m`` (2 km) of a host: ``ST_DWithin(member, host, 2000)`` in EPSG:4549
   metres, inclusive; ``host_id`` is the nearest host by ``ST_Distance`` (ties: the lower PTDM).
3. ``to_innovation`` (转为创新型): a platform in a main urban district (ZCQ = 1). The district
   is the platform's XZQDM; without one, the district holding the largest share of its area.
4. ``retain_upgrade`` (保留提升型): area >= ``retain_min_area_m2`` (1 km²), featured industries
   (TSCY) given, and 亩均税收 at or above the median of the platforms that have a figure.
5. ``phase_out`` (逐步退出型): all others.

亩均税收 of a platform (万元/亩) for year Y = Σ SJSJ of the enterprises on its parcels ÷ Σ area
in 亩 of its parcels (a parcel belongs to the platform holding the largest share of its area,
§1). It is read from ``per_mu`` table when that holds platform rows for Y; otherwise
computed here: enterprise → parcel by DKBH, else the parcel containing its point; an
enterprise's tax is spread over its parcels in proportion to its land on each (a parcel's
area shared among its enterprises by declared YDMJ, or equally where any is missing, §Units).
Y = the latest output year <= year(as_of) − ``tax_year_lag``.

A planner may override a kind (``set_override``); the override is kept with reason, who and when,
and the rule's own verdict stays visible beside it. Areas m² (EPSG:4549), 1 亩 = m² × 0.0015.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import Connection, text

from gis.core import vocabulary
from gis.core.layers import M2_PER_MU
from gis.core.plan_models import KINDS
from gis.core.rules import PlatformKindRules, Rules, get_rules

KIND_LABELS = vocabulary.labels("platform_kind")
SOURCE = "DOMAIN_RULES §4 (杭政办函〔2017〕127号 三(三)1)"


class UnknownPlatform(LookupError):
    pass


# Enterprise -> parcel links (DKBH, else containing point) and each link's share of the
# enterprise's tax in :year. Columns: uscc, parcel_id, tax_share (万元).
ENTERPRISE_TAX_SQL = """
    ep AS (
        SELECT DISTINCT e.uscc, p.id AS parcel_id
        FROM enterprises e CROSS JOIN LATERAL unnest(e.parcel_nos) k
        JOIN parcels p ON p.parcel_no = k
        UNION
        SELECT e.uscc, p.id
        FROM enterprises e JOIN parcels p ON ST_Contains(p.geom, e.geom)
        WHERE e.geom IS NOT NULL AND coalesce(cardinality(e.parcel_nos), 0) = 0
    ), epo AS (
        SELECT ep.uscc, ep.parcel_id, p.area_m2, o.tax_paid, o.declared_land_m2 AS ydmj,
               count(*) OVER w AS n_on_parcel,
               count(o.declared_land_m2) FILTER (WHERE o.declared_land_m2 > 0) OVER w AS n_ydmj,
               sum(o.declared_land_m2) FILTER (WHERE o.declared_land_m2 > 0) OVER w AS sum_ydmj
        FROM ep JOIN parcels p ON p.id = ep.parcel_id
        LEFT JOIN outputs o ON o.uscc = ep.uscc AND o.year = :year
        WINDOW w AS (PARTITION BY ep.parcel_id)
    ), land AS (
        SELECT uscc, parcel_id, tax_paid,
               area_m2 * CASE WHEN n_ydmj = n_on_parcel THEN ydmj / sum_ydmj
                              ELSE 1.0 / n_on_parcel END AS land_m2
        FROM epo
    ), ent_tax AS (
        SELECT uscc, parcel_id,
               coalesce(tax_paid, 0) * land_m2 / nullif(sum(land_m2) OVER (PARTITION BY uscc), 0)
                   AS tax_share
        FROM land
    )
"""

# Parcel -> platform holding the largest share of its area (§1). Columns: parcel_id, area_m2,
# platform_code.
PARCEL_PLATFORM_SQL = """
    pp AS (
        SELECT DISTINCT ON (p.id) p.id AS parcel_id, p.area_m2, pt.code AS platform_code
        FROM parcels p
        JOIN platforms pt ON pt.geom && p.geom AND ST_Intersects(pt.geom, p.geom)
        ORDER BY p.id,
                 CASE WHEN ST_CoveredBy(p.geom, pt.geom) THEN p.area_m2
                      ELSE ST_Area(ST_Intersection(p.geom, pt.geom)) END DESC,
                 pt.code
    )
"""


def tax_year(conn: Connection, as_of: date, lag: int) -> int | None:
    """The output year used for 亩均税收: the latest ND <= year(as_of) - lag, or None."""
    return conn.execute(
        text("SELECT max(year) FROM outputs WHERE year <= :y"), {"y": as_of.year - lag}
    ).scalar_one()


def platform_tax(conn: Connection, year: int | None) -> tuple[dict[str, dict], str]:
    """{PTDM: {"tax_paid" 万元, "area_mu", "tax_per_mu" 万元/亩}} for ``year``, and the source.

    Source "per_mu" (table) when it has platform rows for the year, else "computed".
    Platforms without parcels have no entry.
    """
    if year is None:
        return {}, "none"
    has_per_mu = (
        conn.execute(text("SELECT to_regclass('per_mu') IS NOT NULL")).scalar_one()
        and conn.execute(
            text("SELECT EXISTS (SELECT 1 FROM per_mu WHERE level = 'platform' AND year = :y)"),
            {"y": year},
        ).scalar_one()
    )
    if has_per_mu:
        rows = conn.execute(
            text(
                "SELECT code, tax_paid, area_mu, tax_per_mu FROM per_mu "
                "WHERE level = 'platform' AND year = :y"
            ),
            {"y": year},
        ).all()
        return {
            r.code: {"tax_paid": r.tax_paid, "area_mu": r.area_mu, "tax_per_mu": r.tax_per_mu}
            for r in rows
        }, "per_mu"
    rows = conn.execute(
        text(
            f"""
            WITH {PARCEL_PLATFORM_SQL}, {ENTERPRISE_TAX_SQL},
            ptax AS (
                SELECT pp.platform_code, sum(t.tax_share) AS tax
                FROM ent_tax t JOIN pp ON pp.parcel_id = t.parcel_id GROUP BY 1
            ), parea AS (
                SELECT platform_code, sum(area_m2) AS area_m2 FROM pp GROUP BY 1
            )
            SELECT a.platform_code AS code, coalesce(t.tax, 0) AS tax_paid,
                   a.area_m2 / :m2mu AS area_mu,
                   coalesce(t.tax, 0) / (a.area_m2 / :m2mu) AS tax_per_mu
            FROM parea a LEFT JOIN ptax t USING (platform_code)
            WHERE a.area_m2 > 0
            """
        ),
        {"year": year, "m2mu": M2_PER_MU},
    ).all()
    return {
        r.code: {"tax_paid": r.tax_paid, "area_mu": r.area_mu, "tax_per_mu": r.tax_per_mu}
        for r in rows
    }, "computed"


def _facts(conn: Connection, rules: PlatformKindRules) -> list:
    """Per platform: attributes, host flag, main-urban district, nearest host and distance (m)."""
    return conn.execute(
        text(
            """
            WITH pt AS (
                SELECT p.*,
                       (p.level = ANY(:host_levels)
                        OR (p.level = '省级' AND p.type = ANY(:host_types))) AS is_host,
                       coalesce(dk.code, ds.code) AS district, coalesce(dk.name, ds.name)
                           AS district_name,
                       coalesce(dk.main_urban, ds.main_urban, false) AS main_urban,
                       CASE WHEN dk.code IS NOT NULL THEN 'XZQDM'
                            WHEN ds.code IS NOT NULL THEN 'largest area share' END
                           AS district_by
                FROM platforms p
                LEFT JOIN districts dk ON dk.code = p.district_code
                LEFT JOIN LATERAL (
                    SELECT d.code, d.name, d.main_urban FROM districts d
                    WHERE p.district_code IS NULL AND d.geom && p.geom
                      AND ST_Intersects(d.geom, p.geom)
                    ORDER BY ST_Area(ST_Intersection(d.geom, p.geom)) DESC, d.code LIMIT 1
                ) ds ON true
            )
            SELECT pt.code, pt.name, pt.level, pt.type, pt.district, pt.district_name,
                   pt.district_by, pt.main_urban, pt.is_host, pt.area_m2,
                   coalesce(cardinality(pt.featured_industries), 0) AS n_featured,
                   pt.featured_industries, h.code AS host_code, h.name AS host_name, h.dist,
                   EXISTS (SELECT 1 FROM pt x WHERE x.is_host AND x.code <> pt.code
                           AND ST_DWithin(x.geom, pt.geom, :dmax)) AS near_host
            FROM pt
            LEFT JOIN LATERAL (
                SELECT x.code, x.name, ST_Distance(x.geom, pt.geom) AS dist
                FROM pt x WHERE x.is_host AND x.code <> pt.code
                ORDER BY ST_Distance(x.geom, pt.geom), x.code LIMIT 1
            ) h ON NOT pt.is_host
            ORDER BY pt.code
            """
        ),
        {
            "host_levels": rules.host_levels,
            "host_types": rules.host_provincial_types,
            "dmax": rules.member_max_distance_m,
        },
    ).all()


def _median(values: list[float]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def current_overrides(conn: Connection) -> dict[str, dict]:
    """The override in force per platform: {PTDM: {kind, reason, by, at}} (withdrawn: absent)."""
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (platform_code) platform_code, kind, reason, created_by,
                   created_at
            FROM platform_kind_overrides ORDER BY platform_code, id DESC
            """
        )
    ).all()
    return {
        r.platform_code: {
            "kind": r.kind,
            "reason": r.reason,
            "by": r.created_by,
            "at": r.created_at.isoformat(),
        }
        for r in rows
        if r.kind is not None
    }


def classify(conn: Connection, as_of: date | None = None, rules: Rules | None = None) -> dict:
    """Every platform's kind with the figures and the rule that decided it (writes nothing).

    Returns {"as_of", "tax_year", "tax_source", "median_tax_per_mu", "rules", "items": [...]};
    each item: platform_id (PTDM), name, level, type, district, kind, rule_kind (the rules'
    verdict), host_id, host_distance_m, tax_per_mu, area_km2, override, reasons.
    """
    rules = rules or get_rules()
    r = rules.platform_kinds
    as_of = as_of or date.today()
    year = tax_year(conn, as_of, r.tax_year_lag)
    taxes, source = platform_tax(conn, year)
    facts = _facts(conn, r)
    figures = [taxes[f.code]["tax_per_mu"] for f in facts if f.code in taxes]
    figures = [x for x in figures if x is not None]
    median = _median(figures)
    overrides = current_overrides(conn)
    items = []
    for f in facts:
        tax = taxes.get(f.code, {}).get("tax_per_mu")
        reasons: list[dict] = []
        host = {
            "rule": "host: 国家级, or 省级 of a host type (整合托管型)",
            "test": "host",
            "figure": f"{f.level} {f.type or ''}".strip(),
            "threshold": f"{'/'.join(r.host_levels)}; 省级 {'/'.join(r.host_provincial_types)}",
            "result": bool(f.is_host),
        }
        reasons.append(host)
        kind = "consolidate_host" if f.is_host else None
        if kind is None:
            near = bool(f.near_host)  # ST_DWithin(member, host, d): inclusive
            reasons.append(
                {
                    "rule": "touching or within the distance of a host (整合托管型)",
                    "test": "near_host",
                    "figure": None if f.host_code is None else round(f.dist, 3),
                    "threshold": r.member_max_distance_m,
                    "unit": "m",
                    "host_id": f.host_code,
                    "result": bool(near),
                }
            )
            if near:
                kind = "consolidate_member"
        if kind is None:
            reasons.append(
                {
                    "rule": "in a main urban district, ZCQ = 1 (转为创新型)",
                    "test": "main_urban",
                    "figure": f.district,
                    "district_by": f.district_by,
                    "threshold": "ZCQ = 1",
                    "result": bool(f.main_urban),
                }
            )
            if f.main_urban:
                kind = "to_innovation"
        if kind is None:
            big = f.area_m2 >= r.retain_min_area_m2
            featured = f.n_featured > 0
            rich = tax is not None and median is not None and tax >= median
            reasons += [
                {
                    "rule": "area at least 1 km² (保留提升型)",
                    "test": "area",
                    "figure": round(f.area_m2, 1),
                    "threshold": r.retain_min_area_m2,
                    "unit": "m²",
                    "result": bool(big),
                },
                {
                    "rule": "featured industries TSCY given (保留提升型)",
                    "test": "featured",
                    "figure": list(f.featured_industries or []),
                    "threshold": "at least one",
                    "result": bool(featured),
                },
                {
                    "rule": "亩均税收 at or above the city median of platforms (保留提升型)",
                    "test": "tax_per_mu",
                    "figure": None if tax is None else round(tax, 4),
                    "threshold": None if median is None else round(median, 4),
                    "unit": "万元/亩",
                    "year": year,
                    "result": bool(rich),
                },
            ]
            kind = "retain_upgrade" if big and featured and rich else "phase_out"
        rule_kind = kind
        ov = overrides.get(f.code)
        if ov:
            kind = ov["kind"]
        items.append(
            {
                "platform_id": f.code,
                "name": f.name,
                "level": f.level,
                "type": f.type,
                "district": f.district,
                "district_name": f.district_name,
                "kind": kind,
                "kind_label": KIND_LABELS[kind],
                "rule_kind": rule_kind,
                "host_id": f.host_code if kind == "consolidate_member" else None,
                "host_name": f.host_name if kind == "consolidate_member" else None,
                "host_distance_m": None if f.host_code is None else round(f.dist, 3),
                "area_km2": round(f.area_m2 / 1e6, 4),
                "tax_per_mu": tax,
                "override": ov,
                "reasons": reasons,
                "source": SOURCE,
            }
        )
    return {
        "as_of": as_of.isoformat(),
        "tax_year": year,
        "tax_source": source,
        "median_tax_per_mu": median,
        "rules": r.model_dump(),
        "items": items,
    }


def redact(result: dict) -> dict:
    """The classification without tax figures (for public callers)."""
    out = {**result, "median_tax_per_mu": None}
    items = []
    for it in result["items"]:
        reasons = [
            {**x, "figure": None, "threshold": None} if x["test"] == "tax_per_mu" else x
            for x in it["reasons"]
        ]
        items.append({**it, "tax_per_mu": None, "reasons": reasons})
    out["items"] = items
    return out


def set_override(
    conn: Connection, platform_code: str, kind: str | None, reason: str, user: str
) -> dict:
    """Record a planner's override (``kind`` None withdraws it); returns the row written."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if not reason or not reason.strip():
        raise ValueError("an override needs a reason")
    exists = conn.execute(
        text("SELECT 1 FROM platforms WHERE code = :c"), {"c": platform_code}
    ).first()
    if not exists:
        raise UnknownPlatform(f"no platform with PTDM {platform_code!r}")
    row = conn.execute(
        text(
            """
            INSERT INTO platform_kind_overrides (platform_code, kind, reason, created_by)
            VALUES (:c, :k, :r, :u) RETURNING id, created_at
            """
        ),
        {"c": platform_code, "k": kind, "r": reason.strip(), "u": user},
    ).one()
    return {
        "id": row.id,
        "platform_id": platform_code,
        "kind": kind,
        "reason": reason.strip(),
        "by": user,
        "at": row.created_at.isoformat(),
    }


def override_history(conn: Connection, platform_code: str | None = None) -> list[dict]:
    rows = conn.execute(
        text(
            "SELECT * FROM platform_kind_overrides "
            + ("WHERE platform_code = :c " if platform_code else "")
            + "ORDER BY id"
        ),
        {"c": platform_code},
    ).all()
    return [
        {
            "id": r.id,
            "platform_id": r.platform_code,
            "kind": r.kind,
            "reason": r.reason,
            "by": r.created_by,
            "at": r.created_at.isoformat(),
        }
        for r in rows
    ]


def record(
    conn: Connection,
    trigger: str,
    user: str,
    as_of: date | None = None,
    rules: Rules | None = None,
) -> dict:
    """Classify and record the result as a run (``platform_kind_runs`` / ``platform_kinds``): the
    latest run is what the map and the OGC ``platforms`` collection show. Returns the
    classification with ``run_id``."""
    res = classify(conn, as_of, rules)
    run_id = conn.execute(
        text(
            """
            INSERT INTO platform_kind_runs (as_of, tax_year, tax_source, median_tax_per_mu,
                                            rules, trigger, created_by)
            VALUES (:as_of, :ty, :src, :median, CAST(:rules AS jsonb), :trigger, :user)
            RETURNING id
            """
        ),
        {
            "as_of": res["as_of"],
            "ty": res["tax_year"],
            "src": res["tax_source"],
            "median": res["median_tax_per_mu"],
            "rules": json.dumps(res["rules"], ensure_ascii=False),
            "trigger": trigger,
            "user": user,
        },
    ).scalar_one()
    if res["items"]:
        conn.execute(
            text(
                """
                INSERT INTO platform_kinds (run_id, platform_code, kind, rule_kind, host_code,
                    host_distance_m, tax_per_mu, reasons, override)
                VALUES (:run, :platform_id, :kind, :rule_kind, :host_id, :host_distance_m,
                    :tax_per_mu, CAST(:reasons AS jsonb), CAST(:override AS jsonb))
                """
            ),
            [
                {
                    **it,
                    "run": run_id,
                    "reasons": json.dumps(it["reasons"], ensure_ascii=False),
                    "override": json.dumps(it["override"], ensure_ascii=False)
                    if it["override"]
                    else None,
                }
                for it in res["items"]
            ],
        )
    return {**res, "run_id": run_id}


def classify_summary_line(engine) -> str:
    """For ``landlink analyse-all``: classify, record the run, counts per kind."""
    with engine.begin() as conn:
        res = record(conn, "analyse-all", "analyse-all")
    counts: dict[str, int] = {}
    for it in res["items"]:
        counts[it["kind"]] = counts.get(it["kind"], 0) + 1
    return (
        f"run {res['run_id']}: {len(res['items'])} platforms "
        f"(亩均税收 {res['tax_year']}, {res['tax_source']}): "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in KINDS)
    )
