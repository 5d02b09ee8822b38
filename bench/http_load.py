"""bench/http_load: mixed HTTP traffic on the analysed sample city against `landlink serve`
(``python bench/http_load.py``, see :func:`main` and docs/BENCHMARKS.md).

Also shared by bench/tiles.py and bench/features.py: the 100,000-parcel database, starting tipg
and landlink on it with the same number of workers, and a small bounded load generator on
loopback.

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as bench/http_load.py

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import OUT, ROOT, measure, scratch_database  # noqa: E402
from gis.core.config import Settings  # noqa: E402

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


def _start(
    name: str, cmd: list[str], env: dict, cwd: Path, ready: str, stdout=subprocess.DEVNULL
) -> Server:
    """``cmd`` + ``--host 127.0.0.1 --port <free port>`` in its own process group; waits until
    ``ready`` answers."""
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=str(cwd),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    _wait(base, ready, proc)
    return Server(name, base, proc)


def _uvicorn(python: Path, app: str, workers: int) -> list[str]:
    """bench/serve.py (uvicorn with TCP_NODELAY) serving ``app`` quietly."""
    return [str(python), str(SERVE), app, "--workers", str(workers), "--log-level", "warning"]


def start_tipg(url: str, workers: int, tables: list[str]) -> Server:
    env = {
        **os.environ,
        "DATABASE_URL": libpq_url(url),
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_DB_TABLES": "[" + ",".join(f'"public.{t}"' for t in tables) + "]",
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
    }
    cmd = _uvicorn(ensure_tipg().parent / "python", "tipg.main:app", workers)
    return _start("tipg", cmd, env, OUT, "/collections")


def start_landlink(url: str, workers: int, cache: bool) -> Server:
    env = {**os.environ, "DATABASE_URL": url}
    if not cache:
        env["LANDLINK_TILES"] = '{"cache_entries": 0}'
    cmd = _uvicorn(ROOT / ".venv" / "bin" / "python", "app.main:app", workers)
    return _start("landlink", cmd, env, ROOT, "/ogc")


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


# ---- bench/http_load: mixed traffic on the sample city ---------------------------------------
#
#     .venv/bin/python bench/http_load.py [--seconds 60] [--concurrency 16] [--workers 2]
#                                         [--client asyncio|httpx|wrk] [--reuse]
#
# A scratch database with the analysed sample city; `landlink serve` as its own process (the
# production entry point, access log on, written to bench/out/http_load_server.log); its memory
# (RSS of the server and its workers) before and after; ``--seconds`` of mixed GETs at
# ``--concurrency`` keep-alive connections on loopback: vector tiles z10-z16 over the city
# (every layer, mostly served from the tile cache after the first pass), OGC API items pages,
# the land lists and search. Bounded: stops after ``--seconds`` or ``MAX_REQUESTS``.
# Printed and written to bench/out/http_load.json: requests/s, p50, p99, errors, the status
# histogram, server RSS before/after, and the CPU seconds of the server and of the client (on
# 2 cores the client competes with the server: its share is reported, not hidden).

HTTP_DB = "landlink_bench_http"
SAMPLE = ROOT / "sample_shapefiles"
MAX_REQUESTS = 2_000_000
TILE_ZOOMS = range(10, 17)
TILES_PER_ZOOM = 24  # at most, per layer and zoom: the tiles holding most parcels


def sample_database(reuse: bool = False) -> str:
    """The analysed sample city in ``landlink_bench_http`` (as `make demo` loads it)."""
    base = make_url(Settings().sqlalchemy_url)
    url = base.set(database=HTTP_DB).render_as_string(hide_password=False)
    if reuse:
        try:
            eng = create_engine(url)
            with eng.connect() as c:
                runs = c.execute(text("SELECT count(*) FROM detection_runs")).scalar_one()
            eng.dispose()
            if runs:
                return url
        except Exception:
            pass
    url = scratch_database(HTTP_DB)
    landlink = str(ROOT / ".venv" / "bin" / "landlink")
    as_of = json.loads((SAMPLE / "planted.json").read_text("utf-8"))["reference_date"]
    print(f"loading and analysing the sample city into {HTTP_DB} ...", flush=True)
    measure([landlink, "import-dir", str(SAMPLE)], {"DATABASE_URL": url})
    measure([landlink, "analyse-all", "--as-of", as_of], {"DATABASE_URL": url})
    return url


def mixed_paths(url: str, layers: list[str], collections: list[str]) -> list[str]:
    """The mixed request set, interleaved: per 10 requests about 7 tiles, 1 items page, 1 land
    list and 1 search."""
    from gis.serving.tiles import tile_for

    eng = create_engine(url)
    with eng.connect() as c:
        pts = c.execute(
            text(
                "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326)"
                " AS g FROM parcels) q"
            )
        ).all()
        names = c.execute(text("SELECT name FROM enterprises ORDER BY id LIMIT 40")).scalars()
        words = sorted({n[i : i + 2] for n in names for i in (0, 2, 4) if len(n) >= i + 2})
        parcels = c.execute(text("SELECT parcel_no FROM parcels ORDER BY id LIMIT 20")).scalars()
        words += [p[:6] for p in parcels]
    eng.dispose()
    tiles = []
    for z in TILE_ZOOMS:
        counts: dict[tuple[int, int], int] = {}
        for lon, lat in pts:
            t = tile_for(lon, lat, z)
            counts[t] = counts.get(t, 0) + 1
        top = sorted(counts, key=lambda t: (-counts[t], t))[:TILES_PER_ZOOM]
        tiles += [f"/tiles/{layer}/{z}/{x}/{y}.mvt" for layer in layers for x, y in top]
    items = [
        f"/ogc/collections/{c}/items?limit={lim}&offset={off}"
        for c in collections
        for lim, off in ((10, 0), (100, 0), (100, 100), (50, 500))
    ]
    lists = [
        f"/api/land/{kind}?limit={lim}&offset={off}"
        for kind in ("unsupplied", "idle", "low-efficiency")
        for lim, off in ((20, 0), (50, 20), (100, 0))
    ] + ["/api/land/summary", "/api/enterprises?limit=50", "/api/platforms"]
    search = [f"/api/search?q={httpx.URL('', params={'q': w}).query.decode()[2:]}" for w in words]
    out = []
    for i in range(max(len(tiles), 10 * len(items), 10 * len(lists), 10 * len(search))):
        out += [tiles[(7 * i + k) % len(tiles)] for k in range(7)]
        out += [items[i % len(items)], lists[i % len(lists)], search[i % len(search)]]
    return out


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_usage(pid: int) -> tuple[float, float]:
    """(RSS in MB summed over the process tree, CPU seconds used by it so far)."""
    rss_kb, ticks = 0, 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss_kb += int(m.group(1)) if m else 0
        ticks += int(stat[11]) + int(stat[12])  # utime, stime
    return rss_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def start_serve(url: str, workers: int, log: Path) -> Server:
    """`landlink serve` (the production entry point, access log on) in its own process group;
    its log goes to ``log``."""
    cmd = [str(ROOT / ".venv" / "bin" / "landlink"), "serve", "--workers", str(workers)]
    with open(log, "w") as out:
        return _start(
            "landlink serve", cmd, {**os.environ, "DATABASE_URL": url}, ROOT, "/health", out
        )


@dataclass
class Mixed:
    requests: int
    seconds: float
    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int
    statuses: dict
    client_cpu_s: float
    by_kind: dict | None = None  # latency by kind of request (asyncio client only)


def _kind(path: str) -> str:
    for prefix, kind in (("/tiles/", "tiles"), ("/ogc/", "items"), ("/api/search", "search")):
        if path.startswith(prefix):
            return kind
    return "lists"


def _pct(lat: list[float], p: float) -> float:
    return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")


def _mixed(lat, statuses, wall, cpu1, cpu0, kinds=None) -> Mixed:  # type: ignore[no-untyped-def]
    """The figures of a run: latencies (s), status counts (an exception's name for a failed
    request), wall seconds, the client's os.times() after and before, latencies by kind."""
    lat.sort()
    errors = sum(n for k, n in statuses.items() if not (isinstance(k, int) and k < 400))
    by_kind = {}
    for k, v in sorted((kinds or {}).items()):
        v.sort()
        by_kind[k] = {"n": len(v), "p50": round(_pct(v, 0.5), 1), "p99": round(_pct(v, 0.99), 1)}
    return Mixed(
        len(lat),
        wall,
        len(lat) / wall,
        _pct(lat, 0.50),
        _pct(lat, 0.99),
        errors,
        {str(k): n for k, n in sorted(statuses.items(), key=str)},
        (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        by_kind or None,
    )


def asyncio_load(
    base: str, paths: list[str], seconds: float, concurrency: int, limit: int = MAX_REQUESTS
) -> Mixed:
    """A light client: one process, ``concurrency`` keep-alive HTTP/1.1 connections on asyncio
    (uvloop when installed) with a minimal response reader (Content-Length or chunked); round
    robin over ``paths``; stops after ``seconds`` or ``limit`` requests. A connection error, a
    malformed answer or a status >= 400 is an error."""
    import asyncio
    from collections import Counter
    from urllib.parse import urlsplit

    u = urlsplit(base)
    host, port = u.hostname, u.port
    lat: list[float] = []
    kinds: dict[str, list[float]] = {}
    statuses: Counter = Counter()
    counter = [0]
    kind_of = [_kind(p) for p in paths]
    reqs = [
        f"GET {p} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept-Encoding: identity\r\n\r\n".encode()
        for p in paths
    ]

    async def read_answer(r: asyncio.StreamReader) -> int:
        head = await r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked = None, False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                await r.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await r.readexactly(length)
        return status

    async def connect(end: float):  # type: ignore[no-untyped-def]
        while True:
            try:
                r, w = await asyncio.open_connection(host, port)
            except OSError as e:  # counted, retried until the end
                statuses[type(e).__name__] += 1
                if time.perf_counter() >= end:
                    return None, None
                await asyncio.sleep(0.1)
                continue
            sock = w.transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return r, w

    async def conn(end: float) -> None:
        r, w = await connect(end)
        try:
            while w is not None and time.perf_counter() < end and counter[0] < limit:
                i = counter[0]
                counter[0] += 1
                t = time.perf_counter()
                try:
                    w.write(reqs[i % len(reqs)])
                    status = await asyncio.wait_for(read_answer(r), 60)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    # a dropped connection, a timeout (TimeoutError), a malformed answer
                    statuses[type(e).__name__] += 1
                    lat.append(time.perf_counter() - t)
                    w.close()
                    r, w = await connect(end)
                    continue
                dt = time.perf_counter() - t
                lat.append(dt)
                kinds.setdefault(kind_of[i % len(reqs)], []).append(dt)
                statuses[status] += 1
        finally:
            if w is not None:
                w.close()

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(conn(t0 + seconds) for _ in range(concurrency)))
        return time.perf_counter() - t0

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    cpu0 = os.times()
    wall = runner(run())
    return _mixed(lat, statuses, wall, os.times(), cpu0, kinds)


def httpx_load(base: str, paths: list[str], seconds: float, concurrency: int) -> Mixed:
    """The heavier client: ``concurrency`` threads with one keep-alive httpx client each (as
    :func:`load`), for ``seconds``; reports the same figures as :func:`asyncio_load`."""
    from collections import Counter

    lat: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    counter = [0]
    end = time.perf_counter() + seconds

    def worker() -> None:
        nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        with httpx.Client(base_url=base, timeout=60, transport=nodelay) as c:
            while time.perf_counter() < end:
                with lock:
                    i = counter[0]
                    if i >= MAX_REQUESTS:
                        return
                    counter[0] += 1
                t = time.perf_counter()
                try:
                    key = c.get(paths[i % len(paths)]).status_code
                except httpx.HTTPError as e:
                    key = type(e).__name__
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    statuses[key] += 1

    cpu0 = os.times()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return _mixed(lat, statuses, wall, os.times(), cpu0)


def wrk_mixed(base: str, paths: list[str], seconds: int, concurrency: int) -> Mixed:
    """wrk (Debian package, C) over the same paths; its own CPU from RUSAGE_CHILDREN."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = wrk_load(base, paths, seconds, concurrency)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = round(r.rps * seconds)
    return Mixed(
        n, seconds, r.rps, r.p50, r.p99, r.errors, {"non-2xx/3xx or socket": r.errors}, cpu
    )


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="mixed HTTP traffic on the sample city")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="landlink serve --workers")
    ap.add_argument("--client", choices=["asyncio", "httpx", "wrk"], default="asyncio")
    ap.add_argument("--reuse", action="store_true", help="reuse an analysed landlink_bench_http")
    ap.add_argument(
        "--only", choices=["tiles", "items", "lists", "search"], help="one kind of request alone"
    )
    ap.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="skip the warm-up (every URL once, unmeasured, so tiles are then from the cache)",
    )
    ns = ap.parse_args()
    if ns.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    url = sample_database(ns.reuse)
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "http_load_server.log"
    srv = start_serve(url, ns.workers, log)
    try:
        layers = sorted(httpx.get(srv.base + "/tiles/style.json").json()["sources"])
        colls = [c["id"] for c in httpx.get(srv.base + "/ogc/collections").json()["collections"]]
        layers = [s.rsplit("/", 1)[-1] for s in layers]
        paths = mixed_paths(url, layers, colls)
        if ns.only:
            paths = [p for p in paths if _kind(p) == ns.only]
        unique = list(dict.fromkeys(paths))
        if ns.warm:
            w = asyncio_load(srv.base, unique, 900, ns.concurrency, limit=len(unique))
            print(
                f"warm-up: every URL once, {w.requests} requests in {w.seconds:.1f} s "
                f"(p50 {w.p50:.1f} ms, p99 {w.p99:.1f} ms, errors {w.errors})",
                flush=True,
            )
        rss0, cpu0 = tree_usage(srv.proc.pid)
        busy0 = _machine_busy()
        loadavg0 = Path("/proc/loadavg").read_text().split()[:3]
        run = {"asyncio": asyncio_load, "httpx": httpx_load, "wrk": wrk_mixed}[ns.client]
        print(
            f"{ns.seconds} s of mixed traffic, {len(set(paths))} distinct URLs, concurrency "
            f"{ns.concurrency}, client {ns.client}, landlink serve --workers {ns.workers}"
            + (f", {ns.only} only" if ns.only else "")
            + " ...",
            flush=True,
        )
        res = run(srv.base, paths, ns.seconds, ns.concurrency)
        rss1, cpu1 = tree_usage(srv.proc.pid)
        busy1 = _machine_busy()
        loadavg1 = Path("/proc/loadavg").read_text().split()[:3]
        access_lines = sum(1 for _ in open(log, "rb"))
    finally:
        srv.stop()
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "client": ns.client,
        "workers": ns.workers,
        "concurrency": ns.concurrency,
        **res.__dict__,
        "server_rss_mb_before": round(rss0, 1),
        "server_rss_mb_after": round(rss1, 1),
        "server_cpu_s": round(cpu1 - cpu0, 1),
        "machine_busy_cpu_s": round(busy1 - busy0, 1),
        "warm_up": ns.warm,
        "only": ns.only,
        "client_cpu_s": round(res.client_cpu_s, 1),
        "loadavg_before": loadavg0,
        "loadavg_after": loadavg1,
        "server_log_lines": access_lines,
    }
    (OUT / "http_load.json").write_text(json.dumps(out, indent=1))
    print(
        f"{res.requests} requests in {res.seconds:.1f} s: {res.rps:.0f} requests/s, "
        f"p50 {res.p50:.1f} ms, p99 {res.p99:.1f} ms, errors {res.errors}\n"
        f"statuses {res.statuses}\n"
        f"server RSS {rss0:.0f} MB before, {rss1:.0f} MB after (server + workers); "
        f"CPU s during the load: server {cpu1 - cpu0:.1f}, client {res.client_cpu_s:.1f} "
        f"; the whole machine {busy1 - busy0:.1f} busy of {os.cpu_count() * res.seconds:.0f} "
        f"core-seconds (the rest: PostgreSQL and anything else running)\n"
        + "".join(
            f"  {k:7} n {v['n']:>7}  p50 {v['p50']:8.1f} ms  p99 {v['p99']:8.1f} ms\n"
            for k, v in (res.by_kind or {}).items()
        )
        + f"load average before {' '.join(loadavg0)}, after {' '.join(loadavg1)}"
    )


if __name__ == "__main__":
    main()
