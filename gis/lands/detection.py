"""One recorded detection run of the three kinds of land (三块地), and the difference between runs.

``run_detection`` computes 批而未供 (lands/unsupplied.py), 供而未用/闲置 (lands/idle_land.py) and
低效利用 (lands/low_efficiency.py) as of a date in one transaction, and records the run: as_of, the
hash of the rules it used, the input batches (per layer: rows, batch ids, a hash of the row
hashes), the counts and the time. The same data, rules and as_of give the same results (all SQL is
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

from gis.core.layers import M2_PER_MU
from gis.core.rules import Rules, get_rules
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


def _links(conn: Connection, rules: Rules) -> None:
    """Temp tables of the links the detections need (§1), built inside the run's transaction
    from the registry alone, so that a run is self-contained and re-runnable (the evaluation's
    ``links`` table follows its own runs; the rules are the same).

    ``_parcel_supply``: a parcel's supply record by DZJGH, else the supply with the largest
    overlap if it covers >= ``supply_min_overlap`` of the parcel. ``_enterprise_parcel``: by DKBH,
    else the parcel containing the enterprise's point, else the nearest within ``nearest_max_m``.
    """
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _parcel_supply ON COMMIT DROP AS
            SELECT p.id AS parcel_id, s.id AS supply_id, 'key' AS how
            FROM parcels p JOIN supplies s ON s.supply_no = p.supply_no
            """
        )
    )
    conn.execute(
        text(
            """
            INSERT INTO _parcel_supply
            SELECT DISTINCT ON (parcel_id) parcel_id, supply_id, 'overlap'
            FROM (
                SELECT p.id AS parcel_id, s.id AS supply_id, p.area_m2,
                       ST_Area(ST_Intersection(s.geom, p.geom)) AS ov
                FROM (
                    SELECT q.id, q.geom, q.area_m2 FROM parcels q
                    WHERE NOT EXISTS (SELECT 1 FROM _parcel_supply k WHERE k.parcel_id = q.id)
                ) p
                JOIN supplies s ON s.geom && p.geom AND ST_Intersects(s.geom, p.geom)
            ) o
            WHERE ov >= :ov * area_m2
            ORDER BY parcel_id, ov DESC, supply_id
            """
        ),
        {"ov": rules.linkage.supply_min_overlap},
    )
    conn.execute(text("CREATE INDEX ON _parcel_supply (supply_id)"))
    conn.execute(text("ANALYZE _parcel_supply"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _enterprise_parcel ON COMMIT DROP AS
            SELECT DISTINCT e.uscc, p.id AS parcel_id, 'key' AS how
            FROM enterprises e, unnest(e.parcel_nos) k
            JOIN parcels p ON p.parcel_no = k
            """
        )
    )
    # enterprises no DKBH links: their point's parcel, else the nearest within the distance
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _unkeyed ON COMMIT DROP AS
            SELECT e.uscc, e.geom FROM enterprises e
            WHERE e.geom IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM _enterprise_parcel k WHERE k.uscc = e.uscc)
            """
        )
    )
    conn.execute(
        text(
            """
            INSERT INTO _enterprise_parcel
            SELECT DISTINCT ON (e.uscc) e.uscc, p.id, 'contains'
            FROM _unkeyed e JOIN parcels p ON ST_Contains(p.geom, e.geom)
            ORDER BY e.uscc, p.id
            """
        )
    )
    conn.execute(
        text(
            """
            INSERT INTO _enterprise_parcel
            SELECT e.uscc, n.id, 'nearest'
            FROM _unkeyed e
            CROSS JOIN LATERAL (
                SELECT p.id FROM parcels p WHERE ST_DWithin(p.geom, e.geom, :near)
                ORDER BY p.geom <-> e.geom, p.id LIMIT 1
            ) n
            WHERE NOT EXISTS (SELECT 1 FROM _enterprise_parcel c WHERE c.uscc = e.uscc)
            """
        ),
        {"near": rules.linkage.nearest_max_m},
    )
    conn.execute(text("DROP TABLE _unkeyed"))
    conn.execute(text("CREATE INDEX ON _enterprise_parcel (parcel_id)"))
    if rules.low_efficiency.tax_per_mu_by_platform:
        conn.execute(
            text(
                """
                CREATE TEMP TABLE _parcel_platform ON COMMIT DROP AS
                SELECT DISTINCT ON (p.id) p.id AS parcel_id, z.code
                FROM parcels p
                JOIN platforms z ON z.geom && p.geom AND ST_Intersects(z.geom, p.geom)
                ORDER BY p.id, ST_Area(ST_Intersection(z.geom, p.geom)) DESC, z.code
                """
            )
        )


SOURCES = {
    "unsupplied": ("approvals", "i.approved_on <= :as_of"),
    "idle": ("supplies", "i.supplied_on <= :as_of"),
    "low_efficiency": ("parcels", "true"),
}


def _share_sql(kind: str, src: str, cond: str, level: str, zone_table: str) -> str:
    """Area (m²) of each source item lying in each zone of one level (zones outside the join:
    each zone's prepared geometry serves all its items)."""
    return f"""
        SELECT '{kind}' AS kind, i.id AS item_id, '{level}' AS level, z.code, z.name,
               CASE WHEN ST_Covers(z.geom, i.geom) THEN i.area_m2
                    ELSE ST_Area(ST_Intersection(z.geom, i.geom)) END AS share_m2
        FROM {zone_table} z
        JOIN {src} i ON i.geom && z.geom AND ST_Intersects(z.geom, i.geom)
        WHERE {cond}"""


def _source_zones(conn: Connection, as_of: date) -> None:
    """``_zshares`` (kind, item_id, level, code, name, share_m2, top) for every approval, supply
    record and parcel; ``_zcodes`` (kind, item_id, district, platform, corridor): the zone of
    each level holding the largest share of the item's area (ties: the smaller code), §1."""
    parts = " UNION ALL ".join(
        _share_sql(kind, src, cond, level, table)
        for kind, (src, cond) in SOURCES.items()
        for level, table in ZONE_LEVELS.items()
    )
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE _zshares ON COMMIT DROP AS
            SELECT *, row_number() OVER (PARTITION BY kind, item_id, level
                                         ORDER BY share_m2 DESC, code) = 1 AS top
            FROM ({parts}) s
            WHERE share_m2 > 0
            """
        ),
        {"as_of": as_of},
    )
    conn.execute(text("ANALYZE _zshares"))
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _zcodes ON COMMIT DROP AS
            SELECT kind, item_id,
                   max(code) FILTER (WHERE level = 'district') AS district_code,
                   max(code) FILTER (WHERE level = 'platform') AS platform_code,
                   max(code) FILTER (WHERE level = 'corridor') AS corridor_code
            FROM _zshares WHERE top GROUP BY kind, item_id
            """
        )
    )
    conn.execute(text("ALTER TABLE _zcodes ADD PRIMARY KEY (kind, item_id)"))
    conn.execute(text("ANALYZE _zcodes"))


def _summaries(conn: Connection, run_id: int) -> None:
    """The run's counts and areas (亩) per zone and kind. Count: flagged items whose largest
    share lies in the zone (what the list's zone filter returns); area: the part of each flagged
    item's area lying in the zone (the unsupplied remainder, the supply record, the parcel)."""
    remainder = " UNION ALL ".join(
        f"""SELECT '{level}' AS level, z.code, z.name,
                   CASE WHEN ST_Covers(z.geom, r.geom) THEN ST_Area(r.geom)
                        ELSE ST_Area(ST_Intersection(z.geom, r.geom)) END AS share_m2
            FROM unsupplied_results r
            JOIN {table} z ON z.geom && r.geom AND ST_Intersects(z.geom, r.geom)
            WHERE r.run_id = :run AND r.geom IS NOT NULL"""
        for level, table in ZONE_LEVELS.items()
    )
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE _flagged ON COMMIT DROP AS
            SELECT 'unsupplied' AS kind, approval_id AS item_id FROM unsupplied_results
            WHERE run_id = :run AND {FLAGGED_SQL["unsupplied"]}
            UNION ALL
            SELECT 'idle', supply_id FROM idle_results WHERE run_id = :run AND {FLAGGED_SQL["idle"]}
            UNION ALL
            SELECT 'low_efficiency', parcel_id FROM low_efficiency_results WHERE run_id = :run
            """
        ),
        {"run": run_id},
    )
    conn.execute(text("ANALYZE _flagged"))
    conn.execute(
        text(
            f"""
            INSERT INTO detection_summaries (run_id, level, code, name, kind, count, area_mu)
            SELECT :run, level, code, min(name), kind, count(*) FILTER (WHERE top),
                   coalesce(sum(share_m2), 0) * :mu
            FROM (
                SELECT zs.kind, zs.level, zs.code, zs.name, zs.top,
                       CASE WHEN zs.kind <> 'unsupplied' THEN zs.share_m2 END AS share_m2
                FROM _zshares zs JOIN _flagged f ON f.kind = zs.kind AND f.item_id = zs.item_id
                WHERE zs.top OR zs.kind <> 'unsupplied'
                UNION ALL
                SELECT 'unsupplied', level, code, name, false, share_m2
                FROM ({remainder}) rem
                WHERE share_m2 > 0
            ) x
            GROUP BY level, code, kind
            """
        ),
        {"run": run_id, "mu": 1 / M2_PER_MU},
    )
    conn.execute(text("DROP TABLE _zshares, _zcodes, _flagged"))


def run_detection(
    engine: Engine, as_of: date | None = None, user: str = "cli", rules: Rules | None = None
) -> dict:
    """Run all three detections as of ``as_of`` (default today) as one recorded run.

    Returns the run record: id, as_of, config_hash, inputs_hash, counts, notes, seconds.
    """
    rules = rules or get_rules()
    as_of = as_of or date.today()
    t0 = time.perf_counter()
    notes: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        inputs, inputs_hash = _inputs(conn)
        run_id = conn.execute(
            text(
                """
                INSERT INTO detection_runs (as_of, config_hash, config, inputs, inputs_hash,
                                            created_by)
                VALUES (:as_of, :h, CAST(:cfg AS jsonb), CAST(:inp AS jsonb), :ih, :user)
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
            },
        ).scalar_one()
        timings = {}
        t = time.perf_counter()
        _links(conn, rules)
        timings["links"] = time.perf_counter() - t
        t = time.perf_counter()
        _source_zones(conn, as_of)
        timings["zones"] = time.perf_counter() - t
        t = time.perf_counter()
        counts = {"unsupplied": unsupplied.detect(conn, run_id, as_of, rules.unsupplied)}
        timings["unsupplied"] = time.perf_counter() - t
        t = time.perf_counter()
        counts["idle"] = idle_land.detect(conn, run_id, as_of, rules.idle)
        timings["idle"] = time.perf_counter() - t
        t = time.perf_counter()
        counts["low_efficiency"] = low_efficiency.detect(
            conn, run_id, as_of, rules.low_efficiency, notes
        )
        timings["low_efficiency"] = time.perf_counter() - t
        t = time.perf_counter()
        _summaries(conn, run_id)
        timings["summaries"] = time.perf_counter() - t
        seconds = time.perf_counter() - t0
        counts["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        conn.execute(
            text(
                """
                UPDATE detection_runs SET counts = CAST(:c AS jsonb),
                    notes = CAST(:n AS jsonb), finished_at = now(), seconds = :s
                WHERE id = :run
                """
            ),
            {"c": json.dumps(counts), "n": json.dumps(notes), "s": seconds, "run": run_id},
        )
    return get_run(engine, run_id)


def _run_dict(row) -> dict:
    return {
        "id": row.id,
        "as_of": row.as_of.isoformat(),
        "config_hash": row.config_hash,
        "inputs_hash": row.inputs_hash,
        "inputs": row.inputs,
        "counts": row.counts,
        "notes": row.notes,
        "created_by": row.created_by,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "seconds": row.seconds,
    }


def get_run(engine: Engine, run_id: int | None = None) -> dict:
    """A run record by id, or the latest finished run; RunNotFound if there is none."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT * FROM detection_runs WHERE finished_at IS NOT NULL "
                + ("AND id = :id" if run_id is not None else "ORDER BY id DESC LIMIT 1")
            ),
            {"id": run_id},
        ).first()
    if row is None:
        raise RunNotFound(
            f"no detection run {run_id}"
            if run_id is not None
            else "no detection run yet: run 'landlink detect'"
        )
    return _run_dict(row)


def list_runs(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT * FROM detection_runs WHERE finished_at IS NOT NULL "
                "ORDER BY id DESC LIMIT :n"
            ),
            {"n": limit},
        ).all()
    return [_run_dict(r) for r in rows]


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


def detect_summary_line(engine: Engine, as_of: date | None = None) -> str:
    """For ``landlink analyse-all``: run a detection as of ``as_of`` (default today), one line."""
    r = run_detection(engine, as_of, user="analyse-all")
    c = r["counts"]
    return (
        f"run {r['id']}: 批而未供 {c['unsupplied']['unsupplied'] + c['unsupplied']['partial']}, "
        f"闲置/供而未用 {sum(c['idle'][s] for s in idle_land.FLAGGED)}, "
        f"低效 {c['low_efficiency']['parcels']}"
    )
