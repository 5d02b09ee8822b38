"""The derivation graph: every derived table has one producer, which declares what it reads and
what it writes; the order of work follows from those declarations.

A producer is a function ``run(conn, ctx, changes) -> Changes``:

- ``changes`` maps each table the producer reads to the keys changed in it since the derived
  state was last current (see ``Changes``), or is ``None`` for "everything" (a full recompute,
  ``landlink analyse-all --full``). A producer recomputes what depends on those keys only, or
  everything when it cannot narrow the work; it returns the keys it changed in the tables it
  writes, so that the producers after it can narrow theirs.
- It runs inside the caller's transaction (an import, a row edit, a retirement, ``landlink
  refresh``), so readers see the state before or the state after, never a half. It updates rows
  (DELETE + INSERT of the keys in question, or UPDATE): no TRUNCATE and no rebuild of a table
  that readers use.
- It hands nothing to later producers through temporary tables: what a later step needs, it
  reads from the tables declared here.

Keys are the natural keys readers use, as text: ``enterprises`` USCC, ``outputs`` ``USCC:year``,
``parcels`` DKBH (parcel_no), ``supplies`` DZJGH, ``approvals`` PZWH, ``projects`` XMDM, zone tables
their codes, derived tables as their producer documents. ``ALL`` in a key set means every key.

The pseudo-table ``calendar`` (key ``ALL``) means "the day changed": producers whose results depend
on the date (deadlines) declare it in ``reads``; ``landlink refresh --as-of D`` passes it.

Producers live in the module of the rule they compute and are listed in ``PRODUCER_MODULES``
(each module defines ``PRODUCERS``, a tuple of ``Producer``); nothing else decides what runs after
a write. ``refresh`` records each refresh that does any work as one ``analysis_runs`` row (kind
``full`` or ``refresh``), whose id the producers stamp on the rows they write (``ctx.run_id``).
``describe`` and ``mermaid`` give the graph as data and as a Mermaid flowchart (``landlink graph``).
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from gis.core.rules import Rules, get_rules, rules_hash

ALL = "*"  # in a key set: every key of that table
CALENDAR = "calendar"  # pseudo-table: the day results are judged as of (key ALL)

# The modules that define producers (their order does not matter: the graph sorts them).
PRODUCER_MODULES: tuple[str, ...] = (
    "gis.economy.linkage",
    "gis.economy.per_mu",
    "gis.economy.evaluation",
    "gis.economy.indicators",
    "gis.lands.detection",
    "gis.lands.chain",
    "gis.platforms.platform_kinds",
    "gis.serving.tiles",
    "gis.ingest.feed",
    "gis.management.targets",
)


class Changes(dict[str, set[str]]):
    """Changed keys by table name. ``changes.everything(t)``: all keys of ``t`` changed."""

    def add(self, table: str, keys: Iterable[str]) -> Changes:
        self.setdefault(table, set()).update(str(k) for k in keys)
        return self

    def everything(self, table: str) -> bool:
        return ALL in self.get(table, ())

    def touches(self, tables: Iterable[str]) -> bool:
        return any(self.get(t) for t in tables)

    def merge(self, other: Changes | None) -> Changes:
        for t, keys in (other or {}).items():
            self.add(t, keys)
        return self

    def sizes(self) -> dict[str, int | str]:
        """``{table: number of keys}`` (``"all"`` for ``ALL``), for run records and reports."""
        return {t: "all" if ALL in k else len(k) for t, k in sorted(self.items()) if k}


def written_extent(conn: Connection, table: str) -> str | None:
    """Where this transaction's writes to ``table`` lay, old rows and new, as EWKT of the union
    of one box per statement (EPSG:4549, 1 m wider): read from the log its statement triggers
    keep for the tiles (``tile_invalidations``). None when the table has no such trigger, when
    no write to it was logged in this transaction or when one was a TRUNCATE: then nothing can
    be narrowed by place.

    A keyed refresh runs in the writer's transaction, so the log names the old geometry of the
    rows ``changes`` names, which the tables no longer hold."""
    row = conn.execute(
        text(
            "SELECT count(*), count(extent), ST_AsEWKT(ST_Union(extent)) FROM tile_invalidations "
            "WHERE source >= :lo AND source < :hi "
            "AND split_part(source, ':', 3) = txid_current()::text"
        ),
        {"lo": f"{table}:", "hi": f"{table};"},
    ).one()
    n, with_extent, boxes = row
    return boxes if n and n == with_extent else None


@dataclass
class Context:
    """What every producer of one refresh shares: the day results are judged as of, the rules,
    who or what triggered the refresh (``cli``, ``import:CC:12``, ``api:<request id>``), and the
    analysis run the refresh is recorded under (set by ``refresh``)."""

    as_of: date
    rules: Rules
    trigger: str = "cli"
    run_id: int | None = None
    full: bool = False
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, object] = field(default_factory=dict)
    # what each producer that ran returned: {producer: {table: number of keys | "all"}}
    changed: dict[str, dict[str, int | str]] = field(default_factory=dict)
    seconds: float = 0.0


Run = Callable[[Connection, Context, Changes | None], Changes]


@dataclass(frozen=True)
class Producer:
    """One derived result: ``name``, the tables it ``reads`` and ``writes``, and ``run``."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Run
    doc: str = ""


class GraphError(RuntimeError):
    """The declarations do not make a graph: a listed module without producers, a table with
    two producers, a cycle."""


_registry: list[Producer] | None = None


def producers() -> list[Producer]:
    """Every producer, in an order where each comes after the producers of what it reads."""
    global _registry
    if _registry is None:
        found: list[Producer] = []
        for module in PRODUCER_MODULES:
            mod = importlib.import_module(module)
            declared = getattr(mod, "PRODUCERS", None)
            if not declared or not all(isinstance(p, Producer) for p in declared):
                raise GraphError(
                    f"{module} is listed in gis.core.graph.PRODUCER_MODULES but defines no "
                    "PRODUCERS (a tuple of graph.Producer): define them or take it off the list"
                )
            found.extend(declared)
        _registry = order(found)
    return _registry


def order(found: list[Producer]) -> list[Producer]:
    """Topological order by the declarations; refuses a table with two producers or a cycle.

    Ties (producers that do not depend on each other) are broken by name, so the order is the
    same on every run."""
    writer: dict[str, Producer] = {}
    names: set[str] = set()
    for p in found:
        if p.name in names:
            raise GraphError(f"two producers are named {p.name}")
        names.add(p.name)
        for t in p.writes:
            if t in writer:
                raise GraphError(f"{t} has two producers: {writer[t].name} and {p.name}")
            writer[t] = p
    done: list[Producer] = []
    seen: set[str] = set()
    visiting: list[str] = []

    def visit(p: Producer) -> None:
        if p.name in seen:
            return
        if p.name in visiting:
            loop = " -> ".join(visiting[visiting.index(p.name) :] + [p.name])
            raise GraphError(f"the derivation graph has a cycle (each needs the next): {loop}")
        visiting.append(p.name)
        for t in p.reads:
            if t in writer and writer[t] is not p:
                visit(writer[t])
        visiting.pop()
        seen.add(p.name)
        done.append(p)

    for p in sorted(found, key=lambda p: p.name):
        visit(p)
    return done


def upstream(tables: Iterable[str], among: list[Producer] | None = None) -> list[Producer]:
    """The producers needed to make ``tables`` (theirs and, recursively, their inputs'), in
    graph order; GraphError for a table no producer writes."""
    graph = among if among is not None else producers()
    writer = {t: p for p in graph for t in p.writes}
    unknown = sorted(set(tables) - set(writer))
    if unknown:  # a target no producer makes would silently make nothing
        raise GraphError(f"no producer writes {', '.join(unknown)}")
    need: set[str] = set()
    todo = list(tables)
    while todo:
        p = writer[todo.pop()]
        if p.name not in need:
            need.add(p.name)
            todo.extend(t for t in p.reads if t in writer)
    return [p for p in graph if p.name in need]


def planned(changes: Changes | None, targets: Iterable[str] | None = None) -> list[str]:
    """The producers ``refresh(conn, changes)`` would run, in order, without running them (one
    runs when what it reads changed, here or upstream of it: an upper bound, since a producer
    may find that nothing it writes changed)."""
    graph = producers() if targets is None else upstream(targets)
    if changes is None:
        return [p.name for p in graph]
    pending = {t for t, keys in changes.items() if keys}
    names = []
    for p in graph:
        if pending & set(p.reads):
            names.append(p.name)
            pending |= set(p.writes)
    return names


_deferred = False


def defer() -> None:
    """Make every ``refresh`` with changes a no-op in this process: for a bulk load that runs
    one full refresh (``landlink analyse-all``) at the end. A full refresh still runs."""
    global _deferred
    _deferred = True


def _tune(conn: Connection, full: bool) -> None:
    """Settings for the rest of the caller's transaction: no JIT (many small statements); for a
    full recompute, room for sorts and temp tables (200,000-row copies on a 10x city).

    ``temp_buffers`` can only be set before the session's first temp table; after one (an
    import's staging table, an earlier run on a pooled connection) it stays as it is."""
    conn.exec_driver_sql("SET LOCAL jit = off")
    if not full:
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("SET LOCAL temp_buffers = '256MB'")
    except DBAPIError:
        pass
    conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
    conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")


def _analyze(conn: Connection, ctx: Context, done: dict[str, int | str]) -> None:
    """Statistics for the tables a producer rewrote whole (``done``: its changed key counts;
    a full recompute, a first load), before the producers after it read them: the planner
    would otherwise plan on the row counts of before (an empty table, another run's rows)
    until autovacuum comes round, which it cannot before the commit. A full recompute of the
    scale-200 city spent minutes in the targets' progress reading a detection run written
    earlier in the same transaction. Inside the writer's transaction, which ANALYZE samples
    as it stands."""
    whole = sorted(t for t, n in done.items() if n == "all")
    if not whole:
        return
    tables = (
        conn.execute(
            text("SELECT t FROM unnest(CAST(:t AS text[])) t WHERE to_regclass(t) IS NOT NULL"),
            {"t": whole},
        )
        .scalars()
        .all()
    )
    conn.exec_driver_sql("RESET default_statistics_target")  # the database's, not _tune's
    for t in tables:
        conn.exec_driver_sql(f'ANALYZE "{t}"')
    if ctx.full:  # _tune's again, for the temp tables of the producers after
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")


def vacuum_derived(engine: Engine) -> str:
    """``VACUUM (ANALYZE)`` every derived table (the producers' ``writes``), after a full
    recompute has committed: it rewrote their rows, leaving as many dead ones and pages no
    longer marked all-visible, so the index-only scans the refreshes by key rely on (the
    evaluation's order statistics walk an index of base scores) read the heap for every
    entry until autovacuum comes round, on the scale-200 city about 20 minutes later
    (a retirement's evaluation 0.9-2.5 s before, 0.15-0.38 s after; 9 s for the 25 tables
    there, 6 s on the scale-20 city). Returns a summary."""
    names = sorted({t for p in producers() for t in p.writes})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' "
                    "AND c.oid = ANY(SELECT to_regclass(t) FROM unnest(CAST(:t AS text[])) t)"
                ),
                {"t": names},
            )
            .scalars()
            .all()
        )
        for t in sorted(tables):
            conn.exec_driver_sql(f'VACUUM (ANALYZE) "{t}"')
    return f"{len(tables)} derived tables vacuumed and analysed"


def _open_run(conn: Connection, ctx: Context, kind: str) -> int:
    config = json.dumps(ctx.rules.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return conn.execute(
        text(
            "INSERT INTO analysis_runs (kind, as_of, config_hash, config, trigger) "
            "VALUES (:kind, :as_of, :h, CAST(:cfg AS jsonb), :trigger) RETURNING id"
        ),
        {
            "kind": kind,
            "as_of": ctx.as_of,
            "h": rules_hash(ctx.rules),
            "cfg": config,
            "trigger": ctx.trigger,
        },
    ).scalar_one()


def refresh(
    conn: Connection,
    changes: Changes | None,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
    targets: Iterable[str] | None = None,
) -> Context:
    """Bring every derived table up to date with ``changes`` (``None``: recompute everything)
    inside ``conn``'s transaction; returns the context with per-producer timings and counts.

    A refresh that runs at least one producer is recorded in ``analysis_runs`` (kind ``full``
    when ``changes`` is None, else ``refresh``; the rules' hash and values; the trigger; counts
    with each producer's seconds and changed keys) and ``ctx.run_id`` is that row's id; one
    with nothing to do records nothing. ``targets``: make only these tables (and what they are
    made from), e.g. ``landlink evaluate``; default every derived table."""
    t0 = time.perf_counter()
    ctx = Context(as_of=as_of or date.today(), rules=rules or get_rules(), trigger=trigger)
    ctx.full = changes is None
    # a bulk write (a full recompute, a first load: ALL keys of a table) rewrites tables whole;
    # a write by keys may name ALL of a log (tile_invalidations, derived_changes: "a row was
    # logged"), which needs no new statistics
    bulk = changes is None or any(ALL in keys for keys in changes.values())
    pending = None if changes is None else Changes().merge(changes)
    graph = producers() if targets is None else upstream(targets)
    todo = [p for p in graph if pending is None or pending.touches(p.reads)]
    if not todo:
        return ctx
    if _deferred and pending is not None:
        ctx.notes.append("refresh deferred (bulk load): run landlink analyse-all at the end")
        return ctx
    _tune(conn, ctx.full)
    ctx.run_id = _open_run(conn, ctx, "full" if ctx.full else "refresh")
    for p in graph:
        if pending is not None and not pending.touches(p.reads):
            continue
        t = time.perf_counter()
        out = p.run(conn, ctx, None if pending is None else Changes().merge(pending))
        ctx.changed[p.name] = Changes().merge(out).sizes()
        if bulk:
            _analyze(conn, ctx, ctx.changed[p.name])
        ctx.timings[p.name] = round(time.perf_counter() - t, 3)
        if pending is not None:
            pending.merge(out)
    ctx.seconds = time.perf_counter() - t0
    counts = {
        **ctx.counts,
        "changes": None if changes is None else Changes().merge(changes).sizes(),
        "producers": {
            name: {"seconds": s, "changed": ctx.changed[name]} for name, s in ctx.timings.items()
        },
        "timings_s": ctx.timings,
    }
    conn.execute(
        text(
            "UPDATE analysis_runs SET counts = CAST(:c AS jsonb), notes = CAST(:n AS jsonb), "
            "finished_at = now(), seconds = :s WHERE id = :id"
        ),
        {
            "c": json.dumps(counts, default=str, ensure_ascii=False),
            "n": json.dumps(ctx.notes, ensure_ascii=False),
            "s": ctx.seconds,
            "id": ctx.run_id,
        },
    )
    return ctx


# --------------------------------------------------------------------------------------------
# The graph as data and as a picture (``landlink graph``, docs/ARCHITECTURE.md)
# --------------------------------------------------------------------------------------------


def describe(graph: list[Producer] | None = None) -> dict:
    """The graph as data: producers in order (module, reads, writes, the producers they follow,
    doc), the source tables (read, written by no producer) and the derived tables (by producer)."""
    graph = producers() if graph is None else graph
    writer = {t: p.name for p in graph for t in p.writes}
    read = {t for p in graph for t in p.reads}
    return {
        "producers": [
            {
                "name": p.name,
                "module": getattr(p.run, "__module__", None),
                "reads": list(p.reads),
                "writes": list(p.writes),
                "after": sorted({writer[t] for t in p.reads if t in writer} - {p.name}),
                "doc": p.doc,
            }
            for p in graph
        ],
        "sources": sorted(read - set(writer)),
        "derived": dict(sorted(writer.items())),
    }


def mermaid(graph: list[Producer] | None = None) -> str:
    """A Mermaid flowchart of the graph: source tables as rounded nodes, derived tables as boxes,
    producers as hexagons, with an edge from each table a producer reads and to each it writes."""
    d = describe(graph)
    lines = ["flowchart LR"]
    for t in d["sources"]:
        lines.append(f"  t_{t}([{t}])")
    for t in d["derived"]:
        lines.append(f"  t_{t}[{t}]")
    for p in d["producers"]:
        lines.append(f"  p_{p['name']}{{{{{p['name']}}}}}")
    for p in d["producers"]:
        lines.extend(f"  t_{t} --> p_{p['name']}" for t in p["reads"])
        lines.extend(f"  p_{p['name']} --> t_{t}" for t in p["writes"])
    lines.append("  classDef producer fill:#fde68a,stroke:#b45309")
    lines.append("  classDef source fill:#e0f2fe,stroke:#0369a1")
    if d["producers"]:
        lines.append("  class " + ",".join(f"p_{p['name']}" for p in d["producers"]) + " producer")
    if d["sources"]:
        lines.append("  class " + ",".join(f"t_{t}" for t in d["sources"]) + " source")
    return "\n".join(lines)


def text_lines(graph: list[Producer] | None = None) -> list[str]:
    """The graph for a terminal: producers in the order they run, what each reads and writes."""
    d = describe(graph)
    out = [f"sources: {', '.join(d['sources'])}"]
    for i, p in enumerate(d["producers"], 1):
        out.append(f"{i}. {p['name']} ({p['module']}): {p['doc']}")
        out.append(f"     reads  {', '.join(p['reads'])}")
        out.append(f"     writes {', '.join(p['writes'])}")
    return out
