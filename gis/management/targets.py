"""Annual targets (MB 目标) and their progress: the producer ``target_progress`` and its readers.

A target is an MB row: year (ND), level (JB 区县 / 平台), the district or platform (DM), the
indicator (ZB) and the target value (MBZ). Its progress (docs/TARGETS.md, every decision):

- **§7 indicators** (ZB a §7 indicator's Chinese name): the actual is the zone's figure in
  ``area_indicators`` for that year (gis/economy/indicators.py, the one computation), in the
  indicator's unit (% as percent, 万元/亩, tce/万元, t, 亩).
- **盘活** (PH_PEWG 批而未供, PH_GEWY 供而未用/闲置, PH_DX 低效): land that has left its
  three-lands status since the year's baseline (the recorded detection run marked with
  ``landlink detect --baseline``, else the year's first recorded run): an approval's remainder
  supplied (the 亩 it shrank by), an idle supply started or reclaimed (retired), a low-efficiency
  parcel clear of every threshold or retired (收储/再开发); each counts in the zone that held its
  largest area share at the baseline (§1, as the detection's counts). Actual: 亩.
- **淘汰** (TT): the baseline run's §6 candidates of the zone that have since been retired from QY,
  or, listed as class C for a failed standard, whose failed standards (BD rows) were all
  retired. Actual: enterprises (家).

Completion and state, against the share of the year gone at the refresh's as-of date ``s``
(0 before 1 January, 1 from 31 December): higher-is-better, completion = actual ÷ target × 100;
lower-is-better (单位工业增加值能耗, 排放总量), completion = target ÷ actual × 100. ``met`` when the
target is reached (actual ≥ target; lower: actual ≤ target), else ``on_track`` when completion ≥
s × 100, else ``behind``; ``no_data`` without an actual (no figure for the year, no baseline).
A target of 0 is met by any actual (completion 100).

Restricted (亩均税收, 单位工业增加值能耗, 排放总量): the actual, completion and state are withheld
from callers who are not analysts (``public``); 淘汰 items name enterprises on the backward-
capacity list, which only analysts see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from types import SimpleNamespace

from sqlalchemy import Connection, text

from gis.core.graph import ALL, CALENDAR, Changes, Producer
from gis.core.layers import LAYERS, TARGET_LAND_INDICATORS
from gis.core.vocabulary import label, labels
from gis.ingest.history import KEY_SEPARATOR

LAYER = LAYERS["MB"]
LEVELS = {"区县": "district", "平台": "platform"}  # JB -> area_indicators.level
LEVEL_NAMES = {"district": "区县", "platform": "平台"}
ZONE_TABLES = {"区县": "districts", "平台": "platforms"}
LAND_KINDS = {"PH_PEWG": "unsupplied", "PH_GEWY": "idle", "PH_DX": "low_efficiency"}
BACKWARD = "TT"
# §7 indicators a platform has no figure for: industrial value added ÷ GDP needs TJ's GDP,
# which is a district's (gis/economy/indicators.py)
DISTRICT_ONLY = ("va_gdp_share",)
# a flagged item's area that shrank by less than this has not left its status (1 m², in 亩)
MU_EPSILON = 0.0015
RULE = "MB 目标 progress against the share of the year gone (docs/TARGETS.md)"


@dataclass(frozen=True)
class TargetIndicator:
    """What an MB ZB value means: its code (``area_indicators.indicator``, PH_*, TT), label,
    unit, which way is better, whether it is restricted, its kind and whether only districts
    have it."""

    zb: str
    code: str
    label: str
    unit: str
    better: str
    restricted: bool
    kind: str  # indicator | land | backward
    district_only: bool = False


@cache
def indicators() -> dict[str, TargetIndicator]:
    """Every ZB value MB accepts -> its meaning (gis/core/layers.py TARGET_INDICATORS)."""
    from gis.economy.indicators import INDICATORS

    out: dict[str, TargetIndicator] = {}
    for code, name in labels("indicator").items():
        _, unit, better, restricted = INDICATORS[code]
        out[name] = TargetIndicator(
            name, code, name, unit, better, restricted, "indicator", code in DISTRICT_ONLY
        )
    for code, name in labels("target_indicator").items():
        kind = "land" if code in TARGET_LAND_INDICATORS else "backward"
        unit = "亩" if kind == "land" else "家"
        out[code] = TargetIndicator(code, code, name, unit, "higher", False, kind)
    return out


def share_of_year(year: int, as_of: date) -> float:
    """The share of ``year`` gone at the end of ``as_of`` (0 before it, 1 after it)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    if as_of < start:
        return 0.0
    if as_of >= end:
        return 1.0
    return ((as_of - start).days + 1) / ((end - start).days + 1)


def judge(
    actual: float | None, target: float, better: str, share: float
) -> tuple[float | None, str]:
    """(completion %, state) of an actual against its target at ``share`` of the year gone."""
    if actual is None:
        return None, "no_data"
    if better == "lower":
        met = actual <= target
        completion = 100.0 if actual <= 0 else target / actual * 100
    else:
        met = actual >= target
        completion = 100.0 if target <= 0 else actual / target * 100
    completion = round(completion, 2)
    if met:
        return completion, "met"
    return completion, "on_track" if completion >= share * 100 else "behind"


def key_text(year: int, level: str, zone: str, zb: str) -> str:
    return KEY_SEPARATOR.join((str(year), level, zone, zb))


# ---- baselines ---------------------------------------------------------------------------------


def baselines(conn: Connection, years: list[int]) -> dict[int, dict]:
    """Per year, its baseline run (id, as_of, started_at, how chosen): the run marked for the
    year, else the first recorded (not live) finished run whose as_of falls in the year."""
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (y) y, r.id, r.as_of, r.started_at,
                   r.baseline_year IS NOT NULL AS marked
            FROM unnest(CAST(:years AS int[])) y
            JOIN detection_runs r ON NOT r.live AND r.finished_at IS NOT NULL
                 AND (r.baseline_year = y
                      OR (extract(year FROM r.as_of) = y AND NOT EXISTS (
                          SELECT 1 FROM detection_runs m WHERE m.baseline_year = y)))
            ORDER BY y, r.as_of, r.id
            """
        ),
        {"years": years},
    ).all()
    return {
        r.y: {"id": r.id, "as_of": r.as_of, "at": r.started_at, "marked": r.marked} for r in rows
    }


def mark_baseline(conn: Connection, run_id: int, year: int | None = None) -> int:
    """Mark recorded run ``run_id`` as the baseline of ``year`` (default: its as_of's year),
    unmarking the year's previous one; returns the year. ValueError for the live run or an
    unknown one."""
    row = conn.execute(
        text("SELECT as_of, live FROM detection_runs WHERE id = :id"), {"id": run_id}
    ).first()
    if row is None:
        raise ValueError(f"no detection run {run_id}")
    if row.live:
        raise ValueError(f"run {run_id} is the live run: record one with 'landlink detect'")
    year = year or row.as_of.year
    conn.execute(
        text("UPDATE detection_runs SET baseline_year = NULL WHERE baseline_year = :y"),
        {"y": year},
    )
    conn.execute(
        text("UPDATE detection_runs SET baseline_year = :y WHERE id = :id"),
        {"y": year, "id": run_id},
    )
    return year


def record_backward_capacity(conn: Connection, run_id: int, as_of: date, rules) -> int:
    """Keep with recorded run ``run_id`` the §6 candidate list of the latest evaluation year up to
    ``as_of``'s year (what a later 淘汰 target counts from); returns the number of candidates."""
    from gis.economy.backward_capacity import candidates

    year = conn.execute(
        text("SELECT max(year) FROM evaluation_ranking WHERE year <= :y"), {"y": as_of.year}
    ).scalar_one()
    if year is None:
        return 0
    rows = candidates(conn, year, rules.backward_capacity)
    if rows:
        conn.execute(
            text(
                """
                INSERT INTO detection_backward_capacity (run_id, uscc, year, name,
                    industry_code, industry, class, failed_standards, district_code,
                    platform_code, area_mu)
                VALUES (:run, :uscc, :year, :name, :industry_code, :industry, :class,
                    :failed_standards, :district_code, :platform_code, :area_mu)
                """
            ),
            [{**r, "run": run_id} for r in rows],
        )
    return len(rows)


# ---- the items of 盘活 and 淘汰 targets --------------------------------------------------------

FLAGGED_IDLE = ("overdue", "idle", "idle_reclaimable", "partial_idle")


def _live_run(conn: Connection) -> int | None:
    return conn.execute(text("SELECT id FROM detection_runs WHERE live")).scalar_one_or_none()


def _land_items(
    conn: Connection, kind: str, base: int, live: int | None, keys: set[str] | None = None
) -> list[dict]:
    """The items of ``kind`` flagged in run ``base`` that have left the status since (judged
    by the live run and the registry), each with the zones (level, code) it counts in; only
    those keyed in ``keys`` unless None."""
    p = {"base": base, "live": live if live is not None else -1, "kind": kind,
         "keys": None if keys is None else sorted(keys)}  # fmt: skip
    among = "AND (CAST(:keys AS text[]) IS NULL OR b.{key} = ANY(CAST(:keys AS text[])))"
    zones = """(SELECT array_agg(s.level || ':' || s.code) FROM detection_zone_shares s
                WHERE s.run_id = :base AND s.kind = :kind AND s.key = {key} AND s.top
                  AND s.level IN ('district', 'platform')) AS zones"""
    if kind == "unsupplied":
        sql = f"""
            SELECT b.approval_no AS key, b.batch_name AS name,
                   b.unsupplied_mu - l.unsupplied_mu AS mu, 'supplied' AS reason,
                   jsonb_build_object('status', b.status, 'unsupplied_mu', b.unsupplied_mu,
                                      'supply_nos', b.supply_nos) AS before,
                   jsonb_build_object('status', l.status, 'unsupplied_mu', l.unsupplied_mu,
                                      'supply_nos', l.supply_nos) AS after,
                   ARRAY(SELECT 'GD' || '|' || n FROM unnest(l.supply_nos) n
                         ORDER BY n = ANY(b.supply_nos), n) AS sources,
                   {zones.format(key="b.approval_no")}
            FROM unsupplied_results b
            JOIN unsupplied_results l ON l.run_id = :live AND l.approval_no = b.approval_no
            WHERE b.run_id = :base AND b.status IN ('unsupplied', 'partial')
              AND b.unsupplied_mu - l.unsupplied_mu > {MU_EPSILON}
              {among.format(key="approval_no")}
            """
    elif kind == "idle":
        sql = f"""
            SELECT b.supply_no AS key, NULL AS name, b.area_mu AS mu,
                   CASE WHEN sp.id IS NULL THEN 'reclaimed' ELSE 'started' END AS reason,
                   jsonb_build_object('status', b.status, 'agreed_start', b.agreed_start)
                       AS before,
                   CASE WHEN sp.id IS NULL THEN jsonb_build_object('status', 'retired')
                        ELSE jsonb_build_object('status', l.status,
                                                'actual_start', l.actual_start) END AS after,
                   ARRAY['GD|' || b.supply_no] AS sources,
                   {zones.format(key="b.supply_no")}
            FROM idle_results b
            LEFT JOIN supplies sp ON sp.supply_no = b.supply_no
            LEFT JOIN idle_results l ON l.run_id = :live AND l.supply_no = b.supply_no
            WHERE b.run_id = :base AND b.status IN {FLAGGED_IDLE}
              AND (sp.id IS NULL OR (l.actual_start IS NOT NULL
                                     AND l.status NOT IN {FLAGGED_IDLE}))
              {among.format(key="supply_no")}
            """
    else:
        sql = f"""
            SELECT b.parcel_no AS key, NULL AS name, b.area_mu AS mu,
                   CASE WHEN pa.id IS NULL THEN 'redeveloped' ELSE 'above_thresholds' END
                       AS reason,
                   jsonb_build_object('reasons', b.reason_codes) AS before,
                   jsonb_build_object('status', CASE WHEN pa.id IS NULL THEN 'retired'
                                                     ELSE 'clear' END) AS after,
                   ARRAY['DK|' || b.parcel_no]
                   || CASE WHEN b.supply_no IS NULL THEN '{{}}'::text[]
                           ELSE ARRAY['GD|' || b.supply_no] END
                   || ARRAY(SELECT x FROM links e,
                            LATERAL (VALUES ('QY|' || e.from_key)) q(x)
                            WHERE e.kind = 'enterprise_parcel' AND e.to_key = b.parcel_no
                            UNION ALL
                            SELECT 'CC|' || o.uscc || ':' || o.year FROM links e
                            JOIN outputs o ON o.uscc = e.from_key
                            WHERE e.kind = 'enterprise_parcel' AND e.to_key = b.parcel_no)
                       AS sources,
                   {zones.format(key="b.parcel_no")}
            FROM low_efficiency_results b
            LEFT JOIN parcels pa ON pa.parcel_no = b.parcel_no
            WHERE b.run_id = :base AND NOT EXISTS (
                SELECT 1 FROM low_efficiency_results l
                WHERE l.run_id = :live AND l.parcel_no = b.parcel_no)
              {among.format(key="parcel_no")}
            """
    return [dict(r._mapping) for r in conn.execute(text(sql), p)]


def _backward_items(conn: Connection, base: int, rules, keys: set[str] | None = None) -> list[dict]:
    """The baseline's §6 candidates retired from QY, or (class C with a failed standard) whose
    failed standards were all retired; only those whose USCC is in ``keys`` unless None."""
    rows = conn.execute(
        text(
            """
            SELECT c.uscc AS key, c.name, NULL::float8 AS mu,
                   CASE WHEN e.id IS NULL THEN 'enterprise_retired'
                        ELSE 'standards_cleared' END AS reason,
                   jsonb_build_object('class', c.class, 'year', c.year,
                                      'failed_standards', c.failed_standards,
                                      'industry', c.industry) AS before,
                   jsonb_build_object('status', CASE WHEN e.id IS NULL THEN 'retired'
                                                     ELSE 'standards_cleared' END) AS after,
                   CASE WHEN e.id IS NULL THEN ARRAY['QY|' || c.uscc]
                        ELSE ARRAY(SELECT 'BD|' || c.uscc || ':' || c.year || ':' || k
                                   FROM unnest(c.failed_standards) k) END AS sources,
                   array_remove(ARRAY['district:' || c.district_code,
                                      'platform:' || c.platform_code], NULL) AS zones
            FROM detection_backward_capacity c
            LEFT JOIN enterprises e ON e.uscc = c.uscc
            WHERE c.run_id = :base
              AND (CAST(:keys AS text[]) IS NULL OR c.uscc = ANY(CAST(:keys AS text[])))
              AND (
                e.id IS NULL
                OR (c.class <> ALL(CAST(:cls AS text[])) AND cardinality(c.failed_standards) > 0
                    AND NOT EXISTS (SELECT 1 FROM failed_standards f WHERE f.uscc = c.uscc
                                    AND f.year = c.year AND f.kind = ANY(c.failed_standards))))
            """
        ),
        {
            "base": base,
            "cls": list(rules.backward_capacity.classes),
            "keys": None if keys is None else sorted(keys),
        },
    ).all()
    return [dict(r._mapping) for r in rows]


def _changes_of(conn: Connection, items: list[dict], since) -> None:
    """Each item's ``change``: the newest history entry after ``since`` among its source rows
    (``sources``: ``LAYER|key``), as layer, key, version, op, who, at, via; None if none."""
    pairs = [(i, s) for i, it in enumerate(items) for s in it["sources"] or ()]
    found: dict[int, dict] = {}
    if pairs:
        rows = conn.execute(
            text(
                """
                SELECT DISTINCT ON (q.i) q.i, h.layer, h.key, h.version, h.op, h.who, h.at,
                       h.via
                FROM unnest(CAST(:i AS int[]), CAST(:l AS text[]), CAST(:k AS text[]))
                     q(i, layer, key)
                JOIN row_history h ON h.layer = q.layer AND h.key = q.key AND h.at > :since
                ORDER BY q.i, h.at DESC, h.id DESC
                """
            ),
            {
                "i": [i for i, _ in pairs],
                "l": [s.split("|", 1)[0] for _, s in pairs],
                "k": [s.split("|", 1)[1] for _, s in pairs],
                "since": since,
            },
        ).all()
        for r in rows:
            found[r.i] = {
                "layer": r.layer,
                "key": r.key,
                "version": r.version,
                "op": r.op,
                "who": r.who,
                "at": r.at.isoformat(),
                "via": r.via,
            }
    for i, it in enumerate(items):
        it["change"] = found.get(i)


# ---- the producer --------------------------------------------------------------------------------

# the tables whose changes may move the items of 盘活 / 淘汰 targets (the items by key:
# ``_item_keys``; every target of the kind when one of them changed whole)
KIND_INPUTS = {
    "PH_PEWG": ("unsupplied_results", "approvals", "supplies"),
    "PH_GEWY": ("idle_results", "supplies"),
    "PH_DX": ("low_efficiency_results", "parcels", "supplies", "outputs", "enterprises"),
    BACKWARD: ("enterprises", "failed_standards"),
}
READS = (
    "targets", "area_indicators", "unsupplied_results", "idle_results", "low_efficiency_results",
    "detection_runs", "approvals", "supplies", "parcels", "enterprises", "outputs",
    "failed_standards", CALENDAR,
)  # fmt: skip


def _item_keys(conn: Connection, zb: str, changes: Changes) -> set[str] | None:
    """The keys of the 盘活 / 淘汰 items of ``zb`` that ``changes`` may move: the results the three
    lands recomputed, the source rows changed, and the items whose sources (the rows an item's
    ``change`` is read from) include a changed row; None when a table changed whole."""
    tables = (*KIND_INPUTS[zb], "links", "parcel_links")
    if any(changes.everything(t) for t in tables):
        return None

    def got(t: str) -> set[str]:
        return set(changes.get(t, ()))

    def first(t: str) -> set[str]:  # the USCC of USCC:year(:kind) keys
        return {k.split(KEY_SEPARATOR, 1)[0] for k in got(t)}

    supplies = sorted(got("supplies"))
    if zb == "PH_PEWG":  # an approval; its sources: the supply records of its live result
        keys = got("unsupplied_results") | got("approvals")
        if supplies:
            keys |= set(
                conn.execute(
                    text(
                        "SELECT u.approval_no FROM unsupplied_results u JOIN detection_runs r "
                        "ON r.id = u.run_id AND r.live WHERE u.supply_nos && CAST(:s AS text[])"
                    ),
                    {"s": supplies},
                ).scalars()
            )
        return keys
    if zb == "PH_GEWY":  # a supply record
        return got("idle_results") | got("supplies")
    if zb == "PH_DX":  # a parcel; its sources: its supply record, enterprises and their CC
        keys = got("low_efficiency_results") | got("parcels") | got("parcel_links")
        usccs = sorted(got("enterprises") | first("outputs"))
        keys |= set(
            conn.execute(
                text(
                    "SELECT parcel_no FROM low_efficiency_results "
                    "WHERE supply_no = ANY(CAST(:s AS text[])) "
                    "UNION SELECT to_key FROM links WHERE kind = 'enterprise_parcel' "
                    "AND from_key = ANY(CAST(:u AS text[])) AND to_key IS NOT NULL"
                ),
                {"s": supplies, "u": usccs},
            ).scalars()
        )
        return keys
    return got("enterprises") | first("failed_standards")  # 淘汰: an enterprise


def _scope(
    conn: Connection, as_of: date, changes: Changes | None
) -> tuple[set[tuple] | None, dict[str, set[str]]]:
    """The targets (year, level, zone, ZB) to recompute (None: every one), and the 盘活 / 淘汰
    kinds whose items ``changes`` may move by key (ZB -> item keys): their targets are found by
    those items (``_narrowed_items``)."""
    narrow: dict[str, set[str]] = {}
    # the calendar alone: every target again when the rows are judged as of another day (below)
    if changes is None or changes.touches(("detection_runs",)):
        return None, narrow
    if changes.everything("targets"):
        return None, narrow
    stale = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM target_progress WHERE as_of <> :d)"), {"d": as_of}
    ).scalar_one()
    if stale:  # judged as of another day: every state may differ
        return None, narrow
    out: set[tuple] = set()
    for k in changes.get("targets", ()):
        parts = k.split(KEY_SEPARATOR, 3)
        if len(parts) == 4 and parts[0].isdigit():
            out.add((int(parts[0]), parts[1], parts[2], parts[3]))
    zones: set[tuple] = set()
    kinds: set[str] = set()
    if changes.everything("area_indicators"):
        kinds.add("indicator")
    for k in changes.get("area_indicators", ()):
        level, _, rest = k.partition(":")
        code, _, year = rest.rpartition(":")
        if level in LEVEL_NAMES and year.isdigit():
            zones.add((int(year), LEVEL_NAMES[level], code))
    for zb, tables in KIND_INPUTS.items():
        if changes.touches(tables):
            keys = _item_keys(conn, zb, changes)
            if keys is None:
                kinds.add(zb)
            elif keys:
                narrow[zb] = keys
    if not zones and not kinds:
        return out, narrow
    ind = [t.zb for t in indicators().values() if t.kind == "indicator"]
    rows = conn.execute(
        text(
            """
            SELECT year, level, zone_code, indicator FROM targets
            WHERE ((year, level, zone_code) IN (
                      SELECT * FROM unnest(CAST(:y AS int[]), CAST(:l AS text[]),
                                           CAST(:c AS text[])))
                   AND indicator = ANY(CAST(:ind AS text[])))
               OR indicator = ANY(CAST(:kinds AS text[]))
               OR (:all_ind AND indicator = ANY(CAST(:ind AS text[])))
            """
        ),
        {
            "y": [z[0] for z in zones],
            "l": [z[1] for z in zones],
            "c": [z[2] for z in zones],
            "ind": ind,
            "kinds": sorted(kinds - {"indicator"}),
            "all_ind": "indicator" in kinds,
        },
    ).all()
    return out | {tuple(r) for r in rows}, narrow


def _narrowed_items(
    conn: Connection, rules, narrow: dict[str, set[str]], whole: set[tuple]
) -> dict[tuple, list[dict]]:
    """The items of the targets that the item keys of ``narrow`` (ZB -> keys) may move, but not
    of the targets in ``whole`` (recomputed whole): per target, its stored items but those
    keys, and those keys' items recomputed. Targets that none of the keys is in are left out."""
    targets = {
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT year, level, zone_code, indicator FROM targets "
                "WHERE indicator = ANY(CAST(:z AS text[]))"
            ),
            {"z": sorted(narrow)},
        )
    } - whole
    if not targets:
        return {}
    bases = baselines(conn, sorted({t[0] for t in targets}))
    live = _live_run(conn)
    out: dict[tuple, list[dict]] = {}
    for zb, keys in sorted(narrow.items()):
        for year in sorted({t[0] for t in targets if t[3] == zb}):
            base = bases.get(year)
            if base is None:
                continue  # no baseline: no items (a new one comes with detection_runs)
            found = (
                _backward_items(conn, base["id"], rules, keys)
                if zb == BACKWARD
                else _land_items(conn, LAND_KINDS[zb], base["id"], live, keys)
            )
            _changes_of(conn, found, base["at"])
            new: dict[tuple, list[dict]] = {}
            for it in found:
                for z in it["zones"] or ():
                    level, _, code = z.partition(":")
                    new.setdefault((year, LEVEL_NAMES[level], code, zb), []).append(it)
            held = conn.execute(
                text(
                    "SELECT DISTINCT level, zone_code FROM target_progress_items "
                    "WHERE year = :y AND indicator = :z AND item_key = ANY(CAST(:k AS text[]))"
                ),
                {"y": year, "z": zb, "k": sorted(keys)},
            ).all()
            moved = (set(new) | {(year, lv, code, zb) for lv, code in held}) & targets
            for key in moved:
                out[key] = list(new.get(key, []))
            # their stored items but those keys
            for r in conn.execute(
                text(
                    "SELECT level, zone_code, item_key, name, mu, reason, before, after, change "
                    "FROM target_progress_items WHERE year = :y AND indicator = :z "
                    "AND (level, zone_code) IN (SELECT * FROM unnest(CAST(:l AS text[]), "
                    "CAST(:c AS text[]))) AND item_key <> ALL(CAST(:k AS text[]))"
                ),
                {
                    "y": year,
                    "z": zb,
                    "l": [m[1] for m in moved],
                    "c": [m[2] for m in moved],
                    "k": sorted(keys),
                },
            ):
                out[(year, r.level, r.zone_code, zb)].append(
                    {**dict(r._mapping), "key": r.item_key}
                )
    return out


def compute(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules,
    scope: set[tuple] | None,
    narrow: dict[str, set[str]] | None = None,
) -> set:
    """Recompute ``target_progress`` (and the items) of the targets in ``scope`` (None: every
    one) and of those whose items the keys of ``narrow`` (ZB -> item keys) may move; returns
    the keys (``ND:JB:DM:ZB``) of the rows that changed, appeared or went."""
    narrowed = _narrowed_items(conn, rules, narrow, scope or set()) if narrow else {}
    if scope is not None:
        scope = scope | set(narrowed)
    where, p = "", {}
    if scope is not None:
        if not scope:
            return set()
        s = sorted(scope)
        where = (
            "WHERE (year, level, zone_code, indicator) IN (SELECT * FROM unnest("
            "CAST(:y AS int[]), CAST(:l AS text[]), CAST(:c AS text[]), CAST(:z AS text[])))"
        )
        p = {"y": [x[0] for x in s], "l": [x[1] for x in s], "c": [x[2] for x in s],
             "z": [x[3] for x in s]}  # fmt: skip
    targets = [
        dict(r._mapping)
        for r in conn.execute(
            text(
                "SELECT year, level, zone_code, indicator, target_value FROM targets "
                f"{where} ORDER BY year, level, zone_code, indicator"
            ),
            p,
        )
    ]
    meta = indicators()
    years = sorted({t["year"] for t in targets})
    # §7: the zone's figure of the year
    values = {
        (r.level, r.code, r.year, r.indicator): (r.value, r.figures)
        for r in conn.execute(
            text(
                "SELECT level, code, year, indicator, value, figures FROM area_indicators "
                "WHERE level IN ('district', 'platform') AND year = ANY(CAST(:y AS int[]))"
            ),
            {"y": years},
        )
    }
    # 盘活 / 淘汰: the items per year and indicator, by zone
    wanted = {
        (t["year"], t["indicator"])
        for t in targets
        if meta[t["indicator"]].kind != "indicator"
        and (t["year"], t["level"], t["zone_code"], t["indicator"]) not in narrowed
    }
    years = {t["year"] for t in targets if meta[t["indicator"]].kind != "indicator"}
    bases = baselines(conn, sorted(years)) if years else {}
    live = _live_run(conn)
    items: dict[tuple, list[dict]] = dict(narrowed)
    for year, zb in sorted(wanted):
        base = bases.get(year)
        if base is None:
            continue
        found = (
            _backward_items(conn, base["id"], rules)
            if zb == BACKWARD
            else _land_items(conn, LAND_KINDS[zb], base["id"], live)
        )
        _changes_of(conn, found, base["at"])
        for it in found:
            for z in it["zones"] or ():
                level, _, code = z.partition(":")
                tk = (year, LEVEL_NAMES[level], code, zb)
                if tk not in narrowed:  # those have their items already
                    items.setdefault(tk, []).append(it)
    rows, item_rows = [], []
    for t in targets:
        m = meta[t["indicator"]]
        key = (t["year"], t["level"], t["zone_code"], t["indicator"])
        share = share_of_year(t["year"], as_of)
        figures: dict = {}
        note = None
        base = bases.get(t["year"])
        n_items = None
        if m.kind == "indicator":
            value, figs = values.get((LEVELS[t["level"]], t["zone_code"], t["year"], m.code),
                                     (None, None))  # fmt: skip
            actual = value
            figures = {"area_indicator": m.code, **(figs or {})}
            if actual is None:
                note = f"{t['year']} 年无该指标的计算结果（需该年企业产出 CC 等数据）"
        elif base is None:
            actual = None
            note = (
                f"{t['year']} 年无基线：用 landlink detect --baseline 记录一次三块地识别，"
                "或该年内的第一次记录识别即为基线"
            )
        else:
            its = sorted(items.get(key, []), key=lambda i: i["key"])
            n_items = len(its)
            actual = (
                float(len(its)) if m.kind == "backward" else round(sum(i["mu"] for i in its), 4)
            )
            figures = {"baseline_as_of": base["as_of"].isoformat(), "marked": base["marked"]}
            for it in its:
                item_rows.append(
                    {
                        "year": key[0], "level": key[1], "zone_code": key[2], "indicator": key[3],
                        "item_key": it["key"], "name": it["name"], "mu": it["mu"],
                        "reason": it["reason"], "before": json.dumps(it["before"], default=str),
                        "after": json.dumps(it["after"], default=str),
                        "change": None if it["change"] is None else json.dumps(it["change"]),
                    }
                )  # fmt: skip
        completion, state = judge(actual, t["target_value"], m.better, share)
        rows.append(
            {
                "year": key[0], "level": key[1], "zone_code": key[2], "indicator": key[3],
                "target_value": t["target_value"], "actual": actual, "completion": completion,
                "state": state, "share_of_year": round(share, 6), "kind": m.kind,
                "unit": m.unit, "better": m.better, "restricted": m.restricted,
                "baseline_run_id": base["id"] if base and m.kind != "indicator" else None,
                "items": n_items, "figures": json.dumps(figures, default=str), "note": note,
            }
        )  # fmt: skip
    return _write(conn, rows, item_rows, where, p, run_id, as_of)


VALUE_COLUMNS = (
    "target_value", "actual", "completion", "state", "share_of_year", "kind", "unit", "better",
    "restricted", "baseline_run_id", "items", "figures", "note",
)  # fmt: skip
KEY_COLUMNS = ("year", "level", "zone_code", "indicator")


def _write(conn, rows, item_rows, where, p, run_id, as_of) -> set[str]:
    """Replace the rows within ``where`` by ``rows``: only those that differ are written (a
    target's items are rewritten with it, or when they differ)."""
    conn.exec_driver_sql("DROP TABLE IF EXISTS _tp_new")
    conn.exec_driver_sql("DROP TABLE IF EXISTS _tpi_new")
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _tp_new ON COMMIT DROP AS SELECT * FROM target_progress WITH NO DATA"
    )
    conn.exec_driver_sql(
        "CREATE TEMP TABLE _tpi_new ON COMMIT DROP AS "
        "SELECT * FROM target_progress_items WITH NO DATA"
    )
    cols = (*KEY_COLUMNS, *VALUE_COLUMNS)
    if rows:
        conn.execute(
            text(
                f"INSERT INTO _tp_new ({', '.join(cols)}, run_id, as_of) VALUES ("
                + ", ".join(f"CAST(:{c} AS jsonb)" if c == "figures" else f":{c}" for c in cols)
                + ", :run, :as_of)"
            ),
            [{**r, "run": run_id, "as_of": as_of} for r in rows],
        )
    if item_rows:
        conn.execute(
            text(
                "INSERT INTO _tpi_new (year, level, zone_code, indicator, item_key, name, mu, "
                "reason, before, after, change) VALUES (:year, :level, :zone_code, :indicator, "
                ":item_key, :name, :mu, :reason, CAST(:before AS jsonb), CAST(:after AS jsonb), "
                "CAST(:change AS jsonb))"
            ),
            item_rows,
        )
    within = where or ""
    kq = ", ".join(KEY_COLUMNS)
    vc = ", ".join(VALUE_COLUMNS)
    ic = "item_key, name, mu, reason, before, after, change"
    changed = conn.execute(
        text(
            f"""
            WITH o AS (SELECT {kq}, ROW({vc}) AS r, as_of FROM target_progress {within}),
                 n AS (SELECT {kq}, ROW({vc}) AS r FROM _tp_new),
                 oi AS (SELECT {kq}, array_agg(ROW({ic})::text ORDER BY item_key) AS a
                        FROM target_progress_items {within} GROUP BY {kq}),
                 ni AS (SELECT {kq}, array_agg(ROW({ic})::text ORDER BY item_key) AS a
                        FROM _tpi_new GROUP BY {kq})
            SELECT {kq} FROM o FULL JOIN n USING ({kq})
            LEFT JOIN oi USING ({kq}) LEFT JOIN ni USING ({kq})
            WHERE o.r IS DISTINCT FROM n.r OR o.as_of IS DISTINCT FROM :as_of
               OR oi.a IS DISTINCT FROM ni.a
            """
        ),
        {**p, "as_of": as_of},
    ).all()
    if changed:
        ch = [tuple(r) for r in changed]
        q = {
            "cy": [c[0] for c in ch], "cl": [c[1] for c in ch], "cc": [c[2] for c in ch],
            "cz": [c[3] for c in ch],
        }  # fmt: skip
        sel = (
            f"({kq}) IN (SELECT * FROM unnest(CAST(:cy AS int[]), CAST(:cl AS text[]), "
            "CAST(:cc AS text[]), CAST(:cz AS text[])))"
        )
        for table, new in (("target_progress", "_tp_new"), ("target_progress_items", "_tpi_new")):
            conn.execute(text(f"DELETE FROM {table} WHERE {sel}"), q)
            conn.execute(text(f"INSERT INTO {table} SELECT * FROM {new} WHERE {sel}"), q)
    conn.exec_driver_sql("DROP TABLE _tp_new")
    conn.exec_driver_sql("DROP TABLE _tpi_new")
    return {key_text(*c) for c in changed}


def run(conn: Connection, ctx, changes: Changes | None) -> Changes:
    """Producer ``target_progress``: the progress of the MB targets that ``changes`` may move
    (every target when None).

    Recomputed: a changed MB row's target; the §7 targets of the zone-years of changed
    ``area_indicators`` rows (``level:code:year``); every 盘活 target of a kind whose inputs
    changed (批而未供: approvals, supplies, their results; 闲置: supplies, their results; 低效:
    parcels, supplies, enterprises, outputs, their results) and every 淘汰 target when
    enterprises or BD changed; everything when a detection run was recorded or marked
    (``detection_runs``: a baseline may have changed) or the stored rows were judged as of
    another day than ``ctx.as_of`` (the calendar moved; the calendar alone on the day they were
    judged changes nothing). Returns ``target_progress`` keys ``ND:JB:DM:ZB`` of the rows
    that changed (``ALL`` for a full recompute)."""
    if (
        changes is not None
        and not conn.execute(
            text("SELECT EXISTS (SELECT 1 FROM targets) OR EXISTS (SELECT 1 FROM target_progress)")
        ).scalar_one()
    ):
        return Changes()
    scope, narrow = _scope(conn, ctx.as_of, changes)
    changed = compute(conn, ctx.run_id or 0, ctx.as_of, ctx.rules, scope, narrow)
    ctx.counts["target_progress"] = (
        "all"
        if scope is None
        else {"targets": len(scope), "item_keys": {zb: len(k) for zb, k in narrow.items()}}
    )
    if changes is None:
        return Changes(target_progress={ALL})
    return Changes(target_progress=changed)


PRODUCERS = (
    Producer(
        name="target_progress",
        reads=READS,
        writes=("target_progress", "target_progress_items"),
        run=run,
        doc="MB targets' actual, completion and state; 盘活 / 淘汰 items since the baseline",
    ),
)


# ---- readers -------------------------------------------------------------------------------------


class TargetNotFound(LookupError):
    pass


def _zone_names(conn: Connection) -> dict[tuple[str, str], str]:
    return {
        (lv, r.code): r.name
        for lv, t in ZONE_TABLES.items()
        for r in conn.execute(text(f"SELECT code, name FROM {t}"))
    }


def _present(r, names: dict, analyst: bool) -> dict:
    m = indicators().get(r.indicator)
    restricted = bool(m.restricted) if m else bool(r.restricted)
    withheld = restricted and not analyst
    out = {"id": r.id}
    for f in LAYER.fields:
        out[f.code] = getattr(r, f.column)
    out.update(
        {
            "labels": {f.code: f.label for f in LAYER.fields},
            "zone_name": names.get((r.level, r.zone_code)),
            "indicator_label": m.label if m else r.indicator,
            "unit": r.unit or (m.unit if m else None),
            "better": r.better or (m.better if m else None),
            "kind": r.kind or (m.kind if m else None),
            "restricted": restricted,
            "actual": None if withheld else r.actual,
            "completion": None if withheld else r.completion,
            "state": None if withheld else r.state,
            "state_label": None if withheld or r.state is None else label("target_state", r.state),
            "withheld": withheld,
            "share_of_year": r.share_of_year,
            "as_of": r.as_of.isoformat() if r.as_of else None,
            "baseline_run_id": r.baseline_run_id,
            "items": r.items,
            "figures": None if withheld else r.figures,
            "note": r.note,
        }
    )  # fmt: skip
    return out


_SELECT = """
    SELECT t.id, t.year, t.level, t.zone_code, t.indicator, t.target_value, t.responsible_unit,
           t.note AS note_mb, p.actual, p.completion, p.state, p.share_of_year, p.unit,
           p.better, p.kind, p.restricted, p.baseline_run_id, p.items, p.figures, p.note,
           p.as_of
    FROM targets t LEFT JOIN target_progress p USING (year, level, zone_code, indicator)
"""


def list_targets(
    conn: Connection,
    year: int | None = None,
    level: str | None = None,
    code: str | None = None,
    analyst: bool = False,
) -> list[dict]:
    """The targets (filtered by year, level 区县 / 平台, zone code) with their progress; restricted
    figures only for ``analyst``."""
    rows = conn.execute(
        text(
            _SELECT
            + """
            WHERE (CAST(:y AS int) IS NULL OR t.year = :y)
              AND (CAST(:l AS text) IS NULL OR t.level = :l)
              AND (CAST(:c AS text) IS NULL OR t.zone_code = :c)
            ORDER BY t.year, t.level, t.zone_code, t.indicator
            """
        ),
        {"y": year, "l": level, "c": code},
    ).all()
    names = _zone_names(conn)
    return [_shape(r, names, analyst) for r in rows]


def _shape(r, names: dict, analyst: bool) -> dict:
    d = dict(r._mapping)
    mb_note = d.pop("note_mb")
    out = _present(SimpleNamespace(**d), names, analyst)
    out["SM"] = mb_note  # MB's note (``note`` above is the progress note)
    return out


def get_target(conn: Connection, target_id: int, analyst: bool = False) -> dict:
    r = conn.execute(text(_SELECT + " WHERE t.id = :id"), {"id": target_id}).first()
    if r is None:
        raise TargetNotFound(
            f"no target with id {target_id}; GET /api/targets lists them (with their ids)"
        )
    return _shape(r, _zone_names(conn), analyst)


def target_items(conn: Connection, target_id: int, analyst: bool = False) -> dict:
    """A 盘活 / 淘汰 target's counted items (reason, before, after, the change that made each
    count); 淘汰 items name enterprises of the backward-capacity list: analysts only (for others
    ``items`` is None and ``withheld`` true)."""
    t = get_target(conn, target_id, analyst)
    m = indicators().get(t["ZB"])
    if m is None or m.kind == "indicator":
        return {**_head(t), "items": [], "note": "§7 指标的目标没有逐项清单，实际值见 figures"}
    if m.kind == "backward" and not analyst:
        return {**_head(t), "items": None, "withheld": True}
    rows = conn.execute(
        text(
            """
            SELECT item_key, name, mu, reason, before, after, change
            FROM target_progress_items
            WHERE year = :y AND level = :l AND zone_code = :c AND indicator = :z
            ORDER BY mu DESC NULLS LAST, item_key
            """
        ),
        {"y": t["ND"], "l": t["JB"], "c": t["DM"], "z": t["ZB"]},
    ).all()
    items = [
        {**dict(r._mapping), "reason_label": label("target_item_reason", r.reason)} for r in rows
    ]
    return {**_head(t), "items": items, "count": len(items)}


def _head(t: dict) -> dict:
    keep = ("id", "ND", "JB", "DM", "ZB", "MBZ", "zone_name", "indicator_label", "unit",
            "actual", "state", "state_label", "baseline_run_id", "as_of")  # fmt: skip
    return {"target": {k: t.get(k) for k in keep}}
