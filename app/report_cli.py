"""``landlink report``: a report sheet (gis/serving/reports.py) to a file, registered by
app/cli.py. The command line is the bureau's own: restricted figures are included."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_report(ns) -> int:
    """Write report ``NAME`` of ``--year`` to ``--out`` (.xlsx or .pdf by its suffix)."""
    from gis.core.db import get_engine
    from gis.serving import reports as rp

    if ns.name == "list":
        for r in rp.catalogue():
            print(f"{r['name']:<26}{r['title']}  ({r['description']})")
        return 0
    out = Path(ns.out) if ns.out else Path(f"{ns.name}_{ns.year or 'latest'}.xlsx")
    fmt = out.suffix.lstrip(".").lower()
    try:
        data, _, _ = rp.render(get_engine(), ns.name, ns.year, fmt, analyst=True)
    except rp.ReportError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    out.write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("report", help="a report sheet (报表) as XLSX or PDF; 'list' names them")
    sp.add_argument("name", help="unsupplied-by-year, idle-disposal, low-efficiency-by-reason, "
                    "abcd-summary, per-mu-ranking, or list")  # fmt: skip
    sp.add_argument("--year", type=int, help="the year reported (default: the latest)")
    sp.add_argument("--out", help="the file to write, .xlsx or .pdf (default NAME_YEAR.xlsx)")
    sp.set_defaults(fn=cmd_report)
