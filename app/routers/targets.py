"""Annual targets (MB 目标) and their progress over HTTP: list, one target, its counted items.

Thin: reads through gis/management/targets.py. GET is open; the actual, completion and state of a
restricted indicator (亩均税收, 单位工业增加值能耗, 排放总量) are served to analyst (and admin)
tokens only, as the 淘汰 (TT) items, which name enterprises of the backward-capacity list; others
see the target itself with ``withheld: true``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep
from app.errors import ApiError
from app.params import DbInt, Year
from gis.management import targets as tg

router = APIRouter(tags=["targets (年度目标)"])

LEVEL_ALIASES = {"区县": "区县", "district": "区县", "平台": "平台", "platform": "平台"}


def _sees(who: Caller, rows: list[dict]) -> bool:
    """Whether to serve the restricted figures of ``rows`` (asks, and so records, only when
    one of them is restricted)."""
    return who.sees(any(r["restricted"] for r in rows))


@router.get("/api/targets")
def list_targets(
    year: Year | None = Query(None, description="ND 年度"),
    level: str | None = Query(None, description="JB: 区县 / 平台 (or district / platform)"),
    code: str | None = Query(None, description="DM: the district's XZQDM or platform's PTDM"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Every target with its actual, completion (%) and state (met / on_track / behind /
    no_data) judged against the share of the year gone; MB fields by contract code."""
    if level is not None and level not in LEVEL_ALIASES:
        raise ApiError(400, f"level {level!r}: use 区县 or 平台 (or district / platform)")
    lv = LEVEL_ALIASES.get(level) if level else None
    with engine.connect() as conn:
        public = tg.list_targets(conn, year, lv, code, analyst=False)
        if _sees(who, public):
            items = tg.list_targets(conn, year, lv, code, analyst=True)
        else:
            items = public
    return {"count": len(items), "items": items}


@router.get("/api/targets/{target_id}")
def get_target(
    target_id: DbInt, who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)
) -> dict:
    """One target with its progress (the MB fields by contract code, Chinese labels)."""
    with engine.connect() as conn:
        try:
            t = tg.get_target(conn, target_id, analyst=False)
        except tg.TargetNotFound as e:
            raise ApiError(404, str(e)) from None
        if who.sees(t["restricted"]):
            t = tg.get_target(conn, target_id, analyst=True)
    return t


@router.get("/api/targets/{target_id}/items")
def target_items(
    target_id: DbInt, who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)
) -> dict:
    """The items a 盘活 (PH_*) or 淘汰 (TT) target counts: each with the reason it counts, its
    state at the baseline and now, and the change that made it count (layer, key, version, op,
    who, at, via from the row history)."""
    with engine.connect() as conn:
        try:
            t = tg.get_target(conn, target_id, analyst=False)
        except tg.TargetNotFound as e:
            raise ApiError(404, str(e)) from None
        restricted = t["restricted"] or t["kind"] == "backward"
        return tg.target_items(conn, target_id, analyst=who.sees(restricted))
