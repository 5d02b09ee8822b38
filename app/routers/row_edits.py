"""Writing a layer's rows over HTTP (部门间信息联动): send rows, replace, patch or retire one.

Thin: every write goes through gis/ingest (the one validator, writer, history and derived
refresh of a file import) and answers before which every derived result is current. Writing a
layer needs an admin token or an editor token for that layer. One row's PUT, PATCH and DELETE
need ``If-Match`` with the row's ETag (its version): 428 without, 412 when the row changed since.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, writer_of
from app.errors import ApiError
from app.routers.rows import layer_or_404
from gis.core.config import get_settings
from gis.ingest import ImportOptions, ImportRejected, InputError, import_rows
from gis.ingest.retire import UnknownKeys
from gis.ingest.row_edit import (
    VersionMismatch,
    patch_row,
    replace_row,
    retire_row,
)
from gis.ingest.rows import RowNotFound

router = APIRouter(tags=["rows"])

_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')


def expected_version(request: Request, required: bool) -> int | None:
    """The version ``If-Match`` names (None for ``*``); 428 when it is required and missing,
    400 when it is not one of this API's ETags."""
    value = request.headers.get("if-match")
    if value is None:
        if required:
            raise ApiError(
                428,
                "send If-Match with the row's ETag (GET the row first; its ETag header): a "
                "change is only applied to the version it was made on",
            )
        return None
    if value.strip() == "*":
        return None
    m = _ETAG.match(value)
    if m is None:
        raise ApiError(
            400, f"If-Match {value[:40]!r} is not an ETag of a row; send the ETag a GET gave"
        )
    return int(m.group(1))


async def _json_body(request: Request) -> object:
    limit = get_settings().max_upload_bytes
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, f"the body is over {limit} bytes; send fewer rows per request")
    try:
        return json.loads(body, parse_constant=_not_json)
    except ValueError as e:
        raise ApiError(400, f"the body is not JSON: {e}") from None


def _not_json(name: str) -> None:
    """Python's json reads NaN, Infinity and -Infinity, which JSON does not have (RFC 8259):
    refused, so that a figure sent as NaN is not stored as empty."""
    raise ValueError(f"{name} is not a JSON number (send null for an empty figure)")


async def edit(fn: Callable[..., dict], *args: object) -> dict:
    """``fn(*args)`` (a write of gis/ingest) in the thread pool, its refusals as HTTP answers."""
    try:
        return await run_in_threadpool(fn, *args)
    except Exception as e:
        raise _errors(e) from None


def _request_id() -> str:
    return f"request:{uuid.uuid4().hex[:16]}"


def _answer(report: dict, status: int = 200) -> JSONResponse:
    headers = {"ETag": f'"{report["version"]}"'} if "version" in report else None
    return JSONResponse(report, status_code=status, headers=headers)


def _errors(e: Exception) -> ApiError:
    """The write path's exceptions as HTTP answers; anything else propagates (a 500 the error
    handler turns into JSON)."""
    if isinstance(e, VersionMismatch):
        return ApiError(
            412,
            str(e),
            current_version=e.current,
            changed_by=e.who,
            changed_at=e.at,
        )
    if isinstance(e, RowNotFound | UnknownKeys):
        return ApiError(404, str(e))
    if isinstance(e, ImportRejected):
        rep = e.report
        first = rep["errors"][0] if rep.get("errors") else {}
        return ApiError(
            422,
            f"{rep['rejected']} bad row(s): {first.get('where', '')} field {first.get('field')}: "
            f"{first.get('reason')}; nothing was written",
            report=rep,
        )
    if isinstance(e, InputError):
        return ApiError(e.status, str(e), field=e.field)
    if isinstance(e, ValueError | KeyError):
        return ApiError(422, str(e).strip("'\""))
    raise e


@router.post("/api/layers/{code}/rows", summary="Send rows (upsert by key)")
async def post_rows(
    code: str,
    request: Request,
    mode: str = Query("strict", pattern="^(strict|lenient)$"),
    dry_run: bool = Query(False),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> JSONResponse:
    """Rows of a layer as a JSON array (objects of contract field codes, or ``{"properties",
    "geometry"}``) or a GeoJSON FeatureCollection (CGCS2000 lon/lat, or the CRS named by
    ``Content-Crs``): validated as a file is (the same report: row, field, reason) and upserted
    by key. ``mode=strict`` (default): a bad row refuses them all (422, nothing written);
    ``lenient`` writes the good ones. ``dry_run=true`` writes nothing. 201 when a row was
    inserted, else 200."""
    layer = layer_or_404(code).code
    writer_of(who, layer)
    body = await _json_body(request)
    via = _request_id()
    opts = ImportOptions(crs=content_crs(request), strict=mode == "strict", dry_run=dry_run)
    rep = await edit(import_rows, engine, layer, body, opts, f"token:{who.name}", via)
    return JSONResponse(rep, status_code=201 if rep.get("inserted") else 200)


def content_crs(request: Request) -> str | None:
    """The CRS of sent geometry from ``Content-Crs`` (OGC API Features Part 2: a URI in angle
    brackets): EPSG:4490, EPSG:4549 or CRS84; None when absent (CGCS2000 lon/lat)."""
    value = request.headers.get("content-crs")
    if value is None:
        return None
    uri = value.strip().strip("<>").strip()
    accepted = {
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84": "OGC:CRS84",
        "http://www.opengis.net/def/crs/EPSG/0/4490": "EPSG:4490",
        "http://www.opengis.net/def/crs/EPSG/0/4549": "EPSG:4549",
    }
    if uri not in accepted:
        raise ApiError(
            400,
            f"Content-Crs {value[:80]!r} is not accepted; send one of "
            + ", ".join(f"<{u}>" for u in accepted),
        )
    return accepted[uri]


@router.put("/api/layers/{code}/rows/{key}", summary="Replace one row (If-Match required)")
async def put_row(
    code: str,
    key: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> JSONResponse:
    """The whole row as ``{"properties": {contract field codes}, "geometry": GeoJSON or
    null}`` (fields left out become empty). ``If-Match``: the ETag of the version it replaces.
    Answers the report with the row's new version (and ETag)."""
    layer = layer_or_404(code).code
    writer_of(who, layer)
    expected = expected_version(request, required=True)
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict):
        raise ApiError(422, 'send {"properties": {...}, "geometry": GeoJSON or null}')
    rep = await edit(
        replace_row,
        engine,
        layer,
        key,
        body.get("properties") or {},
        body.get("geometry"),
        expected,
        f"token:{who.name}",
        _request_id(),
        content_crs(request),
    )
    return _answer(rep)


@router.patch("/api/layers/{code}/rows/{key}", summary="Change fields of one row (If-Match)")
async def patch_one(
    code: str,
    key: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> JSONResponse:
    """A JSON merge patch (``application/merge-patch+json``): ``{"properties": {code: value,
    code: null}}`` and/or ``{"geometry": GeoJSON}``; what it does not name stays. ``If-Match``
    required. A patch that changes nothing writes nothing (``status: unchanged``)."""
    layer = layer_or_404(code).code
    writer_of(who, layer)
    expected = expected_version(request, required=True)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(422, 'send a merge patch: {"properties": {...}} and/or {"geometry": ...}')
    rep = await edit(
        patch_row,
        engine,
        layer,
        key,
        body,
        expected,
        f"token:{who.name}",
        _request_id(),
        content_crs(request),
    )
    return _answer(rep)


@router.delete("/api/layers/{code}/rows/{key}", summary="Retire one row (If-Match required)")
async def delete_row(
    code: str,
    key: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> JSONResponse:
    """Retire the row: kept in its history, gone from every current result and layer (rows
    whose key names it, an enterprise's outputs, retire with it). ``If-Match`` required."""
    layer = layer_or_404(code).code
    writer_of(who, layer)
    expected = expected_version(request, required=True)
    rep = await edit(retire_row, engine, layer, key, expected, f"token:{who.name}", _request_id())
    return JSONResponse(rep)
