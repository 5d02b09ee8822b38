"""The plan's task table (RW 任务): deadlines, overdue tasks, the tree, who last updated each
task and when, and the targets and figures that measure it. Read only: nothing here writes;
tasks are written like every other layer (file import, template, the row API), and their
history is the layer's row history.

- **Deadline**: JDYQ parsed by ``gis.ingest.validate.parse_deadlines`` (the import's own
  parser): the last day on which the task may be finished, or none (长期 / 持续, or empty).
- **Overdue** at the as-of date: the deadline is before it and the status (ZT; empty reads as
  未开始) is not 已完成 (``overdue_self``); a task is ``overdue`` when it is overdue itself or
  any of its sub-tasks, at any depth, is (``overdue_subtasks`` names them). A work item marked
  done whose sub-task is late is still flagged: its table row would hide the late sub-task.
  The statuses are the current ones; the as-of date moves only the day deadlines are judged on.
- **Units**: a task with none of 牵头 / 责任 / 配合单位 of its own takes its parent's
  (``units.inherited``). The unit filter matches a task when one of its units contains the text
  given (``经信`` finds 市经信委).
- **Last update**: the newest version of the row in ``row_history`` (who, when, how: an import
  batch or a request), read by ``gis.ingest.history.latest_versions``; the whole history of one
  task by ``gis.ingest.rows.history``.
- **Measures**: gis/core/rules.toml ``[tasks]``: keywords of the 工作项目 (else of the 具体要求)
  name MB indicators and figures; the targets linked are the rows of table ``targets`` of the
  latest year, up to the as-of year, that has targets for the indicator.

docs/TASKS.md holds every decision and the reconstruction of the plan's own table.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
from sqlalchemy import Connection, text

from gis.core import vocabulary
from gis.core.layers import LAYERS, TASK_STATUSES
from gis.core.rules import Rules, get_rules
from gis.ingest import rows as layer_rows
from gis.ingest.history import latest_versions
from gis.ingest.validate import parse_deadlines

LAYER = LAYERS["RW"]
NOT_STARTED, DONE = TASK_STATUSES[0], TASK_STATUSES[-1]
UNIT_FIELDS = {"lead": "QTDW", "responsible": "ZRDW", "cooperating": "PHDW"}


class TaskNotFound(LookupError):
    """No current task with that code (the message says where to look)."""


def field_labels() -> dict[str, str]:
    """RW's fields: contract code -> Chinese label, in the contract's order."""
    return {f.code: f.label for f in LAYER.fields}


def _code_order(code: str) -> tuple:
    """Natural order of task codes: 1, 1.1, 1.2, 2, 10 (numbers as numbers)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-_]", code))


def _all_rows(conn: Connection) -> list[dict]:
    """Every current RW row as the row API reads it (key, version, properties by code)."""
    out, offset = [], 0
    while True:
        page = layer_rows.list_rows(conn, LAYER, False, limit=layer_rows.MAX_LIMIT, offset=offset)
        out += page.rows
        offset += len(page.rows)
        if offset >= page.number_matched or not page.rows:
            return out


def _targets(conn: Connection, indicators: set[str], year: int) -> dict[str, list[dict]]:
    """Per MB indicator, the target rows of the latest year up to ``year`` that has any."""
    if not indicators:
        return {}
    found = (
        conn.execute(
            text(
                "SELECT id, year, level, zone_code, indicator, target_value, responsible_unit "
                "FROM targets t WHERE indicator = ANY(CAST(:ind AS text[])) AND year = ("
                "SELECT max(year) FROM targets u WHERE u.indicator = t.indicator "
                "AND u.year <= :y) ORDER BY indicator, level, zone_code"
            ),
            {"ind": sorted(indicators), "y": year},
        )
        .mappings()
        .all()
    )
    out: dict[str, list[dict]] = {}
    for r in found:
        out.setdefault(r["indicator"], []).append(dict(r))
    return out


def _matching_rules(props: dict, rules: Rules) -> list:
    """The [tasks] measures whose keywords the 工作项目 holds, else the 具体要求."""
    for code in ("GZXM", "JTYQ"):
        words = props.get(code) or ""
        hits = [m for m in rules.tasks.measures if any(k in words for k in m.keywords)]
        if hits:
            return [(m, code, next(k for k in m.keywords if k in words)) for m in hits]
    return []


def _measures(matched: list, targets: dict[str, list[dict]], full: bool) -> list[dict]:
    """What measures a task: per matching rule, its reason, the keyword and field it matched,
    the targets (their ids; with ``full`` the rows) and the figures (code, label)."""
    figure_labels = vocabulary.labels("task_figure")
    out = []
    for m, field_code, keyword in matched:
        linked = []
        for ind in m.targets:
            rows = targets.get(ind, [])
            entry = {
                "indicator": ind,
                "year": rows[0]["year"] if rows else None,
                "ids": [r["id"] for r in rows],
            }
            if full:
                entry["targets"] = rows
            linked.append(entry)
        out.append(
            {
                "keyword": keyword,
                "matched_in": field_code,
                "reason": m.reason,
                "targets": linked,
                "figures": [{"code": f, "label": figure_labels[f]} for f in m.figures],
            }
        )
    return out


def _tree(items: dict[str, dict]) -> dict[str, list[str]]:
    """Children of each code, in natural order; a task whose parent is not a current task is
    a root (``parent_missing``)."""
    children: dict[str, list[str]] = {c: [] for c in items}
    for code, it in items.items():
        parent = it["parent"]
        if parent is not None and parent in items and parent != code:
            children[parent].append(code)
        it["parent_missing"] = parent is not None and parent not in items
    for kids in children.values():
        kids.sort(key=_code_order)
    return children


def _judge(items: dict[str, dict], children: dict[str, list[str]], as_of: date) -> None:
    """Overdue (own and through sub-tasks), state, sub-task counts and units, depth first."""
    done: set[str] = set()

    def visit(code: str, depth: int, parent_units: dict | None) -> None:
        if code in done:  # a cycle cannot be stored (the import refuses it); guard anyway
            return
        done.add(code)
        it = items[code]
        own = {k: it["properties"].get(c) or [] for k, c in UNIT_FIELDS.items()}
        inherited = not any(own.values()) and parent_units is not None
        it["units"] = {**(parent_units if inherited else own), "inherited": inherited}
        it["depth"] = depth
        late = []
        for child in children[code]:
            visit(child, depth + 1, {k: it["units"][k] for k in UNIT_FIELDS})
            c = items[child]
            late += ([child] if c["overdue_self"] else []) + c["overdue_subtasks"]
        it["overdue_subtasks"] = sorted(late, key=_code_order)
        it["overdue"] = it["overdue_self"] or bool(late)
        it["subtask_count"] = len(children[code])
        it["subtasks_done"] = sum(items[c]["status"] == DONE for c in children[code])
        state = (
            "overdue"
            if it["overdue"]
            else "done"
            if it["status"] == DONE
            else "open"
            if it["deadline"]["due"] is not None
            else "no_deadline"
        )
        it["state"] = {
            "code": state,
            "label": vocabulary.label("task_deadline", state),
            "colour": vocabulary.colour("task_deadline", state),
        }

    roots = sorted((c for c, it in items.items() if it["parent"] not in items), key=_code_order)
    for code in roots:
        visit(code, 0, None)
    for code in sorted(items, key=_code_order):  # what a cycle would leave unvisited
        visit(code, 0, None)


def task_table(
    conn: Connection, as_of: date | None = None, full_targets: bool = False
) -> list[dict]:
    """Every current task, depth first in code order (a work item, then its sub-tasks), each
    with its fields by contract code (``properties``), deadline, status, overdue flags, tree
    (parent, depth, sub-task counts), effective units, last update and measures.
    ``as_of`` defaults to today."""
    as_of = as_of or date.today()
    rows = _all_rows(conn)
    props = [r["properties"] for r in rows]
    schedules = pd.Series([p.get("JDYQ") for p in props], dtype=object)
    due, form, bad = parse_deadlines(schedules)
    last = latest_versions(conn, LAYER)
    rules = get_rules()
    matched = {r["key"]: _matching_rules(p, rules) for r, p in zip(rows, props, strict=True)}
    wanted = {ind for hits in matched.values() for m, _, _ in hits for ind in m.targets}
    targets = _targets(conn, wanted, as_of.year)
    items: dict[str, dict] = {}
    for i, r in enumerate(rows):
        p = r["properties"]
        status = p.get("ZT") or NOT_STARTED
        d = due.iat[i]
        items[r["key"]] = {
            "code": r["key"],
            "parent": p.get("SJRW"),
            "work_item": p.get("GZXM"),
            "properties": p,
            "version": r["version"],
            "deadline": {
                "text": p.get("JDYQ"),
                "due": d.isoformat() if d is not None else None,
                "form": form.iat[i],
                "readable": not bool(bad[i]),
            },
            "status": status,
            "status_label": vocabulary.label("task_status", status),
            "status_colour": vocabulary.colour("task_status", status),
            "overdue_self": d is not None and d < as_of and status != DONE,
            "last_update": last.get(r["key"]),
            "measures": _measures(matched[r["key"]], targets, full_targets),
        }
    children = _tree(items)
    _judge(items, children, as_of)
    order: list[str] = []

    def walk(code: str) -> None:
        order.append(code)
        for c in children[code]:
            walk(c)

    for code in sorted((c for c, it in items.items() if it["depth"] == 0), key=_code_order):
        walk(code)
    seen = set(order)
    order += [c for c in sorted(items, key=_code_order) if c not in seen]
    return [items[c] for c in dict.fromkeys(order)]


def _holds_unit(it: dict, unit: str) -> list[str]:
    """The roles (lead / responsible / cooperating) in which a unit containing ``unit`` serves."""
    return [k for k in UNIT_FIELDS if any(unit in u for u in it["units"][k])]


def list_tasks(
    conn: Connection,
    unit: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    as_of: date | None = None,
) -> dict:
    """The task table filtered: ``unit`` (a text one of its 牵头 / 责任 / 配合 units holds),
    ``status`` (one of 未开始 / 进行中 / 已完成), ``overdue`` (true or false, sub-tasks
    included as in :func:`task_table`). ValueError for a status not in the contract."""
    if status is not None and status not in TASK_STATUSES:
        raise ValueError(f"status {status!r}: use one of {' / '.join(TASK_STATUSES)}")
    as_of = as_of or date.today()
    items = task_table(conn, as_of)
    unit = unit.strip() if unit else None
    out = []
    for it in items:
        if unit:
            roles = _holds_unit(it, unit)
            if not roles:
                continue
            it["unit_roles"] = roles
        if status is not None and it["status"] != status:
            continue
        if overdue is not None and it["overdue"] != overdue:
            continue
        out.append(it)
    return {
        "as_of": as_of.isoformat(),
        "filters": {"unit": unit, "status": status, "overdue": overdue},
        "fields": field_labels(),
        "count": len(out),
        "overdue": sum(it["overdue"] for it in out),
        "items": out,
    }


def get_task(conn: Connection, code: str, as_of: date | None = None) -> dict:
    """One task as in :func:`task_table` (its targets in full), with its direct sub-tasks
    and every version of its row (``gis.ingest.rows.history``). TaskNotFound when it is not a
    current task."""
    as_of = as_of or date.today()
    items = task_table(conn, as_of, full_targets=True)
    by_code = {it["code"]: it for it in items}
    it = by_code.get(code.strip())
    if it is None:
        raise TaskNotFound(
            f"no current task with RWDM {code!r}; GET /api/tasks lists them (a retired task's "
            f"versions are at /api/layers/rw/rows/{code.strip()}/history)"
        )
    subs = [s for s in items if s["parent"] == it["code"] and not s["parent_missing"]]
    return {
        "as_of": as_of.isoformat(),
        "fields": field_labels(),
        **it,
        "subtasks": subs,
        "history": layer_rows.history(conn, LAYER, it["code"], True)["versions"],
    }
