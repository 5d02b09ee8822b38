"""Retiring rows: `landlink retire`, `import --replace`, POST /api/layers/{code}/retire.

A retired row leaves its layer table for row_history (op retire) and every derived result; the
rows whose key names it (an enterprise's outputs) go with it; a dry run and a refused call
change nothing; importing the key again restores it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from gis.core import graph
from gis.ingest import ImportOptions, ImportRejected, import_file
from gis.ingest.retire import UnknownKeys, retire
from tests.conftest import SAMPLE_DIR, database_copy, snapshot
from tests.test_cli import LANDLINK


def _one(c, sql, **p):
    return c.execute(text(sql), p).scalar()


@pytest.fixture(scope="module")
def analysed(sample_engine):
    """An analysed copy of the sample city (as `make demo` leaves it), per test module."""
    from app.cli import analysis_steps

    as_of = date.fromisoformat(
        json.loads((SAMPLE_DIR / "planted.json").read_text())["reference_date"]
    )
    with database_copy(sample_engine, "retire") as url:
        eng = create_engine(url)
        for _, step in analysis_steps(as_of):
            step(eng)
        yield url, eng
        eng.dispose()


@pytest.fixture
def city(analysed):
    """A fresh copy of the analysed city for one test (each test may retire rows)."""
    _, source = analysed
    with database_copy(source, "t") as url:
        eng = create_engine(url)
        yield url, eng
        eng.dispose()


def _linked_enterprise(c) -> str:
    """An enterprise with parcels, outputs and an evaluation."""
    return _one(
        c,
        "SELECT e.uscc FROM evaluations e JOIN enterprises q ON q.uscc = e.uscc "
        "WHERE q.geom IS NOT NULL ORDER BY EXISTS (SELECT 1 FROM enterprise_land l "
        "WHERE l.uscc = e.uscc AND l.basis = 'parcels') DESC, e.uscc LIMIT 1",
    )


def test_a_retired_enterprise_keeps_its_history_and_takes_its_outputs(city):
    _, eng = city
    with eng.connect() as c:
        uscc = _linked_enterprise(c)
        years = _one(c, "SELECT count(*) FROM outputs WHERE uscc = :u", u=uscc)
        name = _one(c, "SELECT name FROM enterprises WHERE uscc = :u", u=uscc)
    assert years > 0
    rep = retire(eng, "qy", [uscc], who="test")
    assert rep["retired"] == 1 and rep["retired_keys"] == [uscc]
    assert rep["retired_with"] == {"CC": years} or rep["retired_with"]["CC"] == years
    with eng.connect() as c:
        assert _one(c, "SELECT count(*) FROM enterprises WHERE uscc = :u", u=uscc) == 0
        assert _one(c, "SELECT count(*) FROM outputs WHERE uscc = :u", u=uscc) == 0
        h = (
            c.execute(
                text("SELECT * FROM row_history WHERE layer = 'QY' AND key = :u ORDER BY version"),
                {"u": uscc},
            )
            .mappings()
            .all()
        )
        assert [r["op"] for r in h] == ["insert", "retire"]
        assert h[-1]["who"] == "test" and h[-1]["row"]["name"] == name
        assert h[-1]["row"]["geom"]  # the point kept, as hex EWKB
        cc = c.execute(
            text(
                "SELECT op, cause FROM row_history WHERE layer = 'CC' AND key LIKE :k "
                "AND op = 'retire'"
            ),
            {"k": uscc + ":%"},
        ).all()
        assert len(cc) == years and {r.cause for r in cc} == {f"QY {uscc}"}


def test_a_retired_enterprise_leaves_every_derived_result(city):
    from gis.serving import collections, features_sql
    from gis.serving.search import search

    _, eng = city
    with eng.connect() as c:
        uscc = _linked_enterprise(c)
        land = c.execute(
            text(
                "SELECT year, unnest(parcel_nos) AS p FROM enterprise_land "
                "WHERE uscc = :u AND basis = 'parcels'"
            ),
            {"u": uscc},
        ).all()
        before = {
            (r.code, r.year): r.n_enterprises
            for r in c.execute(
                text(
                    "SELECT code, year, n_enterprises FROM per_mu WHERE level = 'parcel' "
                    "AND (code, year) IN (SELECT p, y FROM unnest(CAST(:p AS text[]), "
                    "CAST(:y AS int[])) AS u(p, y))"
                ),
                {"p": [r.p for r in land], "y": [r.year for r in land]},
            )
        }
    assert land and any(h["id"] == uscc for h in search(eng, uscc))
    rep = retire(eng, "qy", [uscc], who="test")
    assert rep["refreshed"]["producers"]  # the graph ran
    with eng.connect() as c:
        for table, col in (
            ("evaluations", "uscc"),
            ("enterprise_land", "uscc"),
            ("links", "from_key"),
        ):
            assert _one(c, f"SELECT count(*) FROM {table} WHERE {col} = :u", u=uscc) == 0, table
        assert (
            _one(c, "SELECT count(*) FROM per_mu WHERE level = 'enterprise' AND code = :u", u=uscc)
            == 0
        )
        for (parcel, year), n in before.items():
            after = _one(
                c,
                "SELECT n_enterprises FROM per_mu WHERE level = 'parcel' AND code = :p "
                "AND year = :y",
                p=parcel,
                y=year,
            )
            assert (after or 0) == n - 1, (parcel, year)
        coll = collections.registry(c)["enterprises"]
        assert features_sql.item(c, coll, uscc, features_sql.parse_crs(None), True) is None
    assert not any(h["id"] == uscc for h in search(eng, uscc))


def test_unknown_layer_or_key_changes_nothing(city):
    url, eng = city
    before = snapshot(eng)
    with pytest.raises(UnknownKeys, match="no current row of layer QY"):
        retire(eng, "qy", ["91330100000000000X"])
    with pytest.raises(KeyError, match="unknown layer"):
        retire(eng, "zz", ["1"])
    with pytest.raises(ValueError, match="ND must be a whole number"):
        retire(eng, "cc", ["91330102169913999J:next"])
    env = {**os.environ, "DATABASE_URL": url}
    r = subprocess.run(
        [LANDLINK, "retire", "qy", "91330100000000000X"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 1 and "no current row of layer QY" in r.stderr
    r = subprocess.run([LANDLINK, "retire", "zz", "1"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "unknown layer 'zz'" in r.stderr
    assert snapshot(eng) == before


def test_cli_retires_a_composite_key_and_a_second_retire_says_when(city):
    url, eng = city
    env = {**os.environ, "DATABASE_URL": url}
    r = subprocess.run(
        [LANDLINK, "retire", "cc", "91330102169913999J:2022"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "retired 1" in r.stdout and "91330102169913999J:2022" in r.stdout
    with eng.connect() as c:
        assert (
            _one(
                c,
                "SELECT count(*) FROM outputs WHERE uscc = '91330102169913999J' AND year = 2022",
            )
            == 0
        )
        assert _one(c, "SELECT count(*) FROM outputs WHERE uscc = '91330102169913999J'") > 0
    r = subprocess.run(
        [LANDLINK, "retire", "cc", "91330102169913999J:2022"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1 and "91330102169913999J:2022 (retired 20" in r.stderr


def test_a_dry_run_changes_nothing_and_runs_no_producer(city, monkeypatch, tmp_path):
    _, eng = city
    ran = []
    spies = [
        dataclasses.replace(p, run=lambda *a, _n=p.name: ran.append(_n)) for p in graph.producers()
    ]
    monkeypatch.setattr(graph, "_registry", spies)
    with eng.connect() as c:
        uscc = _linked_enterprise(c)
    before = snapshot(eng)
    rep = retire(eng, "qy", [uscc], dry_run=True)
    assert rep["dry_run"] and rep["retired"] == 1 and "refreshed" not in rep
    assert "evaluation" in rep["would_refresh"]
    cc = pd.read_csv(SAMPLE_DIR / "CC.csv", dtype=str)
    cc.loc[0, "SJSJ"] = "1.5"
    path = tmp_path / "CC.csv"
    cc.to_csv(path, index=False)
    rep = import_file(eng, "cc", path, ImportOptions(dry_run=True, replace=True))
    assert rep["updated"] == 1 and rep["changed"] == {"outputs": 1}
    assert rep["would_refresh"] and "refreshed" not in rep
    assert ran == []
    assert snapshot(eng) == before


def test_replace_retires_exactly_the_keys_the_file_lacks(city, tmp_path):
    _, eng = city
    cc = pd.read_csv(SAMPLE_DIR / "CC.csv", dtype=str)
    gone = cc.iloc[[3, 7]]
    keys = sorted(f"{r.TYSHXYDM}:{r.ND}" for r in gone.itertuples())
    path = tmp_path / "CC.csv"
    cc.drop(index=gone.index).to_csv(path, index=False)
    rep = import_file(eng, "cc", path, ImportOptions(replace=True))
    assert rep["retired"] == 2 and rep["retired_keys"] == keys
    assert rep["inserted"] == rep["updated"] == 0 and rep["changed"] == {"outputs": 2}
    assert rep["refreshed"]["trigger"] == f"import:CC:{rep['batch_id']}"
    with eng.connect() as c:
        assert _one(c, "SELECT count(*) FROM outputs") == len(cc) - 2
        ops = c.execute(
            text(
                "SELECT key, op, via FROM row_history WHERE layer = 'CC' AND op = 'retire' "
                "ORDER BY key"
            )
        ).all()
        assert [(k, op) for k, op, _ in ops] == [(k, "retire") for k in keys]
        assert {v for *_, v in ops} == {f"batch:{rep['batch_id']}"}
    # the whole file again: the two come back, restored, and nothing is retired
    rep = import_file(eng, "cc", SAMPLE_DIR / "CC.csv", ImportOptions(replace=True))
    assert rep["inserted"] == 2 and rep["retired"] == 0
    with eng.connect() as c:
        assert _one(c, "SELECT count(*) FROM outputs") == len(cc)
        restored = c.execute(
            text("SELECT key FROM row_history WHERE layer = 'CC' AND op = 'restore' ORDER BY key")
        ).scalars()
        assert list(restored) == keys


def test_without_replace_rows_missing_from_the_file_stay(city, tmp_path):
    _, eng = city
    cc = pd.read_csv(SAMPLE_DIR / "CC.csv", dtype=str)
    path = tmp_path / "CC.csv"
    cc.iloc[:5].to_csv(path, index=False)
    rep = import_file(eng, "cc", path)
    assert "retired" not in rep and rep["unchanged"] == 5
    with eng.connect() as c:
        assert _one(c, "SELECT count(*) FROM outputs") == len(cc)


def test_a_refused_import_with_replace_leaves_the_database_as_it_was(city, tmp_path):
    _, eng = city
    cc = pd.read_csv(SAMPLE_DIR / "CC.csv", dtype=str).iloc[:10]
    cc.loc[2, "SJSJ"] = "lots"
    path = tmp_path / "CC.csv"
    cc.to_csv(path, index=False)
    before = snapshot(eng)
    with pytest.raises(ImportRejected):
        import_file(eng, "cc", path, ImportOptions(replace=True))
    assert snapshot(eng) == before


def test_an_update_records_its_version_and_changed_fields(city, tmp_path):
    _, eng = city
    cc = pd.read_csv(SAMPLE_DIR / "CC.csv", dtype=str)
    cc.loc[0, "SJSJ"] = "1.5"
    path = tmp_path / "CC.csv"
    cc.to_csv(path, index=False)
    rep = import_file(eng, "cc", path, user="test")
    assert rep["updated"] == 1 and rep["changed"] == {"outputs": 1}
    key = f"{cc.loc[0, 'TYSHXYDM']}:{cc.loc[0, 'ND']}"
    with eng.connect() as c:
        h = c.execute(
            text(
                "SELECT version, op, who, changes, row FROM row_history WHERE layer = 'CC' "
                "AND key = :k ORDER BY version"
            ),
            {"k": key},
        ).all()
    assert [(v, op) for v, op, *_ in h] == [(1, "insert"), (2, "update")]
    assert h[-1].who == "test" and h[-1].row["tax_paid"] == 1.5
    assert h[-1].changes["tax_paid"][1] == 1.5
