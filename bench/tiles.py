"""bench/tiles: landlink's vector tiles against tipg on the same database and parcels table.

    .venv/bin/python -m bench.tiles [--workers 2] [--connections 8] [--seconds 10]
    .venv/bin/python -m bench.tiles --sizes     # largest tile per layer and zoom

Both servers run with the same number of uvicorn workers (through bench/serve.py) on loopback,
loaded by wrk round robin over the same fixed set of parcel tiles per zoom (the busiest tiles of
the sample city at 10, 12, 14, 16) for the same time and connections. Rows:
uncached (landlink with its tile cache off; tipg has none) and cached (landlink's cache warmed
by one pass; tipg again, as it caches nothing). Printed: requests/s, p50 and p99 (ms), mean and
largest tile, landlink ÷ tipg, and the floor: the SQL time per tile of landlink's query alone,
from pgbench (one client, prepared). Writes bench/out/tiles.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re

import httpx
from sqlalchemy import create_engine, text

from bench.common import OUT, pgbench_latency
from bench.http_load import Result, bench_database, start_landlink, start_tipg, wrk_load
from gis.serving.tiles import tile_for

ZOOMS = {10: 8, 12: 24, 14: 60, 16: 60}  # zoom -> tiles in the fixed set


def tile_set(url: str) -> dict[int, list[tuple[int, int]]]:
    """The busiest tiles per zoom: tiles holding most of a 1-in-50 sample of parcel points."""
    eng = create_engine(url)
    with eng.connect() as c:
        pts = c.execute(
            text(
                "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326)"
                " AS g FROM parcels WHERE id % 50 = 0) q"
            )
        ).all()
    eng.dispose()
    out = {}
    for z, n in ZOOMS.items():
        counts: dict[tuple[int, int], int] = {}
        for lon, lat in pts:
            t = tile_for(lon, lat, z)
            counts[t] = counts.get(t, 0) + 1
        out[z] = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
    return out


def pgbench_floor(url: str, z: int, tiles: list[tuple[int, int]], seconds: int = 8) -> float:
    """Mean SQL time per tile (ms) of landlink's tile query, by pgbench."""
    from gis.serving.tiles import tile_params, tilesets

    eng = create_engine(url)
    with eng.connect() as c:
        ts = tilesets(c)["parcels"]
    eng.dispose()
    scripts = []
    for x, y in tiles:
        params = tile_params(ts, z, x, y)  # as the server binds them (gis/tiles.render)
        sql = re.sub(r"%\((\w+)\)s", lambda m, p=params: repr(p[m.group(1)]), ts.sql(z, False))
        # as the server runs it: JIT off (gis/tiles.render)
        scripts.append("SET jit = off;\n" + " ".join(sql.split()) + ";\n")
    return pgbench_latency(url, scripts, seconds, prepared=True)


def _row(z: int, mode: str, ll: Result, tp: Result, floor: float) -> dict:
    return {
        "zoom": z,
        "mode": mode,
        "landlink_rps": round(ll.rps, 1),
        "landlink_p50": round(ll.p50, 2),
        "landlink_p99": round(ll.p99, 2),
        "tipg_rps": round(tp.rps, 1),
        "tipg_p50": round(tp.p50, 2),
        "tipg_p99": round(tp.p99, 2),
        "ratio": round(ll.rps / tp.rps, 2) if tp.rps else None,
        "landlink_mean_kb": round(ll.mean_bytes / 1024, 1),
        "landlink_max_kb": round(ll.max_bytes / 1024, 1),
        "tipg_mean_kb": round(tp.mean_bytes / 1024, 1),
        "tipg_max_kb": round(tp.max_bytes / 1024, 1),
        "sql_floor_ms": floor,
        "errors": ll.errors + tp.errors,
    }


def sizes(base: str, paths: list[str]) -> tuple[float, int]:
    """Mean and largest body (bytes) of one pass over the tiles (also a warm-up)."""
    with httpx.Client(timeout=120) as c:
        n = [len(c.get(base + p).content) for p in paths]
    return sum(n) / len(n), max(n)


def size_sweep(url: str, zooms: range = range(6, 15)) -> dict:
    """Largest tile (KB) of every tile layer at each zoom, over the tiles holding the most
    features (rendered in-process, cache off): the "no tile over 500 KB" check."""
    from gis.core.db import engine_for
    from gis.serving.tiles import render, tilesets

    eng = engine_for(url)
    with eng.connect() as c:
        sets = tilesets(c)
        pts = c.execute(
            text(
                "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326)"
                " AS g FROM supplies WHERE id % 50 = 0) q"
            )
        ).all()
    out: dict = {}
    for z in zooms:
        counts: dict[tuple[int, int], int] = {}
        for lon, lat in pts:
            t = tile_for(lon, lat, z)
            counts[t] = counts.get(t, 0) + 1
        busiest = [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:4]]
        for lid, ts in sets.items():
            top = max(len(render(eng, ts, z, x, y, False)[0]) for x, y in busiest)
            out.setdefault(lid, {})[z] = round(top / 1024, 1)
    return out


def prepare(url: str) -> None:
    """Tile aggregates current before measuring: the tiles producer, full (a reader builds
    nothing: without it the tiles answer from what the database holds)."""
    from datetime import date

    from gis.core.db import engine_for
    from gis.core.graph import Context
    from gis.core.rules import get_rules
    from gis.serving.tiles import refresh_tiles

    eng = engine_for(url)
    with eng.begin() as c:
        refresh_tiles(c, Context(as_of=date.today(), rules=get_rules()), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--sizes", action="store_true", help="only the largest-tile sweep")
    ns = ap.parse_args()
    url = bench_database()
    if ns.sizes:
        sweep = size_sweep(url)
        zs = sorted(next(iter(sweep.values())))
        print("largest tile (KB) per layer and zoom, 4 busiest tiles each")
        print(f"{'layer':15}" + "".join(f"{'z' + str(z):>8}" for z in zs))
        for lid, row in sweep.items():
            print(f"{lid:15}" + "".join(f"{row[z]:>8}" for z in zs))
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "tile_sizes.json").write_text(json.dumps(sweep, indent=1))
        return
    tiles = tile_set(url)
    prepare(url)
    floors = {z: pgbench_floor(url, z, ts) for z, ts in tiles.items()}
    tipg_res: dict[int, Result] = {}
    tp = start_tipg(url, ns.workers, ["parcels"])
    try:
        for z, ts in tiles.items():
            paths = [
                f"/collections/public.parcels/tiles/WebMercatorQuad/{z}/{x}/{y}" for x, y in ts
            ]
            mean, top = sizes(tp.base, paths)
            tipg_res[z] = wrk_load(tp.base, paths, ns.seconds, ns.connections)
            tipg_res[z].mean_bytes, tipg_res[z].max_bytes = mean, top
    finally:
        tp.stop()
    rows = []
    for cache in (False, True):
        ll = start_landlink(url, ns.workers, cache)
        try:
            for z, ts in tiles.items():
                paths = [f"/tiles/parcels/{z}/{x}/{y}.mvt" for x, y in ts]
                mean, top = sizes(ll.base, paths)
                if cache:
                    wrk_load(ll.base, paths, 3, ns.connections)  # every worker caches the set
                res = wrk_load(ll.base, paths, ns.seconds, ns.connections)
                res.mean_bytes, res.max_bytes = mean, top
                rows.append(_row(z, "cached" if cache else "uncached", res, tipg_res[z], floors[z]))
        finally:
            ll.stop()
    print(
        f"\nbench/tiles: parcels tiles, {ns.workers} workers each, wrk with "
        f"{ns.connections} connections for {ns.seconds} s per row on loopback, "
        f"{os.cpu_count()} cores; tipg has no tile cache (its row is the same in both modes)"
    )
    hdr = (
        f"{'z':>3} {'mode':9} {'landlink r/s':>12} {'p50':>7} {'p99':>8} {'tipg r/s':>9} "
        f"{'p50':>7} {'p99':>8} {'ll/tipg':>8} {'ll max KB':>9} {'tipg max KB':>11} "
        f"{'SQL ms':>7}"
    )
    print(hdr)
    for r in rows:
        print(
            f"{r['zoom']:>3} {r['mode']:9} {r['landlink_rps']:>12} {r['landlink_p50']:>7} "
            f"{r['landlink_p99']:>8} {r['tipg_rps']:>9} {r['tipg_p50']:>7} {r['tipg_p99']:>8} "
            f"{r['ratio']:>8} {r['landlink_max_kb']:>9} {r['tipg_max_kb']:>11} "
            f"{r['sql_floor_ms']:>7}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tiles.json").write_text(json.dumps({"rows": rows, "tiles": tiles}, indent=1))


if __name__ == "__main__":
    main()
