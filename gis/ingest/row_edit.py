"""Editing one row of a layer by its key: replace it (PUT), merge-patch it (PATCH), retire it
(DELETE), each checked against the version its writer last read.

Every edit goes through the one write path of a file import (``import_rows``: the same
validation, report, upsert by key, row history and derived refresh in one transaction) or of a
retirement (``retire``). The version check runs inside that transaction, under the layer's
import lock, so two writers that read the same version cannot both win: the second gets
:class:`VersionMismatch` and nothing of its edit is written.

A row's version is the number of its newest ``row_history`` version (0 for a row loaded before
history was kept). Keys are contract keys as text, composite ones ``:``-joined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from gis.core.layers import Layer
from gis.core.layers import layer as get_layer
from gis.ingest.history import KEY_SEPARATOR, latest_versions, parse_keys
from gis.ingest.pipeline import ImportOptions, import_rows
from gis.ingest.retire import retire
from gis.ingest.rows import RowNotFound

STORED_CRS = "EPSG:4549"
POINT_SOURCE = "ZBXT"  # where a point's coordinates came from (stored as source_crs)


@dataclass
class VersionMismatch(Exception):
    """The row changed since the version its writer sent (HTTP 412): who changed it and when."""

    layer: str
    key: str
    expected: int
    current: int
    who: str | None
    at: str | None

    def __str__(self) -> str:
        by = f" by {self.who} at {self.at}" if self.who else ""
        return (
            f"{self.layer} {self.key} is at version {self.current}, not {self.expected}: it was "
            f"changed{by}. Read it again (its ETag) and apply your change to that version"
        )


def newest_version(conn: Connection, layer: Layer, key: str) -> dict | None:
    """The key's newest history version (version, op, who, at as ISO text, via), or None."""
    return latest_versions(conn, layer, [key]).get(key)


def _where(layer: Layer, values: tuple) -> tuple[str, dict]:
    cond = " AND ".join(f"t.{c} = :k{i}" for i, c in enumerate(layer.key_columns))
    return cond, {f"k{i}": v for i, v in enumerate(values)}


def current_version(conn: Connection, layer: Layer, key: str) -> int:
    """The version of the current row ``key`` names; RowNotFound when there is none."""
    (values,) = parse_keys(layer, [key])
    cond, params = _where(layer, values)
    exists = conn.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {layer.table} t WHERE {cond})"), params
    ).scalar_one()
    v = newest_version(conn, layer, key)
    if not exists:
        if v is not None and v["op"] == "retire":
            raise RowNotFound(f"{layer.code} {key} was retired by {v['who']} at {v['at']}")
        raise RowNotFound(f"no {layer.code} row {key}")
    return 0 if v is None else int(v["version"])


def expect_version(layer: Layer, key: str, expected: int | None) -> Callable[[Connection], None]:
    """A precheck for the write path: the row exists and (when ``expected`` is given) is still
    at that version; else RowNotFound or VersionMismatch."""

    def check(conn: Connection) -> None:
        now = current_version(conn, layer, key)
        if expected is not None and now != expected:
            v = newest_version(conn, layer, key) or {}
            raise VersionMismatch(layer.code, key, expected, now, v.get("who"), v.get("at"))

    return check


def stored_row(conn: Connection, layer: Layer, key: str) -> tuple[dict, object, str | None]:
    """The current row as a department sends it: (properties by contract field code, its
    stored geometry (shapely, EPSG:4549) or None, the point's source CRS or None)."""
    import shapely

    (values,) = parse_keys(layer, [key])
    cond, params = _where(layer, values)
    geom = "ST_AsBinary(t.geom)" if layer.has_geom else "NULL"
    src = "t.source_crs" if layer.has_source_crs else "NULL"
    row = conn.execute(
        text(f"SELECT to_jsonb(t) - 'geom', {geom}, {src} FROM {layer.table} t WHERE {cond}"),
        params,
    ).first()
    if row is None:
        raise RowNotFound(f"no {layer.code} row {key}")
    props = {f.code: row[0].get(f.column) for f in layer.fields}
    g = shapely.from_wkb(bytes(row[1])) if row[1] is not None else None
    return props, g, row[2]


def _key_props(layer: Layer, key: str) -> dict:
    parts = key.split(KEY_SEPARATOR) if len(layer.key) > 1 else [key]
    return dict(zip(layer.key, parts, strict=True))


def _check_fields(layer: Layer, props: dict, key: str) -> None:
    known = {f.code for f in layer.fields}
    if layer.geometry == "point_or_table":
        known |= {"X", "Y", POINT_SOURCE}
    unknown = sorted(str(k) for k in props if str(k).upper() not in known)
    if unknown:
        raise ValueError(
            f"no field {', '.join(unknown)} in layer {layer.code}; its fields are "
            f"{', '.join(f.code for f in layer.fields)}"
        )
    for code, value in _key_props(layer, key).items():
        if code in props and str(props[code]).strip() != value:
            raise ValueError(
                f"{code} is part of the key ({KEY_SEPARATOR.join(layer.key)}) and cannot change: "
                f"the URL names {key}. Retire the row and send the new one instead"
            )


def replace_row(
    engine: Engine,
    layer_code: str,
    key: str,
    properties: dict,
    geometry: dict | None,
    expected: int | None,
    who: str,
    via: str,
    crs: str | None = None,
) -> dict:
    """Replace the whole row ``key`` (PUT): ``properties`` by contract field code (the key's
    fields may be left out), ``geometry`` GeoJSON in ``crs`` (default CGCS2000 lon/lat) or None.
    Returns the import report (``version``: the row's version after it)."""
    layer = get_layer(layer_code)
    parse_keys(layer, [key])
    props = {str(k).upper(): v for k, v in properties.items()}
    _check_fields(layer, props, key)
    props.update(_key_props(layer, key))
    item: dict = {"properties": props}
    if layer.has_geom:
        item["geometry"] = geometry
    return _write(engine, layer, key, [item], expected, who, via, crs)


def patch_row(
    engine: Engine,
    layer_code: str,
    key: str,
    patch: dict,
    expected: int | None,
    who: str,
    via: str,
    crs: str | None = None,
) -> dict:
    """Apply a JSON merge patch (RFC 7396) to row ``key``: ``{"properties": {code: value or
    null}}`` and/or ``{"geometry": GeoJSON in crs, or null}``. A patch that changes nothing
    writes nothing (the report says ``unchanged``). Returns the import report."""
    layer = get_layer(layer_code)
    parse_keys(layer, [key])
    unknown = sorted(set(patch) - {"properties", "geometry"})
    if unknown:
        raise ValueError(f"a patch holds 'properties' and/or 'geometry', not {', '.join(unknown)}")
    changes = patch.get("properties") or {}
    if not isinstance(changes, dict):
        raise ValueError("'properties' must be an object of contract field codes")
    changes = {str(k).upper(): v for k, v in changes.items()}
    _check_fields(layer, changes, key)
    with engine.connect() as conn:
        props, stored, source = stored_row(conn, layer, key)
        before = dict(props)
        for code, value in changes.items():
            props[code] = value
        if "geometry" not in patch and props == before:
            version = current_version(conn, layer, key)
            if expected is not None and version != expected:
                expect_version(layer, key, expected)(conn)
            return {"layer": layer.code, "key": key, "status": "unchanged", "version": version}
    item: dict = {"properties": props}
    if not layer.has_geom:
        return _write(engine, layer, key, [item], expected, who, via, None)
    if "geometry" in patch:
        item["geometry"] = patch["geometry"]
        if layer.has_source_crs:
            props[POINT_SOURCE] = crs or None
        return _write(engine, layer, key, [item], expected, who, via, crs)
    # the stored geometry sent back as it is (EPSG:4549, no transformation)
    item["geometry"] = stored
    if layer.has_source_crs:
        props[POINT_SOURCE] = source
    return _write(engine, layer, key, [item], expected, who, via, STORED_CRS)


def retire_row(
    engine: Engine, layer_code: str, key: str, expected: int | None, who: str, via: str
) -> dict:
    """Retire row ``key`` (DELETE) if it is still at version ``expected``: the retirement's
    report (rows retired with it included)."""
    layer = get_layer(layer_code)
    parse_keys(layer, [key])
    return retire(
        engine, layer.code, [key], who=who, via=via, precheck=expect_version(layer, key, expected)
    )


def _write(
    engine: Engine,
    layer: Layer,
    key: str,
    items: list[dict],
    expected: int | None,
    who: str,
    via: str,
    crs: str | None,
) -> dict:
    report = import_rows(
        engine,
        layer.code,
        items,
        ImportOptions(crs=crs, strict=True),
        user=who,
        via=via,
        precheck=expect_version(layer, key, expected),
    )
    with engine.connect() as conn:
        v = newest_version(conn, layer, key)
    report["key"] = key
    report["version"] = 0 if v is None else int(v["version"])
    return report
