"""Items queries of OGC API Features over the collection registry: bbox, crs, datetime, CQL2,
sortby, properties and paging, as one SQL statement that returns GeoJSON Features as text.

CRSs (Part 2): CRS84 (lon/lat), EPSG:4326 and EPSG:4490 (lat/lon: their axis order is latitude
first), EPSG:4549 (CGCS2000 3-degree GK CM 120E, the storage CRS; its EPSG axis order is
northing, easting, and we honour it as GDAL and QGIS expect) and EPSG:3857 (easting, northing).
Coordinates are written with 8 decimals in degrees (about 1 mm) and 4 in metres (0.1 mm).

numberMatched: an exact ``count(*)`` when the planner estimates fewer than
``tiles.exact_count_below`` rows, else the planner's estimate (pygeoapi #1969 shows what a
COUNT(*) per page costs on big tables). On a last page it is exact: offset + numberReturned.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from gis.core.config import get_settings
from gis.serving import cql2
from gis.serving.collections import Collection, tables

OGC_CRS = "http://www.opengis.net/def/crs/"
CRS84 = OGC_CRS + "OGC/1.3/CRS84"
STORAGE_CRS = OGC_CRS + "EPSG/0/4549"


# Where the storage CRS (EPSG:4549, a transverse Mercator on 120E) is well defined, in lon/lat:
# geometries in another CRS are clipped to it before they are projected (PROJ fails or folds
# coordinates far from the central meridian). No parcel of a 4549 dataset lies outside it.
STORAGE_DOMAIN = (90.0, -80.0, 150.0, 80.0)
_MERCATOR_R = 6378137.0  # EPSG:3857 sphere


@dataclass(frozen=True)
class Crs:
    uri: str
    srid: int
    flip: bool  # axis order is latitude / northing first: swap x and y
    geographic: bool
    # valid coordinates (x = east order): xmin, ymin, xmax, ymax; None: any finite number
    bounds: tuple[float, float, float, float] | None = None

    @property
    def digits(self) -> int:
        return 8 if self.geographic else 4

    def outside(self, x: float, y: float) -> bool:
        """Whether (x, y) (x = east) is not a coordinate of this CRS (or not finite)."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return True
        b = self.bounds
        return b is not None and not (b[0] <= x <= b[2] and b[1] <= y <= b[3])

    @property
    def range_text(self) -> str:
        if self.bounds is None:
            return "finite numbers"
        x0, y0, x1, y1 = (f"{v:g}" for v in self.bounds)
        xs, ys = (f"{x0}..{x1}", f"{y0}..{y1}")
        names = ("longitude", "latitude") if self.geographic else ("easting", "northing")
        parts = [f"{names[0]} {xs}", f"{names[1]} {ys}"]
        return ", ".join(parts[::-1] if self.flip else parts)

    def storage_sql(self, geom: str) -> str:
        """SQL of ``geom`` (an SQL geometry in this CRS, x = east) in EPSG:4549, clipped to
        :data:`STORAGE_DOMAIN` first when it has to be projected."""
        if self.srid == 4549:
            return geom
        if self.srid == ZONE_40:  # EPSG:4549 with the zone number before the easting
            return f"ST_SetSRID(ST_Translate({geom}, {-ZONE_40_PREFIX}, 0), 4549)"
        lonlat = geom if self.geographic else f"ST_Transform({geom}, 4326)"
        srid = self.srid if self.geographic else 4326
        x0, y0, x1, y1 = STORAGE_DOMAIN
        clip = f"ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, {srid})"
        return f"ST_Transform(ST_ClipByBox2D({lonlat}, {clip}), 4549)"


# EPSG:4528, CGCS2000 3-degree GK zone 40: the same projection as EPSG:4549 (CM 120E) with the
# zone number written before the easting (false easting 40,500,000 m instead of 500,000 m)
ZONE_40 = 4528
ZONE_40_PREFIX = 40_000_000
_LONLAT = (-180.0, -90.0, 180.0, 90.0)
_WEB_MERCATOR = (-20037508.35, -20048966.11, 20037508.35, 20048966.11)  # EPSG's bounds
CRSS: dict[str, Crs] = {
    c.uri: c
    for c in (
        Crs(CRS84, 4326, False, True, _LONLAT),
        Crs(OGC_CRS + "EPSG/0/4326", 4326, True, True, _LONLAT),
        Crs(OGC_CRS + "EPSG/0/4490", 4490, True, True, _LONLAT),
        Crs(STORAGE_CRS, 4549, True, False),
        Crs(OGC_CRS + "EPSG/0/4528", ZONE_40, True, False),
        Crs(OGC_CRS + "EPSG/0/3857", 3857, False, False, _WEB_MERCATOR),
    )
}
CRS_LIST = list(CRSS)


class FeaturesError(ValueError):
    """A request the client must change: status (400 / 404) and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_crs(value: str | None, what: str = "crs") -> Crs:
    """A CRS URI or short form (EPSG:4549, CRS84, [EPSG:4549]) -> Crs; 400 naming the known ones."""
    if not value:
        return CRSS[CRS84]
    v = value.strip().strip("[]<>")
    m = re.fullmatch(r"(?i)(?:EPSG:|https?://www\.opengis\.net/def/crs/EPSG/0/)?(\d+)", v)
    if m:
        v = OGC_CRS + "EPSG/0/" + m.group(1)
    elif re.fullmatch(r"(?i)(OGC:)?CRS84|http://www\.opengis\.net/def/crs/OGC/1\.3/CRS84", v):
        v = CRS84
    found = CRSS.get(v)
    if not found:
        raise FeaturesError(
            400, f"{what} {value!r} is not supported; use one of: {', '.join(CRS_LIST)}"
        )
    return found


def parse_bbox(value: str, crs: Crs) -> tuple[float, float, float, float]:
    """bbox in the axis order of ``crs`` -> (xmin, ymin, xmax, ymax) in x=east order; 400 for
    anything but four (or six) finite numbers in the CRS's range, lower corner first."""
    parts = value.split(",")
    try:
        nums = [float(v) for v in parts]
    except ValueError:
        nums = []
    if len(nums) not in (4, 6):
        raise FeaturesError(
            400,
            f"bbox {value[:200]!r}: four numbers (or six, with heights), comma-separated, "
            f"lower corner first, in the axis order of bbox-crs ({crs.uri})",
        )
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    return check_bbox(nums, crs, value)


def check_bbox(nums, crs: Crs, shown: str | None = None) -> tuple[float, float, float, float]:  # type: ignore[no-untyped-def]
    """Four numbers of a bbox in the axis order of ``crs`` -> (xmin, ymin, xmax, ymax) in
    x=east order; 400 unless they are finite, in the CRS's range and lower corner first."""
    shown = (shown or ",".join(f"{v:g}" for v in nums))[:200]
    a0, b0, a1, b1 = (float(v) for v in nums)
    x0, y0, x1, y1 = (b0, a0, b1, a1) if crs.flip else (a0, b0, a1, b1)
    if crs.outside(x0, y0) or crs.outside(x1, y1):
        raise FeaturesError(
            400, f"bbox {shown!r} is outside the range of {crs.uri} ({crs.range_text})"
        )
    if x0 > x1 or y0 > y1:
        raise FeaturesError(400, f"bbox {shown!r}: the lower corner comes first")
    return x0, y0, x1, y1


def crs_of(srid: int, flip: bool = False) -> Crs:
    """The supported CRS of ``srid``, x = east unless ``flip`` (an axis order of its own)."""
    for c in CRSS.values():
        if c.srid == srid:
            return replace(c, flip=flip)
    raise FeaturesError(400, f"EPSG:{srid} is not supported; use one of: {', '.join(CRS_LIST)}")


def bbox_condition(geom: str, crs: Crs, bbox: tuple[float, float, float, float]):
    """SQL condition (and its parameters) that ``geom`` (EPSG:4549) meets a bbox from
    :func:`parse_bbox`."""
    box = bbox_sql(crs, bbox)
    if box is None:
        return "false", {}
    env, params = box
    return f"{geom} && {env} AND ST_Intersects({geom}, {env})", params


def bbox_sql(crs: Crs, bbox: tuple[float, float, float, float]) -> tuple[str, dict] | None:
    """SQL of the bbox polygon in EPSG:4549 (edges densified before reprojecting); None when it
    lies outside :data:`STORAGE_DOMAIN` (no feature can be in it)."""
    x0, y0, x1, y1 = bbox
    srid, geographic = crs.srid, crs.geographic
    if srid == 3857:  # a rectangle in Web Mercator is one in lon/lat: use that
        x0, x1 = (math.degrees(x / _MERCATOR_R) for x in (x0, x1))
        y0, y1 = (math.degrees(math.atan(math.sinh(y / _MERCATOR_R))) for y in (y0, y1))
        srid, geographic = 4326, True
    if srid == ZONE_40:  # a rectangle in zone 40's numbers is one in EPSG:4549's
        x0, x1 = x0 - ZONE_40_PREFIX, x1 - ZONE_40_PREFIX
        srid = 4549
    if srid != 4549:  # clip to where the storage projection holds
        d = STORAGE_DOMAIN
        x0, y0, x1, y1 = max(x0, d[0]), max(y0, d[1]), min(x1, d[2]), min(y1, d[3])
        if x0 > x1 or y0 > y1:
            return None
    if x0 == x1 or y0 == y1:  # a point or a line: widen it by 0.1 mm so it is a polygon
        eps = 1e-9 if geographic else 1e-4
        x0, y0, x1, y1 = x0 - eps, y0 - eps, x1 + eps, y1 + eps
    env = "ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, :bsrid)"
    if srid != 4549:
        env = f"ST_Transform(ST_Segmentize({env}, :bseg), 4549)"
    seg = max((x1 - x0), (y1 - y0)) / 32 or 1.0
    return env, {"bx0": x0, "by0": y0, "bx1": x1, "by1": y1, "bsrid": srid, "bseg": seg}


def _parse_instant(s: str, end: bool) -> date | None:
    s = s.strip()
    if s in ("", ".."):
        return None
    try:
        if "T" in s or " " in s:
            return datetime.fromisoformat(s.replace("Z", "+00:00")).date()
        return date.fromisoformat(s)
    except ValueError:
        raise FeaturesError(
            400, f"datetime {s!r}: use RFC 3339 (2024-01-31 or 2024-01-31T00:00:00Z), '..' open"
        ) from None


def parse_datetime(value: str) -> tuple[date | None, date | None]:
    """An instant or an interval ``a/b`` (either end ``..`` or empty) -> inclusive dates."""
    if "/" in value:
        a, b = value.split("/", 1)
        lo, hi = _parse_instant(a, False), _parse_instant(b, True)
        if lo and hi and lo > hi:
            raise FeaturesError(400, f"datetime {value!r}: the start is after the end")
        return lo, hi
    d = _parse_instant(value, False)
    if d is None:
        raise FeaturesError(400, "datetime '..' alone is not an instant")
    return d, d


def parse_sortby(value: str, coll: Collection, analyst: bool) -> list[tuple[str, bool]]:
    """``+a,-b`` -> [(sql, descending)]; names must be properties the caller may see."""
    props = {p.name: p for p in coll.visible(analyst)}
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("+-").strip()
        # "name DESC" / "name A" forms are accepted too
        if " " in name:
            name, order = name.split(None, 1)
            desc = order.strip().upper() in ("D", "DESC")
        p = props.get(name)
        if p is None or not p.sortable:
            raise FeaturesError(
                400,
                f"sortby: {name!r} is not a sortable property of {coll.id}; "
                f"use one of: {', '.join(sorted(props))}",
            )
        out.append((p.sql, desc))
    return out


@dataclass
class ItemsRequest:
    limit: int = 10
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: Crs = field(default_factory=lambda: CRSS[CRS84])
    datetime: tuple[date | None, date | None] | None = None
    filter: str | None = None
    filter_lang: str = "cql2-text"  # or "cql2-json": ``filter`` holds CQL2-JSON
    filter_crs: Crs = field(default_factory=lambda: CRSS[CRS84])
    equals: dict[str, str] = field(default_factory=dict)  # ?prop=value simple filters
    sortby: str | None = None
    properties: list[str] | None = None
    crs: Crs = field(default_factory=lambda: CRSS[CRS84])
    analyst: bool = False


def _where(coll: Collection, req: ItemsRequest) -> tuple[str, dict[str, Any]]:
    clauses = [f"({coll.where})"]
    params: dict[str, Any] = {}
    if req.bbox:
        cond, p = bbox_condition(coll.geom, req.bbox_crs, req.bbox)
        clauses.append(cond)
        params.update(p)
    if req.datetime and coll.temporal:
        tp = coll.prop(coll.temporal)
        assert tp is not None
        lo, hi = req.datetime
        if lo:
            clauses.append(f"({tp.sql}) >= :dt_lo")
            params["dt_lo"] = lo
        if hi:
            clauses.append(f"({tp.sql}) <= :dt_hi")
            params["dt_hi"] = hi
    if req.filter:
        try:
            ast = (cql2.parse_json if req.filter_lang == "cql2-json" else cql2.parse)(req.filter)
            sql, p = cql2.to_sql(ast, coll, req.analyst, req.filter_crs)
        except cql2.CQL2Error as e:
            raise FeaturesError(400, f"filter: {e}") from None
        clauses.append(sql)
        params.update(p)
    visible = {p.name: p for p in coll.visible(req.analyst)}
    for i, (name, value) in enumerate(req.equals.items()):
        p = visible[name]
        try:
            v = cql2._coerce(_simple_value(value, p.type), p.type)
        except cql2.CQL2Error as e:
            raise FeaturesError(400, f"{name}: {e}") from None
        clauses.append(f"({p.sql}) = :eq{i}")
        params[f"eq{i}"] = v
    return " AND ".join(clauses), params


def _simple_value(v: str, typ: str) -> Any:
    if typ in ("integer", "number"):
        try:
            return int(v) if typ == "integer" else float(v)
        except ValueError:
            raise FeaturesError(400, f"{v!r} is not a number") from None
    if typ == "boolean":
        return v.lower() in ("true", "1", "t", "yes")
    return v


def geojson_sql(geom: str, crs: Crs) -> str:
    """SQL of the GeoJSON geometry (json) of ``geom`` (an SQL geometry in EPSG:4549) in ``crs``:
    its axis order, its decimals, no ``crs`` member."""
    g = geom
    if crs.srid != 4549:
        g = f"ST_Transform({g}, {int(crs.srid)})"
    if crs.flip:
        g = f"ST_FlipCoordinates({g})"
    return f"ST_AsGeoJSON({g}, {crs.digits}, 0)::json"


def geometry_sql(coll: Collection, crs: Crs) -> str:
    return geojson_sql(coll.geom, crs)


def feature_sql(coll: Collection, crs: Crs, props: list[str] | None, analyst: bool) -> str:
    """SQL of one GeoJSON Feature per row, as text."""
    visible = coll.visible(analyst)
    if props is not None:
        chosen = [p for p in visible if p.name in props]
    else:
        chosen = list(visible)
    pairs = ", ".join(f"'{p.name}', {p.sql}" for p in chosen)
    return (
        f"json_build_object('type', 'Feature', 'id', {coll.key}, "
        f"'geometry', {geometry_sql(coll, crs)}, "
        f"'properties', json_build_object({pairs}))::text"
    )


def check_properties(coll: Collection, names: list[str], analyst: bool) -> None:
    visible = {p.name for p in coll.visible(analyst)}
    hidden = {p.name for p in coll.props} - visible
    for n in names:
        if n in hidden:
            raise FeaturesError(400, f"properties: {n!r} needs an analyst token")
        if n not in visible:
            raise FeaturesError(
                400,
                f"properties: {n!r} is not a property of {coll.id}; "
                f"use one of: {', '.join(sorted(visible))}",
            )


@dataclass
class ItemsPage:
    features: list[str]  # GeoJSON Feature text
    number_matched: int
    matched_exact: bool
    number_returned: int


def page_sql(coll: Collection, req: ItemsRequest) -> tuple[str, str, dict[str, Any]]:
    """(page SQL, WHERE clause, parameters) of one items page."""
    if req.properties is not None:
        check_properties(coll, req.properties, req.analyst)
    where, params = _where(coll, req)
    keys = parse_sortby(req.sortby, coll, req.analyst) if req.sortby else []
    # The page is chosen on row ids and sort keys only, then each of its rows is built as
    # GeoJSON: PostgreSQL would otherwise build (and throw away) every feature the OFFSET skips.
    cols = ", ".join(f"({sql}) AS o{i}" for i, (sql, _) in enumerate(keys))
    inner_order = ", ".join(f"({sql}) {'DESC' if d else 'ASC'}" for sql, d in keys)
    outer_order = ", ".join(f"pg_.o{i} {'DESC' if d else 'ASC'}" for i, (_, d) in enumerate(keys))
    sql = (
        f"SELECT f_.j FROM (SELECT t.ctid AS c_, {cols + ', ' if cols else ''}{coll.key} AS k_ "
        f"FROM {coll.source} WHERE {where} "
        f"ORDER BY {inner_order + ', ' if inner_order else ''}{coll.key} "
        "LIMIT :limit OFFSET :offset) pg_ "
        f"CROSS JOIN LATERAL (SELECT {feature_sql(coll, req.crs, req.properties, req.analyst)} "
        f"AS j FROM {coll.source} WHERE t.ctid = pg_.c_) f_ "
        f"ORDER BY {outer_order + ', ' if outer_order else ''}pg_.k_"
    )
    return sql, where, {**params, "limit": req.limit, "offset": req.offset}


def items(conn: Connection, coll: Collection, req: ItemsRequest) -> ItemsPage:
    """One page of features; GeoJSON text per feature (built by PostgreSQL)."""
    sql, where, params = page_sql(coll, req)
    no_jit(conn)
    rows = conn.execute(text(sql), params)
    feats = [r[0] for r in rows]
    n = len(feats)
    if n < req.limit and (n > 0 or req.offset == 0):
        matched, exact = req.offset + n, True
    else:
        matched, exact = count(conn, coll, where, params)
    return ItemsPage(feats, matched, exact, n)


def no_jit(conn: Connection) -> None:
    """JIT compilation costs 50-150 ms on these plans (PostGIS functions look expensive to the
    planner) and never pays back for a page of features: off for this transaction."""
    conn.execute(text("SET LOCAL jit = off"))


def count(conn: Connection, coll: Collection, where: str, params: dict) -> tuple[int, bool]:
    """(rows, exact): exact below the configured threshold, else the planner's estimate."""
    base = f"FROM {coll.source} WHERE {where}"
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) SELECT 1 {base}"), params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    est = int(plan[0]["Plan"]["Plan Rows"])
    if est < get_settings().tiles.exact_count_below:
        return int(conn.execute(text(f"SELECT count(*) {base}"), params).scalar_one()), True
    return est, False


def item(conn: Connection, coll: Collection, fid: str, crs: Crs, analyst: bool) -> str | None:
    no_jit(conn)
    sql = (
        f"SELECT {feature_sql(coll, crs, None, analyst)} FROM {coll.source} "
        f"WHERE ({coll.where}) AND {coll.key} = :fid LIMIT 1"
    )
    return conn.execute(text(sql), {"fid": fid}).scalar_one_or_none()


_EXTENTS: dict[tuple[str, str], tuple[float, dict, str | None]] = {}
EXTENT_TTL = 60.0


def _change_stamp(conn: Connection) -> str | None:
    """The newest row of the invalidation log (``id@at``; every writer of a mapped layer logs
    one in its transaction), or None without the log."""
    if "tile_invalidations" not in tables(conn):
        return None
    return conn.execute(
        text(
            "SELECT id::text || '@' || extract(epoch FROM at)::text FROM tile_invalidations "
            "ORDER BY id DESC LIMIT 1"
        )
    ).scalar_one_or_none()


def extent(conn: Connection, coll: Collection) -> dict:
    """Spatial extent (CRS84 bbox) and temporal interval. Cached for at most ``EXTENT_TTL``
    seconds, and only while the invalidation log's newest row is the one seen when it was
    computed: a committed change to a layer (its writer logs one) shows at once."""
    key = (conn.engine.url.render_as_string(hide_password=True), coll.id)
    stamp = _change_stamp(conn)
    hit = _EXTENTS.get(key)
    if hit and time.monotonic() - hit[0] < EXTENT_TTL and hit[2] == stamp:
        return hit[1]
    tsql = "NULL::date, NULL::date"
    if coll.temporal:
        tp = coll.prop(coll.temporal)
        assert tp is not None
        tsql = f"min({tp.sql}), max({tp.sql})"
    row = conn.execute(
        text(f"SELECT ST_Extent({coll.geom}), {tsql} FROM {coll.source} WHERE {coll.where}")
    ).one()
    bbox = None
    if row[0] is not None:
        b = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                "ST_Extent(ST_Transform(ST_Segmentize(ST_SetSRID(CAST(:b AS box2d)::geometry,"
                " 4549), 500), 4326)) AS e) q"
            ),
            {"b": row[0]},
        ).one()
        bbox = [round(b[0], 7), round(b[1], 7), round(b[2], 7), round(b[3], 7)]
    out: dict = {
        "spatial": {"bbox": [bbox or [-180, -90, 180, 90]], "crs": CRS84},
    }
    if coll.temporal:
        out["temporal"] = {
            "interval": [[_iso(row[1]), _iso(row[2])]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    _EXTENTS[key] = (time.monotonic(), out, stamp)
    return out


def _iso(d: date | None) -> str | None:
    return None if d is None else f"{d.isoformat()}T00:00:00Z"


def forget_extents() -> None:
    _EXTENTS.clear()


_SCHEMA_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "date": {"type": "string", "format": "date"},
    "boolean": {"type": "boolean"},
    "array": {"type": "array", "items": {"type": "string"}},
}


def queryables(coll: Collection, analyst: bool, self_url: str) -> dict:
    props: dict[str, Any] = {
        "geometry": {
            "title": "geometry (EPSG:4549 stored)",
            "format": "geometry-multipolygon"
            if coll.geometry_type == "MultiPolygon"
            else "geometry-point",
            "$ref": f"https://geojson.org/schema/{coll.geometry_type}.json",
        }
    }
    for p in coll.visible(analyst):
        props[p.name] = {"title": p.title or p.name, **_SCHEMA_TYPES[p.type]}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": self_url,
        "type": "object",
        "title": coll.title,
        "properties": props,
        "additionalProperties": False,
    }
