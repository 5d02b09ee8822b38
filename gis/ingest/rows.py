"""Reading a layer's rows as the contract names them: the current rows, the retired ones, the rows
as they stood at a past time, and every version of one row.

A row is ``{"key", "version", "properties", "geometry", "retired"}``: ``key`` its contract key as
text (composite keys ``:``-joined in the contract's order, ``91330102169913999J:2023`` for CC),
``version`` the number of its newest ``row_history`` version (0 for a row loaded before history
was kept), ``properties`` its contract fields by contract code in the contract's order (dates
ISO, numbers as numbers, lists as lists), ``geometry`` GeoJSON in EPSG:4490 (CGCS2000) with
longitude first, or null. Restricted fields (tax, energy, emissions) are left out entirely unless
the caller may see them.

Where a row comes from:

- a current row: its layer table (its version from ``row_history``);
- a retired row (its newest version is a ``retire``): that version's ``row`` (the row as it was
  when retired), with ``"retired": true``;
- a row as of a time: the ``row`` of its newest version at or before then; if that version is a
  ``retire``, or the key has none that early, the row did not exist then. Rows without history
  (version 0) have no known past: ``as_of`` does not find them.

Every list is one SQL statement per page (plus a count when the page does not tell it): the page
is chosen on the key alone, then only its rows are built as JSON by PostgreSQL, no Python loop
over rows. HTTP lives in app/routers/rows.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from gis.core.layers import Field, Layer
from gis.ingest.history import KEY_SEPARATOR, key_sql, last_version_join, parse_keys
from gis.serving.features_sql import CRSS, OGC_CRS, geojson_sql

# GeoJSON of rows: EPSG:4490 (CGCS2000) lon/lat, 8 decimals (about 1 mm)
CGCS2000_LONLAT = replace(CRSS[OGC_CRS + "EPSG/0/4490"], flip=False)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
INT4 = (-(2**31), 2**31 - 1)
_SQL_TYPES = {"int": "int", "float": "float8", "date": "date", "bool": "boolean"}
_TRUE, _FALSE = ("true", "1", "t", "yes"), ("false", "0", "f", "no")
# the changed fields of an update: a restricted one the caller may not see
WITHHELD = {"old": None, "new": None, "withheld": True}


class RowsRequestError(ValueError):
    """A request the caller must change: ``status`` 400 (an unknown field, a bad value) or 403
    (a restricted field named by a caller who may not see it)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class RowNotFound(LookupError):
    """No such row (now, or at the time asked); the message says what is known of the key."""


def has_restricted(layer: Layer) -> bool:
    """Whether the layer holds restricted fields (tax, energy, emissions)."""
    return any(f.restricted for f in layer.fields)


def _sql_type(f: Field) -> str:
    return _SQL_TYPES.get(f.type, "text")


@dataclass(frozen=True)
class _Source:
    """Where rows are read from: a layer table (alias ``t``) or ``row_history`` (alias ``h``)."""

    layer: Layer
    history: bool
    where: str  # the rows that belong (may use :layer and :as_of)
    retired: str  # SQL of the row's "retired"

    @property
    def base(self) -> str:
        return "row_history h" if self.history else f"{self.layer.table} t"

    @property
    def alias(self) -> str:
        return "h" if self.history else "t"

    @property
    def key(self) -> str:
        return "h.key" if self.history else key_sql(self.layer, "t")

    @property
    def version(self) -> str:
        return "h.version" if self.history else "COALESCE(v.version, 0)"

    @property
    def joins(self) -> str:
        return "" if self.history else last_version_join("v", self.key)

    def order(self) -> list[str]:
        """SQL of the key fields in the contract's order (ints compared as numbers)."""
        if not self.history:
            return [f"t.{c}" for c in self.layer.key_columns]
        if len(self.layer.key) == 1:
            return ["h.key"]
        parts = []
        for i, code in enumerate(self.layer.key):
            part = f"split_part(h.key, '{KEY_SEPARATOR}', {i + 1})"
            parts.append(f"{part}::int" if self.layer.field(code).type == "int" else part)
        return parts

    def value(self, f: Field) -> str:
        """SQL of a field's value for the JSON answer."""
        return f"h.row->'{f.column}'" if self.history else f"t.{f.column}"

    def equals_any(self, f: Field, param: str) -> str:
        """SQL: the field equals one of the values in the array parameter ``param`` (a list
        field: holds one of them)."""
        if f.type == "list":
            if self.history:
                return f"(h.row->'{f.column}') ?| CAST(:{param} AS text[])"
            return f"t.{f.column} && CAST(:{param} AS text[])"
        typ = _sql_type(f)
        col = f"(h.row->>'{f.column}')::{typ}" if self.history else f"t.{f.column}"
        return f"{col} = ANY(CAST(:{param} AS {typ}[]))"

    def key_match(self, values: tuple) -> tuple[str, dict]:
        """SQL and parameters of the row with key ``values`` (a parse_keys tuple)."""
        if self.history:
            return "h.key = :key", {"key": KEY_SEPARATOR.join(str(v) for v in values)}
        cond = " AND ".join(f"t.{c} = :k{i}" for i, c in enumerate(self.layer.key_columns))
        return cond, {f"k{i}": v for i, v in enumerate(values)}

    def geometry(self) -> str:
        if not self.layer.has_geom:
            return "NULL::json"
        g = "ST_GeomFromEWKB(decode(h.row->>'geom', 'hex'))" if self.history else "t.geom"
        return geojson_sql(g, CGCS2000_LONLAT)

    def row_json(self, restricted: bool) -> str:
        """SQL of a row as JSON: key, version, properties, geometry, retired."""
        props = ", ".join(
            f"'{f.code}', {self.value(f)}"
            for f in self.layer.fields
            if restricted or not f.restricted
        )
        return (
            f"json_build_object('key', {self.key}, 'version', {self.version}, "
            f"'properties', json_build_object({props}), 'geometry', {self.geometry()}, "
            f"'retired', {self.retired})"
        )


# the version of h that is the newest of its key (at or before :as_of when ``as_of``)
def _newest(as_of: bool) -> str:
    then = " AND n.at <= :as_of" if as_of else ""
    return (
        "NOT EXISTS (SELECT 1 FROM row_history n WHERE n.layer = h.layer AND n.key = h.key "
        f"AND n.version > h.version{then})"
    )


def _current(layer: Layer) -> _Source:
    return _Source(layer, False, "true", "false")


def _retired(layer: Layer) -> _Source:
    where = f"h.layer = :layer AND h.op = 'retire' AND {_newest(False)}"
    return _Source(layer, True, where, "true")


def _as_of(layer: Layer) -> _Source:
    return _Source(
        layer,
        True,
        f"h.layer = :layer AND h.at <= :as_of AND h.op <> 'retire' AND {_newest(True)}",
        "false",
    )


def _select(
    conn: Connection,
    src: _Source,
    conds: list[str],
    params: dict,
    restricted: bool,
    limit: int,
    offset: int,
) -> list[dict]:
    """One page of rows: chosen on the key first, then only its rows are built as JSON (with
    ``ORDER BY … OFFSET`` PostgreSQL would otherwise build every skipped row)."""
    order = src.order()
    where = " AND ".join([src.where, *conds])
    cols = ", ".join(f"{o} AS o{i}" for i, o in enumerate(order))
    sql = (
        f"SELECT r.j FROM (SELECT {src.alias}.ctid AS c_, {cols} FROM {src.base} "
        f"WHERE {where} ORDER BY {', '.join(order)} LIMIT :limit OFFSET :offset) p "
        f"CROSS JOIN LATERAL (SELECT {src.row_json(restricted)} AS j FROM {src.base} "
        f"{src.joins} WHERE {src.alias}.ctid = p.c_) r "
        f"ORDER BY {', '.join(f'p.o{i}' for i in range(len(order)))}"
    )
    all_params = {**params, "layer": src.layer.code, "limit": limit, "offset": offset}
    return list(conn.execute(text(sql), all_params).scalars())


def _count(conn: Connection, src: _Source, conds: list[str], params: dict) -> int:
    where = " AND ".join([src.where, *conds])
    return conn.execute(
        text(f"SELECT count(*) FROM {src.base} WHERE {where}"),
        {**params, "layer": src.layer.code},
    ).scalar_one()


def _filter_value(layer: Layer, f: Field, v: str) -> Any:
    """A filter's text as the field's type; RowsRequestError (400) saying what it takes."""

    def bad(want: str) -> RowsRequestError:
        return RowsRequestError(400, f"{f.code}={v[:60]!r} in layer {layer.code}: give {want}")

    if f.type == "int":
        try:
            n = int(v)
        except ValueError:
            raise bad("a whole number") from None
        if not INT4[0] <= n <= INT4[1]:
            raise bad(f"a whole number from {INT4[0]} to {INT4[1]}")
        return n
    if f.type == "float":
        try:
            x = float(v)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(x):
            raise bad("a finite number")
        return x
    if f.type == "date":
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise bad("a date YYYY-MM-DD") from None
    if f.type == "bool":
        if v.strip().lower() in _TRUE:
            return True
        if v.strip().lower() in _FALSE:
            return False
        raise bad("true or false")
    return v


def filters(layer: Layer, given: list[tuple[str, str]], restricted: bool) -> dict[Field, list[Any]]:
    """Equality filters from (contract field code, value) pairs (codes in any case; a code
    given several times: any of its values). RowsRequestError: 400 for an unknown code or a
    value not of the field's type, 403 for a restricted field when ``restricted`` is False."""
    codes = {f.code: f for f in layer.fields}
    out: dict[Field, list[Any]] = {}
    for code, value in given:
        f = codes.get(code.upper())
        if f is None:
            raise RowsRequestError(
                400,
                f"{code[:40]!r} is not a field of layer {layer.code} ({layer.label}); filter on "
                f"its fields: {', '.join(codes)} (or use limit, offset, as_of, retired)",
            )
        if f.restricted and not restricted:
            raise RowsRequestError(
                403,
                f"{f.code} ({f.label}) is a restricted field: filtering on it needs an analyst "
                f"or admin token, or an editor token for {layer.code}",
            )
        out.setdefault(f, []).append(_filter_value(layer, f, value))
    return out


@dataclass
class RowsPage:
    rows: list[dict]
    number_matched: int


def list_rows(
    conn: Connection,
    layer: Layer,
    restricted: bool,
    where: dict[Field, list[Any]] | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    as_of: datetime | None = None,
    retired: bool = False,
) -> RowsPage:
    """A page of the layer's rows ordered by key: the current ones, the retired ones
    (``retired``), or those that existed at ``as_of`` as they were then; ``where`` from
    :func:`filters`. ``number_matched`` counts them all."""
    if as_of is not None and retired:
        raise RowsRequestError(
            400,
            "as_of lists the rows as they stood then, retired=true the rows retired now: "
            "give one of them",
        )
    src = _as_of(layer) if as_of is not None else _retired(layer) if retired else _current(layer)
    conds, params = [], {"as_of": as_of} if as_of is not None else {}
    for i, (f, values) in enumerate((where or {}).items()):
        conds.append(src.equals_any(f, f"f{i}"))
        params[f"f{i}"] = values
    limit = max(1, min(limit, MAX_LIMIT))
    rows = _select(conn, src, conds, params, restricted, limit, offset)
    n = len(rows)
    if n < limit and (n > 0 or offset == 0):
        matched = offset + n  # the last page tells the count
    else:
        matched = _count(conn, src, conds, params)
    return RowsPage(rows, matched)


def get_row(
    conn: Connection,
    layer: Layer,
    key: str,
    restricted: bool,
    as_of: datetime | None = None,
) -> dict:
    """One row by its key text: current, else retired (``"retired": true``, its last content);
    with ``as_of`` the row as it stood then. ValueError for a malformed key (parse_keys),
    RowNotFound when there is no such row (then)."""
    (values,) = parse_keys(layer, [key])
    sources = [_as_of(layer)] if as_of is not None else [_current(layer), _retired(layer)]
    params = {"as_of": as_of} if as_of is not None else {}
    for src in sources:
        cond, p = src.key_match(values)
        rows = _select(conn, src, [cond], {**params, **p}, restricted, 1, 0)
        if rows:
            return rows[0]
    raise RowNotFound(_why_not(conn, layer, values, as_of))


def _why_not(conn: Connection, layer: Layer, values: tuple, as_of: datetime | None) -> str:
    """Why key ``values`` names no row (at ``as_of``), from what the history knows of it."""
    key = KEY_SEPARATOR.join(str(v) for v in values)
    k = f"{layer.code} row {key!r}"
    never = f"no {k}: it was never imported; list the rows at /api/layers/{layer.code.lower()}/rows"
    if as_of is None:
        return never
    known = (
        conn.execute(
            text(
                "SELECT min(at) AS first_at, "
                "(array_agg(op ORDER BY version DESC) FILTER (WHERE at <= :as_of))[1] AS op, "
                "max(at) FILTER (WHERE at <= :as_of) AS at FROM row_history "
                "WHERE layer = :layer AND key = :key"
            ),
            {"layer": layer.code, "key": key, "as_of": as_of},
        )
        .mappings()
        .one()
    )
    then = as_of.isoformat()
    if known["first_at"] is None:
        cur = _current(layer)
        cond, p = cur.key_match(values)
        if _count(conn, cur, [cond], p):
            return (
                f"{k} has no recorded versions (it was loaded before versions were kept), so "
                "how it stood in the past is not known; read it without as_of"
            )
        return never
    if known["op"] is None:
        return (
            f"{k} did not exist yet at {then}: its first version is from "
            f"{known['first_at'].isoformat()}"
        )
    return f"{k} did not exist at {then}: it had been retired at {known['at'].isoformat()}"


def field_changes(layer: Layer, changes: dict | None, restricted: bool) -> dict:
    """An update's changed fields from ``row_history.changes`` (``{column: [old, new]}``, the
    geometry as ``geom``): ``{field code: {"old", "new"}}`` in the contract's order, a restricted
    field the caller may not see as ``WITHHELD``; with ``geometry_changed`` beside it on layers
    with geometry. The one reading of that column (the history and the change feed use it)."""
    changes = changes or {}
    out = {
        f.code: dict(WITHHELD)
        if f.restricted and not restricted
        else {"old": changes[f.column][0], "new": changes[f.column][1]}
        for f in layer.fields
        if isinstance(changes.get(f.column), list) and len(changes[f.column]) == 2
    }
    return out


def version_entry(layer: Layer, v: dict, restricted: bool) -> dict:
    """One history version as the API gives it: version, op, who, at, via, cause, and for an
    update its ``changes`` (``field_changes``) and, on layers with geometry, whether the
    geometry changed."""
    raw = v.pop("changes", None)
    if v["op"] == "update":
        v["changes"] = field_changes(layer, raw, restricted)
        if layer.has_geom:
            v["geometry_changed"] = "geom" in (raw or {})
    return v


def history(conn: Connection, layer: Layer, key: str, restricted: bool) -> dict:
    """Every version of a row, oldest first (``version_entry``): version, op (insert / update /
    retire / restore), who, at, via, cause (why it was retired with another row, when it was),
    and for an update ``changes`` ({field code: {"old", "new"}}, in the contract's order; a
    restricted field the caller may not see: ``{"old": null, "new": null, "withheld": true}``)
    and, on layers with geometry, ``geometry_changed``. ValueError for a malformed key,
    RowNotFound for a key with neither a version nor a current row."""
    (values,) = parse_keys(layer, [key])
    key_text = KEY_SEPARATOR.join(str(v) for v in values)
    found = (
        conn.execute(
            text(
                "SELECT version, op, who, at, via, cause, changes FROM row_history "
                "WHERE layer = :layer AND key = :key ORDER BY version"
            ),
            {"layer": layer.code, "key": key_text},
        )
        .mappings()
        .all()
    )
    versions = [version_entry(layer, dict(v), restricted) for v in found]
    if not versions:
        cur = _current(layer)
        cond, p = cur.key_match(values)
        if not _count(conn, cur, [cond], p):
            raise RowNotFound(_why_not(conn, layer, values, None))
    last = versions[-1] if versions else None
    return {
        "layer": layer.code,
        "key": key_text,
        "version": last["version"] if last else 0,
        "retired": bool(last and last["op"] == "retire"),
        "versions": versions,
    }
