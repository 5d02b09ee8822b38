"""``landlink tasks``: the task table (RW 任务) as a Chinese table or JSON; registered by
app/cli.py. Everything is decided by gis/management/tasks.py."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata

from app.cli_options import iso_date

# columns of the table: (header, width in terminal cells)
COLUMNS = (
    ("编号", 7),
    ("工作项目", 30),
    ("进度要求", 16),
    ("期限", 10),
    ("状态", 6),
    ("逾期", 10),
    ("牵头单位", 24),
    ("最近更新", 30),
)


def _cells(s: str) -> int:
    """Terminal cells ``s`` takes (wide and full-width characters two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _fit(s: str, width: int) -> str:
    """``s`` cut to ``width`` cells (… marking a cut) and padded to it."""
    if _cells(s) > width:
        out = ""
        for ch in s:
            if _cells(out + ch) > width - 1:
                break
            out += ch
        s = out + "…"
    return s + " " * (width - _cells(s))


def _row(it: dict) -> list[str]:
    last = it["last_update"] or {}
    late = ""
    if it["overdue_self"]:
        late = "是"
    if it["overdue_subtasks"]:
        late += ("+" if late else "") + f"子任务{len(it['overdue_subtasks'])}"
    units = it["units"]["lead"] or []
    return [
        it["code"],
        "  " * it["depth"] + (it["work_item"] or ""),
        it["deadline"]["text"] or "",
        it["deadline"]["due"] or "—",
        it["status_label"] or "",
        late,
        "、".join(units) + ("(同上级)" if it["units"]["inherited"] and units else ""),
        f"{last.get('who', '')} {last.get('at', '')}".strip(),
    ]


def table_lines(res: dict) -> list[str]:
    """The list of ``gis.management.tasks.list_tasks`` as lines of a Chinese table."""
    f = res["filters"]
    shown = [f"截至 {res['as_of']}"]
    if f["unit"]:
        shown.append(f"单位含“{f['unit']}”")
    if f["status"]:
        shown.append(f"状态 {f['status']}")
    if f["overdue"] is not None:
        shown.append("仅逾期" if f["overdue"] else "未逾期")
    lines = [
        "任务分解表（" + "，".join(shown) + f"）：{res['count']} 项，其中逾期 {res['overdue']} 项",
        "".join(_fit(h, w) + " " for h, w in COLUMNS).rstrip(),
    ]
    for it in res["items"]:
        cells = zip(_row(it), COLUMNS, strict=True)
        lines.append("".join(_fit(c, w) + " " for c, (_, w) in cells).rstrip())
    return lines


def cmd_tasks(ns) -> int:
    from gis.core.db import get_engine
    from gis.management import tasks

    as_of = ns.as_of
    with get_engine().connect() as conn:
        try:
            res = tasks.list_tasks(conn, ns.unit, ns.status, True if ns.overdue else None, as_of)
        except ValueError as e:
            print(f"ERROR {e}", file=sys.stderr)
            return 2
    if ns.json:
        print(json.dumps(res, ensure_ascii=False, indent=1, default=str))
    else:
        print("\n".join(table_lines(res)))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``tasks`` to the ``landlink`` command."""
    from gis.core.layers import TASK_STATUSES

    tk = sub.add_parser("tasks", help="the plan's task table (RW 任务): deadlines, overdue tasks")
    tk.add_argument("--unit", help="tasks where a unit containing this text leads, is "
                    "responsible or cooperates (牵头 / 责任 / 配合单位)")  # fmt: skip
    tk.add_argument("--status", help=" / ".join(TASK_STATUSES))
    tk.add_argument("--overdue", action="store_true", help="overdue tasks only")
    tk.add_argument(
        "--as-of",
        type=iso_date,
        help="the date deadlines are judged on, YYYY-MM-DD (default today)",
    )
    tk.add_argument("--json", action="store_true", help="the list as JSON (as GET /api/tasks)")
    tk.set_defaults(fn=cmd_tasks)
