"""bench/features: OGC API Features /items pages of 1,000 parcels, landlink against tipg.

    .venv/bin/python -m bench.features [--workers 2] [--concurrency 8]

Same database and parcels table as bench/tiles, same number of uvicorn workers, loopback. The
fixed set: pages at offsets 0, 1000, ..., 19000 (GeoJSON, CRS84), requested round robin.
Printed: requests/s, p50 and p99 (ms), mean page size, landlink ÷ tipg, and the SQL floor
(landlink's page query alone, by pgbench). Writes bench/out/features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from sqlalchemy import create_engine

from bench.common import OUT, pgbench_latency
from bench.http_load import bench_database, load, start_landlink, start_tipg
from gis.serving import features_sql as fs
from gis.serving.collections import registry

PAGE = 1000
OFFSETS = list(range(0, 20_000, PAGE))
REQUESTS = 200


def pgbench_floor(url: str, seconds: int = 8) -> float:
    """Mean SQL time (ms) of landlink's /items page query (1,000 parcels as GeoJSON text)."""
    eng = create_engine(url)
    with eng.connect() as c:
        coll = registry(c)["parcels"]
    eng.dispose()
    scripts = []
    for off in OFFSETS:
        q, _, params = fs.page_sql(coll, fs.ItemsRequest(limit=PAGE, offset=off))
        q = re.sub(r"(?<![:\w]):(\w+)", lambda m, p=params: repr(p[m.group(1)]), q)
        sql = "SET jit = off; " + q + ";"  # as the server runs it
        scripts.append(" ".join(sql.split()) + "\n")
    return pgbench_latency(url, scripts, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ns = ap.parse_args()
    url = bench_database()
    floor = pgbench_floor(url)
    tp = start_tipg(url, ns.workers, ["parcels"])
    try:
        urls = [
            f"{tp.base}/collections/public.parcels/items?limit={PAGE}&offset={o}" for o in OFFSETS
        ]
        load(urls[:2], 2, 1)
        tipg = load(urls, REQUESTS, ns.concurrency)
    finally:
        tp.stop()
    ll = start_landlink(url, ns.workers, cache=True)
    try:
        urls = [f"{ll.base}/ogc/collections/parcels/items?limit={PAGE}&offset={o}" for o in OFFSETS]
        load(urls[:2], 2, 1)
        mine = load(urls, REQUESTS, ns.concurrency)
    finally:
        ll.stop()
    row = {
        "landlink_rps": round(mine.rps, 1),
        "landlink_p50": round(mine.p50, 1),
        "landlink_p99": round(mine.p99, 1),
        "landlink_mean_kb": round(mine.mean_bytes / 1024),
        "tipg_rps": round(tipg.rps, 1),
        "tipg_p50": round(tipg.p50, 1),
        "tipg_p99": round(tipg.p99, 1),
        "tipg_mean_kb": round(tipg.mean_bytes / 1024),
        "ratio": round(mine.rps / tipg.rps, 2) if tipg.rps else None,
        "sql_floor_ms": floor,
        "errors": mine.errors + tipg.errors,
    }
    print(
        f"\nbench/features: /items pages of {PAGE} parcels, {ns.workers} workers each, "
        f"{ns.concurrency} client threads on loopback, {os.cpu_count()} cores"
    )
    print(f"{'':9} {'r/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'page KB':>8}")
    print(
        f"{'landlink':9} {row['landlink_rps']:>7} {row['landlink_p50']:>8} "
        f"{row['landlink_p99']:>8} {row['landlink_mean_kb']:>8}"
    )
    print(
        f"{'tipg':9} {row['tipg_rps']:>7} {row['tipg_p50']:>8} {row['tipg_p99']:>8} "
        f"{row['tipg_mean_kb']:>8}"
    )
    print(
        f"landlink / tipg: {row['ratio']}   SQL floor per page (pgbench): {floor} ms   "
        f"errors: {row['errors']}"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "features.json").write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
