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

from gis.core.config import Settings

_AS_ROOT = os.geteuid() == 0


def _run(
    args: list[str], *, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess:
    if _AS_ROOT:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=check, text=True, capture_output=capture)


def _paths(s: Settings) -> tuple[Path, Path, Path]:
    """The cluster's data folder, socket folder and log, as the server is given them: resolved
    (``.pgdata`` may be a link into /var/lib/postgresql, see :func:`_ensure_reachable`), so the
    ``postgres`` user never has to pass through the private folder holding the link."""
    base = s.pg_data_dir.resolve()
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


def _reachable(path: Path) -> bool:
    """Whether the ``postgres`` user can reach into ``path`` (every folder on the way)."""
    probe = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True
    )
    return probe.returncode == 0


_LINKED_HOME = Path("/var/lib/postgresql/landlink")


def linked_target(s: Settings) -> Path:
    """Where the data lives when ``pg_data_dir`` is in a folder ``postgres`` cannot reach:
    /var/lib/postgresql/landlink/<hash of the absolute path>."""
    digest = hashlib.sha256(str(s.pg_data_dir.absolute()).encode()).hexdigest()[:12]
    return _LINKED_HOME / digest


def _ensure_reachable(s: Settings) -> None:
    """As root, the server runs as ``postgres``, which must reach the data folder. A checkout
    under a private folder (e.g. /root, mode 700) is not reachable: then the data lives under
    /var/lib/postgresql/landlink/<hash of the path>, ``.pgdata`` is a link to it, and the server
    is handed the resolved paths (:func:`_paths`). A link made earlier is kept (and its target
    re-created if it was removed); a real folder in a reachable place is used as it is."""
    if not _AS_ROOT:
        return
    d = s.pg_data_dir
    if d.is_symlink():
        target = d.resolve()
        if not target.exists():
            target.mkdir(parents=True)
        if not _reachable(target.parent):
            raise RuntimeError(
                f"{d} links to {target}, which the postgres user cannot reach; remove the link "
                "('make clean-db') and run 'landlink db up' again"
            )
        return
    d.parent.mkdir(parents=True, exist_ok=True)
    if _reachable(d if d.is_dir() else d.parent):
        return
    if d.exists():
        leftovers = {p.name for p in d.iterdir()}
        if (d / "data" / "PG_VERSION").exists() or not leftovers <= {"data", "run", "postgres.log"}:
            raise RuntimeError(
                f"{d} holds a cluster, but the postgres user cannot reach it (a private folder "
                "such as /root); move it to a folder postgres can reach and set "
                "LANDLINK_PG_DATA_DIR, or remove it ('make clean-db') to start afresh"
            )
        shutil.rmtree(d)  # what a failed earlier start left: an empty cluster folder
    target = linked_target(s)
    target.mkdir(parents=True, exist_ok=True)
    shutil.chown(target.parent, "postgres", "postgres")
    d.symlink_to(target, target_is_directory=True)


def up(s: Settings) -> str:
    """Create (first time) and start the cluster; create the role and database. Idempotent."""
    if not (s.pg_bin_dir / "initdb").exists():
        raise RuntimeError(
            f"PostgreSQL 15 binaries not found in {s.pg_bin_dir}: install the Debian packages "
            "postgresql-15 and postgresql-15-postgis-3 (make deps does it)"
        )
    _ensure_reachable(s)
    s.pg_data_dir.mkdir(parents=True, exist_ok=True)
    data, run, log = _paths(s)
    run.mkdir(parents=True, exist_ok=True)
    if _AS_ROOT:
        shutil.chown(data.parent, "postgres", "postgres")
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
                # the port and socket folder as configured now (a cluster made under an
                # earlier path or port still starts where the settings look for it)
                "-o",
                f"-p {s.pg_port} -k '{run}'",
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
