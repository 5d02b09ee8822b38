"""The project's own PostgreSQL + PostGIS cluster under ``.pgdata/`` (git-ignored).

Started with the Debian PostgreSQL 15 binaries; when invoked as root the server runs as the
``postgres`` user (PostgreSQL refuses to run as root). Listens on 127.0.0.1 only, with trust
authentication for local connections: a development and demo database, not a production one
(point ``DATABASE_URL`` at the bureau's server for that).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from gis.config import Settings

_AS_ROOT = os.geteuid() == 0


def _run(
    args: list[str], *, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess:
    if _AS_ROOT:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=check, text=True, capture_output=capture)


def _paths(s: Settings) -> tuple[Path, Path, Path]:
    base = s.pg_data_dir
    return base / "data", base / "run", base / "postgres.log"


def status(s: Settings) -> str:
    """'running', 'stopped' or 'absent'."""
    data, _, _ = _paths(s)
    if not (data / "PG_VERSION").exists():
        return "absent"
    r = _run([str(s.pg_bin_dir / "pg_ctl"), "-D", str(data), "status"], check=False, capture=True)
    return "running" if r.returncode == 0 else "stopped"


def _psql(s: Settings, sql: str, db: str = "postgres") -> str:
    _, run, _ = _paths(s)
    r = _run(
        [
            str(s.pg_bin_dir / "psql"),
            "-h",
            str(run),
            "-p",
            str(s.pg_port),
            "-U",
            "postgres",
            "-d",
            db,
            "-tAc",
            sql,
        ],
        capture=True,
    )
    return r.stdout.strip()


def _ensure_reachable(s: Settings) -> None:
    """As root, the server runs as ``postgres``, which must reach the data folder. A checkout
    under a private folder (e.g. /root) is not reachable: then the data lives under
    /var/lib/postgresql/landlink/<hash of the path> and ``.pgdata`` is a link to it."""
    if not _AS_ROOT or s.pg_data_dir.exists():
        return
    parent = s.pg_data_dir.parent
    probe = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(parent)], capture_output=True
    )
    if probe.returncode == 0:
        return
    digest = hashlib.sha256(str(s.pg_data_dir.resolve()).encode()).hexdigest()[:12]
    target = Path("/var/lib/postgresql/landlink") / digest
    target.mkdir(parents=True, exist_ok=True)
    shutil.chown(target.parent, "postgres", "postgres")
    s.pg_data_dir.symlink_to(target, target_is_directory=True)


def up(s: Settings) -> str:
    """Create (first time) and start the cluster; create the role and database. Idempotent."""
    if not (s.pg_bin_dir / "initdb").exists():
        raise RuntimeError(
            f"PostgreSQL 15 binaries not found in {s.pg_bin_dir}: install the Debian packages "
            "postgresql-15 and postgresql-15-postgis-3 (make deps does it)"
        )
    _ensure_reachable(s)
    data, run, log = _paths(s)
    s.pg_data_dir.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    if _AS_ROOT:
        shutil.chown(s.pg_data_dir, "postgres", "postgres")
        shutil.chown(run, "postgres", "postgres")
    if not (data / "PG_VERSION").exists():
        _run(
            [
                str(s.pg_bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            capture=True,
        )
        with open(data / "postgresql.auto.conf", "a") as f:
            f.write(
                f"listen_addresses = '127.0.0.1'\nport = {s.pg_port}\n"
                f"unix_socket_directories = '{run}'\n"
                "shared_buffers = '512MB'\nwork_mem = '64MB'\nmaintenance_work_mem = '512MB'\n"
                "max_wal_size = '4GB'\nsynchronous_commit = off\nmax_connections = 200\n"
                "jit = off\n"
            )
    if status(s) != "running":
        if log.exists() and _AS_ROOT:
            shutil.chown(log, "postgres", "postgres")
        _run(
            [
                str(s.pg_bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            capture=True,
        )
    for _ in range(50):
        if (
            _run(
                [str(s.pg_bin_dir / "pg_isready"), "-h", str(run), "-p", str(s.pg_port)],
                check=False,
                capture=True,
            ).returncode
            == 0
        ):
            break
        time.sleep(0.2)
    if _psql(s, f"SELECT 1 FROM pg_roles WHERE rolname = '{s.db_user}'") != "1":
        _psql(s, f"CREATE ROLE {s.db_user} LOGIN SUPERUSER")
    if _psql(s, f"SELECT 1 FROM pg_database WHERE datname = '{s.db_name}'") != "1":
        _psql(s, f"CREATE DATABASE {s.db_name} OWNER {s.db_user}")
    return f"PostgreSQL running on 127.0.0.1:{s.pg_port} (data in {data})"


def down(s: Settings) -> str:
    data, _, _ = _paths(s)
    if status(s) != "running":
        return "PostgreSQL is not running"
    _run([str(s.pg_bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture=True)
    return "PostgreSQL stopped"
