"""The audit log of restricted reads over HTTP: ``GET /api/audit`` (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from app.deps import Caller, engine_dep, require
from app.params import Offset, instant
from gis.core import audit

router = APIRouter(tags=["audit"])


def _entries(engine: Engine, *args) -> dict:
    with engine.connect() as conn:
        return audit.entries(conn, *args)


@router.get("/api/audit")
async def audit_entries(
    since: str | None = Query(None, description="from this date or time on (ISO 8601)"),
    until: str | None = Query(None, description="before this date or time (ISO 8601)"),
    token_name: str | None = Query(None, description="a token's name"),
    limit: int = Query(100, ge=1, le=audit.MAX_LIMIT),
    offset: Offset = 0,
    who: Caller = Depends(require("admin")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Every read of restricted data by a token (tax, energy, emission figures, the
    backward-capacity list, BD notes): token name, role, method, path, what, rows, when;
    newest first. Admin token."""
    who.reads("audit log")
    res = await run_in_threadpool(
        _entries,
        engine,
        instant(since, "since"),
        instant(until, "until"),
        token_name,
        limit,
        offset,
    )
    return {"limit": limit, "offset": offset, **res}
