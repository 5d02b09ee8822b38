"""The change feed (``GET /api/changes``): what changed since a cursor, source rows and the
derived results they changed, each exactly once. Thin: gis/ingest/feed.py reads it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine

from app.deps import PUBLIC, Caller, caller, engine_dep
from app.errors import ApiError
from gis.core.layers import LAYERS
from gis.ingest.feed import DERIVED_NAMES, read_feed

router = APIRouter(tags=["rows"])


@router.get("/api/changes", summary="The change feed: source rows and derived results")
def changes(
    since: str | None = Query(
        None,
        description="the 'next' cursor of the previous page; 'now': from the present on; "
        "left out: from the beginning",
    ),
    limit: int = Query(500, ge=1, le=10_000),
    layer: str | None = Query(
        None,
        description="a layer code (rows of that layer) or a derived result: "
        + ", ".join(DERIVED_NAMES),
    ),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Every version of a source row (layer, key, op, version, who, at, via; an update's changed
    fields, old and new) and every derived result it changed (an enterprise-year's class, a
    parcel's 三块地 status, a zone's 亩均 figures: old and new), oldest first. Poll with the
    last page's ``next``: each change is listed exactly once, in commit order. Any token;
    restricted values (tax, energy, emissions, 亩均税收) only for analysts, admins, and an
    editor's own layers."""
    if who is PUBLIC:
        raise ApiError(
            401,
            "the change feed needs a token (it names who changed what): send "
            "'Authorization: Bearer <token>'",
        )
    if who.analyst:
        sees = set(LAYERS) | set(DERIVED_NAMES)
    else:
        sees = {c for c in who.layers if who.sees_layer(c)}
    try:
        with engine.connect() as conn:
            page = read_feed(conn, since, limit, layer, sees)
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return page
