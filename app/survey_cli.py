"""``landlink survey``: the survey's 家底 (gis/management/survey.py), registered by app/cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _run(run: dict | None) -> str:
    return f"{run['as_of']} 第 {run['id']} 次" if run else "无 (未记录认定)"


def cmd_survey(ns) -> int:
    """The survey by district or platform: a table on stdout, ``--json`` the API's body,
    ``--out F.xlsx`` the workbook (by use, by chain, the three lists)."""
    from gis.core.db import get_engine
    from gis.management import survey as sv

    try:
        fr = sv.survey(get_engine(), ns.level, ns.year)
    except sv.SurveyError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    if ns.out:
        out = Path(ns.out)
        out.write_bytes(sv.workbook(fr))
        print(f"wrote {out} (按实际用途, 按用地链条, {', '.join(sv.LIST_TITLES.values())})")
    body = sv.summary(fr)
    if ns.json:
        print(json.dumps(body, ensure_ascii=False, indent=1))
        return 0
    if ns.out:
        return 0
    print(f"家底调查 · 按{body['level_label']} (亩; 用地链条据三块地认定 {_run(body['run'])})")
    uses = [u["label"] for u in body["uses"]]
    stages = [c["label"] for c in body["chain"]]
    head = f"{'名称':<14}{'宗':>6}{'合计':>11}" + "".join(f"{h:>9}" for h in uses + stages)
    print(head)
    for r in body["rows"]:
        cells = [r["by_use"][u["code"]]["mu"] for u in body["uses"]]
        cells += [r["by_chain"][c["code"]]["mu"] for c in body["chain"]]
        print(
            f"{r['name'][:14]:<14}{r['parcels']:>6}{r['total']['mu']:>11.1f}"
            + "".join(f"{v:>10.1f}" for v in cells)
        )
    for n, x in body["lists"].items():
        print(f"{x['title']}: {x['count']} (GET /api/survey/lists/{n})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("survey", help="the survey's 家底: industrial land by use and by chain")
    sp.add_argument("--level", choices=["district", "platform"], default="district")
    sp.add_argument("--year", type=int, help="output year of the land basis (default: latest)")
    sp.add_argument("--out", help="write the workbook to this .xlsx file")
    sp.add_argument("--json", action="store_true", help="the summary as JSON (as the API's)")
    sp.set_defaults(fn=cmd_survey)
