"""Vector tiles: /tiles/{layer}/{z}/{x}/{y}.mvt (and .pbf, which GDAL's MVT driver asks for),
TileJSON 3.0 per layer at /tiles/{layer}.json, a MapLibre style at /tiles/style.json.

Tiles carry a strong ETag (304 on If-None-Match) and Cache-Control; public tiles are ``public``,
tiles for an analyst token (which add 亩均税收 and tax figures) are ``private``. The cached path
runs on the event loop with no database round trip; SQL lives in gis/serving/tiles.py.
"""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import PUBLIC, Caller, caller, engine_dep
from app.errors import ApiError
from app.links import public_base, route_path
from gis.core import vocabulary as vocab
from gis.core.config import get_settings
from gis.core.db import get_engine
from gis.serving import tiles as gt

router = APIRouter(prefix="/tiles", tags=["vector tiles"])

MVT = "application/vnd.mapbox-vector-tile"
_TS_CACHE: dict[str, tuple[float, dict]] = {}


def _tilesets(engine: Engine) -> dict[str, gt.Tileset]:
    key = gt.engine_key(engine)
    hit = _TS_CACHE.get(key)
    if hit and time.monotonic() - hit[0] < 30:
        return hit[1]
    with engine.connect() as conn:
        ts = gt.tilesets(conn)
    _TS_CACHE[key] = (time.monotonic(), ts)
    return ts


def _tileset(engine: Engine, layer: str) -> gt.Tileset:
    ts = _tilesets(engine)
    if layer not in ts:
        raise ApiError(404, f"no tile layer {layer!r}; layers: {', '.join(ts)}", layer=layer)
    return ts[layer]


@router.get("/style.json", summary="MapLibre style of all layers")
def style(request: Request, engine: Engine = Depends(engine_dep)) -> JSONResponse:
    """Parcels coloured by actual use (SJYT), evaluation class or 三块地 status (switch with the
    layer visibility), platforms by kind (四类平台), the three kinds of land on top; every
    colour from the vocabulary (gis/core/vocabulary.py, ``GET /api/vocabulary``)."""
    root = public_base(request)
    ts = _tilesets(engine)
    s = get_settings().tiles
    sources = {lid: {"type": "vector", "url": f"{root}/tiles/{lid}.json"} for lid in ts}
    layers: list[dict] = [
        {
            "id": "background",
            "type": "background",
            "paint": {"background-color": vocab.colour("map", "background")},
        }
    ]

    def add(layer: dict) -> None:
        if layer["source"] in ts:
            layers.append(layer)

    add(
        {
            "id": "districts",
            "type": "line",
            "source": "districts",
            "source-layer": "districts",
            "paint": {"line-color": vocab.colour("map", "district_line"), "line-width": 1},
        }
    )
    add(
        {
            "id": "platforms-fill",
            "type": "fill",
            "source": "platforms",
            "source-layer": "platforms",
            "paint": {
                "fill-opacity": 0.25,
                "fill-color": vocab.match_expression("platform_kind", "kind"),
            },
        }
    )
    add(
        {
            "id": "platforms-line",
            "type": "line",
            "source": "platforms",
            "source-layer": "platforms",
            "paint": {"line-color": vocab.colour("map", "platform_label"), "line-width": 1.2},
        }
    )
    add(
        {
            "id": "zone-aggregates",
            "type": "fill",
            "source": "parcels",
            "source-layer": "platforms",
            "maxzoom": s.parcel_min_zoom,
            "paint": {
                "fill-opacity": 0.5,
                "fill-color": vocab.match_expression("eval_class", "tax_class"),
            },
        }
    )
    add(
        {
            "id": "parcels-use",
            "type": "fill",
            "source": "parcels",
            "source-layer": "parcels",
            "minzoom": s.parcel_min_zoom,
            "paint": {
                "fill-opacity": 0.7,
                "fill-color": vocab.match_expression("actual_use", "actual_use"),
            },
        }
    )
    add(
        {
            "id": "parcels-eval-class",
            "type": "fill",
            "source": "parcels",
            "source-layer": "parcels",
            "minzoom": s.parcel_min_zoom,
            "layout": {"visibility": "none"},
            "paint": {
                "fill-opacity": 0.7,
                "fill-color": vocab.match_expression("eval_class", "eval_class"),
            },
        }
    )
    add(
        {
            "id": "parcels-land-status",
            "type": "fill",
            "source": "parcels",
            "source-layer": "parcels",
            "minzoom": s.parcel_min_zoom,
            "layout": {"visibility": "none"},
            "paint": {
                "fill-opacity": 0.7,
                "fill-color": vocab.match_expression("land_kind", "land_status"),
            },
        }
    )
    add(
        {
            "id": "parcels-line",
            "type": "line",
            "source": "parcels",
            "source-layer": "parcels",
            "minzoom": s.parcel_min_zoom,
            "paint": {"line-color": vocab.colour("map", "parcel_line"), "line-width": 0.4},
        }
    )
    add(
        {
            "id": "unsupplied",
            "type": "fill",
            "source": "unsupplied",
            "source-layer": "unsupplied",
            "paint": {
                "fill-color": vocab.colour("land_kind", "unsupplied"),
                "fill-opacity": 0.5,
            },
        }
    )
    add(
        {
            "id": "idle",
            "type": "line",
            "source": "idle",
            "source-layer": "idle",
            "paint": {"line-color": vocab.colour("land_kind", "idle"), "line-width": 2},
        }
    )
    add(
        {
            "id": "low_efficiency",
            "type": "line",
            "source": "low_efficiency",
            "source-layer": "low_efficiency",
            "paint": {"line-color": vocab.colour("land_kind", "low_efficiency"), "line-width": 2},
        }
    )
    add(
        {
            "id": "enterprises",
            "type": "circle",
            "source": "enterprises",
            "source-layer": "enterprises",
            "minzoom": s.parcel_min_zoom,
            "paint": {"circle-radius": 3, "circle-color": vocab.colour("map", "enterprise")},
        }
    )
    return JSONResponse(
        {
            "version": 8,
            "name": "landlink 工业用地",
            "center": [120.2, 30.25],
            "zoom": 10,
            "sources": sources,
            "glyphs": f"{root}/glyphs/{{fontstack}}/{{range}}.pbf",
            "layers": layers,
        }
    )


@router.get("/{layer}.json", summary="TileJSON 3.0 of a tile layer")
def tilejson(
    layer: str,
    request: Request,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> JSONResponse:
    ts = _tileset(engine, layer)
    s = get_settings().tiles
    from gis.serving import features_sql as fs

    with engine.connect() as conn:
        ext = fs.extent(conn, ts.coll)["spatial"]["bbox"][0]
    center = [(ext[0] + ext[2]) / 2, (ext[1] + ext[3]) / 2, s.parcel_min_zoom]
    return JSONResponse(
        {
            "tilejson": "3.0.0",
            "name": layer,
            "description": ts.coll.description,
            "scheme": "xyz",
            "tiles": [f"{public_base(request)}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt"],
            "minzoom": 0,
            "maxzoom": s.max_zoom,
            "bounds": ext,
            "center": center,
            "attribution": "landlink",
            "vector_layers": ts.vector_layers(who.analyst),
        }
    )


def _int(v: str, what: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise ApiError(400, f"{what} {v!r} is not an integer") from None


async def tile(request: Request) -> Response:
    """One vector tile (MVT). A plain Starlette route (no dependency solving or validation):
    the cached path is a dictionary lookup on the event loop."""
    pp = request.path_params
    layer, z, x, y, ext = pp["layer"], pp["z"], pp["x"], pp["y"], pp["ext"]
    if ext not in ("mvt", "pbf"):
        raise ApiError(404, f"tiles are .mvt or .pbf, not .{ext}")
    zi, xi, yi = _int(z, "zoom"), _int(x, "x"), _int(y, "y")
    engine = get_engine()
    who = PUBLIC
    if request.headers.get("authorization"):  # app.deps.TokenGate refused any other way
        who = await run_in_threadpool(caller, request, engine)
    ts = _tilesets(engine).get(layer)
    if ts is None:
        ts = await run_in_threadpool(_tileset, engine, layer)
    try:
        gt.check_tile(zi, xi, yi)
    except gt.TileError as e:
        raise ApiError(e.status, e.message) from None
    data = etag = None
    cached = False
    s = get_settings().tiles
    key = (gt.engine_key(engine), ts.id, zi, xi, yi, who.analyst)
    if s.cache_entries > 0 and time.monotonic() - gt.CACHE.last_poll < s.cache_poll_seconds:
        hit = gt.CACHE.get(key)  # fast path: fresh log, no thread hop
        if hit is not None:
            data, etag, cached = hit.data, hit.etag, True
    if data is None:
        data, etag, cached = await run_in_threadpool(
            gt.get_tile, engine, ts, zi, xi, yi, who.analyst
        )
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'private' if who.analyst else 'public'}, max-age={s.max_age_seconds}",
        "X-Tile-Cache": "hit" if cached else "miss",
        "Vary": "Authorization",
    }
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, 200, headers, MVT)


# registered last, as a light route (it is described by the TileJSON, not the OpenAPI)
router.add_route(
    router.prefix + "/{layer}/{z}/{x}/{y}.{ext}", tile, methods=["GET"], include_in_schema=False
)


_TILE_PATH = re.compile(r"^/tiles/([^/]+)/(\d+)/(\d+)/(\d+)\.(?:mvt|pbf)$")


class CachedTiles:
    """ASGI middleware: answers public tile requests before routing (no router, dependency or
    response objects on the hot path): from the tile cache, or rendered on the event loop
    (gis.serving.tiles.get_tile_async: psycopg's async connection, no thread hop). Tokens, errors
    (bad zoom, unknown layer), a tileset list not yet loaded, a render that
    failed, and everything else go on to the app (the route) unchanged."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.engine: Engine | None = None
        self.url = ""
        self.max_age = -1
        self.public = b""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _TILE_PATH.match(route_path(scope))
            if m:  # a token in the query string never gets here (app.deps.TokenGate)
                done = await self._serve(m, scope, send)
                if done:
                    return
        await self.app(scope, receive, send)

    async def _serve(self, m, scope, send) -> bool:  # type: ignore[no-untyped-def]
        s = get_settings().tiles
        inm = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                return False
            if k == b"if-none-match":
                inm = v.decode("latin-1")
        if self.engine is None:
            self.engine = get_engine()
            self.url = gt.engine_key(self.engine)
        engine, url = self.engine, self.url
        if s.max_age_seconds != self.max_age:
            self.max_age = s.max_age_seconds
            self.public = f"public, max-age={s.max_age_seconds}".encode()
        layer, z, x, y = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        e = None
        if s.cache_entries > 0 and time.monotonic() - gt.CACHE.last_poll < s.cache_poll_seconds:
            e = gt.CACHE.get((url, layer, z, x, y, False))  # fresh log: no database
        if e is not None:
            data, etag, cached = e.data, e.etag, True
        else:
            hit = _TS_CACHE.get(url)
            if not hit or time.monotonic() - hit[0] >= 30:
                return False  # the route loads the tileset list
            ts = hit[1].get(layer)
            if ts is None:
                return False
            try:
                gt.check_tile(z, x, y)
            except gt.TileError:
                return False  # the route answers the 400
            try:
                data, etag, cached = await gt.get_tile_async(engine, ts, z, x, y, False)
            except Exception:
                return False  # the route tries again and answers any error as JSON
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", self.public),
            (b"x-tile-cache", b"hit" if cached else b"miss"),
            (b"vary", b"Authorization"),
        ]
        if inm and etag in [t.strip() for t in inm.split(",")]:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers += [
            (b"content-type", MVT.encode()),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return True
