"""Each parcel's place on the chain of land as the graph keeps it (``chain_positions``, the producer
``chain`` in gis/lands/chain.py): after a full recompute it is ``chain.position`` of every
parcel's facts; after one-row changes refreshed by their keys it equals a full recompute, also
for the inputs the property test does not change (a project's status, a project moved to another
parcel or retired, an approval moved onto a parcel and retired, a supply record completed); and
the survey reads it.

Each case runs in a transaction that is rolled back (every case starts from the same analysed
city); ``gis/core/recompute_check`` compares with a recompute from scratch in a savepoint.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check
from gis.core.graph import Changes
from gis.core.layers import layer
from gis.ingest.retire import retire_keys
from gis.lands import chain
from gis.management import survey
from tests.conftest import database_copy
from tests.test_incremental_property import AS_OF


@pytest.fixture(scope="module")
def city(analysed_sample):
    """A copy of the sample city, analysed from scratch (conftest's ``analysed_sample``)."""
    with database_copy(analysed_sample, "chain_pos") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def _positions(conn) -> dict[str, str]:  # noqa: ANN001
    return dict(conn.execute(text("SELECT parcel_no, position FROM chain_positions")).all())


def _one(conn, sql: str) -> tuple:  # noqa: ANN001
    row = conn.execute(text(sql)).first()
    assert row is not None, f"the sample city has no case for: {sql}"
    return tuple(row)


def test_a_full_recompute_places_every_parcel_by_the_rule(city):
    with city.connect() as conn:
        stored = _positions(conn)
        placed = {no: chain.position(f) for no, f in chain.facts(conn).items()}
        n = conn.execute(text("SELECT count(*) FROM parcels")).scalar_one()
    assert len(stored) == n
    assert stored == placed
    # the sample city has parcels at several places, so a wrong place would show
    assert len(set(stored.values())) >= 4


# a producing project whose parcel is placed past 建而未投 (cleared or below standard)
PRODUCING = """
    SELECT x.project_code, x.parcel_no FROM projects x
    JOIN chain_positions c ON c.parcel_no = x.parcel_no
    WHERE x.status = '投产' AND c.position IN ('cleared', 'below_standard')
      AND NOT EXISTS (SELECT 1 FROM projects y WHERE y.parcel_no = x.parcel_no
                      AND y.project_code <> x.project_code)
    ORDER BY x.project_code LIMIT 1"""
# a project naming a parcel by DKBH, and a parcel of another place to move it to
ANY_PROJECT = """
    SELECT x.project_code, x.parcel_no FROM projects x
    JOIN parcels p ON p.parcel_no = x.parcel_no ORDER BY x.project_code LIMIT 1 OFFSET 7"""
OTHER_PARCEL = """
    SELECT p.parcel_no FROM parcels p JOIN chain_positions c USING (parcel_no)
    WHERE c.position = 'cleared' AND NOT EXISTS (
        SELECT 1 FROM projects x WHERE x.parcel_no = p.parcel_no)
    ORDER BY p.parcel_no LIMIT 1"""
SUPPLY_ON_PARCEL = """
    SELECT s.supply_no FROM supplies s
    JOIN links l ON l.kind = 'supply_parcel' AND l.from_key = s.supply_no
    WHERE s.actual_completion IS NULL ORDER BY s.supply_no LIMIT 1 OFFSET 3"""


def _project_status(conn) -> Changes:  # noqa: ANN001
    code, _ = _one(conn, PRODUCING)
    conn.execute(text("UPDATE projects SET status = '在建' WHERE project_code = :c"), {"c": code})
    return Changes(projects={code})


def _project_moved(conn) -> Changes:  # noqa: ANN001
    code, _ = _one(conn, ANY_PROJECT)
    (to,) = _one(conn, OTHER_PARCEL)
    conn.execute(
        text("UPDATE projects SET parcel_no = :p, status = '在建' WHERE project_code = :c"),
        {"p": to, "c": code},
    )
    return Changes(projects={code})


def _project_retired(conn) -> Changes:  # noqa: ANN001
    code, _ = _one(conn, PRODUCING)
    return retire_keys(conn, layer("XM"), [(code,)], "test", "test")[1]


def _supply_completed(conn) -> Changes:  # noqa: ANN001
    (no,) = _one(conn, SUPPLY_ON_PARCEL)
    conn.execute(
        text("UPDATE supplies SET actual_completion = DATE '2020-06-30' WHERE supply_no = :n"),
        {"n": no},
    )
    return Changes(supplies={no})


CASES = {
    "a producing project back to 在建": _project_status,
    "a project moved to another parcel": _project_moved,
    "a producing project retired": _project_retired,
    "a supply record completed": _supply_completed,
}
MOVES_A_PLACE = {
    "a producing project back to 在建",
    "a project moved to another parcel",
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_keyed_refresh_places_parcels_as_a_full_recompute_does(city, name):
    with city.connect() as conn:
        tx = conn.begin()
        try:
            before = _positions(conn)
            changes = CASES[name](conn)
            ctx = graph.refresh(conn, changes, AS_OF, trigger="test")
            assert "chain" in ctx.timings, f"{name}: the chain was not refreshed"
            after = _positions(conn)
            found = recompute_check.differences(conn, AS_OF, tables=["chain_positions"])
        finally:
            tx.rollback()
    assert not found, f"{name}: {found}"
    if name in MOVES_A_PLACE:  # the case reaches the chain: a wrong scope would show
        assert after != before, f"{name}: no parcel changed place"


# an industrial parcel with one supply record linked to it and to no other parcel
LONE_SUPPLY = """
    SELECT l.to_key, l.from_key FROM links l JOIN parcels p ON p.parcel_no = l.to_key
    WHERE l.kind = 'supply_parcel' AND l.from_key IS NOT NULL AND p.land_use_code = '0601'
      AND NOT EXISTS (SELECT 1 FROM links m WHERE m.kind = 'supply_parcel'
                      AND m.to_key = l.to_key AND m.from_key <> l.from_key)
      AND NOT EXISTS (SELECT 1 FROM links m WHERE m.kind = 'supply_parcel'
                      AND m.from_key = l.from_key AND m.to_key <> l.to_key)
    ORDER BY l.to_key LIMIT 1 OFFSET 11"""
UNSUPPLIED_APPROVAL = """
    SELECT u.approval_no FROM unsupplied_results u JOIN detection_runs r ON r.id = u.run_id
    WHERE r.live AND u.status = 'unsupplied' ORDER BY 1 LIMIT 1"""


def test_an_approval_moved_onto_a_parcel_and_retired_places_it_as_a_full_recompute(city):
    """批而未供 reaches the chain only for a parcel with no supply record: its record retired, an
    approval with an unsupplied remainder moved onto it places it at 批而未供; retiring the
    approval takes it off again. Each step refreshed by its keys equals a full recompute."""
    found = {}
    with city.connect() as conn:
        tx = conn.begin()
        try:
            parcel, supply = _one(conn, LONE_SUPPLY)
            (doc,) = _one(conn, UNSUPPLIED_APPROVAL)
            steps = {
                "supply retired": lambda: retire_keys(
                    conn, layer("GD"), [(supply,)], "test", "test"
                )[1],
                "approval moved onto the parcel": lambda: (
                    conn.execute(
                        text(
                            "UPDATE approvals SET geom = (SELECT ST_Multi(ST_Buffer(geom, 5)) "
                            "FROM parcels WHERE parcel_no = :p) WHERE doc_no = :d"
                        ),
                        {"p": parcel, "d": doc},
                    ),
                    Changes(approvals={doc}),
                )[1],
                "approval retired": lambda: retire_keys(
                    conn, layer("PZ"), [(doc,)], "test", "test"
                )[1],
            }
            places = {}
            for step, change in steps.items():
                graph.refresh(conn, change(), AS_OF, trigger="test")
                places[step] = _positions(conn).get(parcel)
                found[step] = recompute_check.differences(conn, AS_OF, tables=["chain_positions"])
        finally:
            tx.rollback()
    assert not any(found.values()), found
    assert places["approval moved onto the parcel"] == "unsupplied", places
    assert places["approval retired"] != "unsupplied", places


def test_the_survey_sums_the_kept_places_and_places_a_parcel_without_one(city):
    with city.connect() as conn:
        tx = conn.begin()
        try:
            kept = survey.summary(survey.read(conn, "district"))
            (no,) = _one(
                conn,
                "SELECT c.parcel_no FROM chain_positions c JOIN parcels p USING (parcel_no) "
                "WHERE c.position <> 'cleared' AND p.land_use_code = '0601' "
                "ORDER BY 1 LIMIT 1",
            )
            # a stored place the rule would not give is what the survey sums
            conn.execute(
                text("UPDATE chain_positions SET position = 'cleared' WHERE parcel_no = :p"),
                {"p": no},
            )
            moved = survey.summary(survey.read(conn, "district"))
            # a parcel with no stored place is placed from its facts (as before the change)
            conn.execute(text("DELETE FROM chain_positions WHERE parcel_no = :p"), {"p": no})
            unplaced = survey.summary(survey.read(conn, "district"))
        finally:
            tx.rollback()
    city_row = {r["row"]: r for r in kept["rows"]}["city"]
    moved_row = {r["row"]: r for r in moved["rows"]}["city"]
    assert moved_row["by_chain"]["cleared"]["mu"] > city_row["by_chain"]["cleared"]["mu"]
    assert unplaced == kept


def test_migrate_fills_the_places_of_a_database_analysed_before_the_table(analysed_sample):
    """A database analysed before ``chain_positions`` existed has the table empty after the
    migration that makes it: ``landlink migrate`` finds it so, recomputes the derived tables
    and vacuums them, and every parcel has its place."""
    import os
    import subprocess
    import sys

    with database_copy(analysed_sample, "chain_mig") as url:

        def migrate() -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "app.cli", "migrate"],
                env={**os.environ, "DATABASE_URL": url},
                capture_output=True,
                text=True,
                timeout=600,
            )

        eng = create_engine(url)
        try:
            with eng.begin() as conn:
                conn.execute(text("DELETE FROM chain_positions"))
                assert chain.positions_missing(conn)
            r = migrate()
            assert r.returncode == 0, r.stdout + r.stderr
            assert "places on the chain are empty" in r.stdout, r.stdout
            assert "derived tables vacuumed" in r.stdout, r.stdout
            with eng.connect() as conn:
                assert not chain.positions_missing(conn)
                stored = _positions(conn)
                placed = {no: chain.position(f) for no, f in chain.facts(conn).items()}
                n = conn.execute(text("SELECT count(*) FROM parcels")).scalar_one()
            assert stored == placed and len(stored) == n
            # run again: nothing is empty, nothing is recomputed
            r = migrate()
            assert r.returncode == 0 and "recomputed" not in r.stdout, r.stdout + r.stderr
        finally:
            eng.dispose()
