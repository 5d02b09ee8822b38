"""``landlink assess`` and ``landlink publish``, registered by app/cli.py."""

from __future__ import annotations

import argparse
import getpass
import sys


def _engine():
    from gis.core.db import get_engine

    return get_engine()


def cmd_assess(ns) -> int:
    from gis.management import assessment

    with _engine().connect() as conn:
        res = assessment.assess(conn, ns.year)
    if res["year"] is None:
        print("ERROR no §7 indicators yet: import output (CC) and run 'landlink analyse-all'",
              file=sys.stderr)  # fmt: skip
        return 1
    if ns.kind:
        res = assessment.only_kind(res, ns.kind)
    print("\n".join(assessment.summary_lines(res)))
    return 0


def cmd_publish(ns) -> int:
    from gis.management import publication

    try:
        res = publication.publish(_engine(), ns.year, f"cli:{getpass.getuser()}", ns.note)
    except publication.PublicationError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    print(
        f"publication {res['year']} edition {res['edition']} frozen at {res['created_at']} by "
        f"{res['created_by']} (content {res['content_hash'][:16]})"
    )
    for c in res["contents"]:
        state = "yes" if c["present"] else f"no: {c['note']}"
        print(f"  {c['title']}: {state}")
    d = res["diff"]
    if d is None:
        print("  first edition of the year")
    elif d["unchanged"]:
        print(f"  same figures as edition {d['against_edition']}")
    else:
        print(f"  differs from edition {d['against_edition']}:")
        for s in d["sections_added"]:
            print(f"    section added: {s}")
        for s in d["sections_removed"]:
            print(f"    section removed: {s}")
        for t in d["tables"]:
            print(
                f"    {t['title']}: {len(t['changed'])} figures changed, "
                f"{len(t['rows_added'])} rows added, {len(t['rows_removed'])} removed"
            )
            for ch in t["changed"][:5]:
                print(f"      {ch['key']} {ch['label']}: {ch['old']} → {ch['new']}")
    print(f"  read it: GET /api/publications/{res['year']}?edition={res['edition']}"
          "[&format=html|pdf|docx]")  # fmt: skip
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``assess`` and ``publish`` to the ``landlink`` command."""
    from gis.core.plan_names import KINDS

    a = sub.add_parser("assess", help="考核评价: the platforms' composite score and ranking")
    a.add_argument("--year", type=int, help="ND (default: the latest year with indicators)")
    a.add_argument("--kind", choices=KINDS, help="only platforms of this kind")
    a.set_defaults(fn=cmd_assess)
    p = sub.add_parser("publish", help="freeze a year's figures as its next edition (每年公布)")
    p.add_argument("--year", type=int, required=True, help="ND: the year to publish")
    p.add_argument("--note", help="why this edition (kept with it)")
    p.set_defaults(fn=cmd_publish)
