"""The derivation graph: order from the declarations, refusals (two producers of one table, a
cycle, a listed module without producers), the run record of a refresh, every derived table of
the schema with exactly one producer, and the graph in docs/ARCHITECTURE.md as generated."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from app.cli import analysis_steps, main
from gis.core import graph
from gis.core.all_models import metadata
from gis.core.graph import ALL, CALENDAR, Changes, GraphError, Producer

ROOT = Path(__file__).resolve().parent.parent

# Every table of the schema that is derived from the source tables (issue text: links, land,
# per-mu figures, evaluations, §7 indicators, the three lands' current status, platform kinds,
# tile aggregates).
DERIVED = (
    "links",
    "enterprise_land",
    "per_mu",
    "evaluation_rows",
    "evaluation_ranking",
    "evaluation_groups",
    "area_indicators",
    "platform_kinds",
    "tile_parcel_classes",
    "tile_parcel_status",
    "tile_zone_stats",
    "unsupplied_results",
    "idle_results",
    "low_efficiency_results",
    "detection_zone_shares",
    "detection_summaries",
    "derived_changes",
    "feed_values",
)


def _noop(conn, ctx, changes):  # noqa: ANN001, ANN202
    return Changes()


def P(name: str, reads: tuple[str, ...], writes: tuple[str, ...], run=_noop) -> Producer:  # noqa: N802, ANN001
    return Producer(name, reads, writes, run)


def test_order_follows_the_declarations_not_the_listing():
    a = P("zeta", ("parcels",), ("x",))
    b = P("alpha", ("x", "outputs"), ("y",))
    c = P("mid", ("y", "x"), ("z",))
    d = P("free", ("parcels",), ("w",))
    orders = set()
    for listing in ([c, b, a, d], [a, b, c, d], [d, c, a, b]):
        names = [p.name for p in graph.order(listing)]
        assert names.index("zeta") < names.index("alpha") < names.index("mid")
        orders.add(tuple(names))
    assert len(orders) == 1  # the same order whatever the listing


def test_a_table_with_two_producers_is_refused():
    with pytest.raises(GraphError, match="per_mu has two producers: one and two"):
        graph.order([P("one", ("links",), ("per_mu",)), P("two", ("outputs",), ("per_mu",))])


def test_a_cycle_is_refused_and_named():
    ps = [P("a", ("z",), ("x",)), P("b", ("x",), ("y",)), P("c", ("y",), ("z",))]
    with pytest.raises(GraphError, match=r"cycle \(each needs the next\): a -> c -> b -> a"):
        graph.order(ps)
    # a producer may read what it writes (its own earlier rows): not a cycle
    assert [p.name for p in graph.order([P("self", ("x", "parcels"), ("x",))])] == ["self"]


def test_a_listed_module_without_producers_fails_clearly(monkeypatch):
    monkeypatch.setattr(graph, "PRODUCER_MODULES", ("gis.core.rules",))
    monkeypatch.setattr(graph, "_registry", None)
    with pytest.raises(GraphError, match="gis.core.rules is listed .* defines no PRODUCERS"):
        graph.producers()


def test_upstream_and_planned_follow_the_edges():
    ps = graph.order(
        [
            P("link", ("parcels", "enterprises"), ("links",)),
            P("land", ("links", "outputs"), ("per_mu",)),
            P("score", ("per_mu",), ("evaluations",)),
            P("tiles", ("evaluations", "parcels"), ("tile_parcel_classes",)),
            P("dates", (CALENDAR, "supplies"), ("idle",)),
        ]
    )
    assert [p.name for p in graph.upstream(["evaluations"], ps)] == ["link", "land", "score"]
    assert [p.name for p in graph.upstream(["idle"], ps)] == ["dates"]
    with pytest.raises(GraphError, match="no producer writes evaluation_scores"):
        graph.upstream(["evaluation_scores"], ps)


def test_every_derived_table_of_the_schema_has_exactly_one_producer():
    """Against the real registry: every module listed defines producers, the graph orders, each
    derived table is written by one producer and each table a producer writes exists."""
    d = graph.describe()
    missing = [t for t in DERIVED if t not in d["derived"]]
    assert not missing, f"derived tables without a producer: {missing}"
    unknown = [t for t in d["derived"] if t not in metadata.tables]
    assert not unknown, f"producers write tables the schema does not have: {unknown}"
    writes = [t for p in graph.producers() for t in p.writes]
    assert len(writes) == len(set(writes))
    # a producer's inputs are tables of the schema (or the calendar)
    reads = {t for p in graph.producers() for t in p.reads} - {CALENDAR}
    assert not reads - set(metadata.tables), reads - set(metadata.tables)


def test_analysis_steps_are_the_graph_then_what_is_not_derived():
    steps = [name for name, _ in analysis_steps(date(2026, 6, 30))]
    assert steps[0].startswith("derivation graph (")
    assert " -> ".join(p.name for p in graph.producers()) in steps[0]
    # no other step names a producer: the order of derived work is written once
    for name in steps[1:]:
        assert not any(f" {p.name} " in f" {name} " for p in graph.producers()), name


def _recording(seen: list) -> Producer:
    def run(conn, ctx, changes):  # noqa: ANN001, ANN202
        row = conn.execute(
            text("SELECT kind, trigger, as_of FROM analysis_runs WHERE id = :i"),
            {"i": ctx.run_id},
        ).one()
        seen.append((ctx.run_id, tuple(row), changes))
        ctx.notes.append("recorded")
        return Changes(derived_x={"k1", "k2"})

    return P("recorder", ("parcels", CALENDAR), ("derived_x",), run)


def test_refresh_records_one_run_before_the_producers(db, monkeypatch):
    seen: list = []
    after: list = []

    def downstream(conn, ctx, changes):  # noqa: ANN001, ANN202
        after.append(changes)
        return Changes()

    monkeypatch.setattr(
        graph,
        "_registry",
        graph.order([_recording(seen), P("after", ("derived_x",), ("derived_y",), downstream)]),
    )
    with db.begin() as c:
        ctx = graph.refresh(c, None, date(2026, 6, 30), trigger="test")
    run_id, row, changes = seen[0]
    assert run_id == ctx.run_id and row == ("full", "test", date(2026, 6, 30))
    assert changes is None and after == [None]  # a full refresh: every producer gets None
    with db.begin() as c:
        ctx2 = graph.refresh(c, Changes(parcels={"DK1"}), trigger="import:DK:1")
    assert seen[1][1][:2] == ("refresh", "import:DK:1")
    assert after[1] == {"parcels": {"DK1"}, "derived_x": {"k1", "k2"}}  # keys flow downstream
    with db.connect() as c:
        rows = c.execute(
            text(
                "SELECT id, kind, config_hash, counts, notes, seconds "
                "FROM analysis_runs ORDER BY id"
            )
        ).all()
    assert [r.id for r in rows] == [ctx.run_id, ctx2.run_id]
    r = rows[1]
    assert r.config_hash and r.seconds is not None and r.notes == ["recorded"]
    assert r.counts["changes"] == {"parcels": 1}
    assert r.counts["producers"]["recorder"]["changed"] == {"derived_x": 2}
    assert set(r.counts["timings_s"]) == {"recorder", "after"}

    # nothing the graph reads changed: no producer runs and nothing is recorded
    with db.begin() as c:
        quiet = graph.refresh(c, Changes(api_tokens={"1"}))
    assert quiet.run_id is None and len(seen) == 2
    # the date changed: the producers that read the calendar run
    with db.begin() as c:
        graph.refresh(c, Changes().add(CALENDAR, [ALL]), date(2027, 1, 1))
    assert seen[2][1] == ("refresh", "cli", date(2027, 1, 1))
    assert graph.planned(Changes(parcels={"x"})) == ["recorder", "after"]
    assert graph.planned(Changes(outputs={"x"})) == []


def test_cli_graph_formats(capsys):
    assert main(["graph", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in d["producers"]] == [p.name for p in graph.producers()]
    assert main(["graph", "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.strip() == graph.mermaid()
    assert main(["graph"]) == 0
    out = capsys.readouterr().out
    assert all(p.name in out for p in graph.producers())


def test_architecture_doc_shows_the_generated_graph():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text("utf-8")
    m = re.search(r"landlink graph --format mermaid.*?```mermaid\n(.*?)\n```", doc, flags=re.DOTALL)
    assert m, "docs/ARCHITECTURE.md has no mermaid block generated by landlink graph"
    assert m.group(1).strip() == graph.mermaid(), (
        "the graph in docs/ARCHITECTURE.md is stale: paste `landlink graph --format mermaid`"
    )
