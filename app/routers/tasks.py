"""The plan's task table (RW 任务): each task with its deadline, whether it is overdue, its place
in the tree, who last updated it and when, and the targets and figures that measure it.

Thin: gis/management/tasks.py decides everything; this router adds the links (a target row at
``/api/targets/{id}``, a figure at its endpoint). Reads are open (a task table holds no
restricted figure). Tasks are written through the row API (``PATCH /api/layers/rw/rows/{code}``
with ``If-Match``, an editor token for RW) or a file import, like every layer.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Engine

from app.deps import engine_dep
from app.errors import ApiError
from app.links import link
from app.params import AsOf
from gis.core.layers import TASK_STATUSES
from gis.management import tasks

router = APIRouter(tags=["tasks (任务)"])

# Where each figure that may measure a task is served (vocabulary ``task_figure``): method, path.
FIGURE_PATHS: dict[str, tuple[str, str]] = {
    "survey": ("GET", "/api/survey"),
    "plans": ("GET", "/api/plans"),
    "platforms": ("GET", "/api/platforms"),
    "indicators": ("GET", "/api/indicators"),
    "evaluations": ("GET", "/api/evaluations"),
    "unsupplied": ("GET", "/api/land/unsupplied"),
    "idle": ("GET", "/api/land/idle"),
    "low_efficiency": ("GET", "/api/land/low-efficiency"),
    "land_summary": ("GET", "/api/land/summary"),
    "backward_capacity": ("GET", "/api/backward-capacity"),
    "admission": ("POST", "/api/admission/check"),
    "changes": ("GET", "/api/changes"),
    "targets": ("GET", "/api/targets"),
    "publications": ("GET", "/api/publications"),
}

UNIT = Query(
    None,
    max_length=100,
    description="a unit (or part of its name) among the task's 牵头, 责任 or 配合单位",
)
STATUS = Query(None, description=f"one of {' / '.join(TASK_STATUSES)}")
OVERDUE = Query(None, description="true: overdue tasks only (sub-tasks included); false: others")
AS_OF = Query(None, description="the date deadlines are judged on, YYYY-MM-DD (default today)")


def _linked(request: Request, item: dict) -> dict:
    """The item with ``href`` on every target it links and every figure."""
    for m in item["measures"]:
        for t in m["targets"]:
            t["href"] = [link(request, f"/api/targets/{i}") for i in t["ids"]]
            for row in t.get("targets", []):
                row["href"] = link(request, f"/api/targets/{row['id']}")
        for f in m["figures"]:
            method, path = FIGURE_PATHS[f["code"]]
            f["method"], f["href"] = method, link(request, path)
    item["href"] = link(request, f"/api/tasks/{item['code']}")
    return item


@router.get("/api/tasks")
def list_tasks(
    request: Request,
    unit: str | None = UNIT,
    status: str | None = STATUS,
    overdue: bool | None = OVERDUE,
    as_of: AsOf | None = AS_OF,
    engine: Engine = Depends(engine_dep),
) -> dict:
    """The task table, work items followed by their sub-tasks: fields by contract code (labels
    in ``fields``), deadline, status, overdue (a parent through its sub-tasks), parent, sub-task
    count, last update (who, when) and the targets and figures that measure each task."""
    if status is not None and status not in TASK_STATUSES:
        raise ApiError(400, f"status {status[:20]!r}: use one of {' / '.join(TASK_STATUSES)}")
    with engine.connect() as conn:
        res = tasks.list_tasks(conn, unit, status, overdue, as_of)
    res["items"] = [_linked(request, it) for it in res["items"]]
    return res


@router.get("/api/tasks/{code}")
def get_task(
    code: str,
    request: Request,
    as_of: AsOf | None = AS_OF,
    engine: Engine = Depends(engine_dep),
) -> dict:
    """One task: as in the list, with the target rows in full, its sub-tasks and every version
    of its row (who changed what, when)."""
    with engine.connect() as conn:
        try:
            res = tasks.get_task(conn, code, as_of)
        except tasks.TaskNotFound as e:
            raise ApiError(404, str(e)) from None
    res["subtasks"] = [_linked(request, it) for it in res["subtasks"]]
    return _linked(request, res)
