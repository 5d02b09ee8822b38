"""Where a surveyed parcel stands on Zhejiang's chain of land (DOMAIN_RULES §3):
批而未供 → 供而未用 → 用而未尽 → 建而未投 → 投而未达标, or 达标 past all of them.

The one placement of parcels on the chain: the parcel dossier (gis/map/parcel_dossier.py) shows
one parcel's place, the survey (gis/management/survey.py) sums the parcels of a zone by place.
Stage codes and labels are the vocabulary's ``chain_stage`` (``cleared``: its other label, 达标).

A parcel's facts (:func:`facts`, one SQL statement for any set of parcels) are read from what
the other rules already decided, never decided again here: its supply record, enterprises are
its rows of ``links`` (§1, gis/economy/linkage.py), its supply record's 闲置 status and its 低效
reasons are the latest recorded detection run's (gis/lands/detection.py), an approval's
批而未供 status is that run's too; its projects are those naming its DKBH or its supply record's
DZJGH. Held at a stage (:func:`held`):

- 批而未供: no supply record, and an approval whose remainder is unsupplied or partly supplied
  covers at least ``APPROVAL_MIN_SHARE`` of the parcel's area;
- 供而未用: its supply record is not yet due, overdue, or idle (闲置 one year, two years);
- 用而未尽: the supply record stopped after partial development, or is started on paper with
  little built (records disagree); or the parcel's plot ratio is low or it is idle in use (SJYT);
- 建而未投: a project not yet in production (未开工 / 在建 / 停建) and none producing; or the
  supply record is completed, no enterprise is on the parcel and no project produces;
- 投而未达标: its 低效 reasons include 亩均税收 below the threshold, a class D enterprise or
  挪作他用.

Its position is the first stage it is held at; later stages it is also held at are flagged.

Every parcel's position is kept in ``chain_positions`` by the producer ``chain`` (``PRODUCERS``),
for the parcels whose facts a write changed (:func:`run`); the survey sums it. A parcel without
a row there (a database the graph has not yet run on) is placed from its facts when read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from gis.core import vocabulary
from gis.core.graph import ALL, Changes, Context, Producer, written_extent
from gis.lands.detection import CURRENT_RUN

CHAIN = tuple((t.code, t.label, t.english) for t in vocabulary.vocabulary("chain_stage").terms)
STAGES = tuple(c for c, *_ in CHAIN)
CLEARED = "cleared"  # past every stage (the vocabulary's other label, 达标)
POSITIONS = (*STAGES, CLEARED)
IDLE_LABELS = vocabulary.labels("idle_status")
REASON_LABELS = vocabulary.labels("low_efficiency_reason")

# an approval "covers" a parcel (or a supply record) when at least this share of the parcel's
# (record's) area lies in it: the dossier lists those approvals, the chain reads their status
APPROVAL_MIN_SHARE = 0.1
UNUSED_STATUSES = ("not_due", "overdue", "idle", "idle_reclaimable")
BUILDING = ("未开工", "在建", "停建")
PRODUCING = "投产"
BELOW_STANDARD_REASONS = frozenset({"tax_per_mu", "class_d", "diverted"})


@dataclass(frozen=True)
class Facts:
    """What the chain reads of one parcel (see the module docstring)."""

    parcel_no: str
    actual_use: str | None
    has_supply: bool
    completed: bool  # its supply record has an actual completion date (SJJGSJ)
    on_unsupplied: bool  # no supply record and an unsupplied approval covers it
    idle_status: str | None
    records_disagree: bool
    reason_codes: frozenset[str]
    projects: tuple[tuple[str, str], ...]  # (XMMC, XMZT) in XMDM order
    has_enterprise: bool


def facts_sql(only: bool) -> str:
    """The facts of every parcel, or (``only``) of the DKBH bound as ``:p`` (a text array);
    ``:ash`` binds ``APPROVAL_MIN_SHARE``. Geometry EPSG:4549."""
    where = "WHERE p.parcel_no = ANY(CAST(:p AS text[]))" if only else ""
    # every parcel: the supply links joined whole (a hash join), not probed parcel by parcel
    linked = "IN (SELECT parcel_no FROM pa)" if only else "IS NOT NULL"
    return f"""
        WITH run AS (SELECT {CURRENT_RUN} AS id),
        pa AS (SELECT p.id, p.parcel_no, p.actual_use, p.geom FROM parcels p {where}),
        sp AS (
            SELECT DISTINCT ON (l.to_key) l.to_key AS parcel_no, s.id AS supply_id, s.supply_no,
                   s.actual_completion
            FROM links l JOIN supplies s ON s.supply_no = l.from_key
            WHERE l.kind = 'supply_parcel' AND l.to_key {linked}
            ORDER BY l.to_key, s.supply_no
        ),
        pj AS (
            SELECT k.parcel_no,
                   array_agg(x.name ORDER BY x.project_code) AS names,
                   array_agg(x.status ORDER BY x.project_code) AS statuses
            FROM (SELECT pa.parcel_no, x.project_code FROM pa
                  JOIN projects x ON x.parcel_no = pa.parcel_no
                  UNION
                  SELECT sp.parcel_no, x.project_code FROM sp
                  JOIN projects x ON x.supply_no = sp.supply_no) k
            JOIN projects x USING (project_code)
            GROUP BY k.parcel_no
        )
        SELECT pa.parcel_no, pa.actual_use,
               sp.supply_no IS NOT NULL AS has_supply,
               sp.actual_completion IS NOT NULL AS completed,
               CASE WHEN sp.supply_no IS NULL THEN EXISTS (
                   SELECT 1 FROM approvals a
                   JOIN unsupplied_results u ON u.run_id = (SELECT id FROM run)
                        AND u.approval_no = a.doc_no
                   WHERE a.geom && pa.geom AND ST_Intersects(a.geom, pa.geom)
                     AND ST_Area(ST_Intersection(a.geom, pa.geom)) >= :ash * ST_Area(pa.geom)
                     AND u.status IN ('unsupplied', 'partial'))
               ELSE false END AS on_unsupplied,
               i.status AS idle_status,
               coalesce(i.records_disagree, false) AS records_disagree,
               coalesce(le.reason_codes, '{{}}') AS reason_codes,
               coalesce(pj.names, '{{}}') AS project_names,
               coalesce(pj.statuses, '{{}}') AS project_statuses,
               EXISTS (SELECT 1 FROM links e WHERE e.kind = 'enterprise_parcel'
                       AND e.to_key = pa.parcel_no) AS has_enterprise
        FROM pa
        LEFT JOIN sp ON sp.parcel_no = pa.parcel_no
        LEFT JOIN idle_results i ON i.run_id = (SELECT id FROM run) AND i.supply_id = sp.supply_id
        LEFT JOIN low_efficiency_results le
               ON le.run_id = (SELECT id FROM run) AND le.parcel_id = pa.id
        LEFT JOIN pj ON pj.parcel_no = pa.parcel_no
    """


def facts(conn: Connection, parcel_nos: list[str] | None = None) -> dict[str, Facts]:
    """DKBH -> :class:`Facts` of every parcel (or of ``parcel_nos``)."""
    rows = conn.execute(
        text(facts_sql(parcel_nos is not None)), {"p": parcel_nos, "ash": APPROVAL_MIN_SHARE}
    ).all()
    # the statement's columns are the fields' order; rows as tuples (a city is 10⁵ of them)
    return {
        r[0]: Facts(*r[:7], frozenset(r[7]), tuple(zip(r[8], r[9], strict=True)), r[10])
        for r in map(tuple, rows)
    }


def held(f: Facts) -> dict[str, str]:
    """The stages the parcel is held at, each with a note saying why (see the module
    docstring)."""
    reasons = f.reason_codes
    status = f.idle_status
    out: dict[str, str] = {}
    if not f.has_supply and f.on_unsupplied:
        out["unsupplied"] = "地块位于批而未供范围 / on an approval's unsupplied remainder"
    if status in UNUSED_STATUSES:
        out["unused"] = IDLE_LABELS[status]
    if status == "partial_idle" or f.records_disagree:
        out["underused"] = (
            IDLE_LABELS["partial_idle"]
            if status == "partial_idle"
            else "记录已开工但建筑基底不足 / started on paper, little built"
        )
    if "plot_ratio" in reasons or "idle_use" in reasons or f.actual_use == "闲置":
        out.setdefault("underused", "容积率低或现状闲置 / low plot ratio or idle use")
    producing = any(s == PRODUCING for _, s in f.projects)
    building = [(n, s) for n, s in f.projects if s in BUILDING]
    if building and not producing:
        out["not_operating"] = "项目未投产: " + "、".join(f"{n}({s})" for n, s in building[:3])
    elif f.has_supply and f.completed and not f.has_enterprise and not producing:
        out["not_operating"] = "已竣工但无在册企业 / completed, no enterprise registered"
    below = sorted(reasons & BELOW_STANDARD_REASONS)
    if below:
        out["below_standard"] = "、".join(REASON_LABELS[r] for r in below)
    return out


def position(f: Facts) -> str:
    """The first stage the parcel is held at, or ``cleared``."""
    h = held(f)
    return next((c for c in STAGES if c in h), CLEARED)


def describe(f: Facts) -> dict:
    """The parcel's place as the dossier shows it: ``position`` (a stage code or ``cleared``),
    its label, and each stage ``passed`` (past it), ``here`` (held at this stage, the first),
    ``pending`` (not reached) or ``flag`` (held at a later stage too), with its note."""
    h = held(f)
    pos = next((c for c in STAGES if c in h), CLEARED)
    first = STAGES.index(pos) if pos != CLEARED else len(STAGES)
    stages = []
    for i, (code, label, english) in enumerate(CHAIN):
        if i < first:
            state = "passed"
        elif i == first:
            state = "here"
        else:
            state = "flag" if code in h else "pending"
        stages.append(
            {"code": code, "label": label, "english": english, "state": state, "note": h.get(code)}
        )
    return {
        "position": pos,
        "position_label": vocabulary.label("chain_stage", None if pos == CLEARED else pos),
        "stages": stages,
    }


# --------------------------------------------------------------------------------------------
# The producer: every parcel's position, kept by changed keys
# --------------------------------------------------------------------------------------------

READS = (
    "parcels",
    "supplies",
    "projects",
    "approvals",
    "links",
    "detection_runs",
    "unsupplied_results",
    "idle_results",
    "low_efficiency_results",
)

# the parcels whose facts may have changed, from the changed keys (see ``run``)
_SCOPE = """
    SELECT parcel_no FROM parcels WHERE parcel_no = ANY(:p)
    UNION SELECT parcel_no FROM chain_positions WHERE parcel_no = ANY(:p)
    UNION SELECT to_key FROM links
          WHERE kind = 'supply_parcel' AND from_key = ANY(:s) AND to_key IS NOT NULL
    UNION SELECT parcel_no FROM projects WHERE project_code = ANY(:j) AND parcel_no IS NOT NULL
    UNION SELECT l.to_key FROM projects x
          JOIN links l ON l.kind = 'supply_parcel' AND l.from_key = x.supply_no
          WHERE x.project_code = ANY(:j) AND l.to_key IS NOT NULL
    UNION SELECT p.parcel_no FROM approvals a
          JOIN parcels p ON p.geom && a.geom AND ST_Intersects(p.geom, a.geom)
          WHERE a.doc_no = ANY(:a)
    UNION SELECT p.parcel_no FROM parcels p
          WHERE CAST(:box AS text) IS NOT NULL AND p.geom && ST_GeomFromEWKT(:box)
"""


def _scope(conn: Connection, changes: Changes) -> list[str] | None:
    """The parcels to place again (None: every parcel).

    - changed parcels (DKBH), parcels whose supply, enterprise or project links changed (the
      linkage's ``parcel_links``: before and now) and parcels whose 低效 row was judged again;
    - the parcels linked to changed supply records, to those whose 闲置 row was judged again,
      and to any key of a changed link (a project's supply record before and now);
    - the parcels of changed projects (by DKBH, or through their supply record);
    - the parcels an approval whose 批而未供 row was judged again overlaps, and wherever a
      changed approval lay before (its table's write log, ``graph.written_extent``).

    Every parcel when a key set is ALL, when a recorded run changed (the current run may be
    another) or when a changed approval's old place is not in the log."""
    if changes.get("detection_runs"):
        return None
    names = ("parcels", "parcel_links", "low_efficiency_results", "supplies", "idle_results")
    names += ("links", "projects", "approvals", "unsupplied_results")
    if any(changes.everything(t) for t in names):
        return None
    keys = {t: sorted(changes.get(t, ())) for t in names}
    box = None
    if keys["approvals"]:
        box = written_extent(conn, "approvals")
        if box is None:
            return None
    p = sorted({*keys["parcels"], *keys["parcel_links"], *keys["low_efficiency_results"]})
    s = sorted({*keys["supplies"], *keys["idle_results"], *keys["links"]})
    a = sorted({*keys["approvals"], *keys["unsupplied_results"]})
    if not (p or s or keys["projects"] or a):
        return []
    rows = conn.execute(
        text(_SCOPE), {"p": p, "s": s, "j": keys["projects"], "a": a, "box": box}
    ).scalars()
    return sorted(rows)


def run(conn: Connection, ctx: Context, changes: Changes | None) -> Changes:
    """Producer ``chain``: ``chain_positions``, each parcel's :func:`position`, for the parcels
    :func:`_scope` names (every parcel when ``changes`` is None). Only the rows whose position
    changed are deleted and inserted. Returns ``chain_positions`` DKBH of those rows (ALL for
    every parcel)."""
    scope = None if changes is None else _scope(conn, changes)
    if scope is not None and not scope:
        return Changes()
    placed = {no: position(f) for no, f in facts(conn, scope).items()}
    old = dict(
        conn.execute(
            text(
                "SELECT parcel_no, position FROM chain_positions"
                + ("" if scope is None else " WHERE parcel_no = ANY(:p)")
            ),
            {"p": scope},
        ).all()
    )
    changed = sorted(k for k in placed.keys() | old.keys() if placed.get(k) != old.get(k))
    if changed:
        conn.execute(text("DELETE FROM chain_positions WHERE parcel_no = ANY(:c)"), {"c": changed})
        new = [k for k in changed if k in placed]
        conn.execute(
            text(
                "INSERT INTO chain_positions (parcel_no, position) "
                "SELECT * FROM unnest(CAST(:n AS text[]), CAST(:v AS text[]))"
            ),
            {"n": new, "v": [placed[k] for k in new]},
        )
    ctx.counts["chain"] = {"placed": len(placed), "changed": len(changed)}
    if scope is None:
        return Changes(chain_positions={ALL})
    return Changes(chain_positions=set(changed))


def positions_missing(conn: Connection) -> bool:
    """True when the graph has run (a live detection run) on a database with parcels but
    ``chain_positions`` is empty (made by a migration after the last full recompute): it is
    filled by a full recompute (``landlink migrate`` runs one)."""
    return conn.exec_driver_sql(
        "SELECT NOT EXISTS (SELECT 1 FROM chain_positions) AND EXISTS (SELECT 1 FROM parcels) "
        "AND EXISTS (SELECT 1 FROM detection_runs WHERE live)"
    ).scalar_one()


PRODUCERS = (
    Producer(
        "chain",
        reads=READS,
        writes=("chain_positions",),
        run=run,
        doc="each parcel's place on the chain of land (批而未供 → … → 投而未达标, or 达标)",
    ),
)
