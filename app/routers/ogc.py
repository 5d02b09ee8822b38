"""OGC API - Features under /ogc: Part 1 core (GeoJSON, HTML, OpenAPI 3.0), Part 2 CRS by
reference, Part 3 filtering (CQL2 text, queryables, sortby, properties).

QGIS and GDAL read it as it is: the landing page links ``service-desc`` (an OpenAPI 3.0 document
with a ``limit`` parameter component, from which QGIS takes its page size) and ``data``; items
are ``application/geo+json`` with ``numberMatched`` / ``numberReturned`` and ``rel=next``.
SQL lives in gis/serving/features_sql.py and gis/serving/collections.py.
"""

from __future__ import annotations

import copy
import html
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep
from app.errors import ApiError
from app.links import public_base
from app.params import BIGINT_MAX
from gis.core.config import get_settings
from gis.core.layers import LAYERS
from gis.ingest.row_edit import newest_version
from gis.serving import features_sql as fs
from gis.serving.collections import Collection, registry

router = APIRouter(prefix="/ogc", tags=["OGC API Features"])


def reads_answer_400(paths: dict) -> None:
    """In an OpenAPI ``paths`` object, the OGC API's reads answer an invalid query parameter
    with a 400 (``app.errors.validation_status``), not FastAPI's 422: the documents say so."""
    for path, ops in paths.items():
        read = ops.get("get")
        if path.startswith("/ogc") and read and "422" in read.get("responses", {}):
            read["responses"].pop("422")
            read["responses"]["400"] = {
                "description": "an invalid query parameter (a problem document naming it)",
                "content": {"application/problem+json": {"schema": {"type": "object"}}},
            }


GEOJSON = "application/geo+json"
OPENAPI30 = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
    "http://www.opengis.net/spec/ogcapi-features-6/1.0/conf/properties",
    # Part 4 on the source collections (app/routers/ogc_edit.py)
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
]
# the encodings of ``filter`` (parsed by the cql2 package, compiled by gis/serving/cql2.py)
FILTER_LANGS = ("cql2-text", "cql2-json")
ITEMS_PARAMS = {
    "f",
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "datetime",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "properties",
    "crs",
}


def _base(request: Request) -> str:
    return public_base(request) + "/ogc"


def _wants_html(request: Request, f: str | None) -> bool:
    if f:
        if f not in ("json", "html", "geojson"):
            raise ApiError(400, f"f={f!r}: use json or html")
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _json(body: Any, media: str = "application/json", headers: dict | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str).encode(), 200, headers, media)


def _html(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang='zh'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _links_html(links: list[dict]) -> str:
    return (
        "<ul>"
        + "".join(
            f"<li><a href='{html.escape(lk['href'])}'>{html.escape(lk.get('title') or lk['rel'])}"
            f"</a> ({html.escape(lk['rel'])})</li>"
            for lk in links
        )
        + "</ul>"
    )


def _collections(engine: Engine) -> dict[str, Collection]:
    with engine.connect() as conn:
        return registry(conn)


def _collection(engine: Engine, cid: str) -> Collection:
    colls = _collections(engine)
    coll = colls.get(cid)
    if coll is None:
        raise ApiError(
            404, f"no collection {cid!r}; collections: {', '.join(colls)}", collection=cid
        )
    return coll


@router.get("", summary="Landing page")
def landing(request: Request, f: str | None = None):
    base = _base(request)
    links = [
        {"rel": "self", "type": "application/json", "title": "this document", "href": base},
        {"rel": "alternate", "type": "text/html", "title": "as HTML", "href": base + "?f=html"},
        {"rel": "service-desc", "type": OPENAPI30, "title": "OpenAPI 3.0", "href": base + "/api"},
        {
            "rel": "service-doc",
            "type": "text/html",
            "title": "API docs",
            "href": base.removesuffix("/ogc") + "/docs",
        },
        {
            "rel": "conformance",
            "type": "application/json",
            "title": "conformance",
            "href": base + "/conformance",
        },
        {
            "rel": "data",
            "type": "application/json",
            "title": "collections",
            "href": base + "/collections",
        },
    ]
    body = {
        "title": "landlink 工业用地 OGC API Features",
        "description": "Hangzhou industrial land: districts, platforms, corridors, approvals, "
        "supplies, parcels, enterprises and the three kinds of land (三块地).",
        "links": links,
    }
    if _wants_html(request, f):
        return _html(
            body["title"], f"<p>{html.escape(body['description'])}</p>" + _links_html(links)
        )
    return _json(body)


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request, f: str | None = None):
    if _wants_html(request, f):
        return _html(
            "Conformance",
            "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in CONFORMANCE) + "</ul>",
        )
    return _json({"conformsTo": CONFORMANCE})


def _collection_doc(request: Request, engine: Engine, coll: Collection) -> dict:
    base = _base(request)
    href = f"{base}/collections/{coll.id}"
    with engine.connect() as conn:
        ext = fs.extent(conn, coll)
    root = base.removesuffix("/ogc")
    return {
        "id": coll.id,
        "title": coll.title,
        "description": coll.description,
        "itemType": "feature",
        "extent": ext,
        "crs": fs.CRS_LIST,
        "storageCrs": fs.STORAGE_CRS,
        "links": [
            {"rel": "self", "type": "application/json", "href": href},
            {"rel": "alternate", "type": "text/html", "href": href + "?f=html"},
            {"rel": "items", "type": GEOJSON, "title": "features", "href": href + "/items"},
            {"rel": "items", "type": "text/html", "href": href + "/items?f=html"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "href": href + "/queryables",
            },
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/sortables",
                "type": "application/schema+json",
                "href": href + "/sortables",
            },
            {
                "rel": "describedby",
                "type": "application/vnd.mapbox.tile+json",
                "title": "vector tiles (TileJSON)",
                "href": f"{root}/tiles/{coll.id}.json",
            },
        ],
    }


@router.get("/collections", summary="The collections")
def collections(request: Request, f: str | None = None, engine: Engine = Depends(engine_dep)):
    base = _base(request)
    docs = [_collection_doc(request, engine, c) for c in _collections(engine).values()]
    body = {
        "links": [
            {"rel": "self", "type": "application/json", "href": base + "/collections"},
            {"rel": "alternate", "type": "text/html", "href": base + "/collections?f=html"},
        ],
        "collections": docs,
        "crs": fs.CRS_LIST,
    }
    if _wants_html(request, f):
        rows = "".join(
            f"<tr><td><a href='{html.escape(base)}/collections/{d['id']}?f=html'>{d['id']}</a>"
            f"</td><td>{html.escape(d['title'])}</td><td>{html.escape(d['description'])}</td></tr>"
            for d in docs
        )
        return _html(
            "Collections",
            f"<table><tr><th>id</th><th>title</th><th>description</th></tr>{rows}</table>",
        )
    return _json(body)


@router.get("/collections/{collection_id}", summary="One collection")
def collection(
    collection_id: str,
    request: Request,
    f: str | None = None,
    engine: Engine = Depends(engine_dep),
):
    coll = _collection(engine, collection_id)
    doc = _collection_doc(request, engine, coll)
    if _wants_html(request, f):
        return _html(
            coll.title,
            f"<p>{html.escape(coll.description)}</p>"
            f"<pre>{html.escape(json.dumps(doc['extent'], ensure_ascii=False))}</pre>"
            + _links_html(doc["links"]),
        )
    return _json(doc)


@router.get("/collections/{collection_id}/queryables", summary="Queryables (JSON Schema)")
def queryables(
    collection_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
):
    coll = _collection(engine, collection_id)
    url = f"{_base(request)}/collections/{coll.id}/queryables"
    return _json(fs.queryables(coll, who.sees(coll.has_restricted), url), "application/schema+json")


@router.get("/collections/{collection_id}/sortables", summary="Sortables (JSON Schema)")
def sortables(
    collection_id: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
):
    coll = _collection(engine, collection_id)
    url = f"{_base(request)}/collections/{coll.id}/sortables"
    doc = fs.queryables(coll, who.sees(coll.has_restricted), url)
    doc["properties"].pop("geometry", None)
    return _json(doc, "application/schema+json")


def _limit(limit: int | None) -> int:
    s = get_settings().tiles
    if limit is None:
        return s.items_default_limit
    if not 1 <= limit <= BIGINT_MAX:
        raise ApiError(
            400, f"limit={limit}: must be at least 1 (a page holds at most {s.items_max_limit})"
        )
    return min(limit, s.items_max_limit)


def _offset(offset: int) -> int:
    if not 0 <= offset <= MAX_OFFSET:
        raise ApiError(400, f"offset={offset}: must be between 0 and {MAX_OFFSET}")
    return offset


# limit and offset are checked by _limit and _offset (OGC API asks for a 400, not a 422); the
# OpenAPI states their bounds all the same
MAX_OFFSET = 2**62


def _bounds(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def extra(schema: dict) -> None:
        for s in schema.get("anyOf", [schema]):
            if s.get("type") == "integer":
                s.update(minimum=lo, maximum=hi)

    return extra


_LIMIT_SCHEMA = _bounds(1, BIGINT_MAX)
_OFFSET_SCHEMA = _bounds(0, MAX_OFFSET)


@router.get("/collections/{collection_id}/items", summary="Features")
def items(
    collection_id: str,
    request: Request,
    limit: int | None = Query(
        None,
        description="features per page (clamped to the maximum)",
        json_schema_extra=_LIMIT_SCHEMA,
    ),
    offset: int = Query(0, description="features to skip", json_schema_extra=_OFFSET_SCHEMA),
    bbox: str | None = Query(None, description="minx,miny,maxx,maxy in bbox-crs axis order"),
    bbox_crs: str | None = Query(None, alias="bbox-crs"),
    datetime: str | None = Query(None, description="instant or interval a/b, '..' open"),
    filter: str | None = Query(None, description="CQL2 text, or CQL2-JSON with filter-lang"),
    filter_lang: str | None = Query(None, alias="filter-lang"),
    filter_crs: str | None = Query(None, alias="filter-crs"),
    sortby: str | None = Query(None, description="+prop,-prop"),
    properties: str | None = Query(None, description="comma-separated property names"),
    crs: str | None = Query(None, description="CRS URI of the response"),
    f: str | None = None,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
):
    coll = _collection(engine, collection_id)
    if filter_lang and filter_lang not in FILTER_LANGS:
        raise ApiError(400, f"filter-lang={filter_lang!r}: supported are {', '.join(FILTER_LANGS)}")
    visible = {p.name for p in coll.visible(who.sees(coll.has_restricted))}
    equals = {}
    for k, v in request.query_params.items():
        if k in ITEMS_PARAMS:
            continue
        if k in visible:
            equals[k] = v
        elif any(p.name == k for p in coll.props):
            raise ApiError(400, f"{k}: needs an analyst token")
        else:
            raise ApiError(
                400,
                f"unknown query parameter {k!r}; parameters: "
                f"{', '.join(sorted(ITEMS_PARAMS))} or a queryable property",
            )
    try:
        out_crs = fs.parse_crs(crs, "crs")
        b_crs = fs.parse_crs(bbox_crs, "bbox-crs")
        req = fs.ItemsRequest(
            limit=_limit(limit),
            offset=_offset(offset),
            bbox=fs.parse_bbox(bbox, b_crs) if bbox else None,
            bbox_crs=b_crs,
            datetime=fs.parse_datetime(datetime) if datetime else None,
            filter=filter,
            filter_lang=filter_lang or "cql2-text",
            filter_crs=fs.parse_crs(filter_crs, "filter-crs"),
            equals=equals,
            sortby=sortby,
            properties=[p.strip() for p in properties.split(",") if p.strip()]
            if properties is not None
            else None,
            crs=out_crs,
            analyst=who.sees(coll.has_restricted),
        )
        with engine.connect() as conn:
            page = fs.items(conn, coll, req)
    except fs.FeaturesError as e:
        raise ApiError(e.status, e.message) from None
    base = f"{_base(request)}/collections/{coll.id}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset",)]
    links = [
        {
            "rel": "self",
            "type": GEOJSON,
            "href": base + "?" + urlencode(params + [("offset", str(offset))]),
        },
        {
            "rel": "alternate",
            "type": "text/html",
            "href": base
            + "?"
            + urlencode(
                [(k, v) for k, v in params if k != "f"] + [("f", "html"), ("offset", str(offset))]
            ),
        },
        {"rel": "collection", "type": "application/json", "href": base.removesuffix("/items")},
    ]
    if page.number_returned == req.limit and (
        not page.matched_exact or offset + req.limit < page.number_matched
    ):
        links.append(
            {
                "rel": "next",
                "type": GEOJSON,
                "title": "next page",
                "href": base + "?" + urlencode(params + [("offset", str(offset + req.limit))]),
            }
        )
    if offset > 0:
        links.append(
            {
                "rel": "prev",
                "type": GEOJSON,
                "href": base
                + "?"
                + urlencode(params + [("offset", str(max(0, offset - req.limit)))]),
            }
        )
    if _wants_html(request, f):
        return _items_html(coll, page, links)
    head = json.dumps(
        {
            "type": "FeatureCollection",
            "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "links": links,
        },
        ensure_ascii=False,
    )
    body = head[:-1] + ', "features": [' + ",".join(page.features) + "]}"
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if not page.matched_exact:
        headers["X-Number-Matched-Estimated"] = "true"
    return Response(body.encode(), 200, headers, GEOJSON)


def _items_html(coll: Collection, page: fs.ItemsPage, links: list[dict]) -> HTMLResponse:
    feats = [json.loads(f) for f in page.features]
    names = list(feats[0]["properties"]) if feats else []
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["id", *names])
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v) if v is not None else '')}</td>"
            for v in [ft["id"], *[ft["properties"].get(n) for n in names]]
        )
        + "</tr>"
        for ft in feats
    )
    return _html(
        f"{coll.title}: {page.number_returned} of {page.number_matched}",
        _links_html(links) + f"<table><tr>{head}</tr>{rows}</table>",
    )


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature")
def feature(
    collection_id: str,
    feature_id: str,
    request: Request,
    crs: str | None = None,
    f: str | None = None,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
):
    coll = _collection(engine, collection_id)
    try:
        out_crs = fs.parse_crs(crs)
    except fs.FeaturesError as e:
        raise ApiError(e.status, e.message) from None
    with engine.connect() as conn:
        feat = fs.item(conn, coll, feature_id, out_crs, who.sees(coll.has_restricted))
    if feat is None:
        raise ApiError(
            404, f"no feature {feature_id!r} in {coll.id} (ids are {coll.key_name} values)"
        )
    base = f"{_base(request)}/collections/{coll.id}"
    doc = json.loads(feat)
    doc["links"] = [
        {"rel": "self", "type": GEOJSON, "href": f"{base}/items/{feature_id}"},
        {"rel": "collection", "type": "application/json", "href": base},
    ]
    if _wants_html(request, f):
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in doc["properties"].items()
        )
        return _html(f"{coll.id} {feature_id}", f"<table>{rows}</table>")
    headers = {"Content-Crs": f"<{out_crs.uri}>"}
    if coll.layer is not None:  # a source row: its version, for If-Match (Part 4 writes)
        with engine.connect() as conn:
            v = newest_version(conn, LAYERS[coll.layer], feature_id)
        headers["ETag"] = f'"{v["version"] if v else 0}"'
    return _json(doc, GEOJSON, headers)


# ---- OpenAPI 3.0 ----------------------------------------------------------------------------


def _to_30(node: Any) -> Any:
    """FastAPI's OpenAPI 3.1 schema fragments -> 3.0 (nullable instead of type null)."""
    if isinstance(node, list):
        return [_to_30(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_30(v) for k, v in node.items() if k not in ("examples", "const")}
    for key in ("anyOf", "oneOf"):
        alts = out.get(key)
        if isinstance(alts, list) and any(a == {"type": "null"} for a in alts):
            rest = [a for a in alts if a != {"type": "null"}]
            out.pop(key)
            if len(rest) == 1:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        out["type"] = types[0] if types else "string"
        if "null" in node["type"]:
            out["nullable"] = True
    return out


@router.get("/api", summary="OpenAPI 3.0 of /ogc")
def openapi30(request: Request):
    full = copy.deepcopy(request.app.openapi())
    paths = {k: v for k, v in full.get("paths", {}).items() if k.startswith("/ogc")}
    s = get_settings().tiles
    doc = {
        "openapi": "3.0.3",
        "info": {**full.get("info", {}), "title": "landlink OGC API Features"},
        "servers": [{"url": public_base(request)}],
        "paths": _to_30(paths),
        "components": _to_30(full.get("components", {})),
    }
    doc["components"].setdefault("parameters", {})["limit"] = {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "features per page",
        "style": "form",
        "explode": False,
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": s.items_max_limit,
            "default": s.items_default_limit,
        },
    }
    reads_answer_400(doc["paths"])
    items_path = doc["paths"].get("/ogc/collections/{collection_id}/items", {}).get("get")
    if items_path:
        items_path["parameters"] = [
            p for p in items_path.get("parameters", []) if p.get("name") != "limit"
        ] + [{"$ref": "#/components/parameters/limit"}]
    return JSONResponse(doc, media_type=OPENAPI30)
