"""bench/plan: time a layout plan (§8) on the sample city and on a 10× city.

    .venv/bin/python bench/plan.py [--scales 1 10] [--runs 2] [--reuse]

For each scale the city comes from `landlink sample generate --scale N` (scale 1: the committed
sample_shapefiles/), is imported with `landlink import-dir` into a scratch database
``landlink_bench_plan_<N>`` and gets a three-lands run (`landlink detect`, as of the sample's
reference date); none of that is timed. Then, in this process, timed: the platform
classification (§4) and the whole plan (classification, parcels' zones, capacities, allocation,
blocks, functions, invariants, writing the plan), ``--runs`` times; the report's PDF once.
Goal: a plan under 5 s on the 10× city. Figures go to docs/PLATFORMS_AND_PLAN.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import OUT, ROOT, scratch_database  # noqa: E402

LANDLINK = str(ROOT / ".venv" / "bin" / "landlink")


def city_dir(scale: int) -> Path:
    if scale == 1 and (ROOT / "sample_shapefiles" / "planted.json").exists():
        return ROOT / "sample_shapefiles"
    d = OUT / f"city{scale}"
    if not (d / "planted.json").exists():
        print(f"generating a scale-{scale} city in {d} ...", flush=True)
        subprocess.run(
            [LANDLINK, "sample", "generate", "--out", str(d), "--scale", str(scale)],
            check=True,
            capture_output=True,
        )
    return d


def _existing(name: str) -> str | None:
    """The URL of an already loaded scratch database (``--reuse``), else None."""
    from sqlalchemy.engine import make_url

    from gis.core.config import Settings

    url = make_url(Settings().sqlalchemy_url).set(database=name)
    try:
        eng = create_engine(url)
        with eng.connect() as c:
            n = c.execute(text("SELECT count(*) FROM parcels")).scalar_one()
            runs = c.execute(text("SELECT count(*) FROM detection_runs")).scalar_one()
        eng.dispose()
    except Exception:
        return None
    return url.render_as_string(hide_password=False) if n and runs else None


def load(scale: int, reuse: bool) -> tuple[str, date]:
    d = city_dir(scale)
    as_of = date.fromisoformat(json.loads((d / "planted.json").read_text())["reference_date"])
    name = f"landlink_bench_plan_{scale}"
    if reuse and (url := _existing(name)):
        print(f"scale {scale}: reusing {name}", flush=True)
        return url, as_of
    url = scratch_database(name)
    env = {**os.environ, "DATABASE_URL": url}
    t = time.perf_counter()
    subprocess.run([LANDLINK, "import-dir", str(d)], check=True, capture_output=True, env=env)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(
        [LANDLINK, "detect", "--as-of", as_of.isoformat()],
        check=True,
        capture_output=True,
        env=env,
    )
    print(
        f"scale {scale}: imported in {t_import:.1f} s, three-lands run in "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )
    return url, as_of


def bench(url: str, as_of: date, runs: int) -> dict:
    from gis.platforms.layout_plan import create, default_request
    from gis.platforms.plan_report import render
    from gis.platforms.platform_kinds import classify

    eng = create_engine(url)
    with eng.connect() as c:
        counts = {
            t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("parcels", "enterprises", "outputs", "platforms")
        }
    t = time.perf_counter()
    with eng.connect() as c:
        classify(c, as_of)
    t_classify = time.perf_counter() - t
    req = default_request(eng, name="bench")
    req.as_of = as_of
    plan_s = []
    res = None
    for _ in range(runs):
        t = time.perf_counter()
        res = create(eng, req, user="bench")
        plan_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    pdf, _ = render(eng, res["id"], "pdf", analyst=True)
    t_pdf = time.perf_counter() - t
    with eng.connect() as c:
        blocks = c.execute(
            text("SELECT count(*) FROM plan_blocks WHERE plan_id = :i"), {"i": res["id"]}
        ).scalar_one()
    eng.dispose()
    return {
        **counts,
        "blocks": blocks,
        "classify_s": round(t_classify, 2),
        "plan_s": [round(x, 2) for x in plan_s],
        "report_pdf_s": round(t_pdf, 2),
        "pdf_kib": len(pdf) // 1024,
        "invariants_hold": all(v["holds"] for v in res["invariants"].values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse loaded scratch databases")
    ns = ap.parse_args()
    results = {}
    for scale in ns.scales:
        url, as_of = load(scale, ns.reuse)
        results[scale] = bench(url, as_of, ns.runs)
        print(f"scale {scale}: {json.dumps(results[scale])}", flush=True)
    print()
    print(f"{'scale':>5}{'parcels':>9}{'blocks':>8}{'classify s':>12}{'plan s':>16}{'pdf s':>8}")
    for scale, r in results.items():
        plan = " / ".join(f"{x:.2f}" for x in r["plan_s"])
        print(
            f"{scale:>5}{r['parcels']:>9}{r['blocks']:>8}{r['classify_s']:>12.2f}{plan:>16}"
            f"{r['report_pdf_s']:>8.2f}"
        )
    worst = max(results[max(results)]["plan_s"])
    print(
        f"goal: plan < 5 s on the largest city: {'met' if worst < 5 else 'NOT met'} ({worst:.2f} s)"
    )


if __name__ == "__main__":
    main()
