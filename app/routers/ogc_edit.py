"""OGC API Features Part 4 (Create, Replace, Update, Delete) on the source collections, for GIS
clients that edit (QGIS 3.32 and newer, OWSLib).

The same write path as the row API (gis/ingest/row_edit.py and ``import_rows``: one validator,
writer, history, feed and derived refresh), another face: features named by the collection's
property names, geometry in CRS84 unless ``Content-Crs`` says otherwise, ``If-Match`` honoured
when sent and not required. ``Allow`` (on OPTIONS) reflects the caller's token. Derived
properties (classes, statuses, 亩均 figures, areas) are read-only: a write that changes one is a
422 naming it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, writer_of
from app.errors import ApiError
from app.links import public_base
from app.routers.row_edits import (
    _json_body,
    _request_id,
    content_crs,
    edit,
    expected_version,
)
from gis.core.layers import LAYERS, Layer
from gis.ingest import ImportOptions, import_rows
from gis.ingest.row_edit import (
    current_version,
    newest_version,
    patch_row,
    replace_row,
    retire_row,
)
from gis.ingest.rows import RowNotFound
from gis.serving import features_sql as fs
from gis.serving.collections import Collection, registry

router = APIRouter(prefix="/ogc", tags=["OGC API Features"])

GIS_CRS = "OGC:CRS84"  # GeoJSON's own CRS: what a write means without Content-Crs
READ = "GET, OPTIONS"


def _source(engine: Engine, cid: str) -> tuple[Collection, Layer]:
    with engine.connect() as conn:
        colls = registry(conn)
    coll = colls.get(cid)
    if coll is None:
        raise ApiError(404, f"no collection {cid!r}; collections: {', '.join(colls)}")
    if coll.layer is None:
        editable = ", ".join(c.id for c in colls.values() if c.layer)
        raise ApiError(
            405,
            f"{cid} is derived (computed from the source layers) and cannot be edited; the "
            f"editable collections are {editable}",
            headers={"Allow": READ},
        )
    return coll, LAYERS[coll.layer]


def _layer_of(engine: Engine, cid: str) -> str | None:
    with engine.connect() as conn:
        colls = registry(conn)
    if cid not in colls:
        raise ApiError(404, f"no collection {cid!r}; collections: {', '.join(colls)}")
    return colls[cid].layer


def _allow(who: Caller, code: str | None, item: bool) -> str:
    if code is None or not who.may_write(code):
        return READ
    return READ + (", PUT, PATCH, DELETE" if item else ", POST")


@router.options("/collections/{collection_id}/items", include_in_schema=False)
def items_options(
    collection_id: str, who: Caller = Depends(caller), engine: Engine = Depends(engine_dep)
) -> Response:
    return Response(
        status_code=204, headers={"Allow": _allow(who, _layer_of(engine, collection_id), False)}
    )


@router.options("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
def item_options(
    collection_id: str,
    feature_id: str,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    return Response(
        status_code=204, headers={"Allow": _allow(who, _layer_of(engine, collection_id), True)}
    )


def contract_properties(coll: Collection, layer: Layer, props: dict, current: dict | None) -> dict:
    """A feature's properties (the collection's names) as contract field codes. A derived
    property (any other name of the collection) may be sent only unchanged (``current``: the
    feature's properties now; on a create, only null); an unknown name is refused. ValueError
    names the property."""
    by_name = {f.column: f.code for f in layer.fields}
    out: dict = {}
    for name, value in props.items():
        if name in by_name:
            out[by_name[name]] = value
            continue
        if coll.prop(name) is None:
            raise ValueError(
                f"{coll.id} has no property {name!r}; its editable properties are "
                f"{', '.join(by_name)}"
            )
        now = None if current is None else current.get(name)
        if value != now and value is not None:
            raise ValueError(
                f"{name} is derived (computed by landlink) and read-only; leave it out of the "
                f"write (it was sent as {json.dumps(value, ensure_ascii=False)[:60]})"
            )
    return out


def _current(engine: Engine, coll: Collection, fid: str) -> dict:
    with engine.connect() as conn:
        feat = fs.item(conn, coll, fid, fs.parse_crs(None), True)
    if feat is None:
        raise ApiError(404, f"no feature {fid!r} in {coll.id} (ids are {coll.key_name} values)")
    return json.loads(feat).get("properties") or {}


def _location(request: Request, cid: str, fid: str) -> str:
    return f"{public_base(request)}/ogc/collections/{cid}/items/{fid}"


@router.post("/collections/{collection_id}/items", summary="Create a feature (Part 4)")
async def create_item(
    collection_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """A GeoJSON Feature with the collection's property names; its key property (the contract
    key) names it. 201 with ``Location``; 409 if the key exists (PUT or PATCH it instead)."""
    coll, layer = _source(engine, collection_id)
    writer_of(who, layer.code)
    body = await _json_body(request)
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise ApiError(422, 'send one GeoJSON Feature ({"type": "Feature", ...})')
    try:
        props = contract_properties(coll, layer, body.get("properties") or {}, None)
    except ValueError as e:
        raise ApiError(422, str(e)) from None
    key = str(props.get(layer.key[0]) or "").strip()
    if not key:
        raise ApiError(422, f"the feature needs its key property ({coll.key_name})")
    try:
        with engine.connect() as conn:
            current_version(conn, layer, key)
        raise ApiError(409, f"{coll.id} {key} exists; replace it (PUT) or change it (PATCH)")
    except RowNotFound:
        pass
    opts = ImportOptions(crs=content_crs(request) or GIS_CRS, strict=True)
    item = {"properties": props, "geometry": body.get("geometry")}
    rep = await edit(
        import_rows, engine, layer.code, [item], opts, f"token:{who.name}", _request_id()
    )
    with engine.connect() as conn:
        v = newest_version(conn, layer, key)
    return JSONResponse(
        rep,
        status_code=201,
        headers={"Location": _location(request, coll.id, key), "ETag": f'"{v["version"]}"'},
    )


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace (Part 4)")
async def replace_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """The whole feature; derived properties may be sent unchanged. ``If-Match`` honoured."""
    coll, layer = _source(engine, collection_id)
    writer_of(who, layer.code)
    expected = expected_version(request, required=False)
    body = await _json_body(request)
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise ApiError(422, 'send one GeoJSON Feature ({"type": "Feature", ...})')
    current = _current(engine, coll, feature_id)
    try:
        props = contract_properties(coll, layer, body.get("properties") or {}, current)
        rep = await edit(
            replace_row,
            engine,
            layer.code,
            feature_id,
            props,
            body.get("geometry"),
            expected,
            f"token:{who.name}",
            _request_id(),
            content_crs(request) or GIS_CRS,
        )
    except ValueError as e:
        raise ApiError(422, str(e)) from None
    return _edited(rep)


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Update (Part 4)")
async def update_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """A JSON merge patch (``application/merge-patch+json``) holding what changed:
    ``{"properties": {…}}`` and/or ``{"geometry": …}``. ``If-Match`` honoured when sent."""
    coll, layer = _source(engine, collection_id)
    writer_of(who, layer.code)
    expected = expected_version(request, required=False)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(422, 'send a merge patch: {"properties": {...}} and/or {"geometry": ...}')
    current = _current(engine, coll, feature_id)
    try:
        patch = {k: v for k, v in body.items() if k not in ("type", "id", "links")}
        if isinstance(patch.get("properties"), dict):
            patch["properties"] = contract_properties(coll, layer, patch["properties"], current)
        rep = await edit(
            patch_row,
            engine,
            layer.code,
            feature_id,
            patch,
            expected,
            f"token:{who.name}",
            _request_id(),
            content_crs(request) or GIS_CRS,
        )
    except ValueError as e:
        raise ApiError(422, str(e)) from None
    return _edited(rep)


@router.delete("/collections/{collection_id}/items/{feature_id}", summary="Delete (Part 4)")
async def delete_item(
    collection_id: str,
    feature_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """Retire the feature (kept in its history, gone from every current result). 204."""
    _, layer = _source(engine, collection_id)
    writer_of(who, layer.code)
    expected = expected_version(request, required=False)
    await edit(
        retire_row, engine, layer.code, feature_id, expected, f"token:{who.name}", _request_id()
    )
    return Response(status_code=204)


def _edited(rep: dict) -> Response:
    return JSONResponse(rep, headers={"ETag": f'"{rep["version"]}"'})
