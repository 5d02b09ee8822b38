"""bench/detect: a full detection run (三块地) on the sample city and on a generated large city;
prints the time and peak memory of each, client process and PostgreSQL backend.

    .venv/bin/python bench/detect.py [--parcels 100000] [--approvals 20000] [--skip-sample]

The sample city (sample_shapefiles/, `landlink sample generate`) is imported into a scratch
database and detected as of its planted.json reference date. The large city is written straight
into another scratch database by SQL (deterministic, ``setseed``): approvals on a grid, each split
into lots; about 85 % of approvals have some lots supplied (with overlapping and approval-crossing
supplies among them), one parcel per lot up to the parcel count, enterprises and a year of output
on most parcels; all statuses of §3 occur. Goal: under 10 s for 100,000 parcels and 20,000
approvals. Figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import ROOT, measure, scratch_database  # noqa: E402

# Run in a fresh process: one pooled connection, so the backend doing the work is known and its
# peak resident memory (VmHWM) can be read after the run.
_RUN = """
import json, resource, sys, time
from datetime import date
from sqlalchemy import create_engine, text
from gis.lands.detection import run_detection
url, as_of = sys.argv[1], date.fromisoformat(sys.argv[2])
eng = create_engine(url, pool_size=1, max_overflow=0)
with eng.connect() as c:
    pid = c.execute(text("SELECT pg_backend_pid()")).scalar_one()
t = time.perf_counter()
run = run_detection(eng, as_of, user="bench")
dt = time.perf_counter() - t
try:
    status = open(f"/proc/{pid}/status").read()
    hwm = [int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM")][0] / 1024
except OSError:
    hwm = None
print(json.dumps({"seconds": dt, "backend_peak_mb": hwm, "counts": run["counts"],
                  "notes": run["notes"], "client_peak_mb":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

GENERATE = [
    "SELECT setseed(0.20261128)",
    # 13 districts as vertical strips, 20 platforms, 2 corridors over the grid
    """
    INSERT INTO districts (code, name, main_urban, geom, batch_id, row_hash)
    SELECT c, '区' || i, i < 6,
           ST_Multi(ST_MakeEnvelope(:x0 + (i - 1) * :w / 13, :y0 - 1000,
                                    :x0 + i * :w / 13, :y0 + :h + 1000, 4549)), 0, md5(c)
    FROM (SELECT i, (330100 + i)::text AS c FROM generate_series(1, 13) i) d
    """,
    """
    INSERT INTO platforms (code, name, level, geom, batch_id, row_hash)
    SELECT 'PT' || lpad(i::text, 2, '0'), '平台' || i, '省级',
           ST_Multi(ST_MakeEnvelope(:x0 + ((i - 1) % 5) * :w / 5 + 500,
                                    :y0 + ((i - 1) / 5) * :h / 4 + 500,
                                    :x0 + ((i - 1) % 5 + 1) * :w / 5 - 500,
                                    :y0 + ((i - 1) / 5 + 1) * :h / 4 - 500, 4549)),
           0, md5(i::text)
    FROM generate_series(1, 20) i
    """,
    """
    INSERT INTO corridors (code, name, geom, batch_id, row_hash)
    VALUES ('CXKC', '城西科创大走廊',
            ST_Multi(ST_Buffer(ST_MakeLine(ST_SetSRID(ST_MakePoint(:x0, :y0 + :h * 0.3), 4549),
                     ST_SetSRID(ST_MakePoint(:x0 + :w, :y0 + :h * 0.35), 4549)), 3000)), 0, 'a'),
           ('CDZZ', '城东智造大走廊',
            ST_Multi(ST_Buffer(ST_MakeLine(ST_SetSRID(ST_MakePoint(:x0, :y0 + :h * 0.75), 4549),
                     ST_SetSRID(ST_MakePoint(:x0 + :w, :y0 + :h * 0.7), 4549)), 3500)), 0, 'b')
    """,
    # approvals: 300 m x 200 m blocks on a grid with 20 m roads; 6 lots of 100 x 100 each
    """
    CREATE TEMP TABLE blk AS
    SELECT i, :x0 + (i % :cols) * 320.0 AS x, :y0 + (i / :cols) * 220.0 AS y,
           random() AS r1, random() AS r2, random() AS r3
    FROM generate_series(0, :n_pz - 1) i
    """,
    """
    INSERT INTO approvals (doc_no, batch_name, approved_on, geom, batch_id, row_hash)
    SELECT '浙土字[' || (2012 + i % 13) || ']' || i || '号', '杭州市第' || (i % 50) || '批次',
           DATE '2012-01-01' + (r1 * 4900)::int,
           ST_Multi(ST_MakeEnvelope(x, y, x + 300, y + 200, 4549)), 0, md5(i::text)
    FROM blk
    """,
    """
    CREATE TEMP TABLE lot AS
    SELECT b.i, k, b.x + (k % 3) * 100 AS x, b.y + (k / 3) * 100 AS y, b.r1, b.r2,
           random() AS s1, random() AS s2, random() AS s3, random() AS s4
    FROM blk b, generate_series(0, 5) k
    """,
    # supplies: in 85 % of approvals, a share of the lots; 1 in 40 overlaps its neighbour lot by
    # 30 m, 1 in 50 crosses the road into the next approval; a few 4 m slivers left unsupplied
    """
    INSERT INTO supplies (supply_no, method, land_use_code, supplied_on, agreed_start,
        agreed_completion, actual_start, actual_completion, stopped_on, plot_ratio_min,
        agreed_investment, investment_made, developed_area_m2, geom, batch_id, row_hash)
    SELECT '3301' || lpad(i::text, 6, '0') || k, '出让', '1001',
           DATE '2014-01-01' + (s1 * 3800)::int,
           DATE '2014-06-01' + (s1 * 3800)::int,
           DATE '2016-06-01' + (s1 * 3800)::int,
           CASE WHEN s2 < 0.7 THEN DATE '2014-08-01' + (s1 * 3800)::int END,
           CASE WHEN s2 < 0.5 THEN DATE '2016-01-01' + (s1 * 3800)::int END,
           CASE WHEN s2 BETWEEN 0.6 AND 0.7 THEN DATE '2015-01-01' + (s1 * 3800)::int END,
           CASE WHEN s3 < 0.6 THEN 1.2 END,
           5000, 5000 * s4, 10000 * s4,
           ST_Multi(CASE
               WHEN s3 > 0.98 THEN ST_MakeEnvelope(x, y, x + 125, y + 100, 4549)
               WHEN s3 > 0.975 THEN ST_MakeEnvelope(x, y, x + 130, y + 100, 4549)
               WHEN s3 > 0.95 THEN ST_MakeEnvelope(x + 4, y, x + 100, y + 100, 4549)
               ELSE ST_MakeEnvelope(x, y, x + 100, y + 100, 4549) END),
           0, md5(i::text || k)
    FROM lot WHERE r2 < 0.85 AND k < 1 + (r1 * 6)::int
    """,
    # parcels: one per lot up to the count, DZJGH where a supply record exists on that lot
    """
    INSERT INTO parcels (parcel_no, land_use_code, actual_use, floor_area_m2, footprint_m2,
        supply_no, geom, batch_id, row_hash)
    SELECT 'DK' || lpad(i::text, 6, '0') || k, '1001',
           CASE WHEN s4 < 0.02 THEN '挪作他用' WHEN s4 < 0.04 THEN '闲置' ELSE '工业' END,
           round((2000 + s3 * 20000)::numeric), round((200 + s2 * 6000)::numeric),
           (SELECT supply_no FROM supplies g
            WHERE g.supply_no = '3301' || lpad(i::text, 6, '0') || k),
           ST_Multi(ST_MakeEnvelope(x + 1, y + 1, x + 99, y + 99, 4549)), 0, md5(i::text || k)
    FROM lot ORDER BY i, k LIMIT :n_dk
    """,
    # enterprises on 80 % of parcels (1 in 20 by point instead of DKBH), output for 2024
    """
    INSERT INTO enterprises (uscc, name, industry_code, above_size, parcel_nos, geom,
                             batch_id, row_hash)
    SELECT '91330100' || lpad(id::text, 10, '0'), '企业' || id, '2611', id % 3 = 0,
           CASE WHEN id % 20 <> 0 THEN ARRAY[parcel_no] END,
           ST_PointOnSurface(geom), 0, md5(parcel_no)
    FROM parcels WHERE id % 5 <> 0
    """,
    """
    INSERT INTO outputs (uscc, year, tax_paid, revenue, declared_land_m2, batch_id, row_hash)
    SELECT uscc, 2024, round((random() * 300)::numeric, 1), round((random() * 30000)::numeric),
           CASE WHEN random() < 0.5 THEN 9000 END, 0, md5(uscc)
    FROM enterprises
    """,
    "ANALYZE",
]


def generate_city(url: str, n_dk: int, n_pz: int) -> dict:
    cols = 200
    params = {
        "x0": 400_000.0,
        "y0": 3_300_000.0,
        "w": cols * 320.0,
        "h": (n_pz // cols + 1) * 220.0,
        "cols": cols,
        "n_pz": n_pz,
        "n_dk": n_dk,
    }
    eng = create_engine(url)
    with eng.begin() as c:
        for sql in GENERATE:
            c.execute(text(sql), params) if ":" in sql else c.execute(text(sql))
        counts = {
            t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("approvals", "supplies", "parcels", "enterprises", "outputs")
        }
    eng.dispose()
    return counts


def _run(url: str, as_of: date) -> dict:
    r = measure([sys.executable, "-c", _RUN, url, as_of.isoformat()], {"PYTHONPATH": str(ROOT)})
    return json.loads(r["out"].strip().splitlines()[-1]) | {"process_seconds": r["seconds"]}


def sample_city() -> tuple[str, date] | None:
    sample = ROOT / "sample_shapefiles"
    if not (sample / "planted.json").exists():
        return None
    url = scratch_database("landlink_bench_detect_sample")
    from app.cli import find_layer_files
    from gis.ingest import ImportOptions, import_file

    manifest = {}
    if (sample / "manifest.toml").exists():
        manifest = {
            k.upper(): v
            for k, v in tomllib.loads((sample / "manifest.toml").read_text("utf-8")).items()
        }
    eng = create_engine(url)
    for code, path in find_layer_files(sample):
        o = manifest.get(code, {})
        import_file(
            eng,
            code,
            path,
            ImportOptions(encoding=o.get("encoding"), crs=o.get("crs"), sheet=o.get("sheet")),
            user="bench",
        )
    eng.dispose()
    ref = json.loads((sample / "planted.json").read_text("utf-8"))["reference_date"]
    return url, date.fromisoformat(ref)


def _print(name: str, inputs: dict, r: dict) -> None:
    c = r["counts"]
    print(
        f"{name:28}{inputs.get('parcels', 0):>9}{inputs.get('approvals', 0):>8}"
        f"{inputs.get('supplies', 0):>8}{r['seconds']:>9.2f}{r['client_peak_mb']:>9.0f}"
        f"{(r['backend_peak_mb'] or 0):>10.0f}"
    )
    print(f"    steps (s): {c.get('timings_s')}")
    u, i, le = c["unsupplied"], c["idle"], c["low_efficiency"]
    print(
        f"    unsupplied {u['unsupplied']} partial {u['partial']} supplied {u['supplied']}; "
        f"idle "
        + " ".join(f"{k} {v}" for k, v in sorted(i.items()))
        + f"; low-efficiency parcels {le['parcels']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--approvals", type=int, default=20_000)
    ap.add_argument("--skip-sample", action="store_true")
    ns = ap.parse_args()
    rows = []
    if not ns.skip_sample:
        s = sample_city()
        if s is None:
            print("no sample city (landlink sample generate --out sample_shapefiles): skipped")
        else:
            url, ref = s
            eng = create_engine(url)
            with eng.connect() as c:
                inputs = {
                    t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("approvals", "supplies", "parcels")
                }
            eng.dispose()
            rows.append((f"sample city as of {ref}", inputs, _run(url, ref)))
    url = scratch_database("landlink_bench_detect_large")
    inputs = generate_city(url, ns.parcels, ns.approvals)
    print(f"generated city: {inputs}", flush=True)
    rows.append(("generated city", inputs, _run(url, date(2025, 6, 30))))
    print(f"\nbench/detect: full detection run (三块地), {os.cpu_count()} cores")
    print(f"{'city':28}{'parcels':>9}{'PZ':>8}{'GD':>8}{'seconds':>9}{'py MB':>9}{'pg MB':>10}")
    for name, inp, r in rows:
        _print(name, inp, r)


if __name__ == "__main__":
    main()
