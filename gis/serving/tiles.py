"""Vector tiles (MVT) of the collections, zoom-aware, with an in-process cache invalidated by area.

One SQL statement per tile, in the pattern of Martin and pg_tileserv: ``ST_TileEnvelope``, ``&&``
on the GiST-indexed EPSG:4549 geometry against the envelope reprojected to 4549 with a margin of
``buffer`` tile pixels, ``ST_AsMVTGeom`` (3857, extent 4096) and ``ST_AsMVT``. Each statement is
prepared once per connection (psycopg ``prepare=True``); zoom, tolerance and cap are parameters.

Zoom-aware content (configured in ``Settings.tiles``):
- below ``parcel_min_zoom`` the ``parcels`` tileset carries ``districts`` and ``platforms``
  layers with parcel aggregates (parcel count, area in 亩, 亩均税收 class; the 亩均税收 figure for
  analysts only) from ``tile_zone_stats`` instead of thousands of parcels;
- geometries are simplified by ``simplify_px_low`` tile pixels below that zoom (in metres, in
  4549, before reprojecting), and polygons smaller than a quarter of a screen pixel are skipped;
- every layer of a tile carries at most ``feature_cap`` features, largest first.

Cache: tiles are cached per worker (tileset, z, x, y, public/analyst) with a strong ETag. Every
change writes a row to ``tile_invalidations`` (tile_models.py) inside its own transaction:
statement triggers on the registry tables (old and new geometry of the changed rows, migration
0005) and the ``tiles`` producer of the derivation graph (parcels whose class or 三块地 status
changed, zone aggregates whose figures changed, enterprise points whose outputs or evaluation
changed, where the three lands' changed results lie, platforms whose kind changed). Each worker
reads the log every ``cache_poll_seconds`` and drops only the cached tiles whose box meets a
logged extent. A tile rendered from a snapshot that did not yet see a logged change is never cached
(the render returns the ids of the log rows its snapshot saw).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy import Connection, Engine, event, text

from gis.core import dblimits
from gis.core.config import get_settings
from gis.core.db import closed_by_server
from gis.core.graph import ALL, Changes, Context, Producer
from gis.core.layers import M2_PER_MU
from gis.economy.evaluation import class_changes
from gis.lands.detection import CURRENT_RUN
from gis.serving.collections import IDLE_FLAGGED, Collection, registry, tables

if TYPE_CHECKING:
    from pyproj import Transformer

WEB_MERCATOR_HALF = 20037508.342789244
# Properties each tileset's MVT layer carries (public first; restricted ones for analysts only).
TILE_PROPS: dict[str, tuple[str, ...]] = {
    "districts": ("code", "name", "area_mu"),
    "platforms": ("code", "name", "level", "type", "kind", "area_mu"),
    "corridors": ("code", "name"),
    "approvals": ("doc_no", "batch_name", "approved_on", "area_mu"),
    "supplies": ("supply_no", "method", "land_use_code", "supplied_on", "grantee_name", "area_mu"),
    "parcels": (
        "parcel_no",
        "actual_use",
        "land_use_code",
        "area_mu",
        "plot_ratio",
        "eval_class",
        "land_status",
    ),
    "enterprises": ("uscc", "name", "industry_code", "above_size", "eval_class", "tax_paid"),
    "unsupplied": ("doc_no", "status", "unsupplied_mu", "age_band", "approved_on"),
    "idle": ("supply_no", "status", "days_overdue", "area_mu"),
    "low_efficiency": ("parcel_no", "reason_codes", "area_mu"),
    "plan_blocks": ("plan_id", "block_no", "function", "corridor_code", "platform_code", "area_mu"),
}
# Tilesets a change to a table can alter (statement triggers and the refresh hook use it).
TABLE_TILESETS: dict[str, tuple[str, ...]] = {
    "districts": ("districts", "parcels"),
    "platforms": ("platforms", "parcels"),
    "corridors": ("corridors",),
    "approvals": ("approvals", "unsupplied"),
    "supplies": ("supplies", "idle", "parcels"),
    "parcels": ("parcels", "low_efficiency"),
    "enterprises": ("enterprises", "parcels"),
}
ZONE_FIELDS = {"parcel_count": "Number", "area_mu": "Number", "tax_class": "String"}
_MVT_TYPES = {
    "string": "String",
    "integer": "Number",
    "number": "Number",
    "boolean": "Boolean",
    "date": "String",
    "array": "String",
}


class TileError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_tile(z: int, x: int, y: int) -> None:
    s = get_settings().tiles
    if not 0 <= z <= s.max_zoom:
        raise TileError(400, f"zoom {z} is out of range 0-{s.max_zoom}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise TileError(400, f"tile {z}/{x}/{y}: x and y must be in 0-{n - 1} at zoom {z}")


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = 2 * WEB_MERCATOR_HALF / (1 << z)
    x0 = -WEB_MERCATOR_HALF + x * size
    y1 = WEB_MERCATOR_HALF - y * size
    return x0, y1 - size, x0 + size, y1


@lru_cache(maxsize=1)
def _to_4549() -> Transformer:
    """The EPSG:3857 -> 4549 transformer, built on first use (building it reads the PROJ
    database, ~0.1 s that a process which draws no tile should not pay)."""
    from pyproj import Transformer

    return Transformer.from_crs(3857, 4549, always_xy=True)


def tile_box_4549(z: int, x: int, y: int, margin: float) -> tuple[float, float, float, float]:
    """The tile (with a margin, a share of its width) as an EPSG:4549 box, (x=east, y=north)."""
    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    m = (x1 - x0) * margin
    b = _to_4549().transform_bounds(x0 - m, y0 - m, x1 + m, y1 + m, densify_pts=8)
    return b[0], b[1], b[2], b[3]


@lru_cache(maxsize=4096)
def affine_3857(z: int, x: int, y: int) -> dict[str, float]:
    """Least-squares affine map EPSG:4549 -> 3857 over one tile (with its buffer).

    Within a tile of zoom >= 13 both projections are nearly linear: the fit is off by at most
    0.42 tile pixels (of 4096) at z13, 0.21 at z14 and 0.05 at z16 anywhere in Hangzhou
    (119.3-120.9 E), below the MVT grid's own rounding; ST_Affine then replaces a PROJ call per
    vertex. Parameters for ``ST_Affine(g, aa, ab, ad, ae, ax, ay)``."""
    import numpy as np

    s = get_settings().tiles
    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    m = (x1 - x0) * s.buffer / s.extent
    gx, gy = np.meshgrid(np.linspace(x0 - m, x1 + m, 9), np.linspace(y0 - m, y1 + m, 9))
    e, n = _to_4549().transform(gx.ravel(), gy.ravel())
    a = np.c_[e, n, np.ones_like(e)]
    cx = np.linalg.lstsq(a, gx.ravel(), rcond=None)[0]
    cy = np.linalg.lstsq(a, gy.ravel(), rcond=None)[0]
    return {
        "aa": float(cx[0]),
        "ab": float(cx[1]),
        "ax": float(cx[2]),
        "ad": float(cy[0]),
        "ae": float(cy[1]),
        "ay": float(cy[2]),
    }


def tolerance_m(z: int, px: float) -> float:
    """``px`` tile pixels (of 4096) at zoom z in ground metres near Hangzhou (lat 30°)."""
    return px * (2 * WEB_MERCATOR_HALF / (1 << z)) / 4096 * math.cos(math.radians(30))


# ---- SQL ------------------------------------------------------------------------------------


def _layer_sql(
    coll: Collection,
    names: tuple[str, ...],
    analyst: bool,
    layer: str,
    overrides: dict[str, str] | None = None,
    affine: bool = False,
) -> str:
    """The MVT of one collection in one tile: parameters z, x, y, tol, min_area, cap.
    ``overrides``: property name -> cheaper SQL for tiles (precomputed tables)."""
    s = get_settings().tiles
    props = [p for n in names if (p := coll.prop(n)) and (analyst or not p.restricted)]
    if overrides:
        props = [replace(p, sql=overrides.get(p.name, p.sql)) for p in props]
    cols = ", ".join(
        f"({p.sql})::text AS {p.name}" if p.type in ("date", "array") else f"{p.sql} AS {p.name}"
        for p in props
    )
    area = "ST_Area(g.geom)" if coll.geometry_type == "Point" else "ST_Area(" + coll.geom + ")"

    def to_3857(g: str) -> str:
        if affine:  # the tile's affine fit of 4549 -> 3857 (see affine_3857)
            return f"ST_Affine({g}, %(aa)s, %(ab)s, %(ad)s, %(ae)s, %(ax)s, %(ay)s)"
        return f"ST_Transform({g}, 3857)"

    if coll.geometry_type == "Point":
        geom = to_3857(coll.geom)
        small = "true"
        order = f"{coll.key}"
    else:
        geom = to_3857(
            f"CASE WHEN %(tol)s > 0 THEN ST_SimplifyPreserveTopology({coll.geom}, "
            f"%(tol)s) ELSE {coll.geom} END"
        )
        small = f"{area} >= %(min_area)s"
        order = f"{area} DESC, {coll.key}"
    margin = s.buffer / s.extent
    return f"""
        SELECT ST_AsMVT(q, '{layer}', {s.extent}, 'geom') FROM (
            SELECT ST_AsMVTGeom({geom}, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {s.extent},
                                {s.buffer}, true) AS geom{", " + cols if cols else ""}
            FROM {coll.source}
            WHERE ({coll.where}) AND {coll.geom} && ST_Transform(
                ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}), 4549)
              AND {small}
            ORDER BY {order}
            LIMIT %(cap)s
        ) q WHERE q.geom IS NOT NULL"""


# The parcels tileset from zoom parcel_min_zoom, read from tile_parcels (migration 0009): every
# property a column of that row, the geometry already in EPSG:3857.
TILE_PARCEL_SQL = {
    "parcel_no": "t.parcel_no",
    "actual_use": "t.actual_use",
    "land_use_code": "t.land_use_code",
    "area_mu": f"(t.area_m2 * {1 / M2_PER_MU})::float4",
    "plot_ratio": "(t.floor_area_m2 / nullif(t.area_m2, 0))::float4",
    "eval_class": "t.eval_class",
    "land_status": "t.land_status",
}
QUANTISED_EXTENT = 4096  # the q<z> columns are in a grid of 4096 px per tile


def _parcel_sql(coll: Collection, analyst: bool, z: int) -> str:
    """The parcels layer of one tile from ``tile_parcels``: parameters z, x, y, tol3857, cap and,
    at a quantised zoom, the tile's box and offset in that zoom's global pixel grid.

    ``&&`` of the GiST-indexed 3857 copy against ``ST_TileEnvelope(z, x, y, margin)`` (no
    transform); at a zoom of ``QUANTISED_ZOOMS`` a parcel lying inside the tile and its buffer
    takes its pre-quantised geometry, moved to the tile's origin (exactly what ST_AsMVTGeom gives
    for it: the same grid, already validated), and only a parcel the tile's buffer cuts goes
    through ``ST_AsMVTGeom``."""
    s = get_settings().tiles
    props = [
        p for n in TILE_PROPS["parcels"] if (p := coll.prop(n)) and (analyst or not p.restricted)
    ]
    cols = ", ".join(f"{TILE_PARCEL_SQL[p.name]} AS {p.name}" for p in props)
    mvt_geom = (
        "ST_AsMVTGeom(CASE WHEN %(tol3857)s > 0 THEN ST_SimplifyPreserveTopology(t.geom, "
        f"%(tol3857)s) ELSE t.geom END, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {s.extent}, "
        f"{s.buffer}, true)"
    )
    if quantised(z):
        q = f"t.q{z}"
        geom = (
            f"CASE WHEN {q} @ ST_MakeEnvelope(%(qx0)s, %(qy0)s, %(qx1)s, %(qy1)s) "
            f"THEN ST_Translate({q}, %(qdx)s, %(qdy)s) ELSE {mvt_geom} END"
        )
    else:
        geom = mvt_geom
    margin = s.buffer / s.extent
    return f"""
        SELECT ST_AsMVT(q, 'parcels', {s.extent}, 'geom') FROM (
            SELECT {geom} AS geom, {cols}
            FROM tile_parcels t
            WHERE t.geom && ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin})
            ORDER BY t.area_m2 DESC, t.parcel_no
            LIMIT %(cap)s
        ) q WHERE q.geom IS NOT NULL"""


def quantised(z: int) -> bool:
    """Whether a parcel tile of zoom z reads the pre-quantised copy (tile_parcels.q<z>)."""
    from gis.core.tile_models import QUANTISED_ZOOMS  # with the tables: not at every start

    s = get_settings().tiles
    return z in QUANTISED_ZOOMS and s.extent == QUANTISED_EXTENT and s.simplify_px_high <= 0


def quantised_params(z: int, x: int, y: int) -> dict[str, int]:
    """The tile's box in zoom z's global pixel grid, shrunk by half the buffer (the bounding
    boxes ``@`` compares are float4, rounded outwards by up to 8 px at zoom 14: a parcel
    judged inside is inside the buffer for sure), and the offset to the tile's origin."""
    s = get_settings().tiles
    inner = s.buffer // 2
    x0, y0 = x * s.extent, y * s.extent
    return {
        "qx0": x0 - inner,
        "qy0": y0 - inner,
        "qx1": x0 + s.extent + inner,
        "qy1": y0 + s.extent + inner,
        "qdx": -x0,
        "qdy": -y0,
    }


def _zone_sql(level: str, table: str, analyst: bool) -> str:
    s = get_settings().tiles
    margin = s.buffer / s.extent
    tax = ", st.tax_per_mu" if analyst else ""
    return f"""
        SELECT ST_AsMVT(q, '{table}', {s.extent}, 'geom') FROM (
            SELECT ST_AsMVTGeom(ST_Transform(ST_SimplifyPreserveTopology(z.geom, %(tol)s), 3857),
                                ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {s.extent}, {s.buffer},
                                true) AS geom,
                   z.code, z.name, coalesce(st.parcel_count, 0) AS parcel_count,
                   round(coalesce(st.area_mu, 0)::numeric, 1)::float8 AS area_mu,
                   st.tax_class{tax}
            FROM {table} z
            LEFT JOIN tile_zone_stats st ON st.level = '{level}' AND st.code = z.code
            WHERE z.geom && ST_Transform(
                ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}), 4549)
            LIMIT %(cap)s
        ) q WHERE q.geom IS NOT NULL"""


INVALIDATION_WINDOW = "10 minutes"
_SEEN_SQL = (
    "(SELECT coalesce(array_agg(id::text || '@' || extract(epoch FROM at)::text), '{}') "
    "FROM tile_invalidations "
    f"WHERE at > clock_timestamp() - interval '{INVALIDATION_WINDOW}')"
)


@dataclass(frozen=True)
class Tileset:
    id: str
    coll: Collection
    low_zoom_zones: bool  # below parcel_min_zoom: district/platform aggregates instead
    overrides: dict[str, str] = field(default_factory=dict)  # precomputed property SQL
    tile_parcels: bool = False  # parcels from zoom parcel_min_zoom read tile_parcels
    # statement text by what it depends on (zoom class, role, settings): built once
    _sql_cache: dict[tuple, str] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def sql(self, z: int, analyst: bool) -> str:
        s = get_settings().tiles
        key = (
            z if quantised(z) else z >= s.affine_min_zoom,
            analyst,
            z < s.parcel_min_zoom,
            s.parcel_min_zoom,
            s.affine_min_zoom,
            s.extent,
            s.buffer,
            s.simplify_px_high,
        )
        hit = self._sql_cache.get(key)
        if hit is None:
            hit = self._sql_cache[key] = self._sql(z, analyst)
        return hit

    def _sql(self, z: int, analyst: bool) -> str:
        s = get_settings().tiles
        if self.low_zoom_zones and z < s.parcel_min_zoom:
            body = (
                f"SELECT coalesce(({_zone_sql('district', 'districts', analyst)}), ''::bytea) "
                f"|| coalesce(({_zone_sql('platform', 'platforms', analyst)}), ''::bytea)"
            )
        elif self.tile_parcels:
            body = f"SELECT coalesce(({_parcel_sql(self.coll, analyst, z)}), ''::bytea)"
        else:
            layer = _layer_sql(
                self.coll,
                TILE_PROPS[self.id],
                analyst,
                self.id,
                self.overrides,
                z >= s.affine_min_zoom,
            )
            body = f"SELECT coalesce(({layer}), ''::bytea)"
        return (
            f"SELECT ({body}) AS mvt, {_SEEN_SQL} AS seen, "
            "extract(epoch FROM statement_timestamp())::float8 AS started"
        )

    def vector_layers(self, analyst: bool) -> list[dict]:
        s = get_settings().tiles
        fields = {
            p.name: _MVT_TYPES[p.type]
            for n in TILE_PROPS[self.id]
            if (p := self.coll.prop(n)) and (analyst or not p.restricted)
        }
        if not self.low_zoom_zones:
            return [
                {
                    "id": self.id,
                    "description": self.coll.title,
                    "fields": fields,
                    "minzoom": s.layer_min_zoom.get(self.id, 0),
                    "maxzoom": s.max_zoom,
                }
            ]
        zone = {"code": "String", "name": "String", **ZONE_FIELDS}
        if analyst:
            zone["tax_per_mu"] = "Number"
        return [
            {
                "id": "districts",
                "description": "行政区 with parcel aggregates",
                "fields": zone,
                "minzoom": 0,
                "maxzoom": s.parcel_min_zoom - 1,
            },
            {
                "id": "platforms",
                "description": "工业平台 with parcel aggregates",
                "fields": zone,
                "minzoom": 0,
                "maxzoom": s.parcel_min_zoom - 1,
            },
            {
                "id": self.id,
                "description": self.coll.title,
                "fields": fields,
                "minzoom": s.parcel_min_zoom,
                "maxzoom": s.max_zoom,
            },
        ]


PARCEL_CLASS_SQL = (
    "(SELECT pc.eval_class FROM tile_parcel_classes pc WHERE pc.parcel_no = t.parcel_no)"
)


def tilesets(conn: Connection) -> dict[str, Tileset]:
    tabs = tables(conn)
    out = {}
    for cid, c in registry(conn).items():
        # float4 arithmetic instead of numeric rounding: 2 ms of a 400-parcel tile, and an MVT
        # float is 4 bytes where a double is 8
        over = (
            {
                "area_mu": f"(t.area_m2 * {1 / M2_PER_MU})::float4",
                "plot_ratio": "(t.floor_area_m2 / nullif(t.area_m2, 0))::float4",
            }
            if cid == "parcels"
            else {}
        )
        if cid == "parcels" and "tile_parcel_classes" in tabs and _class_sources(tabs):
            over["eval_class"] = PARCEL_CLASS_SQL
        if cid == "parcels" and "tile_parcel_status" in tabs and _detection_tables(tabs):
            over["land_status"] = PARCEL_STATUS_SQL
        fast = (
            cid == "parcels"
            and "tile_parcels" in tabs
            and {"eval_class", "land_status"} <= over.keys()
        )
        out[cid] = Tileset(cid, c, cid == "parcels" and "tile_zone_stats" in tabs, over, fast)
    return out


PARCEL_STATUS_SQL = (
    "(SELECT ps.land_status FROM tile_parcel_status ps WHERE ps.parcel_no = t.parcel_no)"
)


def _detection_tables(tabs: dict[str, set[str]]) -> bool:
    return {"detection_runs", "idle_results", "low_efficiency_results"} <= tabs.keys()


def _class_sources(tabs: dict[str, set[str]]) -> bool:
    """links and evaluations, as tile_parcel_classes reads them."""
    return {"kind", "from_key", "to_key", "run_id"} <= tabs.get("links", set()) and {
        "uscc",
        "year",
        "class",
    } <= tabs.get("evaluation_ranking", set())


class _Connections:
    """psycopg connections for tile statements, per process and database: autocommit (one
    statement, its own snapshot), JIT off, no pre-ping and no reset, so a tile is one round trip
    and a checkout is a list pop (no SQLAlchemy pool on the uncached path). A connection that
    failed is closed, not returned; one the server ended while idle is dropped at checkout
    (``closed_by_server``: no round trip)."""

    KEEP = 16  # idle connections kept at most

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.idle: list[psycopg.Connection] = []
        self.lock = threading.Lock()

    def get(self) -> psycopg.Connection:
        while True:
            with self.lock:
                c = self.idle.pop() if self.idle else None
            if c is None:
                break
            if not closed_by_server(c):  # ended while idle (terminated, restarted): drop it
                return c
            c.close()
        c = psycopg.connect(self.conninfo, autocommit=True)
        # JIT compiles these costly-looking plans for 50-150 ms per tile; never worth it
        c.execute("SET jit = off")
        return c

    def put(self, c: psycopg.Connection) -> None:
        if c.closed or c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            c.close()
            return
        with self.lock:
            if len(self.idle) < self.KEEP:
                self.idle.append(c)
                return
        c.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for c in idle:
            c.close()


_CONNECTIONS: weakref.WeakKeyDictionary[Engine, _Connections] = weakref.WeakKeyDictionary()


def _connections(engine: Engine) -> _Connections:
    pool = _CONNECTIONS.get(engine)
    if pool is None:
        # made in a request: its statement limit
        url = dblimits.limited_url(engine.url.set(drivername="postgresql"))
        url = url.render_as_string(hide_password=False)
        pool = _CONNECTIONS[engine] = _Connections(url)
        # a disposed engine (tests) closes our connections too
        event.listen(engine, "engine_disposed", lambda e: pool.close())
    return pool


_EMPTY_SQL = f"SELECT ''::bytea, {_SEEN_SQL}, extract(epoch FROM statement_timestamp())::float8"


def tile_params(ts: Tileset, z: int, x: int, y: int) -> dict:
    """The statement parameters of one tile (the same for the server and bench/tiles)."""
    s = get_settings().tiles
    low = z < s.parcel_min_zoom
    params: dict = {"z": z, "x": x, "y": y, "cap": s.feature_cap}
    if ts.tile_parcels and not low:
        # tile pixels in EPSG:3857 units (its metres, not ground metres)
        params["tol3857"] = s.simplify_px_high * (2 * WEB_MERCATOR_HALF / (1 << z)) / s.extent
        if quantised(z):
            params.update(quantised_params(z, x, y))
        return params
    params["tol"] = tolerance_m(z, s.simplify_px_low if low else s.simplify_px_high)
    # skip polygons under a quarter of a screen pixel (a 256-pixel tile) below the parcel zoom
    px_m = tolerance_m(z, 16.0)
    params["min_area"] = 0.25 * px_m * px_m if low else 0.0
    if z >= s.affine_min_zoom:
        params.update(affine_3857(z, x, y))
    return params


def _statement(ts: Tileset, z: int, x: int, y: int, analyst: bool) -> tuple[str, dict | None]:
    s = get_settings().tiles
    if z < s.layer_min_zoom.get(ts.id, 0):
        # too many features to show at this zoom: an empty tile (as TileJSON says)
        return _EMPTY_SQL, None
    return ts.sql(z, analyst), tile_params(ts, z, x, y)


def _smaller(params: dict, mvt: bytes | None) -> bool:
    """The byte budget: fewer features (the smallest dropped first) until the tile fits;
    lowers ``params["cap"]`` and says whether to render again."""
    s = get_settings().tiles
    if not mvt or len(mvt) <= s.max_tile_bytes or params["cap"] <= 1:
        return False
    params["cap"] = max(1, int(params["cap"] * min(0.5, 0.9 * s.max_tile_bytes / len(mvt))))
    return True


def render(
    engine: Engine, ts: Tileset, z: int, x: int, y: int, analyst: bool
) -> tuple[bytes, frozenset[str], float]:
    """The MVT bytes of one tile, the ids (id@epoch) of the invalidation-log rows its snapshot
    saw, and when its statement started (epoch seconds)."""
    sql, params = _statement(ts, z, x, y, analyst)
    pool = _connections(engine)
    conn = pool.get()
    try:
        # binary: the bytea comes as bytes, not as hex text twice its size
        with conn.cursor(binary=True) as cur:
            cur.execute(sql, params, prepare=True)
            mvt, seen, started = cur.fetchone()
            while params is not None and _smaller(params, mvt):
                cur.execute(sql, params, prepare=True)
                mvt, seen, started = cur.fetchone()
    except BaseException:
        conn.close()
        raise
    pool.put(conn)
    return bytes(mvt or b""), frozenset(seen or ()), started


class _AsyncConnections:
    """The same for the event loop (``render_async``): at most ``limit`` connections busy,
    idle ones kept for reuse."""

    def __init__(self, conninfo: str, limit: int = 8) -> None:
        self.conninfo = conninfo
        self.idle: list[psycopg.AsyncConnection] = []
        self.slots = asyncio.Semaphore(limit)

    async def get(self) -> psycopg.AsyncConnection:
        await self.slots.acquire()
        try:
            while self.idle:
                c = self.idle.pop()
                if not closed_by_server(c):  # ended while idle: drop it
                    return c
                await c.close()
            c = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            await c.execute("SET jit = off")
            return c
        except BaseException:
            self.slots.release()
            raise

    async def put(self, c: psycopg.AsyncConnection, ok: bool) -> None:
        try:
            if ok and not c.closed and c.info.transaction_status == _IDLE:
                self.idle.append(c)
            else:
                await c.close()
        finally:
            self.slots.release()


_IDLE = psycopg.pq.TransactionStatus.IDLE
# per event loop (a process has one; the tests' server threads each have theirs), per database
_ASYNC_CONNECTIONS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, _AsyncConnections]
] = weakref.WeakKeyDictionary()


def _async_connections(engine: Engine) -> _AsyncConnections:
    pools = _ASYNC_CONNECTIONS.setdefault(asyncio.get_running_loop(), {})
    key = engine_key(engine)
    pool = pools.get(key)
    if pool is None:
        # made in a request: its statement limit
        url = dblimits.limited_url(engine.url.set(drivername="postgresql"))
        url = url.render_as_string(hide_password=False)
        pool = pools[key] = _AsyncConnections(url)
    return pool


async def render_async(
    engine: Engine, ts: Tileset, z: int, x: int, y: int, analyst: bool
) -> tuple[bytes, frozenset[str], float]:
    """``render`` on the event loop (psycopg's async connection): no thread hop."""
    sql, params = _statement(ts, z, x, y, analyst)
    pool = _async_connections(engine)
    conn = await pool.get()
    ok = False
    try:
        async with conn.cursor(binary=True) as cur:
            await cur.execute(sql, params, prepare=True)
            mvt, seen, started = await cur.fetchone()
            while params is not None and _smaller(params, mvt):
                await cur.execute(sql, params, prepare=True)
                mvt, seen, started = await cur.fetchone()
        ok = True
    finally:
        await pool.put(conn, ok)
    return bytes(mvt or b""), frozenset(seen or ()), started


# ---- cache ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    data: bytes
    etag: str
    box: tuple[float, float, float, float]
    tileset: str


class TileCache:
    """Per-process LRU of tiles; drops tiles whose box meets an invalidation-log extent."""

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()
        self.last_poll = 0.0
        self.processed: dict[tuple[int, str], float] = {}  # (id, at) -> when seen
        # id@at, tilesets, box, at (epoch s)
        self.recent: list[tuple[str, tuple[str, ...], tuple | None, float]] = []
        self.dropped = 0

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.bytes = 0

    def get(self, key: tuple) -> _Entry | None:
        with self.lock:
            e = self.entries.get(key)
            if e is not None:
                self.entries.move_to_end(key)
            return e

    def put(self, key: tuple, e: _Entry, seen: frozenset[str], started: float) -> None:
        s = get_settings().tiles
        if s.cache_entries <= 0:
            return
        with self.lock:
            # a logged change the render's snapshot did not see, meeting this tile: don't cache
            # (``recent`` holds only rows present at the last poll: rows since deleted, by a
            # TRUNCATE say, are gone from it, so an unseen row is one committed after the
            # render's snapshot)
            for inv_id, sets, box, _at in self.recent:
                if inv_id not in seen and _hits(e, sets, box):
                    return
            old = self.entries.pop(key, None)
            if old:
                self.bytes -= len(old.data)
            self.entries[key] = e
            self.bytes += len(e.data)
            while self.entries and (
                len(self.entries) > s.cache_entries or self.bytes > s.cache_max_bytes
            ):
                _, ev = self.entries.popitem(last=False)
                self.bytes -= len(ev.data)

    def poll(self, engine: Engine, force: bool = False) -> int:
        """Read new invalidation-log rows (at most every ``cache_poll_seconds``) and drop the
        cached tiles they touch; returns how many tiles were dropped. Reads only: the writers
        keep the tile aggregates current and log what they changed."""
        s = get_settings().tiles
        now = time.monotonic()
        if not force and now - self.last_poll < s.cache_poll_seconds:
            return 0
        self.last_poll = now
        with engine.connect() as conn:
            if "tile_invalidations" not in tables(conn):
                return 0
            rows = conn.execute(
                text(
                    "SELECT id, extract(epoch FROM at)::text, layers, ST_XMin(extent), "
                    "ST_YMin(extent), ST_XMax(extent), ST_YMax(extent) FROM tile_invalidations "
                    f"WHERE at > clock_timestamp() - interval '{INVALIDATION_WINDOW}' ORDER BY id"
                )
            ).all()
        dropped = 0
        with self.lock:
            for r in rows:
                ident = (r[0], r[1])
                if ident in self.processed:
                    continue
                self.processed[ident] = now
                box = None if r[3] is None else (r[3], r[4], r[5], r[6])
                sets = tuple(r[2])
                self.recent.append((f"{r[0]}@{r[1]}", sets, box, float(r[1])))
                for k in [k for k, e in self.entries.items() if _hits(e, sets, box)]:
                    ev = self.entries.pop(k)
                    self.bytes -= len(ev.data)
                    dropped += 1
            horizon = now - 900
            self.processed = {k: v for k, v in self.processed.items() if v > horizon}
            present = {f"{r[0]}@{r[1]}" for r in rows}
            self.recent = [r for r in self.recent if r[0] in present]
        self.dropped += dropped
        return dropped


def _hits(e: _Entry, sets: tuple[str, ...], box: tuple | None) -> bool:
    if sets and e.tileset not in sets:
        return False
    if box is None:
        return True
    return not (box[2] < e.box[0] or box[0] > e.box[2] or box[3] < e.box[1] or box[1] > e.box[3])


CACHE = TileCache()
_ENGINE_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def engine_key(engine: Engine) -> str:
    """``str(engine.url)`` (the database part of a cache key), rendered once per engine."""
    k = _ENGINE_KEYS.get(engine)
    if k is None:
        k = _ENGINE_KEYS[engine] = str(engine.url)
    return k


def get_tile(
    engine: Engine, ts: Tileset, z: int, x: int, y: int, analyst: bool
) -> tuple[bytes, str, bool]:
    """(MVT bytes, strong ETag, served from cache)."""
    check_tile(z, x, y)
    s = get_settings().tiles
    key = (engine_key(engine), ts.id, z, x, y, analyst)
    CACHE.poll(engine)
    if s.cache_entries > 0:
        hit = CACHE.get(key)
        if hit is not None:
            return hit.data, hit.etag, True
    data, seen, started = render(engine, ts, z, x, y, analyst)
    return data, _store(key, ts, z, x, y, data, seen, started), False


def _store(
    key: tuple, ts: Tileset, z: int, x: int, y: int, data: bytes, seen: frozenset, started: float
) -> str:
    """The tile's ETag; the tile is cached (if the cache is on and its snapshot allows)."""
    s = get_settings().tiles
    etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
    if s.cache_entries > 0:
        box = tile_box_4549(z, x, y, s.buffer / s.extent)
        CACHE.put(key, _Entry(data, etag, box, ts.id), seen, started)
    return etag


async def get_tile_async(
    engine: Engine, ts: Tileset, z: int, x: int, y: int, analyst: bool
) -> tuple[bytes, str, bool]:
    """``get_tile`` on the event loop: the statement through psycopg's async connection; the
    invalidation-log poll (a few statements every ``cache_poll_seconds``) in a thread."""
    check_tile(z, x, y)
    s = get_settings().tiles
    key = (engine_key(engine), ts.id, z, x, y, analyst)
    if time.monotonic() - CACHE.last_poll >= s.cache_poll_seconds:
        await asyncio.get_running_loop().run_in_executor(None, CACHE.poll, engine)
    if s.cache_entries > 0:
        hit = CACHE.get(key)
        if hit is not None:
            return hit.data, hit.etag, True
    data, seen, started = await render_async(engine, ts, z, x, y, analyst)
    return data, _store(key, ts, z, x, y, data, seen, started), False


# ---- invalidation sources -------------------------------------------------------------------


def log_invalidation(
    conn: Connection, source: str, tilesets: tuple[str, ...], extent_sql: str, params: dict
) -> None:
    """Log that ``tilesets`` changed within the box of ``extent_sql`` (a geometry or box in
    EPSG:4549; NULL rows are ignored); nothing is logged when the extent is empty."""
    conn.execute(
        text(
            "INSERT INTO tile_invalidations (source, layers, extent) "
            "SELECT :source, :sets, ST_SetSRID(ST_Expand(e, 1)::geometry, 4549) "
            f"FROM (SELECT ST_Extent(g) AS e FROM ({extent_sql}) q(g)) x WHERE e IS NOT NULL "
            "ON CONFLICT (source) DO NOTHING"
        ),
        {"source": source, "sets": list(tilesets), **params},
    )


# ---- the producer: tile aggregates kept current by the derivation graph ---------------------
#
# The writer keeps them current (an import, a row edit, ``landlink refresh``) inside its own
# transaction, and logs the area of what changed; a tile or OGC request only reads. Each
# aggregate is recomputed for the keys that changed and compared with what is there: only rows
# that differ are deleted and inserted (MVCC, readers never wait), and only their area is logged.

# a parcel's 三块地 status in the latest detection run: idle (its supply flagged) over
# low_efficiency
_STATUS_ROWS = f"""
    SELECT parcel_no, min(s) AS land_status FROM (
        SELECT p.parcel_no, 'idle' AS s
        FROM idle_results r JOIN supplies su ON su.id = r.supply_id
        JOIN parcels p ON p.supply_no = su.supply_no
        WHERE r.run_id = {CURRENT_RUN} AND r.status IN {IDLE_FLAGGED}
        UNION ALL
        SELECT p.parcel_no, 'low_efficiency'
        FROM low_efficiency_results r JOIN parcels p ON p.id = r.parcel_id
        WHERE r.run_id = {CURRENT_RUN}
    ) x WHERE {{scope}} GROUP BY parcel_no"""
# a parcel's A/B/C/D: the best class of the enterprises linked to it, latest evaluated year
_CLASS_ROWS = """
    SELECT l.to_key AS parcel_no, min(ev.class) AS eval_class
    FROM links l
    JOIN evaluation_ranking ev ON ev.uscc = l.from_key
         AND ev.year = (SELECT max(year) FROM evaluation_ranking)
    WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NOT NULL AND ev.class IS NOT NULL
      AND {scope}
    GROUP BY l.to_key"""

CLASS_READS = ("links", "evaluation_ranking", "parcels")
STATUS_READS = ("detection_runs", "idle_results", "low_efficiency_results", "supplies", "parcels")
ZONE_READS = ("per_mu", "links", "parcels", "districts", "platforms")
ENTERPRISE_READS = ("evaluation_rows", "evaluation_ranking", "outputs")
DETECTION_READS = ("detection_runs", "unsupplied_results", "idle_results", "low_efficiency_results")
PLATFORM_READS = ("platform_kinds",)
LANDS_TILESETS = ("unsupplied", "idle", "low_efficiency")
# where the three lands' results of changed keys lie: PZWH (unsupplied_results), DZJGH
# (idle_results), DKBH (low_efficiency_results), as the three_lands producer returns them
_LANDS_AREA = """
    SELECT geom FROM approvals WHERE doc_no = ANY(:a)
    UNION ALL SELECT geom FROM supplies WHERE supply_no = ANY(:s)
    UNION ALL SELECT geom FROM parcels WHERE parcel_no = ANY(:p)"""
_LANDS_EVERYWHERE = """
    SELECT geom FROM approvals UNION ALL SELECT geom FROM supplies
    UNION ALL SELECT geom FROM parcels"""
ZONE_LEVELS = (("district", "districts"), ("platform", "platforms"))


def _parts(changes: Changes, names: tuple[str, ...]) -> set[str] | None:
    """The changed keys of ``names``, split at ':' and '|' (``USCC:year`` gives the USCC and the
    year); None when one of them changed whole (``ALL``)."""
    out: set[str] = set()
    for t in names:
        if changes.everything(t):
            return None
        for k in changes.get(t, ()):
            out.update(p for p in re.split(r"[:|]", k) if p)
    return out


def _stamp(conn: Connection, ctx: Context, what: str) -> str:
    """A unique source for one invalidation-log row of this refresh."""
    t = conn.execute(text("SELECT txid_current()::text || ':' || clock_timestamp()")).scalar_one()
    return f"graph:{ctx.trigger}:{what}:{t}"


def _apply(
    conn: Connection, table: str, column: str, rows_sql: str, key: str, parcels: list[str] | None
) -> list[str]:
    """Bring ``table`` (parcel_no, ``column``) and tile_parcels' ``column`` to ``rows_sql`` (its
    ``{scope}`` a condition on ``key``, the parcel number) for ``parcels`` (None: every parcel);
    only the rows that differ are deleted and inserted. Returns the parcel numbers that changed."""
    every = parcels is None
    changed = (
        conn.execute(
            text(
                f"""
                WITH n AS ({rows_sql.format(scope="true" if every else f"{key} = ANY(:p)")})
                SELECT coalesce(n.parcel_no, o.parcel_no)
                FROM n FULL JOIN (SELECT * FROM {table}
                                  WHERE {"true" if every else "parcel_no = ANY(:p)"}) o
                     USING (parcel_no)
                WHERE n.{column} IS DISTINCT FROM o.{column}
                """
            ),
            {"p": parcels},
        )
        .scalars()
        .all()
    )
    if not changed:
        return []
    conn.execute(text(f"DELETE FROM {table} WHERE parcel_no = ANY(:c)"), {"c": changed})
    conn.execute(
        text(
            f"INSERT INTO {table} (parcel_no, {column}) SELECT parcel_no, {column} "
            f"FROM ({rows_sql.format(scope=f'{key} = ANY(:c)')}) n"
        ),
        {"c": changed},
    )
    conn.execute(
        text(
            f"""
            UPDATE tile_parcels t SET {column} = v.{column}
            FROM parcels p JOIN unnest(CAST(:c AS text[])) c(parcel_no) USING (parcel_no)
            LEFT JOIN {table} v USING (parcel_no)
            WHERE t.id = p.id AND t.{column} IS DISTINCT FROM v.{column}
            """
        ),
        {"c": changed},
    )
    return list(changed)


def _class_parcels(conn: Connection, changes: Changes | None) -> list[str] | None:
    """The parcels whose class may have changed: the parcels among the changed keys and those
    linked now to a changed enterprise (linkage returns both a link's old and new parcels);
    None (every parcel) when the latest evaluated year may have changed or a key set is ALL."""
    if changes is None:
        return None
    keys = _parts(changes, CLASS_READS + ("enterprise_land",))
    if keys is None:
        return None
    years = {int(k) for k in keys if k.isdigit() and len(k) == 4}
    if changes.get("evaluation_ranking"):
        latest = conn.execute(text("SELECT max(year) FROM evaluation_ranking")).scalar_one()
        if any(latest is None or y > latest for y in years):
            return None  # the latest year went
        if latest in years:
            ours = sum(
                1 for k in changes["evaluation_ranking"] if str(latest) in re.split(r"[:|]", k)
            )
            # counted up to ours + 1 only: is every row of that year among the changed ones?
            # (in key order, so by the primary key: without it the planner expects the year's
            # rows anywhere in the table and scans it from the start, the other years first)
            have = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM evaluation_ranking WHERE year = :y "
                    "ORDER BY year, uscc LIMIT :n) q"
                ),
                {"y": latest, "n": ours + 1},
            ).scalar_one()
            if have <= ours:
                return None  # the latest year may be new: every parcel's class reads it
        if not years:
            return None  # keys without the year: cannot tell
    keys -= {str(y) for y in years}
    if not keys:
        return []
    return list(
        conn.execute(
            text(
                """
                SELECT parcel_no FROM parcels WHERE parcel_no = ANY(:k)
                UNION SELECT parcel_no FROM tile_parcel_classes WHERE parcel_no = ANY(:k)
                UNION SELECT to_key FROM links
                      WHERE kind = 'enterprise_parcel' AND from_key = ANY(:k)
                        AND to_key IS NOT NULL
                """
            ),
            {"k": sorted(keys)},
        ).scalars()
    )


def _status_parcels(conn: Connection, changes: Changes | None) -> list[str] | None:
    """The parcels whose status may have changed: the parcels of the changed keys of the live
    run's idle (DZJGH) and low-efficiency (DKBH) results, of changed parcels and supplies;
    None (every parcel) for a full refresh, a key set that is ALL or a changed run record (the
    current run may be another)."""
    if changes is None or changes.get("detection_runs"):
        return None
    keys = _parts(changes, ("supplies", "parcels", "idle_results", "low_efficiency_results"))
    if keys is None:
        return None
    if not keys:
        return []
    return list(
        conn.execute(
            text(
                """
                SELECT parcel_no FROM parcels WHERE parcel_no = ANY(:k) OR supply_no = ANY(:k)
                UNION SELECT parcel_no FROM tile_parcel_status WHERE parcel_no = ANY(:k)
                """
            ),
            {"k": sorted(keys)},
        ).scalars()
    )


def _log_lands(conn: Connection, ctx: Context, changes: Changes | None) -> bool:
    """Log the area of the three lands' layers that changed: where the changed result keys lie
    now; wherever the layers' sources lie for a full refresh, a key set that is ALL or a
    changed run record. A source row that moved (an approval, supply or parcel: the geometry
    the layers draw) had its old and new place logged for these layers by its table's
    statement trigger (``TABLE_TILESETS``), so its old place, unknown here, needs nothing more.
    Returns whether a row was logged."""
    if changes is not None and not changes.touches(DETECTION_READS):
        return False
    whole = (
        changes is None
        or bool(changes.get("detection_runs"))
        or _parts(changes, DETECTION_READS) is None
    )
    if whole:
        sql, params = _LANDS_EVERYWHERE, {}
    else:
        sql = _LANDS_AREA
        params = {
            "a": sorted(changes.get("unsupplied_results", ())),
            "s": sorted(changes.get("idle_results", ())),
            "p": sorted(changes.get("low_efficiency_results", ())),
        }
    log_invalidation(conn, _stamp(conn, ctx, "lands"), LANDS_TILESETS, sql, params)
    return True


def _log_keys(
    conn: Connection,
    ctx: Context,
    changes: Changes | None,
    reads: tuple[str, ...],
    tileset: str,
    table: str,
    key: str,
) -> bool:
    """Log ``tileset`` over the rows of ``table`` whose ``key`` is among the changed keys of
    ``reads`` (every row for a full refresh or ALL): the enterprise points whose outputs or
    evaluation changed, the platforms whose current kind (四类平台) changed. Returns whether a
    row was logged."""
    if changes is not None and not changes.touches(reads):
        return False
    keys = None if changes is None else _parts(changes, reads)
    log_invalidation(
        conn,
        _stamp(conn, ctx, tileset),
        (tileset,),
        f"SELECT geom FROM {table} WHERE CAST(:k AS text[]) IS NULL OR {key} = ANY(:k)",
        {"k": None if keys is None else sorted(keys)},
    )
    return True


def zone_classes(values: dict[str, float | None]) -> dict[str, str | None]:
    """A/B/C/D of each zone by its 亩均税收's rank among the zones of its level
    (``Settings.tiles.zone_class_cutoffs``: top 25 %, to 70 %, to 95 %, the rest; ties share
    the best rank; a zone without the figure has no class)."""
    cut = get_settings().tiles.zone_class_cutoffs
    ranked = sorted((v for v in values.values() if v is not None), reverse=True)
    n = len(ranked)
    out: dict[str, str | None] = {}
    for code, v in values.items():
        if v is None:
            out[code] = None
            continue
        r = 0.0 if n <= 1 else sum(1 for w in ranked if w > v) / (n - 1)
        out[code] = next((c for c, k in zip("ABC", cut, strict=True) if r <= k), "D")
    return out


def _zone_rows(
    conn: Connection, recount: bool | set[tuple[str, str]]
) -> dict[tuple[str, str], tuple]:
    """(level, code) -> (parcel_count, area_mu, tax_per_mu, tax_class) of every zone: the
    zone's figures of the latest year (per_mu.zone_figures: the one definition of a zone's area
    and 亩均税收), its parcels (``links`` parcel_district / parcel_platform, each parcel in the
    zone it lies in most); ``recount`` False keeps the parcel counts already there, a set of
    (level, code) counts those zones again and keeps the others'."""
    from gis.economy.per_mu import zone_figures

    tabs = tables(conn)
    counts: dict[tuple[str, str], int] = {}
    if recount is True and "links" in tabs:
        for level, n, code in conn.execute(
            text(
                "SELECT split_part(kind, '_', 2), count(*), to_key FROM links "
                "WHERE kind IN ('parcel_district', 'parcel_platform') AND is_primary "
                "AND from_key IS NOT NULL AND to_key IS NOT NULL GROUP BY kind, to_key"
            )
        ):
            counts[(level, code)] = n
    elif recount is not True:
        for level, code, n in conn.execute(
            text("SELECT level, code, parcel_count FROM tile_zone_stats")
        ):
            counts[(level, code)] = n
        zones = sorted(z for z in recount or () if z[0] in ("district", "platform"))
        if zones and "links" in tabs:
            for z in zones:
                counts[z] = 0
            for level, code, n in conn.execute(
                text(
                    "SELECT z.level, z.code, count(l.from_key) FROM unnest(CAST(:lv AS text[]), "
                    "CAST(:cd AS text[])) z(level, code) JOIN links l "
                    "ON l.kind = 'parcel_' || z.level AND l.to_key = z.code AND l.is_primary "
                    "AND l.from_key IS NOT NULL GROUP BY 1, 2"
                ),
                {"lv": [z[0] for z in zones], "cd": [z[1] for z in zones]},
            ):
                counts[(level, code)] = n
    out: dict[tuple[str, str], tuple] = {}
    for level, table in ZONE_LEVELS:
        codes = conn.execute(text(f"SELECT code FROM {table}")).scalars().all()
        figs = zone_figures(conn, level) if "per_mu" in tabs else {}
        tax = {c: (figs.get(c) or {}).get("tax_per_mu") for c in codes}
        cls = zone_classes(tax)
        for c in codes:
            area = (figs.get(c) or {}).get("area_mu")
            out[(level, c)] = (counts.get((level, c), 0), area or 0.0, tax[c], cls[c])
    return out


def _refresh_zones(conn: Connection, ctx: Context, recount: bool | set[tuple[str, str]]) -> int:
    new = _zone_rows(conn, recount)
    old = {
        (r[0], r[1]): tuple(r[2:])
        for r in conn.execute(
            text(
                "SELECT level, code, parcel_count, area_mu, tax_per_mu, tax_class "
                "FROM tile_zone_stats"
            )
        )
    }
    changed = [k for k in new.keys() | old.keys() if new.get(k) != old.get(k)]
    if not changed:
        return 0
    levels = [k[0] for k in changed]
    codes = [k[1] for k in changed]
    conn.execute(
        text(
            "DELETE FROM tile_zone_stats s USING unnest(CAST(:l AS text[]), CAST(:c AS text[])) "
            "x(level, code) WHERE s.level = x.level AND s.code = x.code"
        ),
        {"l": levels, "c": codes},
    )
    rows = [
        {"l": k[0], "c": k[1], "n": v[0], "a": v[1], "t": v[2], "k": v[3]}
        for k in changed
        if (v := new.get(k)) is not None
    ]
    if rows:
        conn.execute(
            text(
                "INSERT INTO tile_zone_stats (level, code, parcel_count, area_mu, tax_per_mu, "
                "tax_class) VALUES (:l, :c, :n, :a, :t, :k)"
            ),
            rows,
        )
    log_invalidation(
        conn,
        _stamp(conn, ctx, "zones"),
        ("parcels",),
        "SELECT z.geom FROM (SELECT 'district' AS level, code, geom FROM districts "
        "UNION ALL SELECT 'platform', code, geom FROM platforms) z "
        "JOIN unnest(CAST(:l AS text[]), CAST(:c AS text[])) x(level, code) "
        "ON x.level = z.level AND x.code = z.code",
        {"l": levels, "c": codes},
    )
    return len(changed)


def refresh_tiles(conn: Connection, ctx: Context, changes: Changes | None) -> Changes:
    """The ``tiles`` producer: each parcel's evaluation class (tile_parcel_classes) and 三块地
    status (tile_parcel_status) and their copies in tile_parcels, each district's and platform's
    aggregates (tile_zone_stats), for the keys in ``changes`` (everything when None), and the
    area of what changed in the invalidation log (tile_invalidations), also for the enterprise
    points whose evaluation or outputs changed, the three lands' layers where their results
    changed (``_log_lands``) and the platforms whose kind changed (``_log_keys``).

    Returns ``tile_parcel_classes`` / ``tile_parcel_status``: parcel numbers; ``tile_zone_stats``:
    ``level:code``; ``tile_invalidations``: ALL when a row was logged."""
    tabs = tables(conn)
    out = Changes()
    if "tile_zone_stats" not in tabs:
        return out
    logged = False
    if changes is not None:  # the tiles read an evaluation's class only
        changes = class_changes(changes)
    if _class_sources(tabs) and (changes is None or changes.touches(CLASS_READS)):
        scope = _class_parcels(conn, changes)
        if scope is None or scope:
            changed = _apply(
                conn, "tile_parcel_classes", "eval_class", _CLASS_ROWS, "l.to_key", scope
            )
            out.add("tile_parcel_classes", changed)
    if _detection_tables(tabs) and (changes is None or changes.touches(STATUS_READS)):
        scope = _status_parcels(conn, changes)
        if scope is None or scope:
            changed = _apply(
                conn, "tile_parcel_status", "land_status", _STATUS_ROWS, "parcel_no", scope
            )
            out.add("tile_parcel_status", changed)
    parcels = sorted(out.get("tile_parcel_classes", set()) | out.get("tile_parcel_status", set()))
    if parcels:
        log_invalidation(
            conn,
            _stamp(conn, ctx, "parcels"),
            ("parcels",),
            "SELECT geom FROM parcels WHERE parcel_no = ANY(:p)",
            {"p": parcels},
        )
        logged = True
    if changes is None or changes.touches(ZONE_READS):
        recount = _recount(conn, changes)
        n = _refresh_zones(conn, ctx, recount)
        if n:
            out.add("tile_zone_stats", [ALL])
            logged = True
    if _log_keys(conn, ctx, changes, ENTERPRISE_READS, "enterprises", "enterprises", "uscc"):
        logged = True
    if "detection_runs" in tabs and _log_lands(conn, ctx, changes):
        logged = True
    if "platform_kinds" in tabs and _log_keys(
        conn, ctx, changes, PLATFORM_READS, "platforms", "platforms", "code"
    ):
        logged = True
    if logged:
        out.add("tile_invalidations", [ALL])
    return out


def _recount(conn: Connection, changes: Changes | None) -> bool | set[tuple[str, str]]:
    """Which zones' parcel counts to count again: every zone (True) for a full refresh or a
    changed district or platform; the zones the linkage's ``zone_links`` names (those whose
    parcels changed, left or entered) when it ran; else every zone when a
    changed parcel or link names a parcel or a zone (``_links_touch_zones``), none (False)
    otherwise."""
    if changes is None or changes.touches(("districts", "platforms")):
        return True
    zl = changes.get("zone_links")
    if zl is not None and not changes.everything("zone_links"):
        return {tuple(k.split(":", 1)) for k in zl}
    return bool(changes.touches(("parcels",)) or _links_touch_zones(conn, changes))


def _links_touch_zones(conn: Connection, changes: Changes) -> bool:
    """Whether changed links keys name a parcel or a zone (an enterprise's links leave the
    parcels' zones as they are)."""
    keys = _parts(changes, ("links",))
    if keys is None:
        return True
    if not keys:
        return False
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM parcels WHERE parcel_no = ANY(:k)) "
                "OR EXISTS (SELECT 1 FROM districts WHERE code = ANY(:k)) "
                "OR EXISTS (SELECT 1 FROM platforms WHERE code = ANY(:k)) "
                "OR EXISTS (SELECT 1 FROM tile_zone_stats WHERE code = ANY(:k))"
            ),
            {"k": sorted(keys)},
        ).scalar_one()
    )


PRODUCERS = (
    Producer(
        "tiles",
        reads=tuple(
            dict.fromkeys(
                CLASS_READS
                + STATUS_READS
                + ZONE_READS
                + ENTERPRISE_READS
                + DETECTION_READS
                + PLATFORM_READS
            )
        ),
        writes=(
            "tile_parcel_classes",
            "tile_parcel_status",
            "tile_zone_stats",
            "tile_parcels",
            "tile_invalidations",
        ),
        run=refresh_tiles,
        doc="parcel class and 三块地 status, zone aggregates, tiles invalidated by area",
    ),
)


__all__ = [
    "CACHE",
    "TileError",
    "get_tile",
    "PRODUCERS",
    "refresh_tiles",
    "tilesets",
]


def tile_for(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the XYZ tile at zoom z holding a WGS84 lon/lat."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)
