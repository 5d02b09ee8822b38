"""The local cluster from a clone in a private folder (mode 700, as /root is): as root the server
runs as ``postgres``, which cannot pass through such a folder, so the data must live where it
can and the server must be handed paths it can reach.

Brings up a second cluster, from a fresh clone of this repository, on a free port of its own;
the suite's cluster is not touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gis.core.config import Settings
from tests.conftest import _free_port

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0


@pytest.fixture
def private_clone():
    """A `git clone` of this repository's HEAD (a copy when it is not a git checkout) inside a
    mode-700 folder; removed afterwards, with the data folder under /var/lib/postgresql it may
    have linked to."""
    if not (Settings().pg_bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL 15 binaries are not installed")
    outer = Path(tempfile.mkdtemp(prefix="landlink_private_"))
    outer.chmod(0o700)
    clone = outer / "landlink"
    if (ROOT / ".git").exists():
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
            check=True,
            capture_output=True,
        )
    else:  # a copy without git history: the code, not the environment or data
        skip = shutil.ignore_patterns(".venv", ".pgdata", "node_modules", "bench", "test-artifacts")
        shutil.copytree(ROOT, clone, ignore=skip, symlinks=True)
    linked = None
    try:
        yield clone
    finally:
        pgdata = clone / ".pgdata"
        if pgdata.is_symlink():
            linked = pgdata.resolve()
        shutil.rmtree(outer, ignore_errors=True)
        if linked is not None and linked.parent.name == "landlink":
            shutil.rmtree(linked, ignore_errors=True)


def _landlink(clone: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "LANDLINK_DATABASE_URL", "LANDLINK_PG_DATA_DIR")
    }
    env.update(PYTHONPATH=str(clone), LANDLINK_PG_PORT=str(port))
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cluster_comes_up_from_a_private_folder(private_clone):
    clone = private_clone
    assert stat.S_IMODE(clone.parent.stat().st_mode) == 0o700
    port = _free_port()
    assert port != Settings().pg_port

    up = _landlink(clone, port, "db", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"127.0.0.1:{port}" in up.stdout
        pgdata = clone / ".pgdata"
        if AS_ROOT:
            # postgres cannot enter the private folder: the data lives where it can
            assert pgdata.is_symlink()
            target = pgdata.resolve()
            assert target.parent == Path("/var/lib/postgresql/landlink")
            assert str(target / "data") in up.stdout
        assert (pgdata / "data" / "PG_VERSION").exists()

        status = _landlink(clone, port, "db", "status")
        assert status.stdout.strip() == "local cluster: running", status.stdout + status.stderr

        eng = create_engine(f"postgresql+psycopg://landlink@127.0.0.1:{port}/landlink")
        try:
            with eng.begin() as c:
                c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
                assert "POSTGIS=" in c.execute(text("SELECT postgis_full_version()")).scalar_one()
        finally:
            eng.dispose()

        # a second `db up` reuses the link and the running cluster
        again = _landlink(clone, port, "db", "up")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        down = _landlink(clone, port, "db", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.strip() == "PostgreSQL stopped"
    assert _landlink(clone, port, "db", "status").stdout.strip() == "local cluster: stopped"
