"""The three kinds of land (三块地): the live run kept current by the derivation graph, recorded
snapshots, and the difference between runs.

批而未供 (lands/unsupplied.py), 供而未用/闲置 (lands/idle_land.py) and 低效利用
(lands/low_efficiency.py) are rows of a detection run. One run is *live* (``detection_runs.live``):
the producer ``three_lands`` (``PRODUCERS``) keeps its rows current after every write, by changed
keys, judged as of the day of the write; readers use it by default. ``run_detection`` (``landlink
detect``) records a frozen snapshot: a new run holding a copy of the live rows (or, for another
day, computed from scratch as of that day), with as_of, the hash of the rules it used, the input
batches (per layer: rows, batch ids, a hash of the row hashes), the counts and the time; ``diff``
compares two runs. The same data, rules and as_of give the same results (all SQL is
deterministic: ties are broken by key). Every result row carries the district, platform and
corridor holding the largest share of its area (§1); summaries split areas by boundary.
Geometry EPSG:4549, areas m² and 亩.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import date

from sqlalchemy import Connection, Engine, text

from gis.core.db import table_columns
from gis.core.graph import ALL, CALENDAR, Changes, Context, Producer
from gis.core.layers import M2_PER_MU
from gis.core.rules import Rules, get_rules
from gis.economy.evaluation import class_changes
from gis.lands import idle_land, low_efficiency, unsupplied

INPUT_TABLES = (
    "approvals",
    "supplies",
    "parcels",
    "enterprises",
    "outputs",
    "districts",
    "platforms",
    "corridors",
)
ZONE_LEVELS = {"district": "districts", "platform": "platforms", "corridor": "corridors"}
KINDS = ("unsupplied", "idle", "low_efficiency")
# What counts as "flagged" for summaries and diffs, per kind (SQL on the result table).
FLAGGED_SQL = {
    "unsupplied": "status IN ('unsupplied', 'partial')",
    "idle": "status IN ('overdue', 'idle', 'idle_reclaimable', 'partial_idle')",
    "low_efficiency": "true",
}
KEYS = {"unsupplied": "approval_no", "idle": "supply_no", "low_efficiency": "parcel_no"}


class RunNotFound(LookupError):
    pass


def config_of(rules: Rules) -> dict:
    """The rule sections a detection depends on (what the configuration hash covers)."""
    return {
        k: getattr(rules, k).model_dump()
        for k in ("unsupplied", "idle", "low_efficiency", "linkage")
    }


def config_hash(rules: Rules) -> str:
    blob = json.dumps(config_of(rules), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _inputs(conn: Connection) -> tuple[dict, str]:
    """Per input table: rows, the import batches its rows came from, and a content hash (an
    order-free sum of the row hashes: no sort, and any changed row changes it)."""
    sql = " UNION ALL ".join(
        f"SELECT '{t}', count(*), coalesce(array_agg(DISTINCT batch_id), '{{}}'), "
        f"md5(count(*) || ':' || coalesce(sum(('x' || left(md5(row_hash), 15))::bit(60)"
        f"::bigint), 0)::text) FROM {t}"
        for t in INPUT_TABLES
    )
    out = {
        t: {"rows": n, "batches": sorted(b), "hash": h} for t, n, b, h in conn.execute(text(sql))
    }
    digest = hashlib.sha256(
        json.dumps({t: v["hash"] for t, v in out.items()}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return out, digest


SOURCES = {  # kind -> (result table, key column, source table, its key, its id column)
    "unsupplied": ("unsupplied_results", "approval_no", "approvals", "doc_no", "approval_id"),
    "idle": ("idle_results", "supply_no", "supplies", "supply_no", "supply_id"),
    "low_efficiency": ("low_efficiency_results", "parcel_no", "parcels", "parcel_no", "parcel_id"),
}
DETECT = {  # kind -> writes the judged rows into the table ``into``
    "unsupplied": lambda conn, run, as_of, rules, keys, into: unsupplied.detect(
        conn, run, as_of, rules.unsupplied, keys, into=into
    ),
    "idle": lambda conn, run, as_of, rules, keys, into: idle_land.detect(
        conn, run, as_of, rules.idle, keys, into=into
    ),
    "low_efficiency": lambda conn, run, as_of, rules, keys, into: low_efficiency.detect(
        conn, run, as_of, rules.low_efficiency, keys, into=into
    ),
}
ZONE_CODES = ("district_code", "platform_code", "corridor_code")
Scope = dict[str, list[str] | None]  # kind -> keys to recompute (None: every one)


def _store(conn: Connection, run_id: int, kind: str, keys: list[str] | None, judged: str) -> None:
    """Store the ``kind`` rows of ``run_id`` judged for ``keys`` (None: all), held in the table
    ``judged``, with their zone codes, and their rows in ``detection_zone_shares`` (flagged
    items only). One INSERT of each row with its codes (an UPDATE of the codes after the rows
    had cost a DK first load 1.4 s: every idle row written twice, with its four indexes).

    Codes: per level, the zone holding the largest share of the item's area (ties: the smaller
    code), §1. Shares: the item's area in each zone (批而未供: the unsupplied remainder's) and
    whether the zone is the item's largest share (what the counts use)."""
    table, key, src, src_key, id_col = SOURCES[kind]
    p = {"run": run_id, "keys": keys, "kind": kind}
    only = "" if keys is None else f"AND r.{key} = ANY(CAST(:keys AS text[]))"
    share = """CASE WHEN ST_Covers(z.geom, i.geom) THEN i.area_m2
                    ELSE ST_Area(ST_Intersection(z.geom, i.geom)) END AS share_m2"""
    items = f"""SELECT r.{key} AS key, i.geom, i.area_m2
                FROM {judged} r JOIN {src} i ON i.id = r.{id_col}"""
    # every item, or most of them: each zone's prepared geometry is reused over the items it
    # holds; a few items (low efficiency's, a tenth of the parcels): each looked up in the zones'
    # index (a DK first load's 4,778 low-efficiency parcels: 0.12 s, against 0.22 s through every
    # parcel of the zones)
    most = (
        keys is None
        and 5 * conn.execute(text(f"SELECT count(*) FROM {judged}")).scalar_one()
        >= conn.execute(text(f"SELECT count(*) FROM {src}")).scalar_one()
    )
    if most:
        parts = " UNION ALL ".join(
            f"""SELECT i.key, '{level}' AS level, z.code, z.name, {share}
                FROM ({items}) i
                JOIN {zones} z ON i.geom && z.geom AND ST_Intersects(z.geom, i.geom)"""
            for level, zones in ZONE_LEVELS.items()
        )
    else:  # (the planner, misled by the zones' few rows, had tested every parcel of a
        # corridor: 0.11 s for one parcel)
        parts = " UNION ALL ".join(
            f"""SELECT i.key, '{level}' AS level, z.code, z.name, z.share_m2
                FROM ({items}) i CROSS JOIN LATERAL (
                    SELECT z.code, z.name, {share} FROM {zones} z
                    WHERE i.geom && z.geom AND ST_Intersects(z.geom, i.geom) OFFSET 0) z"""
            for level, zones in ZONE_LEVELS.items()
        )
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE _zs ON COMMIT DROP AS
            SELECT *, row_number() OVER (PARTITION BY key, level
                                         ORDER BY share_m2 DESC, code) = 1 AS top
            FROM ({parts} OFFSET 0) s WHERE share_m2 > 0  -- the filter after the join
            """
        ),
        p,
    )
    # statistics for the planner: without them it joins the run's rows to _zs in a nested loop
    # over every result row (a from-scratch run of the sample city: 10.5 s instead of 0.1 s)
    conn.execute(text("ANALYZE _zs"))
    # the result table's columns (``judged`` has them): one statement text whose result has
    # one shape for every kind (psycopg prepares a text after a few runs; a text reading each
    # kind's staging table, of other columns, was then refused)
    columns = table_columns(conn, table)
    own = ", ".join(f"r.{c}" for c in columns if c not in ZONE_CODES)
    conn.execute(
        text(
            f"""
            INSERT INTO {table} ({", ".join(c for c in columns if c not in ZONE_CODES)},
                                 {", ".join(ZONE_CODES)})
            SELECT {own}, c.d, c.p, c.c
            FROM {judged} r
            LEFT JOIN (SELECT key, max(code) FILTER (WHERE level = 'district') AS d,
                              max(code) FILTER (WHERE level = 'platform') AS p,
                              max(code) FILTER (WHERE level = 'corridor') AS c
                       FROM _zs WHERE top GROUP BY key) c ON c.key = r.{key}
            """
        ),
        p,
    )
    flagged = f"r.run_id = :run {only} AND {FLAGGED_SQL[kind]}"
    if kind == "unsupplied":  # area: the remainder's share; count: the approval's top zone
        remainder = " UNION ALL ".join(
            f"""SELECT r.approval_no AS key, '{level}' AS level, z.code, z.name,
                       CASE WHEN ST_Covers(z.geom, r.geom) THEN ST_Area(r.geom)
                            ELSE ST_Area(ST_Intersection(z.geom, r.geom)) END AS share_m2,
                       false AS top
                FROM unsupplied_results r
                JOIN {zones} z ON z.geom && r.geom AND ST_Intersects(z.geom, r.geom)
                WHERE {flagged} AND r.geom IS NOT NULL"""
            for level, zones in ZONE_LEVELS.items()
        )
        rows = f"""
            SELECT key, level, code, min(name), coalesce(sum(share_m2), 0), bool_or(top)
            FROM (SELECT zs.key, zs.level, zs.code, zs.name, 0::float8 AS share_m2, true AS top
                  FROM _zs zs JOIN unsupplied_results r ON r.approval_no = zs.key
                  WHERE zs.top AND {flagged}
                  UNION ALL
                  SELECT * FROM ({remainder}) rem WHERE share_m2 > 0) x
            GROUP BY key, level, code"""
    else:
        rows = f"""
            SELECT zs.key, zs.level, zs.code, zs.name, zs.share_m2, zs.top
            FROM _zs zs JOIN {table} r ON r.{key} = zs.key WHERE {flagged}"""
    conn.execute(
        text(
            "INSERT INTO detection_zone_shares (run_id, kind, key, level, code, name, area_m2, "
            f"top) SELECT :run, :kind, * FROM ({rows}) q"
        ),
        p,
    )
    conn.execute(text("DROP TABLE _zs"))


def _zones_of(conn: Connection, run_id: int, kind: str, keys: list[str]) -> set[tuple[str, str]]:
    return {
        (r.level, r.code)
        for r in conn.execute(
            text(
                "SELECT DISTINCT level, code FROM detection_zone_shares "
                "WHERE run_id = :run AND kind = :kind AND key = ANY(CAST(:keys AS text[]))"
            ),
            {"run": run_id, "kind": kind, "keys": keys},
        )
    }


def _summaries(conn: Connection, run_id: int, zones: set[tuple[str, str]] | None) -> None:
    """The run's counts and areas (亩) per zone and kind, for ``zones`` ((level, code); None:
    every zone), from ``detection_zone_shares``. Count: flagged items whose largest share lies in
    the zone (what the list's zone filter returns); area: the part of each flagged item's area
    lying in it (the unsupplied remainder, the supply record, the parcel). Sums in numeric, so
    that they do not depend on the order of the rows."""
    p: dict = {"run": run_id, "mu": 1 / M2_PER_MU}
    only = ""
    if zones is not None:
        if not zones:
            return
        z = sorted(zones)
        p.update(levels=[x[0] for x in z], codes=[x[1] for x in z])
        only = (
            "AND (level, code) IN (SELECT * FROM unnest(CAST(:levels AS text[]), "
            "CAST(:codes AS text[])))"
        )
    conn.execute(text(f"DELETE FROM detection_summaries WHERE run_id = :run {only}"), p)
    conn.execute(
        text(
            f"""
            INSERT INTO detection_summaries (run_id, level, code, name, kind, count, area_mu)
            SELECT :run, level, code, min(name), kind, count(*) FILTER (WHERE top),
                   coalesce(sum(area_m2::numeric), 0)::float8 * :mu
            FROM detection_zone_shares WHERE run_id = :run {only}
            GROUP BY level, code, kind
            """
        ),
        p,
    )


def compute(
    conn: Connection, run_id: int, as_of: date, rules: Rules, scope: Scope
) -> set[tuple[str, str]] | None:
    """Recompute the rows of ``run_id`` for ``scope`` (per kind, the keys to judge again as of
    ``as_of``; None: every one; a kind left out: none), their zone shares and the summaries of
    the zones they lie in now or lay in before; returns those zones (None: every zone)."""
    zones: set[tuple[str, str]] | None = set()
    for kind in KINDS:
        if kind not in scope:
            continue
        keys = scope[kind]
        if keys is not None and not keys:
            continue
        table, key = SOURCES[kind][:2]
        only = "" if keys is None else f"AND {key} = ANY(CAST(:keys AS text[]))"
        if keys is None:
            zones = None
            conn.execute(
                text("DELETE FROM detection_zone_shares WHERE run_id = :run AND kind = :kind"),
                {"run": run_id, "kind": kind},
            )
        else:
            if zones is not None:
                zones |= _zones_of(conn, run_id, kind, keys)
            conn.execute(
                text(
                    "DELETE FROM detection_zone_shares WHERE run_id = :run AND kind = :kind "
                    "AND key = ANY(CAST(:keys AS text[]))"
                ),
                {"run": run_id, "kind": kind, "keys": keys},
            )
        conn.execute(
            text(f"DELETE FROM {table} WHERE run_id = :run {only}"),
            {"run": run_id, "keys": keys},
        )
        conn.execute(
            text(f"CREATE TEMP TABLE _judged (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
        )
        DETECT[kind](conn, run_id, as_of, rules, keys, "_judged")
        _store(conn, run_id, kind, keys, "_judged")
        conn.execute(text("DROP TABLE _judged"))
        if zones is not None and keys is not None:
            zones |= _zones_of(conn, run_id, kind, keys)
    _summaries(conn, run_id, zones)
    return zones


def counts_of(conn: Connection, run_id: int, as_of: date, rules: Rules) -> dict:
    """Counts of a run's rows: by status (批而未供, 闲置), by reason (低效) and the tax year."""
    from gis.core.detection_models import IDLE_STATUSES, REASON_CODES, UNSUPPLIED_STATUSES

    out: dict = {}
    for kind, statuses in (
        ("unsupplied", UNSUPPLIED_STATUSES),
        ("idle", IDLE_STATUSES),
    ):
        table = SOURCES[kind][0]
        c = {s: 0 for s in statuses}
        c.update(
            dict(
                conn.execute(
                    text(f"SELECT status, count(*) FROM {table} WHERE run_id = :r GROUP BY 1"),
                    {"r": run_id},
                ).all()
            )
        )
        out[kind] = c
    out["idle"]["records_disagree"] = conn.execute(
        text("SELECT count(*) FROM idle_results WHERE run_id = :r AND records_disagree"),
        {"r": run_id},
    ).scalar_one()
    c = {code: 0 for code in REASON_CODES}
    c.update(
        dict(
            conn.execute(
                text(
                    "SELECT code, count(*) FROM low_efficiency_results, unnest(reason_codes) code "
                    "WHERE run_id = :r GROUP BY code"
                ),
                {"r": run_id},
            ).all()
        )
    )
    c["parcels"] = conn.execute(
        text("SELECT count(*) FROM low_efficiency_results WHERE run_id = :r"), {"r": run_id}
    ).scalar_one()
    c["tax_year"] = low_efficiency.tax_year(conn, as_of, rules.low_efficiency)
    out["low_efficiency"] = c
    return out


def _new_run(conn: Connection, as_of: date, rules: Rules, user: str, live: bool) -> int:
    inputs, inputs_hash = ({}, "live") if live else _inputs(conn)
    return conn.execute(
        text(
            """
            INSERT INTO detection_runs (as_of, config_hash, config, inputs, inputs_hash,
                                        created_by, live)
            VALUES (:as_of, :h, CAST(:cfg AS jsonb), CAST(:inp AS jsonb), :ih, :user, :live)
            RETURNING id
            """
        ),
        {
            "as_of": as_of,
            "h": config_hash(rules),
            "cfg": json.dumps(config_of(rules), ensure_ascii=False),
            "inp": json.dumps(inputs),
            "ih": inputs_hash,
            "user": user,
            "live": live,
        },
    ).scalar_one()


def _finish(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: Rules,
    t0: float,
    live: bool = False,
    **extra,
) -> None:
    """Close a run: its counts, notes, rules and time. The live run stores only its tax year
    (what the next refresh compares): its counts change with every refresh and are counted
    when read (``_run_dict``), not by each writer over every row of the run."""
    counts = (
        {"low_efficiency": {"tax_year": low_efficiency.tax_year(conn, as_of, rules.low_efficiency)}}
        if live
        else {**counts_of(conn, run_id, as_of, rules), **extra.pop("counts", {})}
    )
    _, notes = low_efficiency.notes_for(conn, as_of, rules.low_efficiency)
    conn.execute(
        text(
            """
            UPDATE detection_runs SET as_of = :as_of, config_hash = :h,
                config = CAST(:cfg AS jsonb), counts = CAST(:c AS jsonb),
                notes = CAST(:n AS jsonb), finished_at = now(), seconds = :s
            WHERE id = :run
            """
        ),
        {
            "as_of": as_of,
            "h": config_hash(rules),
            "cfg": json.dumps(config_of(rules), ensure_ascii=False),
            "c": json.dumps(counts, default=str),
            "n": json.dumps(notes + extra.get("notes", []), ensure_ascii=False),
            "s": time.perf_counter() - t0,
            "run": run_id,
        },
    )


# ---- the live run: the three lands' current status, kept current by the derivation graph ----

LIVE_READS = (
    "approvals",
    "supplies",
    "parcels",
    "links",
    "per_mu",
    "evaluation_ranking",
    "outputs",
    "districts",
    "platforms",
    "corridors",
    CALENDAR,
)
LIVE_WRITES = (
    "unsupplied_results",
    "idle_results",
    "low_efficiency_results",
    "detection_zone_shares",
    "detection_summaries",
)


def _live(conn: Connection):
    return conn.execute(
        text("SELECT id, as_of, config_hash, counts FROM detection_runs WHERE live FOR UPDATE")
    ).first()


def _keys(changes: Changes, *tables: str) -> list[str] | None:
    """The changed keys of ``tables`` (None: one of them changed whole)."""
    out: set[str] = set()
    for t in tables:
        if changes.everything(t):
            return None
        out |= changes.get(t, set())
    return sorted(out)


def _select(conn: Connection, sql: str, **params) -> set[str]:
    return {r[0] for r in conn.execute(text(sql), params) if r[0] is not None}


def _scope(conn: Connection, run_id: int, changes: Changes, tax_year_changed: bool) -> Scope:
    """Per kind, the keys whose status may depend on ``changes`` (see ``run``). The calendar
    alone changes nothing here: ``run`` judges everything again when the live run is as of
    another day, and a live run as of this day with these rules is already what a new
    judgement would give (``landlink refresh`` twice in a day: at scale 200, 70 s the second
    time for the same rows)."""
    if changes.touches(("districts", "platforms", "corridors")):
        return dict.fromkeys(KINDS)
    approvals = _keys(changes, "approvals")
    supplies = _keys(changes, "supplies")
    parcels = _keys(changes, "parcels", "links")  # links: the DKBH (or USCC) linkage changed
    scope: Scope = {}
    # 批而未供: the approvals, and those a changed supply met before or overlaps now
    if approvals is None or supplies is None:
        scope["unsupplied"] = None
    else:
        scope["unsupplied"] = sorted(
            set(approvals)
            | _select(
                conn,
                "SELECT approval_no FROM unsupplied_results WHERE run_id = :run "
                "AND supply_nos && CAST(:s AS text[]) UNION "
                "SELECT a.doc_no FROM supplies s JOIN approvals a "
                "ON a.geom && s.geom AND ST_Intersects(a.geom, s.geom) WHERE s.supply_no = ANY(:s)",
                run=run_id,
                s=supplies,
            )
        )
    # 闲置: the supplies, and those whose parcels (before or now) changed
    if supplies is None or parcels is None:
        scope["idle"] = None
    else:
        scope["idle"] = sorted(
            set(supplies)
            | _select(
                conn,
                "SELECT supply_no FROM idle_results WHERE run_id = :run "
                "AND parcel_nos && CAST(:p AS text[]) UNION "
                "SELECT from_key FROM links WHERE kind = 'supply_parcel' AND to_key = ANY(:p) "
                "UNION SELECT supply_no FROM supplies WHERE supply_no = ANY(:p)",
                run=run_id,
                p=parcels,
            )
        )
    # 低效: the parcels, those of changed supplies (before or now), of changed per-mu rows and
    # of enterprises whose links or class changed
    per_mu = _keys(changes, "per_mu")
    evaluations = _keys(changes, "evaluation_ranking")
    if tax_year_changed or None in (supplies, parcels, per_mu, evaluations):
        scope["low_efficiency"] = None
    else:
        usccs = {k.split(":")[0] for k in evaluations} | set(parcels)
        mu_parcels = {k.split(":")[1] for k in per_mu if k.startswith("parcel:")}
        scope["low_efficiency"] = sorted(
            _select(
                conn,
                "SELECT parcel_no FROM parcels WHERE parcel_no = ANY(:p) UNION "
                "SELECT parcel_no FROM low_efficiency_results WHERE run_id = :run "
                "AND (parcel_no = ANY(:p) OR supply_no = ANY(:s)) UNION "
                "SELECT to_key FROM links WHERE kind = 'supply_parcel' AND from_key = ANY(:s) "
                "UNION SELECT to_key FROM links WHERE kind = 'enterprise_parcel' "
                "AND from_key = ANY(:e)",
                run=run_id,
                p=sorted(set(parcels) | mu_parcels),
                s=supplies,
                e=sorted(usccs),
            )
        )
    return scope


def run(conn: Connection, ctx: Context, changes: Changes | None) -> Changes:
    """Producer ``three_lands``: the live detection run's rows (批而未供 per approval, 闲置 per
    supply record, 低效 per parcel), zone shares and zone summaries, judged as of ``ctx.as_of``.

    What is judged again: a changed approval (PZWH): its row; a changed supply record (DZJGH):
    its own row, the approvals it met before (``supply_nos``) or overlaps now, the parcels it was
    or is linked to (``links`` supply_parcel); a changed parcel or ``links`` key (DKBH, or an
    enterprise's USCC): that parcel's 低效 row, the supply records it was or is linked to, the
    parcels of that enterprise; changed ``per_mu`` rows ``parcel:DKBH:year``: those parcels;
    changed ``evaluation_ranking`` ``USCC:year`` whose class changed (``evaluation_classes``): the
    parcels of those enterprises; ``outputs``: only when
    the tax year (latest ND <= year(as_of) - lag) moved (then every parcel). Everything: the
    zones or the calendar changed, the live run is judged as of another day than ``ctx.as_of``,
    its rules differ, or there is no live run yet (made here).

    Returns ``unsupplied_results`` PZWH, ``idle_results`` DZJGH, ``low_efficiency_results`` DKBH
    (the keys judged again, whether or not their row changed; ALL when every key was) and
    ``detection_summaries`` ``level:code`` of the zones recomputed (``detection_zone_shares``:
    nothing; only this module reads it)."""
    t0 = time.perf_counter()
    live = _live(conn)
    if live is None:
        run_id = _new_run(conn, ctx.as_of, ctx.rules, "graph", live=True)
        changes = None
    else:
        run_id = live.id
        if live.as_of != ctx.as_of or live.config_hash != config_hash(ctx.rules):
            changes = None
    if changes is None:
        scope: Scope = dict.fromkeys(KINDS)
    else:
        year = low_efficiency.tax_year(conn, ctx.as_of, ctx.rules.low_efficiency)
        stored = (live.counts or {}).get("low_efficiency", {}).get("tax_year", year)
        # 低效 reads an evaluation's class (D) only
        scope = _scope(conn, run_id, class_changes(changes), year != stored)
    if all(v is not None and not v for v in scope.values()):
        return Changes()
    zones = compute(conn, run_id, ctx.as_of, ctx.rules, scope)
    _finish(conn, run_id, ctx.as_of, ctx.rules, t0, live=True)
    out = Changes()
    for kind, keys in scope.items():
        out.add(SOURCES[kind][0], [ALL] if keys is None else keys)
    if zones is None:
        out.add("detection_summaries", [ALL])
    else:
        out.add("detection_summaries", [f"{lv}:{c}" for lv, c in sorted(zones)])
    ctx.counts["three_lands"] = {k: "all" if v is None else len(v) for k, v in scope.items()}
    return out


PRODUCERS = (
    Producer(
        "three_lands",
        reads=LIVE_READS,
        writes=LIVE_WRITES,
        run=run,
        doc="the three lands' current status (the live detection run) and its zone summaries",
    ),
)


def run_detection(
    engine: Engine,
    as_of: date | None = None,
    user: str = "cli",
    rules: Rules | None = None,
    baseline: bool = False,
) -> dict:
    """Record a snapshot of the three lands as of ``as_of`` (default today): a new frozen run.

    When the live run is judged as of that day with the same rules, its rows are copied (the
    live run is current: the graph keeps it so); otherwise the run is computed from scratch as
    of ``as_of``. The run also keeps the §6 backward-capacity list as it stands (what 淘汰
    targets count from). ``baseline``: mark it as the baseline of its as_of's year for 盘活 /
    淘汰 targets (gis/management/targets.py; without a marked one, a year's first recorded run
    is its baseline). The targets' progress is refreshed in the same transaction (judged as of
    the live run's day). Returns the run record: id, as_of, config_hash, inputs_hash, counts,
    notes, seconds, baseline_year."""
    from gis.core import graph
    from gis.management import targets

    rules = rules or get_rules()
    as_of = as_of or date.today()
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        live = _live(conn)
        run_id = _new_run(conn, as_of, rules, user, live=False)
        if live is not None and live.as_of == as_of and live.config_hash == config_hash(rules):
            _copy(conn, live.id, run_id)
            extra = {"notes": [f"copied from the live run {live.id}"]}
        else:
            compute(conn, run_id, as_of, rules, dict.fromkeys(KINDS))
            extra = {"notes": ["computed from scratch"]}
        n = targets.record_backward_capacity(conn, run_id, as_of, rules)
        extra.setdefault("counts", {})["backward_capacity"] = n
        if baseline:
            targets.mark_baseline(conn, run_id)
        _finish(conn, run_id, as_of, rules, t0, **extra)
        # the new run's rows counted before the targets' progress reads them in this
        # transaction (planned on the counts of before, one recorded run of the scale-20 city
        # took the progress 12-30 s)
        tables = ", ".join(sorted({SOURCES[k][0] for k in KINDS} | {"detection_zone_shares"}))
        conn.exec_driver_sql(f"ANALYZE {tables}")
        graph.refresh(
            conn,
            Changes(detection_runs={str(run_id)}),
            as_of=live.as_of if live is not None else None,
            rules=rules,
            trigger=f"detect:{run_id}",
            targets=("target_progress",),
        )
    return get_run(engine, run_id)


def _copy(conn: Connection, src: int, dst: int) -> None:
    """Every row of run ``src`` into run ``dst`` (INSERT ... SELECT)."""
    from gis.core import detection_models as dm

    for table in (*dm.RESULT_TABLES.values(), dm.detection_zone_shares, dm.detection_summaries):
        cols = [c.name for c in table.columns if c.name != "run_id"]
        names = ", ".join(cols)
        conn.execute(
            text(
                f"INSERT INTO {table.name} (run_id, {names}) "
                f"SELECT :dst, {names} FROM {table.name} WHERE run_id = :src"
            ),
            {"src": src, "dst": dst},
        )


def _run_dict(conn: Connection, row) -> dict:
    """A run record; the live run's counts are counted now (see ``_finish``)."""
    counts = row.counts
    if row.live:
        rules = get_rules()
        counts = counts_of(conn, row.id, row.as_of, rules)
    return {
        "id": row.id,
        "as_of": row.as_of.isoformat(),
        "config_hash": row.config_hash,
        "inputs_hash": row.inputs_hash,
        "inputs": row.inputs,
        "counts": counts,
        "notes": row.notes,
        "created_by": row.created_by,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "seconds": row.seconds,
        "live": row.live,
        "baseline_year": row.baseline_year,
    }


# The three lands' current run: the live run the derivation graph keeps current, else the latest
# finished one (a snapshot city with no live run yet). An uncorrelated scalar subquery, evaluated
# once per query; every reader of "the current status" (map layers, OGC collections, tiles,
# dossiers, the layout plan) uses it.
CURRENT_RUN = (
    "(SELECT id FROM detection_runs WHERE finished_at IS NOT NULL "
    "ORDER BY live DESC, id DESC LIMIT 1)"
)


def current_run_id(conn: Connection) -> int | None:
    """The current run's id (see ``CURRENT_RUN``), None without any run or run table."""
    if not conn.execute(text("SELECT to_regclass('detection_runs') IS NOT NULL")).scalar_one():
        return None
    return conn.execute(text(f"SELECT {CURRENT_RUN}")).scalar_one()


def get_run(engine: Engine, run_id: int | None = None) -> dict:
    """A run record by id, or the live run (the current status), else the latest finished
    run; RunNotFound if there is none."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT * FROM detection_runs WHERE finished_at IS NOT NULL "
                + ("AND id = :id" if run_id is not None else f"AND id = {CURRENT_RUN}")
            ),
            {"id": run_id},
        ).first()
        out = None if row is None else _run_dict(conn, row)
    if out is None:
        raise RunNotFound(
            f"no detection run {run_id}"
            if run_id is not None
            else "no detection run yet: run 'landlink detect'"
        )
    return out


def list_runs(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT * FROM detection_runs WHERE finished_at IS NOT NULL "
                "ORDER BY live DESC, id DESC LIMIT :n"
            ),
            {"n": limit},
        ).all()
        return [_run_dict(conn, r) for r in rows]


def _state_sql(kind: str) -> str:
    """Per key: the label compared between runs (status, or the sorted reason codes)."""
    if kind == "low_efficiency":
        return "array_to_string(ARRAY(SELECT unnest(reason_codes) ORDER BY 1), ',')"
    return "status"


def diff(engine: Engine, run_id: int, other_id: int) -> dict:
    """What changed going from run ``run_id`` to run ``other_id``, per kind.

    ``became``: keys flagged in ``other_id`` and not in ``run_id``; ``stopped``: the reverse;
    ``changed``: flagged in both with a different status (idle, unsupplied) or reason set
    (low efficiency). Each entry names the key (PZWH, DZJGH or DKBH) and its state in each run.
    """
    a, b = get_run(engine, run_id), get_run(engine, other_id)
    out: dict = {"from": {k: a[k] for k in ("id", "as_of")}, "to": {"id": b["id"]}}
    out["to"]["as_of"] = b["as_of"]
    tables = {
        "unsupplied": "unsupplied_results",
        "idle": "idle_results",
        "low_efficiency": "low_efficiency_results",
    }
    with engine.connect() as conn:
        for kind, table in tables.items():
            key, state, flag = KEYS[kind], _state_sql(kind), FLAGGED_SQL[kind]
            rows = conn.execute(
                text(
                    f"""
                    WITH x AS (SELECT {key} AS k, {state} AS st FROM {table}
                               WHERE run_id = :a AND {flag}),
                         y AS (SELECT {key} AS k, {state} AS st FROM {table}
                               WHERE run_id = :b AND {flag})
                    SELECT coalesce(x.k, y.k) AS k, x.st AS before, y.st AS after
                    FROM x FULL JOIN y ON x.k = y.k
                    WHERE x.k IS NULL OR y.k IS NULL OR x.st IS DISTINCT FROM y.st
                    ORDER BY 1
                    """
                ),
                {"a": run_id, "b": other_id},
            ).all()
            became = [{"key": r.k, "to": r.after} for r in rows if r.before is None]
            stopped = [{"key": r.k, "from": r.before} for r in rows if r.after is None]
            changed = [
                {"key": r.k, "from": r.before, "to": r.after}
                for r in rows
                if r.before is not None and r.after is not None
            ]
            out[kind] = {"key": key, "became": became, "stopped": stopped, "changed": changed}
    return out


def record_missing_baselines(engine: Engine) -> list[dict]:
    """For each year that has targets (MB) and no baseline run, record one judged as of 1
    January of that year with the data as they stand (their dates say what had started, been
    supplied or stopped by then), marked as the year's baseline. What ``landlink analyse-all``
    does after loading, so that 盘活 and 淘汰 targets count from somewhere; a bureau records its
    own with ``landlink detect --as-of D --baseline`` (docs/TARGETS.md). Returns the runs."""
    from gis.management import targets

    with engine.connect() as conn:
        years = list(conn.execute(text("SELECT DISTINCT year FROM targets ORDER BY 1")).scalars())
        have = targets.baselines(conn, years) if years else {}
    return [
        run_detection(engine, date(y, 1, 1), user="analyse-all", baseline=True)
        for y in years
        if y not in have
    ]


def baselines_summary_line(engine: Engine) -> str:
    """For ``landlink analyse-all``: ``record_missing_baselines``, one line."""
    runs = record_missing_baselines(engine)
    if not runs:
        return "every year with targets has a baseline run (or there are no targets)"
    return "; ".join(f"run {r['id']} as of {r['as_of']}" for r in runs)


def detect_summary_line(engine: Engine, as_of: date | None = None) -> str:
    """For ``landlink analyse-all``: run a detection as of ``as_of`` (default today), one line."""
    r = run_detection(engine, as_of, user="analyse-all")
    c = r["counts"]
    return (
        f"run {r['id']}: 批而未供 {c['unsupplied']['unsupplied'] + c['unsupplied']['partial']}, "
        f"闲置/供而未用 {sum(c['idle'][s] for s in idle_land.FLAGGED)}, "
        f"低效 {c['low_efficiency']['parcels']}"
    )
