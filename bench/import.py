"""bench/import: load a generated 100,000-parcel DK shapefile with `landlink import` and with
`ogr2ogr -f PostgreSQL` (PG_USE_COPY) into the same database, in one run; print both times, the
ratio and peak memory. Goal: landlink <= 1.5 x ogr2ogr while validating everything.

    .venv/bin/python bench/import.py [--scale 20]

The city is made by `landlink sample generate --scale N` (scale 20 gives about 100,000 parcels);
districts and supply records are imported first (not timed) so DK's references can be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyogrio  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import OUT, ROOT, libpq_dsn, measure, scratch_database  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=int, default=20)
    ns = ap.parse_args()
    city = OUT / f"city{ns.scale}"
    landlink = str(ROOT / ".venv" / "bin" / "landlink")
    if not (city / "DK.shp").exists():
        print(f"generating a scale-{ns.scale} city in {city} ...", flush=True)
        measure([landlink, "sample", "generate", "--out", str(city), "--scale", str(ns.scale)])
    n = pyogrio.read_info(city / "DK.shp")["features"]
    url = scratch_database("landlink_bench_import")
    env = {"DATABASE_URL": url}
    for code in ("XZQ", "GD"):
        measure([landlink, "import", code.lower(), str(city / f"{code}.shp")], env)

    reports = [OUT / "import_new.json", OUT / "import_again.json"]
    ll = measure([landlink, "import", "dk", str(city / "DK.shp"), "--report", str(reports[0])], env)
    again = measure(
        [landlink, "import", "dk", str(city / "DK.shp"), "--report", str(reports[1])], env
    )
    new_rep, again_rep = (json.loads(r.read_text()) for r in reports)
    ogr = measure(
        [
            "ogr2ogr",
            "--config",
            "PG_USE_COPY",
            "YES",
            "-f",
            "PostgreSQL",
            f"PG:{libpq_dsn(url)}",
            str(city / "DK.shp"),
            "-nln",
            "bench_dk_ogr2ogr",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-nlt",
            "PROMOTE_TO_MULTI",
            "-t_srs",
            "EPSG:4549",
            "-overwrite",
        ],
        env,
    )
    eng = create_engine(url)
    with eng.connect() as c:
        loaded = c.execute(text("SELECT count(*) FROM parcels")).scalar()
        ogr_rows = c.execute(text("SELECT count(*) FROM bench_dk_ogr2ogr")).scalar()
    eng.dispose()
    refresh_s = new_rep.get("timings_s", {}).get("refresh", 0.0)
    print(
        f"\nbench/import: DK shapefile with {n} parcels (scale {ns.scale}), {os.cpu_count()} cores"
    )
    print(f"{'loader':34}{'rows':>9}{'seconds':>10}{'peak MB':>10}")
    print(
        f"{'landlink import dk (new rows)':34}{new_rep['inserted']:>9}{ll['seconds']:>10.2f}"
        f"{ll['peak_mb']:>10.0f}"
    )
    print(
        f"{'landlink import dk (re-import)':34}{again_rep['unchanged']:>9}"
        f"{again['seconds']:>10.2f}{again['peak_mb']:>10.0f}"
    )
    print(
        f"{'ogr2ogr -f PostgreSQL (COPY)':34}{ogr_rows:>9}{ogr['seconds']:>10.2f}"
        f"{ogr['peak_mb']:>10.0f}"
    )
    print(f"ratio landlink / ogr2ogr: {ll['seconds'] / ogr['seconds']:.2f} (goal <= 1.5)")
    print(
        f"  new rows, inside the process: {new_rep['timings_s']}; the derived-figure refresh "
        f"after the load ({', '.join(new_rep.get('refreshed', []))}) took {refresh_s:.2f} s; "
        f"without it the ratio would be {(ll['seconds'] - refresh_s) / ogr['seconds']:.2f}"
    )
    print(f"  re-import, inside the process: {again_rep['timings_s']}")
    assert loaded == new_rep["inserted"] == again_rep["unchanged"] == n


if __name__ == "__main__":
    main()
