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

Producers live in the module of the rule they compute and are listed in ``PRODUCER_MODULES``
(each module defines ``PRODUCERS``, a tuple of ``Producer``); nothing else decides what runs after
a write.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection

from gis.core.rules import Rules, get_rules

ALL = "*"  # in a key set: every key of that table

# The modules that define producers (their order does not matter: the graph sorts them).
PRODUCER_MODULES: tuple[str, ...] = ()


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


Run = Callable[[Connection, Context, Changes | None], Changes]


@dataclass(frozen=True)
class Producer:
    """One derived result: ``name``, the tables it ``reads`` and ``writes``, and ``run``."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Run
    doc: str = ""


_registry: list[Producer] | None = None


def producers() -> list[Producer]:
    """Every producer, in an order where each comes after the producers of what it reads."""
    global _registry
    if _registry is None:
        found: list[Producer] = []
        for module in PRODUCER_MODULES:
            found.extend(importlib.import_module(module).PRODUCERS)
        _registry = order(found)
    return _registry


def order(found: list[Producer]) -> list[Producer]:
    """Topological order by the declarations; refuses a table with two producers or a cycle."""
    writer: dict[str, Producer] = {}
    for p in found:
        for t in p.writes:
            if t in writer:
                raise ValueError(f"{t} has two producers: {writer[t].name} and {p.name}")
            writer[t] = p
    done: list[Producer] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(p: Producer) -> None:
        if p.name in seen:
            return
        if p.name in visiting:
            raise ValueError(f"the derivation graph has a cycle through {p.name}")
        visiting.add(p.name)
        for t in p.reads:
            if t in writer and writer[t] is not p:
                visit(writer[t])
        visiting.discard(p.name)
        seen.add(p.name)
        done.append(p)

    for p in sorted(found, key=lambda p: p.name):
        visit(p)
    return done


def refresh(
    conn: Connection,
    changes: Changes | None,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
) -> Context:
    """Bring every derived table up to date with ``changes`` (``None``: recompute everything)
    inside ``conn``'s transaction; returns the context with per-producer timings and counts."""
    ctx = Context(as_of=as_of or date.today(), rules=rules or get_rules(), trigger=trigger)
    ctx.full = changes is None
    pending = None if changes is None else Changes().merge(changes)
    for p in producers():
        if pending is not None and not pending.touches(p.reads):
            continue
        t = time.perf_counter()
        out = p.run(conn, ctx, pending)
        ctx.timings[p.name] = round(time.perf_counter() - t, 3)
        if pending is not None:
            pending.merge(out)
    return ctx
