"""Layout plan (用地布局规划) for the two corridors, DOMAIN_RULES §8: the engine and its invariants.

A plan is a versioned scenario made from a request: target year, the floor on total industrial
land (两底线, 亩), the new industrial land the city may supply (亩), the minimum share of it inside
the corridors, and weights. The engine

1. classifies platforms (§4, gis/platforms/platform_kinds.py, overrides included);
2. measures each platform *part* (the platform inside each corridor, and outside every corridor):
   capacity = ``developable_share`` × vacant land (part area − surveyed parcels − supply records
   no parcel overlaps), in 亩;
3. allocates the new land to parts by water-filling: part u gets min(capacity_u, λ·s_u·capacity_u)
   with one λ per group, so a higher score never gets a smaller fill ratio. Score
   s_u = kind weight × (max(亩均税收, tax_floor_ratio × median) ÷ median) ^ w_tax ×
   (1 + w_corridor inside a corridor); 逐步退出型 (phase_out) parts always score 0 (§8: none).
   If the corridors' natural share falls below the minimum, the corridor parts get exactly
   ⌈minimum × quota⌉ (or more, when the rest cannot take the remainder) and the others the rest.
   Figures are whole hundredths of a 亩, rounded by largest remainder, so allocations add up to
   the quota exactly and never exceed a capacity;
4. gives every block of the corridors (a parcel, or parcels of one platform within
   ``block_gap_m`` of each other, ``ST_ClusterDBSCAN``) a function, in this order:
   ``exit`` (outside every platform or in a phase_out platform, and idle + low-efficiency share
   >= ``exit_min_share`` or 亩均税收 below the median of platforms, the bar of §4's 保留提升型),
   ``to_m0`` (a 转为创新型 platform, or an innovation corridor block with
   >= ``m0_min_share`` innovation land), ``redevelop`` (idle + low-efficiency share >=
   ``redevelop_min_share``), else ``keep_industrial``. Idle land: parcels of supply records whose
   status in the latest three-lands run (§3) is in ``idle_statuses``; low-efficiency land:
   that run's 低效 parcels. Without a run, SJYT 闲置 / 挪作他用 stand in (noted in the plan);
5. holds the floor: industrial land after = today + new − exits (− to_m0 when M0 does not count
   as industrial) must stay >= the floor; exits are deferred (to ``redevelop``), least-flagged
   first, until it holds;
6. checks its invariants (allocations add up to the quota, floor, corridor share, nothing to
   phase_out, no capacity exceeded) and writes the plan; a request that cannot satisfy them is
   refused with the reason (``PlanRefused``) and nothing is written.

Today's industrial land: parcels (DK) whose DLBM is an industrial code (gis.core.layers). Geometry
EPSG:4549, areas m²; 1 亩 = m² × 0.0015.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, text

from gis.core.layers import INDUSTRIAL_LAND_CODES, M2_PER_MU
from gis.core.plan_models import FUNCTIONS, KINDS
from gis.core.rules import PlanRules, PlanWeights, Rules, get_rules, rules_hash
from gis.lands.detection import current_run_id
from gis.platforms.platform_kinds import classify

MU = 1 / M2_PER_MU  # 亩 per m²
INNOVATION_CODES = ("M0", "100104")
CENT = 100  # allocations are whole hundredths of a 亩


class PlanRefused(ValueError):
    """The request cannot satisfy the plan's invariants; ``reason`` says why, with figures."""

    def __init__(self, reason: str, **figures):
        super().__init__(reason)
        self.reason = reason
        self.figures = figures


class PlanNotFound(LookupError):
    pass


@dataclass
class PlanRequest:
    target_year: int
    floor_mu: float  # 两底线: total industrial land may not fall below this (亩)
    new_land_mu: float  # new industrial land the city may supply by target_year (亩)
    corridor_min_share: float | None = None  # default: rules [plan] corridor_min_share
    weights: dict | None = None  # {"tax", "corridor", "kinds": {...}}; default: rules
    name: str = "default"
    as_of: date | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Allocation: pure functions on arrays (property-tested)
# --------------------------------------------------------------------------------------------


def waterfill(cap: np.ndarray, score: np.ndarray, target: int) -> np.ndarray:
    """Split ``target`` (integer units) over parts with capacities ``cap`` (integers).

    Real fill: a_u = min(cap_u, λ·s_u·cap_u) with Σ a_u = target (parts with s_u <= 0 get
    nothing); then whole units by largest remainder, never above a capacity. Raises ValueError if
    the parts that may receive land cannot take ``target``.
    """
    cap = np.asarray(cap, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    out = np.zeros(len(cap), dtype=np.int64)
    if target <= 0:
        return out
    ok = (score > 0) & (cap > 0)
    if cap[ok].sum() < target:
        raise ValueError(f"capacity {cap[ok].sum()} < target {target}")
    idx = np.flatnonzero(ok)
    s, c = score[idx], cap[idx].astype(float)
    order = np.argsort(-s, kind="stable")  # highest score saturates first (smallest 1/s)
    s_o, c_o = s[order], c[order]
    sc = s_o * c_o
    cum_c = np.cumsum(c_o)
    tail = sc.sum() - np.cumsum(sc)  # Σ s·c of the parts after k
    total_at = cum_c + tail / s_o  # total allocated when λ = 1/s_k (parts <= k saturated)
    k = int(np.searchsorted(total_at, target, side="left"))
    saturated = cum_c[k - 1] if k > 0 else 0.0
    rest = sc[k:].sum()
    lam = (target - saturated) / rest if rest > 0 else 0.0
    real_o = np.minimum(c_o, lam * sc)
    real_o[:k] = c_o[:k]
    real = np.empty_like(real_o)
    real[order] = real_o
    base = np.minimum(np.floor(real + 1e-9).astype(np.int64), cap[idx])
    rem = int(target - base.sum())
    frac = real - base
    while rem > 0:
        slack = np.flatnonzero(base < cap[idx])
        pick = slack[np.lexsort((slack, -s[slack], -frac[slack]))][:rem]
        base[pick] += 1
        frac[pick] = 0.0
        rem -= len(pick)
    while rem < 0:  # float noise only
        have = np.flatnonzero(base > 0)
        pick = have[np.lexsort((have, s[have], frac[have]))][:-rem]
        base[pick] -= 1
        rem += len(pick)
    out[idx] = base
    return out


def scores(
    tax: np.ndarray,
    kinds: np.ndarray,
    in_corridor: np.ndarray,
    weights: PlanWeights,
    tax_floor_ratio: float,
    median: float | None,
) -> np.ndarray:
    """Allocation score of each part against the city median 亩均税收 of platforms.

    score = kind weight × (max(tax, floor × median) ÷ median) ^ w_tax × (1 + w_corridor inside a
    corridor); a part without a figure scores as the floor; phase_out always 0.
    """
    tax = np.asarray(tax, dtype=float)
    kind_w = np.array([0.0 if k == "phase_out" else weights.kinds.get(k, 0.0) for k in kinds])
    if median is not None and median > 0:
        t = np.where(np.isnan(tax), tax_floor_ratio * median, tax)
        tax_factor = (np.maximum(t, tax_floor_ratio * median) / median) ** weights.tax
    else:
        tax_factor = np.ones(len(tax))
    corr = np.where(np.asarray(in_corridor, bool), 1.0 + weights.corridor, 1.0)
    return kind_w * tax_factor * corr


def allocate(
    cap: np.ndarray,
    score: np.ndarray,
    in_corridor: np.ndarray,
    quota: int,
    min_share: float,
) -> np.ndarray:
    """Allocate ``quota`` hundredths of a 亩 to parts; at least ⌈min_share × quota⌉ in corridors.

    Raises PlanRefused when the capacity or the corridor share cannot be met.
    """
    cap = np.asarray(cap, np.int64)
    score = np.asarray(score, float)
    corr = np.asarray(in_corridor, bool)
    ok = (score > 0) & (cap > 0)
    cap_c = int(cap[ok & corr].sum())
    cap_n = int(cap[ok & ~corr].sum())
    if quota > cap_c + cap_n:
        raise PlanRefused(
            f"the new land ({quota / CENT:.2f} 亩) exceeds what the platforms that may receive "
            f"land can supply ({(cap_c + cap_n) / CENT:.2f} 亩: developable share of their "
            "vacant land; 逐步退出型 platforms take none)",
            new_land_mu=quota / CENT,
            capacity_mu=(cap_c + cap_n) / CENT,
        )
    need_c = math.ceil(round(min_share * quota, 6))
    if need_c > cap_c:
        raise PlanRefused(
            f"the corridor share cannot hold: a minimum of {min_share:.0%} of "
            f"{quota / CENT:.2f} 亩 needs {need_c / CENT:.2f} 亩 in the corridors, but the "
            f"platforms there can take only {cap_c / CENT:.2f} 亩",
            corridor_needed_mu=need_c / CENT,
            corridor_capacity_mu=cap_c / CENT,
        )
    joint = waterfill(cap, score, quota)
    if joint[corr].sum() >= need_c:
        return joint
    target_c = max(need_c, quota - cap_n)
    out = np.zeros(len(cap), np.int64)
    out[corr] = waterfill(cap[corr], score[corr], target_c)
    out[~corr] = waterfill(cap[~corr], score[~corr], quota - target_c)
    return out


# --------------------------------------------------------------------------------------------
# Facts from the database
# --------------------------------------------------------------------------------------------


def _has_table(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": name}).scalar_one()


def _prepare_parcels(conn: Connection, rules: PlanRules, tax_year: int | None) -> dict:
    """Temp table ``_pp``: every parcel with its zones (largest share, §1), flags and tax."""
    run = current_run_id(conn)
    notes = []
    if run is not None:
        idle_sql = """
            SELECT DISTINCT p.id FROM idle_results r CROSS JOIN LATERAL unnest(r.parcel_nos) k
            JOIN parcels p ON p.parcel_no = k
            WHERE r.run_id = :run AND r.status = ANY(:idle_statuses)
        """
        low_sql = "SELECT parcel_id AS id FROM low_efficiency_results WHERE run_id = :run"
    else:
        idle_sql = "SELECT id FROM parcels WHERE actual_use = '闲置'"
        low_sql = "SELECT id FROM parcels WHERE actual_use = '挪作他用'"
        notes.append(
            "尚无三块地检测批次(landlink detect): 闲置用地仅按实际用途(SJYT)为闲置、低效用地仅按"
            "实际用途为挪作他用计"
        )
    # a parcel's tax: its per_mu row (the enterprises' SJSJ by their land on it, §Units)
    tax_cte = (
        "SELECT p.id, m.tax_paid AS tax FROM per_mu m JOIN parcels p ON p.parcel_no = m.code "
        "WHERE m.level = 'parcel' AND m.year = :year"
        if tax_year is not None
        else "SELECT NULL::bigint AS id, NULL::float AS tax WHERE false"
    )
    params = {
        "run": run,
        "idle_statuses": rules.idle_statuses,
        "ind": list(INDUSTRIAL_LAND_CODES),
        "inn": list(INNOVATION_CODES),
        "year": tax_year,
    }

    def zone(name: str, table: str, where: str = "true") -> str:
        # the zone table drives the join (its geometry stays prepared across parcels)
        return f"""
            CREATE TEMP TABLE {name} ON COMMIT DROP AS
            SELECT DISTINCT ON (p.id) p.id, z.code,
                   CASE WHEN ST_CoveredBy(p.geom, z.geom) THEN p.area_m2
                        ELSE ST_Area(ST_Intersection(z.geom, p.geom)) END AS a
            FROM {table} z JOIN parcels p ON p.geom && z.geom AND ST_Intersects(z.geom, p.geom)
            WHERE {where}
            ORDER BY p.id, 3 DESC, 2"""

    conn.execute(text("DROP TABLE IF EXISTS _pp, _pp_idle, _pp_low, _pp_tax, _pz, _pc, _pd"))
    conn.execute(text(zone("_pz", "platforms")))
    conn.execute(text(zone("_pc", "corridors")))
    conn.execute(text(zone("_pd", "districts", "p.district_code IS NULL")))
    conn.execute(text(f"CREATE TEMP TABLE _pp_idle ON COMMIT DROP AS {idle_sql}"), params)
    conn.execute(text(f"CREATE TEMP TABLE _pp_low ON COMMIT DROP AS {low_sql}"), params)
    conn.execute(text(f"CREATE TEMP TABLE _pp_tax ON COMMIT DROP AS {tax_cte}"), params)
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _pp ON COMMIT DROP AS
            SELECT p.id, p.parcel_no, p.area_m2, p.geom,
                   p.land_use_code = ANY(:ind) AS industrial,
                   (p.land_use_code = ANY(:inn) OR p.actual_use = '创新型产业') AS innovation,
                   coalesce(p.district_code, dz.code) AS district_code,
                   CASE WHEN pz.a > 0 THEN pz.code END AS platform_code,
                   CASE WHEN cz.a > 0 THEN cz.code END AS corridor_code,
                   (i.id IS NOT NULL) AS idle, (l.id IS NOT NULL) AS low,
                   coalesce(t.tax, 0) AS tax
            FROM parcels p
            LEFT JOIN _pz pz ON pz.id = p.id
            LEFT JOIN _pc cz ON cz.id = p.id
            LEFT JOIN _pd dz ON dz.id = p.id
            LEFT JOIN _pp_idle i ON i.id = p.id
            LEFT JOIN _pp_low l ON l.id = p.id
            LEFT JOIN _pp_tax t ON t.id = p.id
            """
        ),
        params,
    )
    conn.execute(text("CREATE INDEX ON _pp (corridor_code, platform_code)"))
    conn.execute(text("ANALYZE _pp"))
    return {"detection_run_id": run, "notes": notes}


def _parts(conn: Connection) -> list:
    """Platform parts (inside each corridor; outside all) with area and occupied land (m²).

    Occupied: surveyed parcels, and supply records that no parcel overlaps (their land is taken
    although the survey predates them), each by its intersection with the part.
    """
    return conn.execute(
        text(
            """
            WITH cu AS (SELECT ST_Union(geom) AS geom FROM corridors),
            parts AS MATERIALIZED (
                SELECT p.code AS platform_code, c.code AS corridor_code,
                       ST_Intersection(p.geom, c.geom) AS geom
                FROM platforms p JOIN corridors c
                  ON c.geom && p.geom AND ST_Intersects(c.geom, p.geom)
                UNION ALL
                SELECT p.code, NULL,
                       CASE WHEN cu.geom IS NULL THEN p.geom
                            ELSE ST_Difference(p.geom, cu.geom) END
                FROM platforms p, cu
            ), lone AS MATERIALIZED (
                SELECT s.geom, s.area_m2 FROM supplies s
                WHERE NOT EXISTS (SELECT 1 FROM parcels p WHERE p.supply_no = s.supply_no)
                  AND NOT EXISTS (
                      SELECT 1 FROM parcels p WHERE p.geom && s.geom
                        AND ST_Relate(p.geom, s.geom, 'T********'))
            ), occ AS (
                SELECT x.platform_code, x.corridor_code,
                       sum(CASE WHEN ST_CoveredBy(o.geom, x.geom) THEN o.area_m2
                                ELSE ST_Area(ST_Intersection(o.geom, x.geom)) END) AS m2
                FROM parts x JOIN parcels o ON o.geom && x.geom AND ST_Intersects(x.geom, o.geom)
                GROUP BY 1, 2
                UNION ALL
                SELECT x.platform_code, x.corridor_code,
                       sum(CASE WHEN ST_CoveredBy(o.geom, x.geom) THEN o.area_m2
                                ELSE ST_Area(ST_Intersection(o.geom, x.geom)) END)
                FROM parts x JOIN lone o ON o.geom && x.geom AND ST_Intersects(x.geom, o.geom)
                GROUP BY 1, 2
            )
            SELECT x.platform_code, x.corridor_code, ST_Area(x.geom) AS area_m2,
                   coalesce((SELECT sum(m2) FROM occ o WHERE o.platform_code = x.platform_code
                             AND o.corridor_code IS NOT DISTINCT FROM x.corridor_code), 0)
                       AS occupied_m2
            FROM parts x WHERE NOT ST_IsEmpty(x.geom) AND ST_Area(x.geom) > 0
            ORDER BY x.platform_code, x.corridor_code NULLS LAST
            """
        )
    ).all()


_FUNCTION_SQL = (
    """
    ALTER TABLE _blk ADD COLUMN function text, ADD COLUMN reasons jsonb
    """,
    """
    UPDATE _blk SET function = CASE
        WHEN (platform_code IS NULL OR platform_kind = 'phase_out')
             AND (flagged_share >= :exit_min
                  OR (CAST(:median AS float) IS NOT NULL AND tax_per_mu < :median))
             THEN 'exit'
        WHEN platform_kind = 'to_innovation' THEN 'to_m0'
        WHEN corridor_code = ANY(:inn_corr) AND innovation_share >= :m0_min THEN 'to_m0'
        WHEN flagged_share >= :redev_min THEN 'redevelop'
        ELSE 'keep_industrial' END
    """,
    """
    UPDATE _blk SET reasons = jsonb_build_array(CASE function
        WHEN 'exit' THEN jsonb_build_object(
            'rule', 'outside every platform or in a 逐步退出型 platform, and idle + '
                    || 'low-efficiency share at or above the exit threshold or 亩均税收 below '
                    || 'the median of platforms',
            'platform_kind', platform_kind, 'figure', round(flagged_share::numeric, 4),
            'threshold', CAST(:exit_min AS float),
            'tax_per_mu', round(tax_per_mu::numeric, 4),
            'median_tax_per_mu', round(CAST(:median AS numeric), 4))
        WHEN 'to_m0' THEN CASE WHEN platform_kind = 'to_innovation'
            THEN jsonb_build_object('rule', 'platform is 转为创新型 (§4)',
                                    'platform_kind', platform_kind)
            ELSE jsonb_build_object(
                'rule', 'innovation corridor, 创新型产业 land share at or above the '
                        || 'threshold', 'figure', round(innovation_share::numeric, 4),
                'threshold', CAST(:m0_min AS float)) END
        WHEN 'redevelop' THEN jsonb_build_object(
            'rule', 'idle + low-efficiency share at or above the redevelop threshold',
            'figure', round(flagged_share::numeric, 4),
            'threshold', CAST(:redev_min AS float),
            'idle_mu', round((idle_m2 * :mu)::numeric, 2),
            'low_efficiency_mu', round((low_m2 * :mu)::numeric, 2))
        ELSE jsonb_build_object(
            'rule', 'no exit, M0 or redevelop rule applies',
            'flagged_share', round(flagged_share::numeric, 4),
            'platform_kind', platform_kind) END)
    """,
)


def _blocks(
    conn: Connection, rules: PlanRules, kinds: dict[str, str], median: float | None
) -> None:
    """Temp table ``_blk``: corridor blocks with their figures and the rules' function."""
    conn.execute(text("DROP TABLE IF EXISTS _blk_parcels, _blk, _kinds"))
    conn.execute(text("CREATE TEMP TABLE _kinds (code text PRIMARY KEY, kind text) ON COMMIT DROP"))
    if kinds:
        conn.execute(
            text("INSERT INTO _kinds SELECT * FROM unnest(CAST(:c AS text[]), CAST(:k AS text[]))"),
            {"c": list(kinds), "k": list(kinds.values())},
        )
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _blk_parcels ON COMMIT DROP AS
            SELECT id, corridor_code, platform_code,
                   ST_ClusterDBSCAN(geom, eps := :gap, minpoints := 1) OVER (
                       PARTITION BY corridor_code, coalesce(platform_code, '')) AS cid
            FROM _pp WHERE corridor_code IS NOT NULL
            """
        ),
        {"gap": rules.block_gap_m},
    )
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _blk ON COMMIT DROP AS
            WITH agg AS (
                SELECT b.corridor_code, b.platform_code, b.cid,
                       count(*) AS parcel_count,
                       array_agg(p.parcel_no ORDER BY p.parcel_no) AS parcel_nos,
                       sum(p.area_m2) AS area_m2,
                       sum(p.area_m2) FILTER (WHERE p.idle) AS idle_m2,
                       sum(p.area_m2) FILTER (WHERE p.low) AS low_m2,
                       sum(p.area_m2) FILTER (WHERE p.idle OR p.low) AS flagged_m2,
                       sum(p.area_m2) FILTER (WHERE p.innovation) AS innovation_m2,
                       sum(p.area_m2) FILTER (WHERE p.industrial) AS industrial_m2,
                       sum(p.tax) AS tax,
                       mode() WITHIN GROUP (ORDER BY p.district_code) AS district_code,
                       ST_Multi(ST_Union(p.geom)) AS geom
                FROM _blk_parcels b JOIN _pp p ON p.id = b.id
                GROUP BY b.corridor_code, b.platform_code, b.cid
            )
            SELECT row_number() OVER (ORDER BY corridor_code, parcel_nos[1])::int AS block_no,
                   a.corridor_code, a.platform_code, k.kind AS platform_kind, a.district_code,
                   a.parcel_count::int, a.parcel_nos, a.area_m2,
                   coalesce(a.idle_m2, 0) AS idle_m2, coalesce(a.low_m2, 0) AS low_m2,
                   coalesce(a.flagged_m2, 0) AS flagged_m2,
                   coalesce(a.innovation_m2, 0) AS innovation_m2,
                   coalesce(a.industrial_m2, 0) AS industrial_m2, a.tax,
                   coalesce(a.flagged_m2, 0) / a.area_m2 AS flagged_share,
                   coalesce(a.innovation_m2, 0) / a.area_m2 AS innovation_share,
                   coalesce(a.tax, 0) / (a.area_m2 * :mu) AS tax_per_mu,
                   a.geom
            FROM agg a LEFT JOIN _kinds k ON k.code = a.platform_code
            """
        ),
        {"mu": MU},
    )
    params = {
        "exit_min": rules.exit_min_share,
        "m0_min": rules.m0_min_share,
        "redev_min": rules.redevelop_min_share,
        "inn_corr": rules.innovation_corridors,
        "mu": MU,
        "median": median,
    }
    for sql in _FUNCTION_SQL:
        conn.execute(text(sql), params)


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


MAX_TAX_WEIGHT = 10.0  # the tax weight is an exponent: larger ones overflow a float
MAX_WEIGHT = 1e6
MAX_MU = 1e9  # no city has more land (亩); larger amounts overflow the integer allocation


def _weights(req: PlanRequest, rules: PlanRules) -> PlanWeights:
    w = rules.weights.model_dump()
    if req.weights:
        unknown = set(req.weights) - {"tax", "corridor", "kinds"}
        if unknown:
            raise PlanRefused(f"unknown weights {sorted(unknown)}: use tax, corridor, kinds")
        if not isinstance(req.weights.get("kinds") or {}, dict):
            raise PlanRefused('weights.kinds must be an object such as {"to_innovation": 0.5}')
        kinds = {**w["kinds"], **(req.weights.get("kinds") or {})}
        bad = set(kinds) - set(KINDS)
        if bad:
            raise PlanRefused(f"unknown kinds in weights: {sorted(bad)}; kinds are {KINDS}")
        w = {**w, **{k: v for k, v in req.weights.items() if k != "kinds"}, "kinds": kinds}
    try:
        out = PlanWeights.model_validate(w)
    except ValidationError as e:  # a weight that is not a number
        raise PlanRefused(f"weights must be numbers: {e.errors()[0]['msg']}") from None
    if out.tax < 0 or out.corridor < 0 or any(v < 0 for v in out.kinds.values()):
        raise PlanRefused("weights must be >= 0")
    if out.tax > MAX_TAX_WEIGHT or max([out.corridor, *out.kinds.values()]) > MAX_WEIGHT:
        raise PlanRefused(
            f"weights too large: tax at most {MAX_TAX_WEIGHT} (an exponent), "
            f"corridor and kinds at most {MAX_WEIGHT}"
        )
    return out


def _validate(req: PlanRequest, rules: PlanRules, as_of: date) -> float:
    share = rules.corridor_min_share if req.corridor_min_share is None else req.corridor_min_share
    if not (0.0 <= share <= 1.0):
        raise PlanRefused(f"corridor_min_share {share} must lie between 0 and 1")
    if not 0 <= req.new_land_mu <= MAX_MU:  # also refuses NaN
        raise PlanRefused(f"new_land_mu must be a number from 0 to {MAX_MU:g} (亩)")
    if not 0 <= req.floor_mu <= MAX_MU:
        raise PlanRefused(f"floor_mu must be a number from 0 to {MAX_MU:g} (亩)")
    if req.target_year < as_of.year:
        raise PlanRefused(f"target_year {req.target_year} is before the as-of year {as_of.year}")
    if not req.name or not req.name.strip():
        raise PlanRefused("a plan needs a name")
    return share


def compute(conn: Connection, req: PlanRequest, rules: Rules | None = None) -> dict:
    """Run the engine inside ``conn``'s transaction (temp tables only); returns the plan.

    The result holds everything ``create`` writes: allocations (platform / district / corridor
    rows), totals, invariants and notes; blocks stay in the temp table ``_blk``.
    Raises PlanRefused when the request cannot be satisfied.
    """
    rules = rules or get_rules()
    pr = rules.plan
    as_of = req.as_of or date.today()
    min_share = _validate(req, pr, as_of)
    weights = _weights(req, pr)
    quota = int(round(req.new_land_mu * CENT))

    kinds_res = classify(conn, as_of, rules)
    items = {it["platform_id"]: it for it in kinds_res["items"]}
    kinds = {c: it["kind"] for c, it in items.items()}
    prep = _prepare_parcels(conn, pr, kinds_res["tax_year"])
    notes = list(req.notes) + prep["notes"]

    parts = _parts(conn)
    p_code = np.array([r.platform_code for r in parts], dtype=object)
    p_corr = np.array([r.corridor_code for r in parts], dtype=object)
    in_corr = np.array([c is not None for c in p_corr], bool)
    vacant = np.maximum(np.array([r.area_m2 - r.occupied_m2 for r in parts], float), 0.0)
    cap = np.floor(vacant * pr.developable_share * MU * CENT + 1e-6).astype(np.int64)
    tax = np.array(
        [np.nan if items[c]["tax_per_mu"] is None else items[c]["tax_per_mu"] for c in p_code],
        float,
    )
    # the median over platforms (not parts): each platform counted once
    plat_tax = np.array(
        [np.nan if it["tax_per_mu"] is None else it["tax_per_mu"] for it in items.values()],
        float,
    )
    known = plat_tax[~np.isnan(plat_tax)]
    median = float(np.median(known)) if len(known) else None
    sc = scores(
        tax, np.array([kinds[c] for c in p_code]), in_corr, weights, pr.tax_floor_ratio, median
    )
    alloc = allocate(cap, sc, in_corr, quota, min_share)

    _blocks(conn, pr, kinds, median)
    today = conn.execute(
        text("SELECT coalesce(sum(area_m2) FILTER (WHERE industrial), 0) * :mu FROM _pp"),
        {"mu": MU},
    ).scalar_one()
    blk = conn.execute(
        text(
            "SELECT block_no, function, flagged_share, industrial_m2 * :mu AS ind_mu "
            "FROM _blk ORDER BY block_no"
        ),
        {"mu": MU},
    ).all()
    new_mu = quota / CENT
    lost_m0 = (
        0.0 if pr.m0_counts_as_industrial else sum(b.ind_mu for b in blk if b.function == "to_m0")
    )
    exits = sorted(
        [b for b in blk if b.function == "exit"], key=lambda b: (b.flagged_share, -b.block_no)
    )
    exit_mu = sum(b.ind_mu for b in exits)
    base_after = today + new_mu - lost_m0
    if base_after < req.floor_mu - 1e-9:
        raise PlanRefused(
            f"the floor on industrial land ({req.floor_mu:.2f} 亩) cannot hold: today's "
            f"industrial land {today:.2f} 亩 + new land {new_mu:.2f} 亩"
            + (f" − M0 conversions {lost_m0:.2f} 亩" if lost_m0 else "")
            + f" = {base_after:.2f} 亩; raise the new land or lower the floor",
            floor_mu=req.floor_mu,
            industrial_mu_today=today,
            new_land_mu=new_mu,
        )
    deferred: list[int] = []
    for b in exits:  # least flagged first
        if base_after - exit_mu >= req.floor_mu - 1e-9:
            break
        deferred.append(b.block_no)
        exit_mu -= b.ind_mu
    if deferred:
        conn.execute(
            text(
                """
                UPDATE _blk SET function = 'redevelop',
                    reasons = reasons || jsonb_build_array(jsonb_build_object(
                        'rule', 'exit deferred to hold the floor on industrial land (两底线)',
                        'floor_mu', CAST(:floor AS float)))
                WHERE block_no = ANY(:b)
                """
            ),
            {"b": deferred, "floor": req.floor_mu},
        )
        notes.append(
            f"为守住工业用地底线(两底线), {len(deferred)} 个退出地块组暂缓退出(改为再开发)"
        )
    after = base_after - exit_mu

    allocations = _allocation_rows(conn, items, parts, cap, sc, alloc)
    corridor_new = alloc[in_corr].sum() / CENT
    invariants = {
        "quota": {
            "allocated_mu": alloc.sum() / CENT,
            "quota_mu": new_mu,
            "holds": int(alloc.sum()) == quota,
        },
        "floor": {
            "industrial_mu_after": round(after, 2),
            "floor_mu": req.floor_mu,
            "holds": after >= req.floor_mu - 1e-9,
        },
        "corridor_share": {
            "share": (corridor_new / new_mu) if quota else None,
            "min_share": min_share,
            "corridor_mu": corridor_new,
            "holds": int(alloc[in_corr].sum()) >= math.ceil(round(min_share * quota, 6)),
        },
        "phase_out_none": {
            "phase_out_mu": sum(
                int(a) for a, c in zip(alloc, p_code, strict=True) if kinds[c] == "phase_out"
            )
            / CENT,
            "holds": all(
                a == 0 for a, c in zip(alloc, p_code, strict=True) if kinds[c] == "phase_out"
            ),
        },
        "capacity": {"holds": bool(np.all(alloc <= cap))},
    }
    broken = [k for k, v in invariants.items() if not v["holds"]]
    if broken:  # a bug, never a user's fault: refuse rather than write a wrong plan
        raise RuntimeError(f"plan invariants broken: {broken}: {invariants}")
    totals = _totals(conn, today, after, new_mu, corridor_new, alloc, p_code, items)
    return {
        "as_of": as_of,
        "tax_year": kinds_res["tax_year"],
        "tax_source": kinds_res["tax_source"],
        "median_tax_per_mu": median,
        "min_share": min_share,
        "weights": weights.model_dump(),
        "kinds": kinds,
        "detection_run_id": prep["detection_run_id"],
        "allocations": allocations,
        "totals": totals,
        "invariants": invariants,
        "notes": notes,
    }


def _allocation_rows(conn, items, parts, cap, sc, alloc) -> list[dict]:
    """Platform, district and corridor rows of the allocation table (亩)."""
    per_platform = conn.execute(
        text(
            """
            SELECT platform_code AS code, sum(area_m2) FILTER (WHERE industrial) * :mu AS ind
            FROM _pp WHERE platform_code IS NOT NULL GROUP BY 1
            """
        ),
        {"mu": MU},
    ).all()
    ind_p = {r.code: r.ind or 0.0 for r in per_platform}
    fn_sql = """
        SELECT {col} AS code,
               coalesce(sum(industrial_m2) FILTER (WHERE function = 'exit'), 0) * :mu AS exit_mu,
               coalesce(sum(area_m2) FILTER (WHERE function = 'to_m0'), 0) * :mu AS m0_mu,
               coalesce(sum(flagged_m2) FILTER (WHERE function = 'redevelop'), 0) * :mu AS redev
        FROM _blk WHERE {col} IS NOT NULL GROUP BY 1
    """
    fn = {
        level: {r.code: r for r in conn.execute(text(fn_sql.format(col=col)), {"mu": MU}).all()}
        for level, col in (
            ("platform", "platform_code"),
            ("district", "district_code"),
            ("corridor", "corridor_code"),
        )
    }
    rows: dict[tuple[str, str], dict] = {}

    def row(level: str, code: str, **kw) -> dict:
        key = (level, code)
        if key not in rows:
            rows[key] = {
                "level": level,
                "code": code,
                "name": None,
                "district_code": None,
                "kind": None,
                "tax_per_mu": None,
                "score": None,
                "capacity_mu": 0.0,
                "corridor_capacity_mu": 0.0,
                "new_mu": 0.0,
                "corridor_mu": 0.0,
                "industrial_mu_today": 0.0,
                "exit_mu": 0.0,
                "m0_mu": 0.0,
                "redevelop_mu": 0.0,
            }
        rows[key].update(kw)
        return rows[key]

    for code, it in items.items():
        row(
            "platform",
            code,
            name=it["name"],
            district_code=it["district"],
            kind=it["kind"],
            tax_per_mu=it["tax_per_mu"],
            industrial_mu_today=round(ind_p.get(code, 0.0), 2),
        )
    for i, part in enumerate(parts):
        r = row("platform", part.platform_code)
        r["capacity_mu"] += cap[i] / CENT
        r["new_mu"] += alloc[i] / CENT
        if part.corridor_code is not None:
            r["corridor_capacity_mu"] += cap[i] / CENT
            r["corridor_mu"] += alloc[i] / CENT
            c = row("corridor", part.corridor_code)
            c["capacity_mu"] += cap[i] / CENT
            c["corridor_capacity_mu"] += cap[i] / CENT
            c["new_mu"] += alloc[i] / CENT
            c["corridor_mu"] += alloc[i] / CENT
        r["score"] = max(r["score"] or 0.0, float(sc[i]))
    for (level, _code), r in list(rows.items()):
        if level != "platform":
            continue
        d = row("district", r["district_code"] or "unknown")
        for k in ("capacity_mu", "corridor_capacity_mu", "new_mu", "corridor_mu"):
            d[k] += r[k]
    district_today = conn.execute(
        text(
            "SELECT coalesce(district_code, 'unknown') AS code, "
            "sum(area_m2) FILTER (WHERE industrial) * :mu AS ind FROM _pp GROUP BY 1"
        ),
        {"mu": MU},
    ).all()
    for r in district_today:
        row("district", r.code, industrial_mu_today=round(r.ind or 0.0, 2))
    corridor_today = conn.execute(
        text(
            "SELECT corridor_code AS code, sum(area_m2) FILTER (WHERE industrial) * :mu AS ind "
            "FROM _pp WHERE corridor_code IS NOT NULL GROUP BY 1"
        ),
        {"mu": MU},
    ).all()
    for r in corridor_today:
        row("corridor", r.code, industrial_mu_today=round(r.ind or 0.0, 2))
    names = conn.execute(
        text(
            "SELECT 'district' AS level, code, name FROM districts UNION ALL "
            "SELECT 'corridor', code, name FROM corridors"
        )
    ).all()
    for n in names:
        if (n.level, n.code) in rows:
            rows[(n.level, n.code)]["name"] = n.name
    for (level, code), r in rows.items():
        f = fn[level].get(code)
        if f is not None:
            r["exit_mu"], r["m0_mu"], r["redevelop_mu"] = f.exit_mu, f.m0_mu, f.redev
        for k in ("capacity_mu", "corridor_capacity_mu", "new_mu", "corridor_mu"):
            r[k] = round(r[k], 2)
        for k in ("exit_mu", "m0_mu", "redevelop_mu"):
            r[k] = round(r[k], 2)
    order = {"district": 0, "platform": 1, "corridor": 2}
    return sorted(rows.values(), key=lambda r: (order[r["level"]], r["code"]))


def _totals(conn, today, after, new_mu, corridor_new, alloc, p_code, items) -> dict:
    """City-wide figures before and after the plan (亩; 亩均税收 万元/亩, analysts only)."""
    b = conn.execute(
        text(
            """
            SELECT function, count(*) AS n, sum(area_m2) * :mu AS mu,
                   sum(industrial_m2) * :mu AS ind_mu, sum(flagged_m2) * :mu AS flagged_mu,
                   sum(tax) AS tax
            FROM _blk GROUP BY function
            """
        ),
        {"mu": MU},
    ).all()
    by_fn = {f: {"blocks": 0, "area_mu": 0.0, "flagged_mu": 0.0} for f in FUNCTIONS}
    for r in b:
        by_fn[r.function] = {
            "blocks": r.n,
            "area_mu": round(r.mu, 2),
            "flagged_mu": round(r.flagged_mu or 0.0, 2),
        }
    tax_today, ind_tax_area = conn.execute(
        text(
            "SELECT coalesce(sum(tax), 0), coalesce(sum(area_m2) FILTER (WHERE industrial), 0) "
            "* :mu FROM _pp"
        ),
        {"mu": MU},
    ).one()
    exit_tax = sum(r.tax or 0.0 for r in b if r.function == "exit")
    new_tax = 0.0
    for a, c in zip(alloc, p_code, strict=True):
        t = items[c]["tax_per_mu"]
        if t is not None:
            new_tax += a / CENT * t
    corridor_today = conn.execute(
        text(
            "SELECT coalesce(sum(area_m2) FILTER (WHERE industrial AND corridor_code IS NOT NULL),"
            " 0) * :mu FROM _pp"
        ),
        {"mu": MU},
    ).scalar_one()
    exit_mu = sum(r.ind_mu or 0.0 for r in b if r.function == "exit")
    corridor_after = corridor_today + corridor_new - exit_mu
    return {
        "industrial_mu_today": round(today, 2),
        "industrial_mu_after": round(after, 2),
        "new_land_mu": new_mu,
        "corridor_new_mu": corridor_new,
        "corridor_industrial_mu_today": round(corridor_today, 2),
        "corridor_industrial_mu_after": round(corridor_after, 2),
        "corridor_share_of_industrial_today": round(corridor_today / today, 4) if today else None,
        "corridor_share_of_industrial_after": round(corridor_after / after, 4) if after else None,
        "blocks": by_fn,
        "exit_mu": round(exit_mu, 2),
        "tax_per_mu_today": round(tax_today / ind_tax_area, 4) if ind_tax_area else None,
        "tax_per_mu_new_land": round(new_tax / new_mu, 4) if new_mu else None,
        "tax_per_mu_after": round((tax_today - exit_tax + new_tax) / after, 4) if after else None,
        "tax_note": "规划后亩均税收 = (现状税收 − 退出地块组税收 + 新增用地 × 所在平台现状亩均税收)"
        " ÷ 规划后工业用地; 为估算, 不是预测",
    }


# --------------------------------------------------------------------------------------------
# Writing and reading plans
# --------------------------------------------------------------------------------------------

TAX_REASON_KEYS = ("tax_per_mu", "median_tax_per_mu")
RESTRICTED_TOTALS = ("tax_per_mu_today", "tax_per_mu_new_land", "tax_per_mu_after")


def create(engine: Engine, req: PlanRequest, user: str, rules: Rules | None = None) -> dict:
    """Compute and store a plan (one transaction); returns {"id", "name", "version", ...}.

    Raises PlanRefused (nothing written) when the request cannot be satisfied.
    """
    rules = rules or get_rules()
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        res = compute(conn, req, rules)
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('landlink_plans'))"))
        version = conn.execute(
            text("SELECT coalesce(max(version), 0) + 1 FROM plans WHERE name = :n"),
            {"n": req.name.strip()},
        ).scalar_one()
        request = {
            **{k: v for k, v in asdict(req).items() if k not in ("as_of", "notes")},
            "name": req.name.strip(),
            "corridor_min_share": res["min_share"],
            "weights": res["weights"],
            "as_of": res["as_of"].isoformat(),
        }
        plan_id = conn.execute(
            text(
                """
                INSERT INTO plans (name, version, target_year, as_of, tax_year, request,
                    rules_hash, detection_run_id, kinds, totals, invariants, notes, created_by)
                VALUES (:name, :version, :ty, :as_of, :tax_year, CAST(:req AS jsonb), :rh,
                    :run, CAST(:kinds AS jsonb), CAST(:totals AS jsonb), CAST(:inv AS jsonb),
                    CAST(:notes AS jsonb), :user)
                RETURNING id
                """
            ),
            {
                "name": req.name.strip(),
                "version": version,
                "ty": req.target_year,
                "as_of": res["as_of"],
                "tax_year": res["tax_year"],
                "req": json.dumps(request, ensure_ascii=False),
                "rh": rules_hash(rules),
                "run": res["detection_run_id"],
                "kinds": json.dumps(res["kinds"]),
                "totals": json.dumps(res["totals"], ensure_ascii=False),
                "inv": json.dumps(res["invariants"]),
                "notes": json.dumps(res["notes"], ensure_ascii=False),
                "user": user,
            },
        ).scalar_one()
        cols = list(res["allocations"][0]) if res["allocations"] else []
        if cols:
            conn.execute(
                text(
                    f"INSERT INTO plan_allocations (plan_id, {', '.join(cols)}) "
                    f"VALUES (:plan_id, {', '.join(':' + c for c in cols)})"
                ),
                [{**r, "plan_id": plan_id} for r in res["allocations"]],
            )
        conn.execute(
            text(
                """
                INSERT INTO plan_blocks (plan_id, block_no, corridor_code, platform_code,
                    platform_kind, district_code, function, parcel_count, parcel_nos, area_m2,
                    area_mu, idle_mu, low_efficiency_mu, flagged_mu, innovation_mu, reasons, geom)
                SELECT :plan_id, block_no, corridor_code, platform_code, platform_kind,
                       district_code, function, parcel_count, parcel_nos, area_m2,
                       area_m2 * :mu, idle_m2 * :mu, low_m2 * :mu, flagged_m2 * :mu,
                       innovation_m2 * :mu, reasons, geom
                FROM _blk
                """
            ),
            {"plan_id": plan_id, "mu": MU},
        )
        _invalidate_tiles(conn, plan_id)
        seconds = time.perf_counter() - t0
        conn.execute(
            text("UPDATE plans SET seconds = :s WHERE id = :id"), {"s": seconds, "id": plan_id}
        )
    return {
        "id": plan_id,
        "name": req.name.strip(),
        "version": version,
        "seconds": seconds,
        "totals": res["totals"],
        "invariants": res["invariants"],
        "notes": res["notes"],
    }


def _invalidate_tiles(conn: Connection, plan_id: int) -> None:
    """The ``plan_blocks`` tiles show the latest plan: log the area of the new plan's blocks and
    of the plan before it, so cached tiles there are dropped (the tile cache)."""
    from gis.serving.tiles import log_invalidation

    prev = conn.execute(
        text("SELECT max(id) FROM plans WHERE id < :id"), {"id": plan_id}
    ).scalar_one()
    log_invalidation(
        conn,
        f"plan:{plan_id}",
        ("plan_blocks",),
        "SELECT geom FROM plan_blocks WHERE plan_id IN (:new_plan, :prev_plan)",
        {"new_plan": plan_id, "prev_plan": prev if prev is not None else plan_id},
    )


def _plan_row(conn: Connection, plan_id: int):
    row = conn.execute(text("SELECT * FROM plans WHERE id = :id"), {"id": plan_id}).first()
    if row is None:
        raise PlanNotFound(f"no plan {plan_id}")
    return row


def _plan_dict(row, analyst: bool) -> dict:
    totals = dict(row.totals)
    if not analyst:
        for k in (*RESTRICTED_TOTALS, "tax_note"):
            totals.pop(k, None)
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "target_year": row.target_year,
        "as_of": row.as_of.isoformat(),
        "tax_year": row.tax_year,
        "request": row.request,
        "rules_hash": row.rules_hash,
        "detection_run_id": row.detection_run_id,
        "totals": totals,
        "invariants": row.invariants,
        "notes": row.notes,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "seconds": row.seconds,
    }


def get_plan(engine: Engine, plan_id: int, analyst: bool = False, geometry: bool = True) -> dict:
    """A plan: its request, totals, invariants, allocation tables and blocks (GeoJSON, EPSG:4326).

    Public callers (``analyst`` False) get no 亩均税收 figures.
    """
    with engine.connect() as conn:
        row = _plan_row(conn, plan_id)
        alloc = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT * FROM plan_allocations WHERE plan_id = :id "
                    "ORDER BY array_position(ARRAY['district','platform','corridor'], level), code"
                ),
                {"id": plan_id},
            )
        ]
        blocks = conn.execute(
            text(
                f"""
                SELECT block_no, corridor_code, platform_code, platform_kind, district_code,
                       function, parcel_count, parcel_nos, round(area_mu::numeric, 2) AS area_mu,
                       round(idle_mu::numeric, 2) AS idle_mu,
                       round(low_efficiency_mu::numeric, 2) AS low_efficiency_mu,
                       round(flagged_mu::numeric, 2) AS flagged_mu,
                       round(innovation_mu::numeric, 2) AS innovation_mu, reasons,
                       {"ST_AsGeoJSON(ST_Transform(geom, 4326), 6)" if geometry else "NULL"} AS gj
                FROM plan_blocks WHERE plan_id = :id ORDER BY block_no
                """
            ),
            {"id": plan_id},
        ).all()
    tables: dict[str, list] = {"district": [], "platform": [], "corridor": []}
    for a in alloc:
        a.pop("plan_id", None)
        if not analyst:
            a.pop("tax_per_mu", None)
            a.pop("score", None)
        tables[a.pop("level")].append(a)
    features = []
    for b in blocks:
        props = {k: v for k, v in b._mapping.items() if k != "gj"}
        if not analyst:  # exit reasons quote 亩均税收
            props["reasons"] = [
                {k: v for k, v in r.items() if k not in TAX_REASON_KEYS} for r in props["reasons"]
            ]
        for k in ("area_mu", "idle_mu", "low_efficiency_mu", "flagged_mu", "innovation_mu"):
            props[k] = float(props[k])
        features.append(
            {
                "type": "Feature",
                "id": b.block_no,
                "geometry": json.loads(b.gj) if b.gj else None,
                "properties": props,
            }
        )
    return {
        **_plan_dict(row, analyst),
        "allocations": tables,
        "blocks": {"type": "FeatureCollection", "features": features},
    }


def list_plans(engine: Engine, analyst: bool = False, limit: int = 100) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM plans ORDER BY id DESC LIMIT :n"), {"n": limit}
        ).all()
    return [_plan_dict(r, analyst) for r in rows]


def _fn_by_parcel_sql(plan: int | None) -> str:
    if plan is None:  # today: every corridor parcel stays what it is
        return "SELECT NULL::text AS parcel_no, 'today'::text AS function WHERE false"
    return (
        f"SELECT unnest(parcel_nos) AS parcel_no, function FROM plan_blocks WHERE plan_id = {plan}"
    )


def compare(engine: Engine, plan_id: int, other_id: int | None, analyst: bool = False) -> dict:
    """Compare plan ``plan_id`` with plan ``other_id``, or with today (``other_id`` None).

    Returns the totals side by side, per district / platform / corridor the new land in each and
    the difference (other − this), and per block function the area (亩) in each; ``transitions``
    (plans only) counts corridor parcels whose function differs, by (from, to), with their 亩.
    """
    a = get_plan(engine, plan_id, analyst, geometry=False)
    if other_id is not None:
        b = get_plan(engine, other_id, analyst, geometry=False)
        b_label = f"plan {other_id} ({b['name']} v{b['version']})"
    else:
        b = None
        b_label = "today"
    out: dict = {
        "this": {"id": a["id"], "name": a["name"], "version": a["version"]},
        "other": b_label,
        "totals": {},
        "allocations": {},
        "functions": {},
    }
    keys = [
        "industrial_mu_today",
        "industrial_mu_after",
        "new_land_mu",
        "corridor_new_mu",
        "corridor_industrial_mu_after",
        "exit_mu",
    ]
    if analyst:
        keys += ["tax_per_mu_after", "tax_per_mu_new_land"]
    for k in keys:
        va = a["totals"].get(k)
        if b is not None:
            vb = b["totals"].get(k)
        elif k == "industrial_mu_after":
            vb = a["totals"]["industrial_mu_today"]
        elif k == "corridor_industrial_mu_after":
            vb = a["totals"]["corridor_industrial_mu_today"]
        elif k in ("new_land_mu", "corridor_new_mu", "exit_mu"):
            vb = 0.0
        elif k == "tax_per_mu_after":
            vb = a["totals"].get("tax_per_mu_today")
        else:
            vb = va if k == "industrial_mu_today" else None
        out["totals"][k] = {
            "this": va,
            "other": vb,
            "difference": None if va is None or vb is None else round(vb - va, 4),
        }
    for level, rows in a["allocations"].items():
        other_rows = {r["code"]: r for r in (b["allocations"][level] if b else [])}
        codes = sorted({r["code"] for r in rows} | set(other_rows))
        mine = {r["code"]: r for r in rows}
        out["allocations"][level] = [
            {
                "code": c,
                "name": (mine.get(c) or other_rows.get(c) or {}).get("name"),
                "this_new_mu": (mine.get(c) or {}).get("new_mu", 0.0),
                "other_new_mu": (other_rows.get(c) or {}).get("new_mu", 0.0),
                "difference_mu": round(
                    (other_rows.get(c) or {}).get("new_mu", 0.0)
                    - (mine.get(c) or {}).get("new_mu", 0.0),
                    2,
                ),
            }
            for c in codes
        ]
    for f in FUNCTIONS:
        va = a["totals"]["blocks"].get(f, {}).get("area_mu", 0.0)
        if b is not None:
            vb = b["totals"]["blocks"].get(f, {}).get("area_mu", 0.0)
        else:  # today every corridor parcel is industrial land in use as it is
            vb = (
                sum(x["area_mu"] for x in a["totals"]["blocks"].values())
                if f == "keep_industrial"
                else 0.0
            )
        out["functions"][f] = {"this_mu": va, "other_mu": vb, "difference_mu": round(vb - va, 2)}
    if b is not None:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"""
                    WITH x AS ({_fn_by_parcel_sql(plan_id)}), y AS ({_fn_by_parcel_sql(other_id)})
                    SELECT x.function AS f_from, y.function AS f_to, count(*) AS n,
                           sum(p.area_m2) * :mu AS mu
                    FROM x JOIN y USING (parcel_no) JOIN parcels p USING (parcel_no)
                    WHERE x.function <> y.function GROUP BY 1, 2 ORDER BY 1, 2
                    """
                ),
                {"mu": MU},
            ).all()
        out["transitions"] = [
            {"from": r.f_from, "to": r.f_to, "parcels": r.n, "area_mu": round(r.mu, 2)}
            for r in rows
        ]
    return out


def default_request(engine: Engine, name: str = "sample-both-corridors") -> PlanRequest:
    """The sample plan ``make demo`` makes: 2030, floor 97 % of today's industrial land, new land
    5 % of it, at least the configured corridor share in the corridors (ours, for the demo)."""
    with engine.connect() as conn:
        today = conn.execute(
            text(
                "SELECT coalesce(sum(area_m2), 0) * :mu FROM parcels "
                "WHERE land_use_code = ANY(:ind)"
            ),
            {"mu": MU, "ind": list(INDUSTRIAL_LAND_CODES)},
        ).scalar_one()
    return PlanRequest(
        target_year=2030,
        floor_mu=round(today * 0.97, 2),
        new_land_mu=round(today * 0.05, 2),
        name=name,
        notes=["演示方案: 底线为现状工业用地的 97 %, 新增用地为其 5 %(本系统设定)"],
    )


def plan_summary_line(engine: Engine) -> str:
    """For ``landlink analyse-all``: make the sample plan for both corridors.

    Without any three-lands run yet, one is made first (``run_detection``), so the
    plan's redevelop and exit blocks see idle and low-efficiency land, not only SJYT."""
    with engine.connect() as conn:
        run = current_run_id(conn)
    if run is None and _has_table(engine, "detection_runs"):
        from gis.lands.detection import run_detection

        run_detection(engine, user="analyse-all")
    req = default_request(engine)
    try:
        res = create(engine, req, user="analyse-all")
    except PlanRefused as e:
        return f"sample plan refused: {e.reason}"
    b = res["totals"]["blocks"]
    return (
        f"plan {res['id']} ({res['name']} v{res['version']}): {req.new_land_mu:.0f} 亩 new "
        f"({res['totals']['corridor_new_mu']:.0f} in corridors), blocks "
        + ", ".join(f"{f} {b[f]['blocks']}" for f in FUNCTIONS)
        + f"; industrial land {res['totals']['industrial_mu_after']:.0f} 亩 "
        f">= floor {req.floor_mu:.0f}"
    )
