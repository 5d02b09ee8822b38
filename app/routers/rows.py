"""Reading a layer's rows over HTTP (部门间信息联动): list them, read one by its key (ETag: its
version), read it as it stood at a past time, and its history.

Thin: gis/ingest/rows.py reads. Restricted fields (tax, energy, emissions) are served to an
analyst or admin token and to an editor token of the layer (``Caller.sees_layer``, which records
the read in the audit log), and left out for everyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine

from app.deps import Caller, caller, engine_dep
from app.errors import ApiError
from app.links import request_link
from app.params import Offset, instant
from gis.core.layers import IMPORT_ORDER, LAYERS, Layer
from gis.ingest import rows

router = APIRouter(tags=["rows"])
T = TypeVar("T")

KEY_DOC = "the row's contract key; a composite one joined by ':' (CC: 91330102169913999J:2023)"
CODE_DOC = "layer code: " + ", ".join(c.lower() for c in IMPORT_ORDER)
AS_OF_DOC = (
    "the row(s) as they stood then: a date YYYY-MM-DD (the end of that day, server time) "
    "or an ISO 8601 time (2024-05-01T12:00:00+08:00)"
)
# the list's own parameters; every other query parameter is a filter on a contract field
LIST_PARAMS = {"limit", "offset", "as_of", "retired"}

Code = Path(..., description=CODE_DOC, examples=["cc"])
Key = Path(..., description=KEY_DOC, examples=["91330102169913999J:2023"])
AsOf = Query(None, description=AS_OF_DOC, examples=["2024-05-01"])


def layer_or_404(code: str) -> Layer:
    layer = LAYERS.get(code.upper())
    if layer is None:
        raise ApiError(
            404,
            f"unknown layer {code[:40]!r}; one of {', '.join(c.lower() for c in IMPORT_ORDER)}",
        )
    return layer


def _sees(who: Caller, layer: Layer) -> bool:
    """Whether the restricted fields of ``layer`` are served to ``who`` (asked, and so recorded,
    only for a layer that has some)."""
    return rows.has_restricted(layer) and who.sees_layer(layer.code)


def _as_of(value: str | None) -> datetime | None:
    return instant(value, "as_of", end_of_day=True)


def _read(engine: Engine, fn: Callable[..., T], *args: object) -> T:
    """``fn(conn, *args)`` on a connection, its refusals as HTTP answers."""
    try:
        with engine.connect() as conn:
            return fn(conn, *args)
    except rows.RowsRequestError as e:
        raise ApiError(e.status, str(e)) from None
    except rows.RowNotFound as e:
        raise ApiError(404, str(e)) from None
    except ValueError as e:  # a malformed key (parse_keys names it)
        raise ApiError(422, str(e)) from None


def _list(
    conn: Connection,
    layer: Layer,
    restricted: bool,
    given: list[tuple[str, str]],
    limit: int,
    offset: int,
    as_of: datetime | None,
    retired: bool,
) -> rows.RowsPage:
    where = rows.filters(layer, given, restricted)
    return rows.list_rows(conn, layer, restricted, where, limit, offset, as_of, retired)


@router.get("/api/layers/{code}/rows", summary="A layer's rows, by key, with field filters")
async def list_layer_rows(
    request: Request,
    code: str = Code,
    limit: int = Query(
        rows.DEFAULT_LIMIT, ge=1, le=rows.MAX_LIMIT, description="rows per page (at most 10,000)"
    ),
    offset: Offset = 0,
    as_of: str | None = AsOf,
    retired: bool = Query(False, description="list the retired rows instead of the current ones"),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """The layer's current rows ordered by key, each ``{"key", "version", "properties":
    {contract field codes}, "geometry": GeoJSON (EPSG:4490 lon/lat) or null, "retired"}``;
    ``retired=true`` lists the retired rows (their last content), ``as_of`` the rows that
    existed then, as they were. Filter with contract field codes as parameters:
    ``?TYSHXYDM=91330102169913999J&ND=2023`` (equality; a code given twice: either value; a
    list field: rows whose list holds the value). Restricted fields (SJSJ, ZHNH, PFDL) are
    served, and may be filtered on, with an analyst or admin token or an editor token of the
    layer. ``next`` is the link to the next page, null on the last."""
    layer = layer_or_404(code)
    restricted = _sees(who, layer)
    given = [(k, v) for k, v in request.query_params.multi_items() if k not in LIST_PARAMS]
    page = await run_in_threadpool(
        _read, engine, _list, layer, restricted, given, limit, offset, _as_of(as_of), retired
    )
    returned = len(page.rows)
    more = offset + returned < page.number_matched and returned > 0
    return {
        "layer": layer.code,
        "numberMatched": page.number_matched,
        "numberReturned": returned,
        "rows": page.rows,
        "next": request_link(request, offset=offset + returned, limit=limit) if more else None,
    }


def _not_modified(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 says) or is ``*``."""
    inm = request.headers.get("if-none-match")
    if not inm:
        return False
    tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
    return "*" in tags or etag in tags


@router.get(
    "/api/layers/{code}/rows/{key}",
    summary="One row by its key (ETag: its version), or as it stood at a time",
    responses={304: {"description": "not modified: If-None-Match names its version"}},
)
async def get_layer_row(
    request: Request,
    code: str = Code,
    key: str = Key,
    as_of: str | None = AsOf,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """The row ``{"key", "version", "properties", "geometry", "retired"}`` with ``ETag:
    "<version>"``; a retired row answers its last content with ``"retired": true``. ``as_of``:
    the row as it stood then (404 if it did not exist then). ``If-None-Match`` with its ETag:
    304. 404 for an unknown layer or key, 422 for a malformed key."""
    layer = layer_or_404(code)
    restricted = _sees(who, layer)
    row = await run_in_threadpool(
        _read, engine, rows.get_row, layer, key, restricted, _as_of(as_of)
    )
    etag = f'"{row["version"]}"'
    headers = {
        "ETag": etag,
        "Vary": "Authorization",
        "Cache-Control": "private, no-cache" if restricted else "no-cache",
    }
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(row, headers=headers)


@router.get("/api/layers/{code}/rows/{key}/history", summary="Every version of a row, oldest first")
async def get_layer_row_history(
    code: str = Code,
    key: str = Key,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """``{"layer", "key", "version", "retired", "versions": [...]}``; each version: ``version``,
    ``op`` (insert / update / retire / restore), ``who``, ``at``, ``via`` (``batch:N`` for a
    file import, ``request:…`` for an HTTP write, or the command), ``cause`` (a row retired with
    another: which), and for an update ``changes`` ``{field code: {"old", "new"}}`` (a
    restricted field the caller may not see: ``{"old": null, "new": null, "withheld": true}``)
    and, on layers with geometry, ``geometry_changed``."""
    layer = layer_or_404(code)
    restricted = _sees(who, layer)
    return await run_in_threadpool(_read, engine, rows.history, layer, key, restricted)
