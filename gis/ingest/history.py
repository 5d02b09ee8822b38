"""Row history and changed keys: what every write to a layer records, in SQL.

A row's key as text is its contract key, the fields of a composite key joined by ``:`` in the
contract's order (``91330102169913999J:2023`` for CC); the same text names the row in
``row_history`` and in the ``Changes`` handed to the derivation graph (gis/core/graph.py).

``row_history`` keeps one row per version: the row as it became (contract columns, ``source_crs``,
``row_hash``, ``geom`` as hex EWKB), ``op`` insert / update / retire / restore, who, when and
``via`` (``batch:N`` for a file import, else the command or request id). Retiring a row moves it
here out of its layer table; importing its key again restores it (op ``restore``).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from gis.core.graph import ALL, Changes
from gis.core.layers import Layer

KEY_SEPARATOR = ":"


def key_sql(layer: Layer, alias: str) -> str:
    """SQL text of a row's key (``:``-joined contract key fields) for the table alias."""
    cols = [f"{alias}.{c}::text" for c in layer.key_columns]
    return cols[0] if len(cols) == 1 else f"concat_ws('{KEY_SEPARATOR}', {', '.join(cols)})"


def row_sql(layer: Layer, alias: str) -> str:
    """SQL of the jsonb a history row keeps: contract columns, geometry as hex EWKB."""
    pairs = [f"'{f.column}', {alias}.{f.column}" for f in layer.fields]
    if layer.has_source_crs:
        pairs.append(f"'source_crs', {alias}.source_crs")
    pairs.append(f"'row_hash', {alias}.row_hash")
    if layer.has_geom:
        pairs.append(f"'geom', encode(ST_AsEWKB({alias}.geom), 'hex')")
    # jsonb_build_object takes at most 100 arguments: build in parts of 40 pairs
    parts = [pairs[i : i + 40] for i in range(0, len(pairs), 40)]
    return " || ".join(f"jsonb_build_object({', '.join(p)})" for p in parts)


def last_version_join(alias: str, key: str) -> str:
    """A LATERAL join giving ``{alias}.version`` and ``{alias}.op`` of a key's newest version."""
    return (
        f"LEFT JOIN LATERAL (SELECT h.version, h.op FROM row_history h WHERE h.layer = :layer "
        f"AND h.key = {key} ORDER BY h.version DESC LIMIT 1) {alias} ON true"
    )


def latest_versions(conn: Connection, layer: Layer, keys: list[str] | None = None) -> dict:
    """The newest ``row_history`` version of each key (of every key of the layer when ``keys``
    is None): ``{key: {"version", "op", "who", "at" (ISO 8601, UTC), "via"}}``; a key without
    versions is absent. One statement: the one reading of who last changed a row and when."""
    cond = "" if keys is None else "AND key = ANY(CAST(:keys AS text[]))"
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (key) key, version, op, who, via, to_char(at AT TIME ZONE 'UTC', "
            f'\'YYYY-MM-DD"T"HH24:MI:SS"Z"\') AS at FROM row_history WHERE layer = :layer {cond} '
            "ORDER BY key, version DESC"
        ),
        {"layer": layer.code, "keys": keys},
    ).mappings()
    return {r["key"]: {k: r[k] for k in ("version", "op", "who", "at", "via")} for r in rows}


def parse_keys(layer: Layer, keys: list[str]) -> list[tuple]:
    """Key texts -> tuples of the key fields (ints for int fields); ValueError names a bad one."""
    out = []
    n = len(layer.key)
    for k in keys:
        parts = str(k).split(KEY_SEPARATOR) if n > 1 else [str(k)]
        if len(parts) != n or any(p.strip() == "" for p in parts):
            raise ValueError(
                f"key {k!r} of layer {layer.code}: give {KEY_SEPARATOR.join(layer.key)}"
            )
        row = []
        for code, part in zip(layer.key, parts, strict=True):
            if layer.field(code).type == "int":
                try:
                    row.append(int(part))
                except ValueError:
                    raise ValueError(
                        f"key {k!r} of layer {layer.code}: {code} must be a whole number"
                    ) from None
            else:
                row.append(part.strip())
        out.append(tuple(row))
    return out


def summary(changes: Changes) -> dict[str, int | str]:
    """Changed keys per table for a report: a count, or ``"all"``."""
    return {t: ("all" if ALL in keys else len(keys)) for t, keys in changes.items() if keys}


def record_all(conn: Connection, layer: Layer, who: str, via: str) -> None:
    """History of a first load: every row of the (previously empty) table, as inserted, or
    restored where its key's newest version is a retirement. One INSERT ... SELECT."""
    key = key_sql(layer, "t")
    known = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM row_history WHERE layer = :layer)"),
        {"layer": layer.code},
    ).scalar_one()
    if not known:
        version, op, join = "1", "'insert'", ""
    else:
        version = "COALESCE(v.version, 0) + 1"
        op = "CASE WHEN v.op = 'retire' THEN 'restore' ELSE 'insert' END"
        join = last_version_join("v", key)
    conn.execute(
        text(
            f"INSERT INTO row_history (layer, key, version, op, who, via, row) "
            f"SELECT :layer, {key}, {version}, {op}, :who, :via, "
            f"{row_sql(layer, 't')} FROM {layer.table} t {join}"
        ),
        {"layer": layer.code, "who": who, "via": via},
    )
