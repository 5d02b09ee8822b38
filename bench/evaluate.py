"""bench/evaluate: link + per-mu + evaluate + §7 indicators (``landlink evaluate``, every year) on
the sample city and on a generated city 10× larger; prints wall time and peak memory of each and
how the time grows with size. Goal: under 10 s for the 10× city on the 2-core machine.

    .venv/bin/python bench/evaluate.py [--scales 1 10] [--repeat 2]

Each city is loaded once into its own scratch database (``landlink_bench_eval_<scale>``) with the
import refresh hook off (the load is not timed), then ``landlink evaluate`` runs in a fresh
process ``--repeat`` times; the best run counts (the machine is shared). Peak memory is the
client process's (the database server's own memory is not included). Results go to
bench/out/evaluate.json; docs/BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, ROOT, measure, scratch_database  # noqa: E402

_LOAD = """
import sys, tomllib
from pathlib import Path
from gis.core import graph
graph.defer()  # load without refreshing after every layer (one full refresh follows)
from app.cli import find_layer_files
from gis.core.db import get_engine
from gis.ingest import ImportOptions, import_file
d = Path(sys.argv[1])
man = {k.upper(): v for k, v in tomllib.loads((d / "manifest.toml").read_text()).items()}
for code, path in find_layer_files(d):
    o = man.get(code, {})
    import_file(get_engine(), code, path, ImportOptions(encoding=o.get("encoding"),
                crs=o.get("crs"), sheet=o.get("sheet")), user="bench")
"""


def _city(scale: int) -> Path:
    if scale == 1 and (ROOT / "sample_shapefiles" / "planted.json").exists():
        return ROOT / "sample_shapefiles"
    city = OUT / f"city{scale}"
    if not (city / "planted.json").exists():
        print(f"generating a scale-{scale} city in {city} ...", flush=True)
        landlink = str(ROOT / ".venv" / "bin" / "landlink")
        measure([landlink, "sample", "generate", "--out", str(city), "--scale", str(scale)])
    return city


def _timings(out: str) -> dict:
    for line in out.splitlines():
        if line.strip().startswith("timings:"):
            parts = line.split(":", 1)[1].split("  ")
            return {p.split()[0]: float(p.split()[1]) for p in parts if p.strip()}
    return {}


_CPU = """
import json, os, resource, sys, time
from sqlalchemy import text
from gis.core.db import get_engine
from gis.core import graph
eng = get_engine()
def ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
with eng.begin() as conn:
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    b0, c0, t0 = ticks(pid), time.process_time(), time.perf_counter()
    graph.refresh(conn, None, trigger="bench", targets=("evaluation_rows", "area_indicators"))
    b1, c1, t1 = ticks(pid), time.process_time(), time.perf_counter()
print(json.dumps({"wall": t1 - t0, "server_cpu": b1 - b0, "client_cpu": c1 - c0}))
"""


def _cpu(url: str) -> dict | None:
    """The chain in-process: wall time, and the CPU seconds of the database backend and of the
    client (their sum is what the wall time would be on an otherwise idle machine)."""
    r = subprocess.run(
        [sys.executable, "-c", _CPU],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:  # /proc of the server not readable (remote database)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--repeat", type=int, default=2)
    ns = ap.parse_args()
    landlink = str(ROOT / ".venv" / "bin" / "landlink")
    results = []
    for scale in ns.scales:
        city = _city(scale)
        url = scratch_database(f"landlink_bench_eval_{scale}")
        env = {**os.environ, "DATABASE_URL": url}
        print(f"loading the scale-{scale} city (not timed) ...", flush=True)
        subprocess.run([sys.executable, "-c", _LOAD, str(city)], env=env, check=True)
        runs = [measure([landlink, "evaluate"], {"DATABASE_URL": url}) for _ in range(ns.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        cpu = _cpu(url)
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        with eng.connect() as c:
            size = dict(
                c.execute(
                    text(
                        "SELECT 'parcels', count(*) FROM parcels UNION ALL "
                        "SELECT 'enterprises', count(*) FROM enterprises UNION ALL "
                        "SELECT 'enterprise_years', count(*) FROM outputs UNION ALL "
                        "SELECT 'links', count(*) FROM links UNION ALL "
                        "SELECT 'per_mu_rows', count(*) FROM per_mu"
                    )
                ).all()
            )
        eng.dispose()
        res = {
            "scale": scale,
            **size,
            "seconds": round(best["seconds"], 2),
            "all_runs_s": [round(r["seconds"], 2) for r in runs],
            "peak_mb": round(max(r["peak_mb"] for r in runs), 1),
            "steps_s": _timings(best["out"]),
            "load_average": os.getloadavg()[0],
            "cpu": cpu,
        }
        results.append(res)
        print(
            f"scale {scale:>3}: {size['enterprise_years']:>7} enterprise-years, "
            f"{size['parcels']:>6} parcels: {res['seconds']:6.2f} s wall, "
            f"{res['peak_mb']:6.1f} MB peak (client), steps {res['steps_s']}",
            flush=True,
        )
        if cpu:
            print(
                f"           in-process: {cpu['wall']:.2f} s wall, CPU {cpu['server_cpu']:.2f} s "
                f"database + {cpu['client_cpu']:.2f} s client = "
                f"{cpu['server_cpu'] + cpu['client_cpu']:.2f} s (load average "
                f"{res['load_average']:.1f})",
                flush=True,
            )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        ratio = b["seconds"] / a["seconds"]
        k = math.log(ratio) / math.log(b["enterprise_years"] / a["enterprise_years"])
        if a["cpu"] and b["cpu"]:
            ca = a["cpu"]["server_cpu"] + a["cpu"]["client_cpu"]
            cb = b["cpu"]["server_cpu"] + b["cpu"]["client_cpu"]
            kc = math.log(cb / ca) / math.log(b["enterprise_years"] / a["enterprise_years"])
            print(f"CPU growth: ×{cb / ca:.1f} (CPU ~ n^{kc:.2f})")
        print(
            f"growth: ×{ratio:.1f} time for ×{b['enterprise_years'] / a['enterprise_years']:.1f}"
            f" data (time ~ n^{k:.2f}); goal < 10 s at scale {b['scale']}: "
            + ("met" if b["seconds"] < 10 else "NOT met")
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "evaluate.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
