"""Reading the evaluation results for the API: enterprise lists, the 一企一档 dossier, evaluation
lists, §7 indicators and the backward-capacity list. Public callers (``analyst=False``) never get
tax (SJSJ), energy (ZHNH) or emission (PFDL) figures, nor anything derived from them (亩均税收,
单位能耗/排放增加值, their points and benchmarks), nor the total score, which is the sum of those
points and the public ones (``public_evaluation``, docs/EVALUATION.md "What public callers
see"). Money 万元, areas 亩 (m² × 0.0015).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from gis.core.analysis_models import (
    EVALUATION_GROUPS,
    RATIO_COLUMNS,
    RESTRICTED_COLUMNS,
    SUM_COLUMNS,
)
from gis.core.rules import get_rules
from gis.economy.backward_capacity import candidates, flags
from gis.economy.evaluation_classes import RANKED_READ_MAX, ranked_rows, ranks_of
from gis.economy.indicators import INDICATORS
from gis.economy.linkage import ENTERPRISE_KINDS

RESTRICTED_INDICATORS = {"tax_per_mu", "va_per_energy", "va_per_emission"}
HIDDEN = "restricted: analyst token"


class NotFound(LookupError):
    pass


def latest_year(conn: Connection) -> int | None:
    return conn.execute(text("SELECT max(year) FROM evaluation_ranking")).scalar_one()


def public_evaluation(ev: dict) -> dict:
    """The public view of one enterprise's evaluation in a year, the one place that makes it:
    every answer that carries an evaluation (lists, the dossier, their CSV and XLSX) passes
    public callers' rows through here.

    Withheld: the restricted indicators (亩均税收, 单位能耗/排放增加值) with their benchmarks and
    points, which of them were missing and how they were scored, and the total **score**: it is
    the sum of every indicator's points, so the score minus the public points would give the
    restricted points (the 规下 group's score less its 亩均营业收入 points is its 亩均税收 points).
    Kept: the class, the rank and the group's size (the published result and its order), the
    public indicators with their benchmarks and points.
    """
    out = dict(ev)
    if "score" in out:
        out["score"] = None
    for key in ("indicators", "benchmarks", "points"):
        if out.get(key) is not None:
            out[key] = {k: v for k, v in out[key].items() if k not in RESTRICTED_INDICATORS}
    if out.get("missing"):
        out["missing"] = [
            m for m in out["missing"] if m.get("indicator") not in RESTRICTED_INDICATORS
        ]
    return out


def _evaluation_item(r: Any, analyst: bool) -> dict:
    m = dict(r._mapping)
    item = {
        "uscc": m["uscc"],
        "name": m["name"],
        "year": m["year"],
        "group": m["group"],
        "industry_code": m["industry_code"],
        "evaluated": m["evaluated"],
        "graded": m["graded"],
        "score": m["score"],
        "class": m["class"],
        "rank": m["rank"],
        "group_size": m["group_size"],
        "area_mu": m["area_mu"],
        "land_basis": m["land_basis"],
        "indicators": m["indicators"],
        "benchmarks": m["benchmarks"],
        "points": m["points"],
        "missing": m["missing"],
        "not_evaluated_reason": m["not_evaluated_reason"],
        "not_graded_reason": m["not_graded_reason"],
        "district": m["district_code"],
        "platform": m["platform_code"],
        "corridor": m["corridor_code"],
        "flags": list(m.get("flags") or []),
        "rule": m["rule"],
        "as_of": m["as_of"].isoformat(),
    }
    return item if analyst else public_evaluation(item)


# each row's 不达标 kinds
_FLAGS_JOIN = """
    LEFT JOIN (SELECT uscc, year, array_agg(kind ORDER BY kind) AS kinds
               FROM failed_standards GROUP BY uscc, year) f
         ON f.uscc = v.uscc AND f.year = v.year
"""
_EVAL_SQL = f"""
    SELECT v.*, f.kinds AS flags
    FROM evaluations v
    {_FLAGS_JOIN}
"""
# one enterprise's rows: the view ``evaluations`` ranks whole group-years (a window over each),
# so one enterprise's rank in each of its years is counted instead, as that window ranks: 1 + the
# graded of its year and group with a higher score (rounded to 1e-6), through the score bounds
# (``evaluation_classes.ranks_of``), else over the group-year's scores (``_RANK_SQL``)
_ONE_ENTERPRISE_SQL = f"""
    SELECT v.*, f.kinds AS flags, NULL::int AS rank
    FROM evaluation_scores v
    {_FLAGS_JOIN}
    WHERE v.uscc = :u
"""
_RANK_SQL = """
    SELECT 1 + count(*) FROM evaluation_scores o
    WHERE o.year = :y AND o."group" = :g AND o.graded
      AND round(o.score * 1e6::float8) > round(:s * 1e6::float8)
"""


def evaluations(
    conn: Connection,
    year: int | None,
    group: str | None,
    analyst: bool,
    klass: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> dict:
    """The evaluation of a year (default: the latest), best first; not graded after graded."""
    year = year or latest_year(conn)
    where = ["v.year = :year"]
    if group:
        where.append('v."group" = :group')
    if klass:
        where.append("v.class = :klass")
    sql = f"""
        {_EVAL_SQL} WHERE {" AND ".join(where)}
        ORDER BY v."group", v.rank NULLS LAST, v.score DESC NULLS LAST, v.uscc
    """
    params = {"year": year, "group": group, "klass": klass}
    total = conn.execute(
        # counted without the ranks (the view ``evaluations`` ranks every row it reads)
        text(f"SELECT count(*) FROM evaluation_scores v WHERE {' AND '.join(where)}"),
        params,
    ).scalar_one()
    page = None
    if limit is not None and year is not None:
        page = _ranked_page(conn, year, group, klass, limit, offset)
    if page is not None:  # the page's rows, ranked by the bounds
        ranks = dict(page)
        got = {
            r.uscc: r
            for r in conn.execute(
                text(
                    f"SELECT v.*, f.kinds AS flags, NULL::int AS rank FROM evaluation_scores v "
                    f"{_FLAGS_JOIN} WHERE v.year = :year AND v.uscc = ANY(:u)"
                ),
                {"year": year, "u": list(ranks)},
            )
        }
        items = []
        for u, rank in page:
            item = _evaluation_item(got[u], analyst)
            item["rank"] = rank
            items.append(item)
        return {"year": year, "numberMatched": total, "items": items}
    if limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=limit, offset=offset)
    rows = conn.execute(text(sql), params).all()
    return {
        "year": year,
        "numberMatched": total,
        "items": [_evaluation_item(r, analyst) for r in rows],
    }


def _ranked_page(
    conn: Connection, year: int, group: str | None, klass: str | None, limit: int, offset: int
) -> list[tuple[str, int | None]] | None:
    """The (USCC, rank) of the rows ``offset`` to ``offset + limit`` of ``evaluations``' list
    (group by group: the graded by rank, then the others by score), the graded ranked by the
    score bounds (``evaluation_classes.ranked_rows``) instead of a window over the whole year;
    None where the bounds cannot tell (the list then ranks by the view)."""
    stop = offset + limit
    if stop > RANKED_READ_MAX:
        return None
    n_graded = {
        g: n
        for g, n in conn.execute(
            text('SELECT "group", n_graded FROM evaluation_groups WHERE year = :y'), {"y": year}
        )
    }
    out: list[tuple[str, int | None]] = []
    pos = 0
    for g in [group] if group else EVALUATION_GROUPS:
        if pos >= stop:
            break
        n = n_graded.get(g, 0)
        if klass:
            n = conn.execute(
                text(
                    'SELECT count(*) FROM evaluation_ranking WHERE year = :y AND "group" = :g '
                    "AND graded AND class = :k"
                ),
                {"y": year, "g": g, "k": klass},
            ).scalar_one()
        if offset < pos + n:
            got = ranked_rows(conn, year, g, klass, max(0, offset - pos), min(n, stop - pos))
            if got is None:
                return None
            out.extend(got)
        pos += n
        if klass or pos >= stop:
            continue  # the rows not graded have no class
        # the rows not graded, by score: few, read from the view without ranks
        rest = (
            conn.execute(
                text(
                    'SELECT uscc FROM evaluation_scores WHERE year = :y AND "group" = :g '
                    "AND NOT graded ORDER BY score DESC NULLS LAST, uscc"
                ),
                {"y": year, "g": g},
            )
            .scalars()
            .all()
        )
        out.extend((u, None) for u in rest[max(0, offset - pos) : max(0, stop - pos)])
        pos += len(rest)
    return out


def enterprises(
    conn: Connection,
    analyst: bool,
    district: str | None = None,
    platform: str | None = None,
    industry: str | None = None,
    klass: str | None = None,
    year: int | None = None,
    q: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> dict:
    """Enterprises with their zones and the year's class; filters combine (AND)."""
    year = year or latest_year(conn)
    where = ["true"]
    if district:
        where.append("zd.to_key = :district")
    if platform:
        where.append("zp.to_key = :platform")
    if industry:
        where.append("e.industry_code LIKE :industry || '%'")
    if klass:
        where.append("v.class = :klass")
    if q:
        where.append("(e.name ILIKE '%' || :q || '%' OR e.uscc = upper(:q))")
    joins = {
        "zd": "LEFT JOIN links zd ON zd.kind = 'enterprise_district' AND zd.from_key = e.uscc "
        "AND zd.is_primary AND zd.to_key IS NOT NULL",
        "zp": "LEFT JOIN links zp ON zp.kind = 'enterprise_platform' AND zp.from_key = e.uscc "
        "AND zp.is_primary AND zp.to_key IS NOT NULL",
        "zc": "LEFT JOIN links zc ON zc.kind = 'enterprise_corridor' AND zc.from_key = e.uscc "
        "AND zc.is_primary AND zc.to_key IS NOT NULL",
        "v": "LEFT JOIN {view} v ON v.uscc = e.uscc AND v.year = :year",
    }
    cond = " AND ".join(where)

    def base(view: str, needed: set[str] | None = None) -> str:
        """FROM ... WHERE of the list: every join, or (for the count) only those the filters
        name (each joins at most one row: an enterprise's primary zone link of a level, its
        evaluation of the year)."""
        used = [j for k, j in joins.items() if needed is None or k in needed]
        return f"FROM enterprises e {' '.join(used)} WHERE {cond}".replace("{view}", view)

    params = {
        "district": district,
        "platform": platform,
        "industry": industry,
        "klass": klass,
        "q": q,
        "year": year,
    }
    # counted without the ranks, and without the joins no filter names
    needed = {k for k, on in (("zd", district), ("zp", platform), ("v", klass)) if on}
    total = conn.execute(
        text(f"SELECT count(*) {base('evaluation_scores', needed)}"), params
    ).scalar_one()
    # the page without ranks, then the ranks of its graded rows through the score bounds
    # (``ranks_of``), else by the view's window over the year
    sql = """
        SELECT e.uscc, e.name, e.industry_code, e.above_size, e.parcel_nos,
               zd.to_key AS district, zp.to_key AS platform, zc.to_key AS corridor,
               v.year, v."group", v.score, v.class, {rank}, v.area_mu, v.evaluated,
               v.not_evaluated_reason, v.not_graded_reason, v.graded
        {base}
        ORDER BY e.uscc
    """
    if limit is not None:
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=limit, offset=offset)
    items = [
        dict(r._mapping)
        for r in conn.execute(
            text(sql.format(rank="NULL::int AS rank", base=base("evaluation_scores"))),
            params,
        )
    ]
    graded = [(it["year"], it["group"], it["uscc"], it["score"]) for it in items if it["graded"]]
    ranks = ranks_of(conn, graded) if graded else {}
    if ranks is None:
        items = [
            dict(r._mapping)
            for r in conn.execute(text(sql.format(rank="v.rank", base=base("evaluations"))), params)
        ]
    else:
        for it in items:
            it["rank"] = ranks.get((it["year"], it["uscc"]))
    for it in items:
        del it["graded"]
    if not analyst:
        items = [public_evaluation(it) for it in items]
    for it in items:
        it["parcel_nos"] = list(it["parcel_nos"] or [])
    return {"year": year, "numberMatched": total, "items": items}


def dossier(conn: Connection, uscc: str, analyst: bool) -> dict:
    """一企一档: the enterprise, its parcels (with how each was linked and its land share per
    year), projects, every year's figures and evaluation, and its 不达标 flags."""
    e = conn.execute(
        text(
            "SELECT uscc, name, industry_code, above_size, parcel_nos, source_crs, "
            "ST_X(ST_Transform(geom, 4326)) AS lon, ST_Y(ST_Transform(geom, 4326)) AS lat "
            "FROM enterprises WHERE uscc = :u"
        ),
        {"u": uscc},
    ).first()
    if e is None:
        raise NotFound(f"no enterprise with USCC {uscc} in the registry (QY)")
    out: dict = dict(e._mapping)
    out["parcel_nos"] = list(out["parcel_nos"] or [])
    links = conn.execute(
        text(
            """
            SELECT l.kind, l.to_key, l.method, l.distance_m, l.share, l.is_primary, l.reason,
                   l.rule, pa.area_m2, pa.actual_use, pa.supply_no
            FROM links l LEFT JOIN parcels pa
                 ON l.kind = 'enterprise_parcel' AND pa.parcel_no = l.to_key
            WHERE l.kind = ANY(:kinds) AND l.from_key = :u
            ORDER BY l.kind, l.is_primary DESC, l.share DESC NULLS LAST, l.to_key
            """
        ),
        {"u": uscc, "kinds": list(ENTERPRISE_KINDS)},
    ).all()
    out["parcels"] = [
        {
            "parcel_no": r.to_key,
            "method": r.method,
            "distance_m": r.distance_m,
            "area_m2": r.area_m2,
            "area_mu": r.area_m2 * 0.0015 if r.area_m2 else None,
            "actual_use": r.actual_use,
            "supply_no": r.supply_no,
            "reason": r.reason,
            "rule": r.rule,
        }
        for r in links
        if r.kind == "enterprise_parcel"
    ]
    out["zones"] = {
        r.kind.split("_", 1)[1]: {"code": r.to_key, "method": r.method, "share": r.share}
        for r in links
        if r.kind != "enterprise_parcel" and r.is_primary
    }
    out["land"] = []
    for r in conn.execute(
        text(
            """
            SELECT el.year, el.area_m2, el.area_mu, el.basis, el.reason, el.rule,
                   coalesce(jsonb_agg(jsonb_build_object(
                       'parcel_no', x.no, 'share', x.share, 'parcel_m2', pa.area_m2,
                       'land_m2', x.share * pa.area_m2) ORDER BY x.no)
                       FILTER (WHERE x.no IS NOT NULL), '[]') AS parcels
            FROM enterprise_land el
            LEFT JOIN LATERAL unnest(el.parcel_nos, el.parcel_shares) x(no, share) ON true
            LEFT JOIN parcels pa ON pa.parcel_no = x.no
            WHERE el.uscc = :u
            GROUP BY el.year, el.area_m2, el.area_mu, el.basis, el.reason, el.rule
            ORDER BY el.year
            """
        ),
        {"u": uscc},
    ):
        out["land"].append(dict(r._mapping))
    out["projects"] = [
        dict(r._mapping)
        for r in conn.execute(
            text(
                """
                SELECT x.project_code, x.name, x.status, x.planned_investment,
                       x.investment_made, x.started_on, x.production_on, x.supply_no,
                       x.parcel_no, 'TYSHXYDM' AS linked_by
                FROM projects x WHERE x.uscc = :u
                UNION  -- a project on two of its parcels once
                SELECT x.project_code, x.name, x.status, x.planned_investment,
                       x.investment_made, x.started_on, x.production_on, x.supply_no,
                       x.parcel_no, 'parcel'
                FROM links ep
                JOIN links pp ON pp.kind = 'project_parcel' AND pp.to_key = ep.to_key
                JOIN projects x ON x.project_code = pp.from_key
                WHERE ep.kind = 'enterprise_parcel' AND ep.from_key = :u
                  AND x.uscc IS DISTINCT FROM :u
                ORDER BY project_code
                """
            ),
            {"u": uscc},
        )
    ]
    cols = ["year", "area_mu", *SUM_COLUMNS, *RATIO_COLUMNS]
    figures = [
        dict(r._mapping)
        for r in conn.execute(
            text(
                f"SELECT {', '.join(cols)} FROM per_mu WHERE level = 'enterprise' "
                "AND code = :u ORDER BY year"
            ),
            {"u": uscc},
        )
    ]
    if not analyst:
        for f in figures:
            for c in RESTRICTED_COLUMNS:
                f.pop(c, None)
    out["figures"] = figures
    years = conn.execute(text(f"{_ONE_ENTERPRISE_SQL} ORDER BY v.year"), {"u": uscc}).all()
    graded = [r for r in years if r.graded]
    ranks = ranks_of(conn, [(r.year, r.group, r.uscc, r.score) for r in graded])
    if ranks is None:  # a group-year without a base: counted over its scores
        ranks = {
            (r.year, r.uscc): conn.execute(
                text(_RANK_SQL), {"y": r.year, "g": r.group, "s": r.score}
            ).scalar_one()
            for r in graded
        }
    out["evaluations"] = []
    for r in years:
        item = _evaluation_item(r, analyst)
        if r.graded:
            item["rank"] = ranks[(r.year, r.uscc)]
        out["evaluations"].append(item)
    out["failed_standards"] = [
        {k: v for k, v in f.items() if k != "uscc" and (analyst or k != "note")}
        for f in flags(conn, uscc=uscc)
    ]  # a BD note (SM) is for analysts
    out["restricted_hidden"] = not analyst
    return out


def area_indicators(conn: Connection, level: str, year: int | None, analyst: bool) -> dict:
    """§7 indicators of every zone of ``level`` in ``year`` (default: the latest), one row per
    zone with value, previous, change and rank per indicator."""
    year = (
        year
        or conn.execute(
            text("SELECT max(year) FROM area_indicators WHERE level = :l"), {"l": level}
        ).scalar_one()
    )
    rows = conn.execute(
        text(
            """
            SELECT code, name, indicator, category, value, unit, previous, change, rank, better,
                   restricted, figures
            FROM area_indicators WHERE level = :l AND year = :y
            ORDER BY code, indicator
            """
        ),
        {"l": level, "y": year},
    ).all()
    zones: dict[str, dict] = {}
    for r in rows:
        if r.restricted and not analyst:
            continue
        z = zones.setdefault(r.code, {"code": r.code, "name": r.name, "indicators": {}})
        z["indicators"][r.indicator] = {
            "category": r.category,
            "value": r.value,
            "unit": r.unit,
            "previous": r.previous,
            "change": r.change,
            "rank": r.rank,
            "better": r.better,
            "figures": r.figures,
        }
    shown = [k for k, v in INDICATORS.items() if analyst or not v[3]]
    return {"level": level, "year": year, "indicators": shown, "items": list(zones.values())}


def backward_capacity(conn: Connection, year: int | None) -> dict:
    year = year or latest_year(conn)
    items = candidates(conn, year, get_rules().backward_capacity) if year else []
    return {
        "year": year,
        "numberMatched": len(items),
        "area_mu": sum(i["area_mu"] or 0 for i in items),
        "items": items,
    }
