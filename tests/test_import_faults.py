"""Imports under faults, with real `landlink import` processes against the test database: one
killed (SIGKILL) part-way through its COPY changes nothing and the next import completes; two
imports of one layer at once queue (or the second is refused, with a clear message), never a
lost or doubled row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from gis.core import tokens
from gis.core.layers import IMPORT_ORDER
from gis.core.uscc import check_character
from gis.ingest import import_file
from gis.ingest.pipeline import IMPORT_LOCK
from tests.conftest import TEST_URL, snapshot
from tests.factories import districts

QY_KEY = IMPORT_ORDER.index("QY")


def _uscc(i: int) -> str:
    first = f"91330100MA{i:07d}"
    return first + check_character(first)


def _qy_csv(path: Path, n: int, name: str = "企业") -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write("TYSHXYDM,QYMC,HYDM,GMYS\n")
        f.writelines(f"{_uscc(i)},{name}{i},1310,1\n" for i in range(n))
    return path


def _cli_import(path: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "import", "qy", str(path)],
        env={**os.environ, "DATABASE_URL": TEST_URL, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _poll(engine, sql: str, timeout: float, **params):
    """The first row ``sql`` returns, polling every 10 ms for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with engine.connect() as c:
        while time.monotonic() < deadline:
            row = c.execute(text(sql), params).first()
            c.rollback()
            if row is not None:
                return row
            time.sleep(0.01)
    raise AssertionError(f"not seen in {timeout} s: {sql}")


def _indexes(engine) -> list[str]:
    with engine.connect() as c:
        return (
            c.execute(
                text("SELECT indexdef FROM pg_indexes WHERE tablename = 'enterprises' ORDER BY 1")
            )
            .scalars()
            .all()
        )


def _kill_during_copy(engine, path: Path, table: str | None) -> int:
    """Start `landlink import qy PATH`, SIGKILL it once its COPY into ``table`` has sent rows,
    and wait until its database session is gone. Returns the rows the COPY had processed.

    ``table`` None: a staging table the import's transaction created (other sessions do not
    see its catalog row until a commit that never comes)."""
    proc = _cli_import(path)
    into = (
        "EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p.relid AND c.relname = :t)"
        if table
        else "NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p.relid)"
    )
    try:
        pid, done = _poll(
            engine,
            "SELECT p.pid, p.tuples_processed FROM pg_stat_progress_copy p "
            f"WHERE p.datname = current_database() AND p.tuples_processed > 0 AND {into}",
            180,
            t=table,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    _poll(
        engine,
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = :pid)",
        60,
        pid=pid,
    )
    return done


def test_sigkill_part_way_through_a_copy_changes_nothing_and_the_next_import_completes(
    db, tmp_path
):
    n = 100_000
    import_file(db, "XZQ", districts(tmp_path))
    big = _qy_csv(tmp_path / "QY.csv", n)
    before, indexes = snapshot(db), _indexes(db)
    # a first load: COPY straight into enterprises, its spatial index dropped until the end
    done = _kill_during_copy(db, big, "enterprises")
    assert 0 < done < n
    assert snapshot(db) == before
    assert _indexes(db) == indexes
    p = _cli_import(big)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM enterprises")).scalar() == n
    # an update of every row: COPY into the staging table, then the upsert
    loaded = snapshot(db)
    renamed = _qy_csv(tmp_path / "QY2.csv", n, name="公司")
    done = _kill_during_copy(db, renamed, None)
    assert 0 < done < n
    assert snapshot(db) == loaded
    p = _cli_import(renamed)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    with db.connect() as c:
        assert c.execute(
            text("SELECT count(*), count(*) FILTER (WHERE name LIKE '公司%') FROM enterprises")
        ).one() == (n, n)


def _hold_import_lock(engine):
    """A connection holding the import lock of QY (as a running import does): (conn, since)."""
    conn = engine.connect()
    conn.begin()
    conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": IMPORT_LOCK, "b": QY_KEY})
    since = conn.execute(
        text(
            "SELECT to_char(xact_start, 'YYYY-MM-DD HH24:MI:SS') FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()"
        )
    ).scalar_one()
    return conn, since


def test_two_imports_of_one_layer_queue_and_no_row_is_lost_or_doubled(db, tmp_path):
    n = 50_000
    path = _qy_csv(tmp_path / "QY.csv", n)
    hold, _ = _hold_import_lock(db)
    try:
        procs = [_cli_import(path), _cli_import(path)]
        # both wait for the lock (they read and check the file first, side by side)
        _poll(
            db,
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = :a AND objid = :b "
            "AND objsubid = 2 AND NOT granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "HAVING count(*) = 2",
            180,
            a=IMPORT_LOCK,
            b=QY_KEY,
        )
    finally:
        hold.rollback()
        hold.close()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with db.connect() as c:
        assert c.execute(text("SELECT count(*), count(DISTINCT uscc) FROM enterprises")).one() == (
            n,
            n,
        )
        batches = c.execute(
            text(
                "SELECT inserted, updated, unchanged FROM import_batches WHERE layer = 'QY' "
                "AND status = 'loaded' ORDER BY id"
            )
        ).all()
    assert [tuple(b) for b in batches] == [(n, 0, 0), (0, 0, n)]


def test_an_import_that_waits_too_long_is_refused_saying_why(db, tmp_path, server):
    path = _qy_csv(tmp_path / "QY.csv", 100)
    before = snapshot(db)
    hold, since = _hold_import_lock(db)
    try:
        t0 = time.monotonic()
        p = _cli_import(path, LANDLINK_IMPORT_LOCK_WAIT_SECONDS="1")
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1
        assert f"QY.csv: another import of QY is running since {since}" in err, err
        assert "(waited 1 s); try again when it ends" in err
        assert time.monotonic() - t0 < 60
        # over HTTP: 409 with the same words (the in-thread server's wait set to 1 s)
        from gis.core.config import get_settings

        settings = get_settings()
        old = settings.import_lock_wait_seconds
        settings.import_lock_wait_seconds = 1
        try:
            with db.begin() as c:
                token = tokens.create(c, "admin", "faults")
            r = httpx.post(
                server + "/api/imports",
                data={"layer": "qy"},
                files=[("files", ("QY.csv", path.read_bytes()))],
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
        finally:
            settings.import_lock_wait_seconds = old
        assert r.status_code == 409, r.text
        assert "another import of QY is running since" in r.json()["message"]
    finally:
        hold.rollback()
        hold.close()
    after = snapshot(db)
    assert {k: v for k, v in after.items() if k != "api_tokens"} == {
        k: v for k, v in before.items() if k != "api_tokens"
    }
    p = _cli_import(path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
