"""Shared benchmark helpers: a scratch database, running a command with its peak memory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gis.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

_MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "dt = time.perf_counter() - t\n"
    "print(json.dumps({'rc': r.returncode, 'seconds': dt, 'peak_mb': "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'out': r.stdout[-2000:], "
    "'err': r.stderr[-2000:]}))\n"
)


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh process; wall time (s) and peak resident memory (MB) of it alone."""
    r = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    res = json.loads(r.stdout)
    if res["rc"] != 0:
        raise RuntimeError(f"{cmd[0]} failed: {res['err'] or res['out']}")
    return res


def scratch_database(name: str) -> str:
    """A fresh, migrated database on the configured server; returns its SQLAlchemy URL."""
    s = Settings()
    if s.local_cluster:
        from app import localdb

        localdb.up(s)
    base = make_url(s.sqlalchemy_url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    from gis.core.migrate import upgrade

    upgrade(url)
    return url


def libpq_dsn(url: str) -> str:
    u = make_url(url)
    parts = [f"host={u.host or '127.0.0.1'}", f"port={u.port or 5432}", f"dbname={u.database}"]
    if u.username:
        parts.append(f"user={u.username}")
    if u.password:
        parts.append(f"password={u.password}")
    return " ".join(parts)


def timer():
    t = time.perf_counter()
    return lambda: time.perf_counter() - t


def pgbench_latency(url: str, scripts: list[str], seconds: int, prepared: bool = False) -> float:
    """Mean latency (ms) of ``scripts`` (SQL texts, picked at random) run by pgbench, one
    client, for ``seconds``."""
    u = make_url(url)
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, sql in enumerate(scripts):
            f = Path(d) / f"s{i}.sql"
            f.write_text(sql)
            files += ["-f", str(f)]
        r = subprocess.run(
            [
                "pgbench",
                "-n",
                *(["-M", "prepared"] if prepared else []),
                *("-c", "1", "-j", "1", "-T", str(seconds)),
                *("-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or ""),
                *files,
                u.database or "",
            ],
            capture_output=True,
            text=True,
            env={**os.environ},
        )
    m = re.search(r"latency average = ([\d.]+) ms", r.stdout)
    if not m:
        raise RuntimeError(r.stderr or r.stdout)
    return float(m.group(1))
