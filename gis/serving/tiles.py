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
0005), the import refresh hook registered here (zone aggregates whose figures changed, enterprise
points whose outputs changed) and ``invalidate_detection`` for a detection run. Each worker reads
the log every ``cache_poll_seconds`` and drops only the cached tiles whose box meets a logged
extent. A tile rendered from a snapshot that did not yet see a logged change is never cached
(the render returns the ids of the log rows its snapshot saw).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import psycopg
from pyproj import Transformer
from sqlalchemy import Connection, Engine, event, text

from gis.core import dblimits, refresh
from gis.core.config import get_settings
from gis.core.db import closed_by_server
from gis.core.layers import M2_PER_MU
from gis.core.tile_models import QUANTISED_ZOOMS
from gis.serving.collections import IDLE_FLAGGED, LATEST_RUN, Collection, registry, tables

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


_TO_4549 = Transformer.from_crs(3857, 4549, always_xy=True)
_TO_4326 = Transformer.from_crs(3857, 4326, always_xy=True)


def tile_box_4549(z: int, x: int, y: int, margin: float) -> tuple[float, float, float, float]:
    """The tile (with a margin, a share of its width) as an EPSG:4549 box, (x=east, y=north)."""
    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    m = (x1 - x0) * margin
    b = _TO_4549.transform_bounds(x0 - m, y0 - m, x1 + m, y1 + m, densify_pts=8)
    return b[0], b[1], b[2], b[3]


@lru_cache(maxsize=4096)
def affine_3857(z: int, x: int, y: int) -> dict[str, float]:
    """Least-squares affine map EPSG:4549 -> 3857 over one tile (with its buffer).

    Within a tile of zoom >= 13 both projections are nearly linear: the fit is off by at most
    0.42 tile pixels (of 4096) at z13, 0.21 at z14 and 0.05 at z16 anywhere in Hangzhou
    (119.3-120.9 E), below the MVT grid's own rounding; ST_Affine then replaces a PROJ call per
    vertex. Parameters for ``ST_Affine(g, aa, ab, ad, ae, ax, ay)``."""
    s = get_settings().tiles
    x0, y0, x1, y1 = tile_bounds_3857(z, x, y)
    m = (x1 - x0) * s.buffer / s.extent
    gx, gy = np.meshgrid(np.linspace(x0 - m, x1 + m, 9), np.linspace(y0 - m, y1 + m, 9))
    e, n = _TO_4549.transform(gx.ravel(), gy.ravel())
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


def refresh_parcel_status(conn: Connection, run_id: int) -> None:
    """Rebuild ``tile_parcel_status`` for detection run ``run_id`` (what the ``parcels``
    collection's ``land_status`` says for the latest run: idle > low_efficiency)."""
    conn.execute(text("DELETE FROM tile_parcel_status"))
    conn.execute(
        text(
            f"""
            INSERT INTO tile_parcel_status (parcel_no, land_status)
            SELECT parcel_no, min(s) FROM (
                SELECT p.parcel_no, 'idle' AS s
                FROM idle_results r JOIN supplies su ON su.id = r.supply_id
                JOIN parcels p ON p.supply_no = su.supply_no
                WHERE r.run_id = :run AND r.status IN {IDLE_FLAGGED}
                UNION ALL
                SELECT p.parcel_no, 'low_efficiency'
                FROM low_efficiency_results r JOIN parcels p ON p.id = r.parcel_id
                WHERE r.run_id = :run
            ) x GROUP BY parcel_no
            """
        ),
        {"run": run_id},
    )
    if "tile_parcels" in tables(conn):
        conn.execute(
            text(
                "UPDATE tile_parcels t SET land_status = x.land_status FROM ("
                "  SELECT tp.id, ps.land_status FROM tile_parcels tp"
                "  LEFT JOIN tile_parcel_status ps ON ps.parcel_no = tp.parcel_no"
                ") x WHERE x.id = t.id AND t.land_status IS DISTINCT FROM x.land_status"
            )
        )


def _class_sources(tabs: dict[str, set[str]]) -> bool:
    """links and evaluations, as tile_parcel_classes reads them."""
    return {"kind", "from_key", "to_key", "run_id"} <= tabs.get("links", set()) and {
        "uscc",
        "year",
        "class",
        "run_id",
    } <= tabs.get("evaluations", set())


def parcel_class_signature(conn: Connection) -> str:
    """Changes when the evaluation finishes a link or evaluation run (``analysis_runs``, a small
    table; polled by every worker, so it must stay cheap)."""
    if "analysis_runs" in tables(conn):
        return conn.execute(
            text(
                "SELECT 'runs:' || coalesce(max(id), 0)::text FROM analysis_runs "
                "WHERE finished_at IS NOT NULL"
            )
        ).scalar_one()
    return conn.execute(
        text(
            "SELECT coalesce((SELECT max(run_id) FROM evaluations), 0)::text || '/' || "
            "coalesce((SELECT max(run_id) FROM links), 0)::text"
        )
    ).scalar_one()


def refresh_parcel_classes(conn: Connection, signature: str | None = None) -> int:
    """Rebuild ``tile_parcel_classes`` (a parcel's best A/B/C/D among the enterprises linked to
    it, latest evaluated year, as the ``parcels`` collection's ``eval_class``) and log the
    parcels whose class changed. One worker does it (advisory lock); returns how many changed."""
    sig = signature or parcel_class_signature(conn)
    if not conn.execute(text("SELECT pg_try_advisory_xact_lock(5505)")).scalar_one():
        return 0
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _pc_new ON COMMIT DROP AS
            SELECT l.to_key AS parcel_no, min(ev.class) AS eval_class
            FROM links l
            JOIN evaluations ev ON ev.uscc = l.from_key
                 AND ev.year = (SELECT max(year) FROM evaluations)
            WHERE l.kind = 'enterprise_parcel' AND l.to_key IS NOT NULL AND ev.class IS NOT NULL
            GROUP BY l.to_key
            """
        )
    )
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _pc_changed ON COMMIT DROP AS
            SELECT coalesce(n.parcel_no, o.parcel_no) AS parcel_no
            FROM _pc_new n FULL JOIN tile_parcel_classes o ON o.parcel_no = n.parcel_no
            WHERE n.eval_class IS DISTINCT FROM o.eval_class
            """
        )
    )
    n = conn.execute(text("SELECT count(*) FROM _pc_changed")).scalar_one()
    if n:
        conn.execute(text("DELETE FROM tile_parcel_classes"))
        conn.execute(text("INSERT INTO tile_parcel_classes SELECT * FROM _pc_new"))
        if "tile_parcels" in tables(conn):
            conn.execute(
                text(
                    "UPDATE tile_parcels t SET eval_class = n.eval_class "
                    "FROM _pc_changed c LEFT JOIN _pc_new n USING (parcel_no) "
                    "WHERE t.parcel_no = c.parcel_no"
                )
            )
        log_invalidation(
            conn,
            f"classes:{sig}",
            ("parcels",),
            "SELECT p.geom FROM parcels p JOIN _pc_changed c USING (parcel_no)",
            {},
        )
    conn.execute(
        text(
            "INSERT INTO tile_invalidations (source, layers) VALUES (:s, '{-}') "
            "ON CONFLICT (source) DO NOTHING"
        ),
        {"s": f"classes:{sig}"},
    )
    conn.execute(text("DROP TABLE _pc_new, _pc_changed"))
    return int(n)


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
        self.last_run: tuple | None = None
        self.last_classes: str | None = None
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
        cached tiles they touch; returns how many tiles were dropped."""
        s = get_settings().tiles
        now = time.monotonic()
        if not force and now - self.last_poll < s.cache_poll_seconds:
            return 0
        self.last_poll = now
        with engine.begin() as conn:
            tabs = tables(conn)
            if "tile_invalidations" not in tabs:
                return 0
            if (
                "detection_runs" in tabs
                and {"unsupplied_results", "idle_results", "low_efficiency_results"} <= tabs.keys()
            ):
                # (id, finish time): ids restart after a TRUNCATE ... RESTART IDENTITY
                last = conn.execute(
                    text(
                        "SELECT id, finished_at FROM detection_runs "
                        "WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
                    )
                ).first()
                if last is not None and tuple(last) != self.last_run:
                    invalidate_detection(conn, last[0])
                    self.last_run = tuple(last)
            if "tile_parcel_classes" in tabs and _class_sources(tabs):
                sig = parcel_class_signature(conn)
                if sig != self.last_classes:
                    done = conn.execute(
                        text("SELECT 1 FROM tile_invalidations WHERE source = :s"),
                        {"s": f"classes:{sig}"},
                    ).first()
                    if not done:
                        refresh_parcel_classes(conn, sig)
                    self.last_classes = sig
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
    CACHE.poll(engine)  # also keeps tile_parcel_classes current, with the cache off too
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


def invalidate_detection(conn: Connection, run_id: int) -> None:
    """Log the area a detection run changed, against the run before it: for each kind, the
    items whose state differs between the two runs (their geometry), for the derived tilesets
    and ``parcels`` (whose ``land_status`` reads the latest run). Call it inside the run's
    transaction, or let the tile cache find the new run itself (it does, on its next poll)."""
    prev = conn.execute(
        text("SELECT max(id) FROM detection_runs WHERE id < :r AND finished_at IS NOT NULL"),
        {"r": run_id},
    ).scalar_one()
    params = {"run": run_id, "prev": prev if prev is not None else -1}
    changed = """
        SELECT coalesce(a.g, b.g) FROM
          (SELECT r.approval_id AS k, r.status || coalesce(ST_AsEWKB(r.geom)::text, '') AS s,
                  ap.geom AS g
           FROM unsupplied_results r JOIN approvals ap ON ap.id = r.approval_id
           WHERE r.run_id = :run) a
        FULL JOIN
          (SELECT r.approval_id AS k, r.status || coalesce(ST_AsEWKB(r.geom)::text, '') AS s,
                  ap.geom AS g
           FROM unsupplied_results r JOIN approvals ap ON ap.id = r.approval_id
           WHERE r.run_id = :prev) b ON a.k = b.k
        WHERE a.s IS DISTINCT FROM b.s
        UNION ALL
        SELECT sp.geom FROM supplies sp JOIN (
            SELECT coalesce(a.k, b.k) AS k FROM
              (SELECT supply_id AS k, status AS s FROM idle_results WHERE run_id = :run) a
            FULL JOIN
              (SELECT supply_id AS k, status AS s FROM idle_results WHERE run_id = :prev) b
              ON a.k = b.k
            WHERE a.s IS DISTINCT FROM b.s) d ON d.k = sp.id
        UNION ALL
        SELECT p.geom FROM parcels p JOIN (
            SELECT coalesce(a.k, b.k) AS k FROM
              (SELECT parcel_id AS k, reasons::text AS s FROM low_efficiency_results
               WHERE run_id = :run) a
            FULL JOIN
              (SELECT parcel_id AS k, reasons::text AS s FROM low_efficiency_results
               WHERE run_id = :prev) b ON a.k = b.k
            WHERE a.s IS DISTINCT FROM b.s) d ON d.k = p.id
    """
    if (
        "tile_parcel_status" in tables(conn)
        and conn.execute(text("SELECT pg_try_advisory_xact_lock(5506)")).scalar_one()
    ):
        refresh_parcel_status(conn, run_id)
    log_invalidation(
        conn,
        f"detection:{run_id}",
        ("unsupplied", "idle", "low_efficiency", "parcels"),
        changed,
        params,
    )


def refresh_zone_stats(conn: Connection) -> int:
    """Rebuild ``tile_zone_stats`` (parcels by point-on-surface in each district and platform,
    area in 亩, 亩均税收 = latest-year SJSJ of the enterprises located there ÷ that area, class
    A/B/C/D by rank among zones of the same level: top 25 %, to 70 %, to 95 %, the rest, as §2
    ranks enterprises) and log the zones whose figures changed. Returns how many changed."""
    conn.execute(text("CREATE TEMP TABLE _zs_old ON COMMIT DROP AS SELECT * FROM tile_zone_stats"))
    conn.execute(text("DELETE FROM tile_zone_stats"))
    conn.execute(
        text(
            f"""
            WITH tax AS (
                SELECT DISTINCT ON (uscc) uscc, tax_paid FROM outputs
                ORDER BY uscc, year DESC
            ), zones AS (
                SELECT 'district' AS level, code, geom FROM districts
                UNION ALL SELECT 'platform', code, geom FROM platforms
            ), agg AS (
                SELECT z.level, z.code, count(p.id) AS n, coalesce(sum(p.area_m2), 0) AS m2,
                       (SELECT sum(t.tax_paid) FROM enterprises e JOIN tax t USING (uscc)
                        WHERE e.geom && z.geom AND ST_Intersects(z.geom, e.geom)) AS tax
                FROM zones z
                LEFT JOIN parcels p ON p.geom && z.geom
                     AND ST_Intersects(z.geom, ST_PointOnSurface(p.geom))
                GROUP BY z.level, z.code, z.geom
            ), ranked AS (
                SELECT *, m2 / {M2_PER_MU} AS mu,
                       CASE WHEN m2 > 0 AND tax IS NOT NULL THEN tax / (m2 / {M2_PER_MU}) END
                           AS tpm
                FROM agg
            )
            INSERT INTO tile_zone_stats (level, code, parcel_count, area_mu, tax_per_mu,
                                         tax_class)
            SELECT level, code, n, mu, tpm,
                   CASE WHEN tpm IS NULL THEN NULL
                        WHEN r <= 0.25 THEN 'A' WHEN r <= 0.70 THEN 'B'
                        WHEN r <= 0.95 THEN 'C' ELSE 'D' END
            FROM (SELECT *, percent_rank() OVER (PARTITION BY level, tpm IS NULL
                                                 ORDER BY tpm DESC) AS r FROM ranked) x
            """
        )
    )
    changed = """
        SELECT z.geom FROM (
            SELECT coalesce(n.level, o.level) AS level, coalesce(n.code, o.code) AS code
            FROM tile_zone_stats n FULL JOIN _zs_old o ON o.level = n.level AND o.code = n.code
            WHERE (n.parcel_count, n.area_mu, n.tax_per_mu, n.tax_class)
                  IS DISTINCT FROM (o.parcel_count, o.area_mu, o.tax_per_mu, o.tax_class)
        ) c
        JOIN (SELECT 'district' AS level, code, geom FROM districts
              UNION ALL SELECT 'platform', code, geom FROM platforms) z
          ON z.level = c.level AND z.code = c.code
    """
    n = conn.execute(text(f"SELECT count(*) FROM ({changed}) q")).scalar_one()
    if n:
        stamp = conn.execute(text("SELECT txid_current()::text || ':' || clock_timestamp()"))
        log_invalidation(conn, f"zones:{stamp.scalar_one()}", ("parcels",), changed, {})
    conn.execute(text("DROP TABLE _zs_old"))
    return int(n)


def _after_import(conn: Connection, layer_code: str, batch_id: int) -> str:
    """Refresh hook: zone aggregates (and the tiles of zones whose figures changed) and, for
    outputs (CC), the enterprise points whose figures changed. Geometry changes of the
    registry tables themselves are logged by the statement triggers of migration 0005, with
    both the old and the new geometry."""
    tabs = tables(conn)
    if "tile_zone_stats" not in tabs:
        return "tiles: not migrated"
    done = []
    if layer_code == "CC":
        log_invalidation(
            conn,
            f"import:{batch_id}",
            ("enterprises",),
            """SELECT e.geom FROM enterprises e WHERE e.uscc IN (
                   SELECT split_part(key, '|', 1) FROM import_changes WHERE batch_id = :b
                   UNION SELECT uscc FROM outputs WHERE batch_id = :b)""",
            {"b": batch_id},
        )
        done.append("enterprise tiles")
    n = refresh_zone_stats(conn)
    done.append(f"{n} zone aggregates changed")
    return "tiles: " + ", ".join(done)


refresh.register(("XZQ", "PT", "DK", "QY", "CC"), _after_import)


def zone_stats_missing(conn: Connection) -> bool:
    return conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM tile_zone_stats)")).scalar_one()


__all__ = [
    "CACHE",
    "LATEST_RUN",
    "TileError",
    "get_tile",
    "invalidate_detection",
    "refresh_zone_stats",
    "tilesets",
]


def tile_for(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the XYZ tile at zoom z holding a WGS84 lon/lat."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)
