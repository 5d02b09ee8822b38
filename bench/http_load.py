"""Shared by bench/tiles.py and bench/features.py: the 100,000-parcel database, starting tipg and
landlink on it with the same number of workers, and a small bounded load generator on loopback.

The load generator is a fixed number of requests over a fixed list of URLs (round robin), sent
by ``concurrency`` threads with one keep-alive httpx client each; it records every latency and
reports requests/s, p50 and p99 (ms) and the mean body size.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import OUT, ROOT, measure, scratch_database
from gis.config import Settings

DB_NAME = "landlink_bench_tiles"
TIPG_VENV = ROOT / "bench" / ".venv-tipg"
SERVE = ROOT / "bench" / "serve.py"  # uvicorn with TCP_NODELAY on accepted sockets (see there)


def bench_database(scale: int = 20) -> str:
    """The benchmark database (reused when it holds the parcels): a scale-``scale`` sample
    city (about 100,000 parcels at 20) imported with ``landlink import-dir``."""
    base = make_url(Settings().sqlalchemy_url)
    url = base.set(database=DB_NAME).render_as_string(hide_password=False)
    try:
        eng = create_engine(url)
        with eng.connect() as c:
            n = c.execute(text("SELECT count(*) FROM parcels")).scalar_one()
        eng.dispose()
        if n > 50_000:
            return url
    except Exception:
        pass
    city = OUT / f"city{scale}"
    landlink = str(ROOT / ".venv" / "bin" / "landlink")
    if not (city / "DK.shp").exists():
        print(f"generating a scale-{scale} city in {city} ...", flush=True)
        measure([landlink, "sample", "generate", "--out", str(city), "--scale", str(scale)])
    url = scratch_database(DB_NAME)
    print(f"importing {city} into {DB_NAME} (several minutes) ...", flush=True)
    measure([landlink, "import-dir", str(city)], {"DATABASE_URL": url})
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text("ANALYZE"))
    eng.dispose()
    return url


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_tipg() -> Path:
    """bench/.venv-tipg with tipg from PyPI (created on first use)."""
    py = TIPG_VENV / "bin" / "python"
    if not (TIPG_VENV / "bin" / "uvicorn").exists():
        print("creating bench/.venv-tipg (pip install tipg uvicorn[standard]) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        # the same server stack as landlink: uvicorn with httptools and uvloop
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "tipg", "uvicorn[standard]"], check=True
        )
    return TIPG_VENV / "bin" / "uvicorn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    base: str
    proc: subprocess.Popen

    def stop(self) -> None:
        """Stop the server and its workers (its own process group, started by us)."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def _wait(base: str, path: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server at {base} exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(base + path, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {base} did not start")


def start_tipg(url: str, workers: int, tables: list[str]) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": libpq_url(url),
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": "[" + ",".join(f'"public.{t}"' for t in tables) + "]",
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
    }
    proc = subprocess.Popen(
        [
            str(ensure_tipg().parent / "python"),
            str(SERVE),
            "tipg.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(OUT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    _wait(base, "/collections", proc)
    return Server("tipg", base, proc)


def start_landlink(url: str, workers: int, cache: bool) -> Server:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    if not cache:
        env["LANDLINK_TILES"] = '{"cache_entries": 0}'
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            str(SERVE),
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    _wait(base, "/ogc", proc)
    return Server("landlink", base, proc)


@dataclass
class Result:
    rps: float
    p50: float  # ms
    p99: float  # ms
    mean_bytes: float
    max_bytes: int
    errors: int


def load(urls: list[str], requests: int, concurrency: int) -> Result:
    """``requests`` GETs over ``urls`` (round robin) from ``concurrency`` threads."""
    lat: list[float] = []
    sizes: list[int] = []
    errors = [0]
    lock = threading.Lock()
    counter = [0]

    def worker() -> None:
        # TCP_NODELAY: without it a request's second small write waits for the server's
        # delayed ACK (40 ms on Linux), which would measure the kernel, not the servers
        nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(timeout=120, transport=nodelay) as c:
            while True:
                with lock:
                    i = counter[0]
                    if i >= requests:
                        return
                    counter[0] += 1
                t = time.perf_counter()
                try:
                    r = c.get(urls[i % len(urls)])
                    ok = r.status_code in (200, 204)
                    n = len(r.content)
                except httpx.HTTPError:
                    ok, n = False, 0
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    sizes.append(n)
                    if not ok:
                        errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return Result(
        len(lat) / wall,
        pct(0.50),
        pct(0.99),
        sum(sizes) / max(len(sizes), 1),
        max(sizes, default=0),
        errors[0],
    )


_WRK_LUA = """
paths = {%s}
i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def _ms(v: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def wrk_load(base: str, paths: list[str], seconds: int, connections: int) -> Result:
    """wrk (Debian package) for ``seconds`` with ``connections`` keep-alive connections over
    ``paths`` round robin; requests/s, p50/p99 (ms) and mean bytes per response."""
    if not shutil.which("wrk"):
        return load([base + p for p in paths], max(100, seconds * 50), connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA % ", ".join(json.dumps(p) for p in paths))
        script = f.name
    try:
        r = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "--timeout",
                "60s",
                "-s",
                script,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", r, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", r, re.M).group(1))
    n = int(re.search(r"(\d+) requests in", r).group(1))
    tb = re.search(r"requests in [^,]+, ([\d.]+)(B|KB|MB|GB) read", r)
    total = float(tb.group(1)) * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[tb.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, errs.groups())) if errs else 0)
    return Result(rps, p50, p99, total / max(n, 1), 0, errors)
