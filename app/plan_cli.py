"""``landlink classify`` and ``landlink plan ...``, registered by app/cli.py."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from app.cli_options import iso_date


def _engine():
    from gis.core.db import get_engine

    return get_engine()


def cmd_classify(ns) -> int:
    from gis.platforms.platform_kinds import record

    with _engine().begin() as conn:
        res = record(conn, "cli", f"cli:{getpass.getuser()}", ns.as_of)
    items = [it for it in res["items"] if not ns.kind or it["kind"] == ns.kind]
    median = res["median_tax_per_mu"]
    print(
        f"classification run {res['run_id']} as of {res['as_of']}: 亩均税收 {res['tax_year']} "
        f"({res['tax_source']}), median of platforms "
        + (f"{median:.2f} 万元/亩" if median is not None else "n/a")
    )
    print(f"{'PTDM':13}{'kind':20}{'host':13}{'km²':>7}{'亩均税收':>9}  name")
    for it in items:
        tax = it["tax_per_mu"]
        flag = " (override)" if it["override"] else ""
        print(
            f"{it['platform_id']:13}{it['kind']:20}{it['host_id'] or '':13}"
            f"{it['area_km2']:>7.2f}{'' if tax is None else f'{tax:.2f}':>11}  {it['name']}{flag}"
        )
    counts: dict[str, int] = {}
    for it in res["items"]:
        counts[it["kind"]] = counts.get(it["kind"], 0) + 1
    print("  " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_plan_create(ns) -> int:
    from gis.platforms.layout_plan import PlanRefused, PlanRequest, create

    weights = None
    if ns.weights:
        try:
            weights = json.loads(ns.weights)
        except json.JSONDecodeError as e:
            print(f"ERROR --weights is not JSON: {e}", file=sys.stderr)
            return 2
    req = PlanRequest(
        target_year=ns.target_year,
        floor_mu=ns.floor_mu,
        new_land_mu=ns.new_land_mu,
        corridor_min_share=ns.corridor_min_share,
        weights=weights,
        name=ns.name,
        as_of=ns.as_of,
    )
    try:
        res = create(_engine(), req, user=f"cli:{getpass.getuser()}")
    except PlanRefused as e:
        print(f"REFUSED: {e.reason}", file=sys.stderr)
        return 1
    t = res["totals"]
    print(f"plan {res['id']} ({res['name']} v{res['version']}) in {res['seconds']:.2f} s")
    print(
        f"  new land {t['new_land_mu']:.2f} 亩, in the corridors {t['corridor_new_mu']:.2f} 亩; "
        f"industrial land {t['industrial_mu_today']:.2f} -> {t['industrial_mu_after']:.2f} 亩 "
        f"(floor {ns.floor_mu:.2f})"
    )
    for f, b in t["blocks"].items():
        print(f"  {f:16} {b['blocks']:>5} blocks {b['area_mu']:>12.2f} 亩")
    for k, v in res["invariants"].items():
        print(f"  invariant {k}: {'holds' if v['holds'] else 'BROKEN'}")
    for n in res["notes"]:
        print(f"  note: {n}")
    print(f"  report: landlink plan report {res['id']} --format pdf --out plan-{res['id']}.pdf")
    return 0


def cmd_plan_list(ns) -> int:
    from gis.platforms.layout_plan import list_plans

    for p in list_plans(_engine(), analyst=True):
        t = p["totals"]
        print(
            f"{p['id']:>5}  {p['name']} v{p['version']}  {p['target_year']}  new "
            f"{t['new_land_mu']:.0f} 亩  after {t['industrial_mu_after']:.0f} 亩  {p['created_at']}"
        )
    return 0


def cmd_plan_report(ns) -> int:
    from gis.platforms.layout_plan import PlanNotFound
    from gis.platforms.plan_report import render

    try:
        body, _ = render(_engine(), ns.id, ns.format, analyst=True)
    except PlanNotFound as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    out = Path(ns.out or f"plan-{ns.id}.{ns.format}")
    out.write_bytes(body)
    print(f"report of plan {ns.id} written to {out} ({len(body) / 1024:.0f} KiB)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``classify`` and ``plan`` to the ``landlink`` command."""
    from gis.core.plan_names import KINDS

    cl = sub.add_parser("classify", help="platform kinds (四类平台, §4), recorded as a run")
    cl.add_argument(
        "--as-of", type=iso_date, help="the date to judge by, YYYY-MM-DD (default: today)"
    )
    cl.add_argument("--kind", choices=KINDS, help="list only platforms of this kind")
    cl.set_defaults(fn=cmd_classify)

    pl = sub.add_parser("plan", help="layout plans for the two corridors (§8)")
    ps = pl.add_subparsers(dest="plan_cmd", required=True)
    pc = ps.add_parser("create", help="create a versioned scenario")
    pc.add_argument("--name", default="default", help="scenario name (versions count up)")
    pc.add_argument("--target-year", type=int, required=True)
    pc.add_argument("--floor-mu", type=float, required=True, help="两底线 floor, 亩")
    pc.add_argument("--new-land-mu", type=float, required=True, help="new industrial land, 亩")
    pc.add_argument("--corridor-min-share", type=float, help="0-1 (default: rules.toml)")
    pc.add_argument("--weights", help='JSON, e.g. \'{"tax": 1.5, "kinds": {"to_innovation": 0}}\'')
    pc.add_argument("--as-of", type=iso_date, help="YYYY-MM-DD (default: today)")
    pc.set_defaults(fn=cmd_plan_create)
    pls = ps.add_parser("list", help="the plans made so far")
    pls.set_defaults(fn=cmd_plan_list)
    pr = ps.add_parser("report", help="write a plan's report (HTML, PDF or Word .docx)")
    pr.add_argument("id", type=int)
    pr.add_argument("--format", choices=["html", "pdf", "docx"], default="pdf")
    pr.add_argument("--out", help="file to write (default plan-<id>.<format>)")
    pr.set_defaults(fn=cmd_plan_report)
