"""Platforms and their four kinds (四类平台, DOMAIN_RULES §4): list, one platform, overrides.

GET is open: public callers get every kind and reason but no 亩均税收 figures (tax is restricted).
Overriding a kind writes, so it needs an analyst (or admin) token; the override is kept with the
reason, who and when, and a classification run is recorded so the map follows.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from app.params import AsOf
from gis.core.plan_models import KINDS
from gis.platforms import platform_kinds as pk

router = APIRouter(tags=["platforms (四类平台)"])

Kind = Literal[
    "consolidate_host", "consolidate_member", "to_innovation", "retain_upgrade", "phase_out"
]


class KindOverride(BaseModel):
    kind: Kind | None = Field(
        description="the kind to set; null withdraws the override (the rules decide again)"
    )
    reason: str = Field(min_length=1, description="why: kept with who and when")


def _classify(engine: Engine, as_of: date | None, analyst: bool) -> dict:
    with engine.connect() as conn:
        res = pk.classify(conn, as_of)
    return res if analyst else pk.redact(res)


@router.get("/api/platforms")
def list_platforms(
    kind: str | None = Query(None, description=f"one of {', '.join(KINDS)}"),
    as_of: AsOf | None = Query(None, description="date to judge by (default today)"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Every platform with its kind, host (members), the reasons (figures and rule) and any
    override."""
    if kind is not None and kind not in KINDS:
        raise ApiError(400, f"kind {kind!r}: use one of {', '.join(KINDS)}")
    res = _classify(engine, as_of, who.analyst)
    if kind is not None:
        res["items"] = [it for it in res["items"] if it["kind"] == kind]
    res["count"] = len(res["items"])
    return res


@router.get("/api/platforms/{code}")
def get_platform(
    code: str,
    as_of: AsOf | None = None,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """One platform's kind with reasons and its override history."""
    res = _classify(engine, as_of, who.analyst)
    item = next((it for it in res["items"] if it["platform_id"] == code), None)
    if item is None:
        raise ApiError(404, f"no platform with PTDM {code!r}; GET /api/platforms lists them")
    with engine.connect() as conn:
        history = pk.override_history(conn, code)
    return {
        **item,
        "as_of": res["as_of"],
        "tax_year": res["tax_year"],
        "median_tax_per_mu": res["median_tax_per_mu"],
        "override_history": history,
    }


@router.post("/api/platforms/{code}/kind")
def override_kind(
    code: str,
    body: KindOverride,
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """A planner overrides a platform's kind (or withdraws the override with kind null)."""
    user = f"{who.role}:{who.name}"
    try:
        with engine.begin() as conn:
            row = pk.set_override(conn, code, body.kind, body.reason, user)
            run = pk.record(conn, "override", user)
    except pk.UnknownPlatform as e:
        raise ApiError(404, str(e)) from None
    except ValueError as e:
        raise ApiError(422, str(e)) from None
    item = next(it for it in run["items"] if it["platform_id"] == code)
    return {"override": row, "platform": item, "classification_run": run["run_id"]}
