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

亩均税收 of a platform (万元/亩) for year Y is its ``per_mu`` zone row (gis/economy/per_mu.py,
``per_mu.zone_figures``): Σ SJSJ allocated to the platform ÷ the land of the enterprises there
(§Units: each enterprise's land, its parcels by the §1 linkage and their area share in the
platform). It is the same figure the §7 indicators, the tile zone statistics and the page show;
there is no other formula here. Y = the latest year <= year(as_of) − ``tax_year_lag`` with
platform rows in ``per_mu``.

A planner may override a kind (``set_override``); the override is kept with reason, who and when,
and the rule's own verdict stays visible beside it. Areas m² (EPSG:4549), 1 亩 = m² × 0.0015.

``classify`` judges live and writes nothing (GET /api/platforms, admission, plans); ``record``
keeps a snapshot run (``landlink classify``, overrides); the producer ``platform_kinds`` (``run``)
keeps the current kinds, what the map shows, by changed keys.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import Connection, text

from gis.core import graph, vocabulary
from gis.core.graph import Changes, Producer
from gis.core.plan_names import KINDS
from gis.core.rules import PlatformKindRules, Rules, get_rules
from gis.economy import per_mu

KIND_LABELS = vocabulary.labels("platform_kind")
SOURCE = "DOMAIN_RULES §4 (杭政办函〔2017〕127号 三(三)1)"


class UnknownPlatform(LookupError):
    pass


def tax_year(conn: Connection, as_of: date, lag: int) -> int | None:
    """The year of the 亩均税收 used: the latest with platform rows in ``per_mu`` that is <=
    year(as_of) - lag, or None."""
    return conn.execute(
        text("SELECT max(year) FROM per_mu WHERE level = 'platform' AND year <= :y"),
        {"y": as_of.year - lag},
    ).scalar_one()


def platform_tax(conn: Connection, year: int | None) -> tuple[dict[str, dict], str]:
    """{PTDM: {"tax_paid" 万元, "area_mu", "tax_per_mu" 万元/亩}} for ``year`` and the source
    (``per_mu``, or ``none`` without a year): the platforms' per_mu zone rows. A platform
    without enterprise land that year has no entry."""
    if year is None:
        return {}, "none"
    figs = per_mu.zone_figures(conn, "platform", year)
    return {
        code: {k: f[k] for k in ("tax_paid", "area_mu", "tax_per_mu")} for code, f in figs.items()
    }, "per_mu"


def _facts(conn: Connection, rules: PlatformKindRules, codes: list[str] | None = None) -> list:
    """Per platform (of ``codes``; all when None): attributes, host flag, main-urban district,
    nearest host and distance (m)."""
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
            WHERE CAST(:codes AS text[]) IS NULL OR pt.code = ANY(CAST(:codes AS text[]))
            ORDER BY pt.code
            """
        ),
        {
            "host_levels": rules.host_levels,
            "host_types": rules.host_provincial_types,
            "dmax": rules.member_max_distance_m,
            "codes": codes,
        },
    ).all()


def _median(values: list[float]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def _city_figures(conn: Connection, taxes: dict[str, dict]) -> list[float]:
    """The 亩均税收 of every platform that has one (the median's population)."""
    codes = set(conn.execute(text("SELECT code FROM platforms")).scalars())
    return [t["tax_per_mu"] for c, t in taxes.items() if c in codes and t["tax_per_mu"] is not None]


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


def classify(
    conn: Connection,
    as_of: date | None = None,
    rules: Rules | None = None,
    codes: list[str] | None = None,
) -> dict:
    """Every platform's kind (of ``codes`` only, when given: the median is still the city's)
    with the figures and the rule that decided it (writes nothing).

    Returns {"as_of", "tax_year", "tax_source", "median_tax_per_mu", "rules", "items": [...]};
    each item: platform_id (PTDM), name, level, type, district, kind, rule_kind (the rules'
    verdict), host_id, host_distance_m, tax_per_mu, area_km2, override, reasons.
    """
    rules = rules or get_rules()
    r = rules.platform_kinds
    as_of = as_of or date.today()
    year = tax_year(conn, as_of, r.tax_year_lag)
    taxes, source = platform_tax(conn, year)
    facts = _facts(conn, r, codes)
    median = _median(_city_figures(conn, taxes))
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
    """Record a planner's override (``kind`` None withdraws it) and bring the current kinds up to
    date with it (``graph.refresh`` in the caller's transaction); returns the row written."""
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
    graph.refresh(
        conn, Changes(platform_kind_overrides={platform_code}), trigger=f"override:{user}"
    )
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
    _write_rows(conn, run_id, res["items"])
    return {**res, "run_id": run_id}


# --------------------------------------------------------------------------------------------
# The current kinds: kept by the derivation graph (producer ``platform_kinds``)
# --------------------------------------------------------------------------------------------

CURRENT = "current"  # platform_kind_runs.trigger of the one run the graph keeps current
_ROW_COLS = (
    "kind",
    "rule_kind",
    "host_code",
    "host_distance_m",
    "tax_per_mu",
    "reasons",
    "override",
)


def current_run_id(conn: Connection) -> int | None:
    """The ``platform_kind_runs`` row holding the current kinds (None before the first refresh)."""
    return conn.execute(
        text("SELECT min(id) FROM platform_kind_runs WHERE trigger = :t"), {"t": CURRENT}
    ).scalar_one()


def _row(it: dict) -> dict:
    """An item as a ``platform_kinds`` row (JSON as text, sorted keys: compared as stored)."""
    return {
        "platform_code": it["platform_id"],
        "kind": it["kind"],
        "rule_kind": it["rule_kind"],
        "host_code": it["host_id"],
        "host_distance_m": it["host_distance_m"],
        "tax_per_mu": it["tax_per_mu"],
        "reasons": json.dumps(it["reasons"], ensure_ascii=False, sort_keys=True),
        "override": json.dumps(it["override"], ensure_ascii=False, sort_keys=True)
        if it["override"]
        else None,
    }


def _write_rows(conn: Connection, run_id: int, items: list[dict]) -> None:
    if items:
        conn.execute(
            text(
                """
                INSERT INTO platform_kinds (run_id, platform_code, kind, rule_kind, host_code,
                    host_distance_m, tax_per_mu, reasons, override)
                VALUES (:run, :platform_code, :kind, :rule_kind, :host_code, :host_distance_m,
                    :tax_per_mu, CAST(:reasons AS jsonb), CAST(:override AS jsonb))
                """
            ),
            [{**_row(it), "run": run_id} for it in items],
        )


def _scope(conn: Connection, ctx, changes, run) -> tuple[list[str] | None, int | None]:
    """The platforms to reclassify (None: all) and the tax year.

    All: a full refresh, a changed platform or district (hosts, distances and districts of the
    others), the date (the tax year), other rules, a tax year or a median that moved. Else the
    platforms whose per_mu row of the tax year changed and those whose override changed."""
    r = ctx.rules.platform_kinds
    year = tax_year(conn, ctx.as_of, r.tax_year_lag)
    rules_now = json.loads(json.dumps(r.model_dump(), ensure_ascii=False))
    if (
        changes is None
        or run is None
        or changes.touches(("platforms", "districts", "calendar"))
        or changes.everything("per_mu")
        or changes.everything("platform_kind_overrides")
        or run.tax_year != year
        or run.rules != rules_now
    ):
        return None, year
    codes = set(changes.get("platform_kind_overrides", ()))
    figures = {
        code
        for level, code, y in (
            k.rsplit(":", 2) for k in changes.get("per_mu", ()) if k.count(":") >= 2
        )
        if level == "platform" and y == str(year)
    }
    if figures:
        taxes, _ = platform_tax(conn, year)
        if _median(_city_figures(conn, taxes)) != run.median_tax_per_mu:
            return None, year
    return sorted(codes | figures), year


def run(conn: Connection, ctx, changes) -> Changes:
    """Producer ``platform_kinds``: the current kinds (the ``platform_kind_runs`` row of trigger
    ``current`` and its ``platform_kinds`` rows), as of ``ctx.as_of``.

    Reads ``platforms`` and ``districts`` (keys: codes; any change reclassifies all: hosts and
    distances involve the others), ``per_mu`` (keys ``level:code:year``: the platform rows of the
    tax year), ``platform_kind_overrides`` (keys: PTDM) and ``calendar``. Every platform is
    reclassified when the median of 亩均税收 or the tax year moves. Rows whose values did not
    change are left as they are; the others are deleted and inserted (a platform gone: deleted).
    Returns ``Changes(platform_kinds={PTDM})``, the platforms whose current row changed.
    """
    cur = current_run_id(conn)
    run_row = (
        None
        if cur is None
        else conn.execute(
            text("SELECT * FROM platform_kind_runs WHERE id = :id FOR UPDATE"), {"id": cur}
        ).one()
    )
    codes, _ = _scope(conn, ctx, changes, run_row)
    out = Changes()
    if codes is not None and not codes:
        return out
    res = classify(conn, ctx.as_of, ctx.rules, codes)
    params = {
        "as_of": res["as_of"],
        "ty": res["tax_year"],
        "src": res["tax_source"],
        "median": res["median_tax_per_mu"],
        "rules": json.dumps(res["rules"], ensure_ascii=False),
    }
    if cur is None:
        cur = conn.execute(
            text(
                """
                INSERT INTO platform_kind_runs (as_of, tax_year, tax_source, median_tax_per_mu,
                                                rules, trigger, created_by)
                VALUES (:as_of, :ty, :src, :median, CAST(:rules AS jsonb), :t, 'refresh')
                RETURNING id
                """
            ),
            {**params, "t": CURRENT},
        ).scalar_one()
    else:
        conn.execute(
            text(
                "UPDATE platform_kind_runs SET as_of = :as_of, tax_year = :ty, tax_source = :src, "
                "median_tax_per_mu = :median, rules = CAST(:rules AS jsonb), created_at = now() "
                "WHERE id = :id"
            ),
            {**params, "id": cur},
        )
    new = {it["platform_id"]: it for it in res["items"]}
    old = {
        r.platform_code: r
        for r in conn.execute(
            text(
                f"SELECT platform_code, {', '.join(_ROW_COLS)} FROM platform_kinds "
                "WHERE run_id = :run AND (CAST(:codes AS text[]) IS NULL "
                "OR platform_code = ANY(CAST(:codes AS text[])))"
            ),
            {"run": cur, "codes": codes},
        )
    }
    changed = {c for c in old if c not in new}
    for c, it in new.items():
        o, row = old.get(c), _row(it)
        if o is None or any(
            getattr(o, k) != (json.loads(row[k]) if k in ("reasons", "override") and row[k]
                              else row[k])
            for k in _ROW_COLS
        ):  # fmt: skip
            changed.add(c)
    if changed:
        conn.execute(
            text(
                "DELETE FROM platform_kinds WHERE run_id = :run "
                "AND platform_code = ANY(CAST(:c AS text[]))"
            ),
            {"run": cur, "c": sorted(changed)},
        )
        _write_rows(conn, cur, [new[c] for c in sorted(changed) if c in new])
    ctx.counts["platform_kinds"] = {"reclassified": len(new), "changed": len(changed)}
    return out.add("platform_kinds", changed)


PRODUCERS = (
    Producer(
        name="platform_kinds",
        reads=("platforms", "districts", "per_mu", "platform_kind_overrides", "calendar"),
        writes=("platform_kinds",),
        run=run,
        doc="the current kind of every platform (§4), 亩均税收 from per_mu's platform rows",
    ),
)
