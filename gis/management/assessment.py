"""考核评价: the platforms' composite score per year, ranked overall and within each kind (大比武).

The plan (杭政办函〔2017〕127号) sets 年度亩均产值、亩均税收考核指标 per platform and a
考核评价办法; the weights and their sources are in gis/core/rules.toml ``[assessment]``
(docs/PUBLICATIONS.md).

Components (``components``): each weighted §7 indicator of the platform, read from the one
computation (``area_indicators``, gis/economy/indicators.py, where each indicator declares whether
higher or lower is better and whether it is restricted), and the mean completion of the
platform's annual targets (``target_completion``, read through ``target_completion_rows``).

Method, per year:

- an indicator's normalised score (0–100) is min-max within the year's platforms that have a
  value: ``100 × (v − min) ÷ (max − min)`` (higher is better) or ``100 × (max − v) ÷ (max − min)``
  (lower is better); every platform scores 100 when all values are equal;
- the target component's score is the mean completion (%) of the platform's targets, each capped
  at 100 (an absolute scale already: not normalised again);
- a component is *present* in the year when some platform has a figure for it; absent
  components (no figure anywhere, or the target table not there) are listed with the reason and
  carry no weight; a platform without a figure for a present component is scored on the others
  (the weights renormalised over what it has) and the component is listed as missing for it;
- effective weight = weight ÷ Σ weights of the components the platform is scored on × 100;
  points = normalised score × effective weight ÷ 100; the composite score = Σ points (0–100);
- ranks: 1 = best, overall and within the platform's kind (the current kinds the graph keeps,
  ``platform_kinds``); equal scores (compared rounded to 1e-6) share the rank; a platform with no
  figure at all has no score and no rank.

Restricted indicators (亩均税收, 单位工业增加值能耗, 排放总量) enter everyone's score; public
callers get their normalised score and points but not the value (``public_assessment``).
Computed when read (a few hundred platforms): GET never writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from gis.core import vocabulary
from gis.core.rules import AssessmentRules, get_rules
from gis.economy import per_mu
from gis.economy.indicators import INDICATORS
from gis.platforms import platform_kinds

RULE = "考核评价 (杭政办函〔2017〕127号; weights rules.toml [assessment], 浙政发〔2018〕5号 basis)"
TARGETS = "target_completion"
INDICATOR_LABELS = vocabulary.labels("indicator")
KIND_LABELS = platform_kinds.KIND_LABELS


@dataclass(frozen=True)
class Component:
    """One part of the score: a §7 indicator or the target completion."""

    name: str
    label: str
    weight: float
    better: str  # higher | lower
    unit: str
    restricted: bool


def components(rules: AssessmentRules | None = None) -> list[Component]:
    """The components with their weights (rules.toml ``[assessment]``), in the rules' order,
    the target completion last."""
    r = rules or get_rules().assessment
    out = []
    for name, w in r.weights.items():
        _, unit, better, restricted = INDICATORS[name]
        out.append(Component(name, INDICATOR_LABELS[name], w, better, unit, restricted))
    if r.target_completion > 0:
        label = vocabulary.label("assessment_component", TARGETS)
        out.append(Component(TARGETS, label, r.target_completion, "higher", "%", False))
    return out


def target_completion_rows(conn: Connection, year: int) -> list[tuple[str, int, float]]:
    """The rows of the target component: (platform code, year, mean completion %) of ``year``,
    each target's completion capped at 100 before the mean, from ``target_progress`` (MB targets
    of level 平台 with a completion; gis/management/targets.py); empty when there are none (the
    component is then absent, never a made-up value)."""
    return [
        (r.code, r.year, float(r.completion))
        for r in conn.execute(
            text(
                """
                SELECT zone_code AS code, year, avg(least(completion, 100)) AS completion
                FROM target_progress
                WHERE level = '平台' AND year = :y AND completion IS NOT NULL
                GROUP BY zone_code, year ORDER BY zone_code
                """
            ),
            {"y": year},
        )
    ]


def target_scores(rows: list[tuple[str, int, float]], year: int) -> dict[str, float]:
    """{platform code: score 0–100} of ``year`` from (code, year, mean completion %) rows: the
    completion itself, capped at 100 (a completion below 0 scores 0)."""
    return {code: max(0.0, min(100.0, c)) for code, y, c in rows if y == year and c is not None}


def normalise(values: dict[str, float], better: str) -> dict[str, float]:
    """Min-max scores (0–100) of ``values`` ({code: value}, no None) within themselves; all 100
    when every value is equal."""
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    if round(hi - lo, 9) == 0:
        return dict.fromkeys(values, 100.0)
    if better == "lower":
        return {k: 100.0 * (hi - v) / (hi - lo) for k, v in values.items()}
    return {k: 100.0 * (v - lo) / (hi - lo) for k, v in values.items()}


def _ranks(scores: dict[str, float]) -> dict[str, int]:
    """Rank 1 = highest; equal scores (rounded to 1e-6) share the lowest rank number."""
    rounded = {k: round(v, 6) for k, v in scores.items()}
    ordered = sorted(rounded.values(), reverse=True)
    return {k: ordered.index(v) + 1 for k, v in rounded.items()}


def latest_year(conn: Connection) -> int | None:
    return conn.execute(
        text("SELECT max(year) FROM area_indicators WHERE level = 'platform'")
    ).scalar_one()


def current_kinds(conn: Connection) -> dict[str, str]:
    """{PTDM: kind} of the current kinds kept by the graph (empty before the first refresh)."""
    run = platform_kinds.current_run_id(conn)
    if run is None:
        return {}
    return dict(
        conn.execute(
            text("SELECT platform_code, kind FROM platform_kinds WHERE run_id = :r"), {"r": run}
        ).all()
    )


def assess(
    conn: Connection,
    year: int | None = None,
    rules: AssessmentRules | None = None,
    targets: list[tuple[str, int, float]] | None | bool = True,
) -> dict:
    """The assessment of every platform in ``year`` (default: the latest with indicators), full
    (restricted values included: the caller redacts with ``public_assessment``).

    ``targets``: the (code, year, mean completion %) rows of the target component; True (the
    default) reads them through ``target_completion_rows``; None: leave the component out (the
    score without it).

    Returns ``{"year", "rule", "components": [present, with weight], "absent": [{component,
    label, weight, reason}], "items": [...]}``, items best first (unscored last, by code); each
    item: code, name, kind, kind_label, n_enterprises (enterprises with land whose primary
    platform it is, per_mu), score, rank, rank_in_kind, kind_size, components (per component:
    value, unit, better, normalised, weight, effective_weight, points, restricted, missing) and
    ``missing`` (components it has no figure for)."""
    rules = rules or get_rules().assessment
    year = year or latest_year(conn)
    comps = components(rules)
    out: dict = {"year": year, "rule": RULE, "components": [], "absent": [], "items": []}
    if year is None:
        return out
    platforms = conn.execute(text("SELECT code, name FROM platforms ORDER BY code")).all()
    values: dict[str, dict[str, float]] = {c.name: {} for c in comps}
    for r in conn.execute(
        text(
            "SELECT code, indicator, value FROM area_indicators WHERE level = 'platform' "
            "AND year = :y AND value IS NOT NULL AND indicator = ANY(:names)"
        ),
        {"y": year, "names": [c.name for c in comps]},
    ):
        values[r.indicator][r.code] = r.value
    target_reason = None
    if any(c.name == TARGETS for c in comps):
        rows = target_completion_rows(conn, year) if targets is True else targets
        if rows is None:
            target_reason = "未提供目标完成率: 未计入"
        else:
            values[TARGETS] = target_scores(rows, year)
            if not values[TARGETS]:
                target_reason = f"{year}年无平台目标完成率: 未计入"
    present = []
    for c in comps:
        if values[c.name]:
            present.append(c)
            out["components"].append(_component_dict(c))
        else:
            reason = target_reason if c.name == TARGETS else f"{year}年无平台有该指标数值: 未计入"
            out["absent"].append({**_component_dict(c), "reason": reason})
    normalised = {
        c.name: (values[c.name] if c.name == TARGETS else normalise(values[c.name], c.better))
        for c in present
    }
    kinds = current_kinds(conn)
    figures = per_mu.zone_figures(conn, "platform", year)
    items = []
    for p in platforms:
        have = [c for c in present if p.code in values[c.name]]
        total_w = sum(c.weight for c in have)
        parts = []
        for c in present:
            has = p.code in values[c.name]
            eff = c.weight / total_w * 100 if has else 0.0
            score = normalised[c.name].get(p.code)
            parts.append(
                {
                    "component": c.name,
                    "label": c.label,
                    "value": values[c.name].get(p.code) if c.name != TARGETS else score,
                    "unit": c.unit,
                    "better": c.better,
                    "restricted": c.restricted,
                    "normalised": score,
                    "weight": c.weight,
                    "effective_weight": eff if has else None,
                    "points": score * eff / 100 if has else None,
                    "missing": not has,
                }
            )
        kind = kinds.get(p.code)
        items.append(
            {
                "code": p.code,
                "name": p.name,
                "kind": kind,
                "kind_label": vocabulary.label("platform_kind", kind),
                "n_enterprises": (figures.get(p.code) or {}).get("n_enterprises", 0),
                "score": sum(x["points"] for x in parts if x["points"] is not None)
                if have
                else None,
                "rank": None,
                "rank_in_kind": None,
                "kind_size": None,
                "components": parts,
                "missing": [x["component"] for x in parts if x["missing"]],
            }
        )
    scored = {it["code"]: it["score"] for it in items if it["score"] is not None}
    overall = _ranks(scored)
    by_kind: dict[str | None, dict[str, float]] = {}
    for it in items:
        if it["score"] is not None:
            by_kind.setdefault(it["kind"], {})[it["code"]] = it["score"]
    in_kind = {code: r for group in by_kind.values() for code, r in _ranks(group).items()}
    for it in items:
        if it["score"] is not None:
            it["rank"] = overall[it["code"]]
            it["rank_in_kind"] = in_kind[it["code"]]
            it["kind_size"] = len(by_kind[it["kind"]])
    items.sort(key=lambda it: (it["rank"] is None, it["rank"] or 0, it["code"]))
    out["items"] = items
    return out


def _component_dict(c: Component) -> dict:
    return {
        "component": c.name,
        "label": c.label,
        "weight": c.weight,
        "better": c.better,
        "unit": c.unit,
        "restricted": c.restricted,
    }


def public_assessment(res: dict) -> dict:
    """The public view: the values of restricted indicators withheld (None, ``withheld``);
    their normalised scores and points, and every score and rank, kept."""
    out = dict(res)
    out["items"] = [public_item(it) for it in res["items"]]
    return out


def public_item(item: dict) -> dict:
    """One platform's assessment without the values of restricted indicators."""
    parts = []
    for x in item["components"]:
        if x["restricted"]:
            x = {**x, "value": None, "withheld": True}
        parts.append(x)
    return {**item, "components": parts}


def only_kind(res: dict, kind: str) -> dict:
    """The assessment with only the platforms of ``kind`` (their ranks within it kept)."""
    return {**res, "items": [it for it in res["items"] if it["kind"] == kind]}


def platform(res: dict, code: str) -> dict | None:
    """One platform's item of an assessment, with the year, components and absent ones."""
    it = next((i for i in res["items"] if i["code"] == code), None)
    if it is None:
        return None
    return {
        "year": res["year"],
        "rule": res["rule"],
        "absent": res["absent"],
        **it,
    }


def summary_lines(res: dict) -> list[str]:
    """The CLI's table: rank, kind rank, score, code, name, kind; then absent components."""
    lines = [
        f"考核评价 {res['year']}: {len(res['items'])} platforms; components "
        + ", ".join(f"{c['label']} {c['weight']:g}" for c in res["components"])
    ]
    for a in res["absent"]:
        lines.append(f"  absent: {a['label']} ({a['weight']:g}): {a['reason']}")
    lines.append(f"{'rank':>4} {'in kind':>7} {'score':>7}  {'PTDM':12} kind / name")
    for it in res["items"]:
        score = "" if it["score"] is None else f"{it['score']:.2f}"
        rank = "" if it["rank"] is None else str(it["rank"])
        rk = "" if it["rank_in_kind"] is None else f"{it['rank_in_kind']}/{it['kind_size']}"
        lines.append(
            f"{rank:>4} {rk:>7} {score:>7}  {it['code']:12} {it['kind_label']} {it['name']}"
        )
    return lines
