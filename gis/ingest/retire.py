"""Retiring rows: a closed enterprise, a split parcel, a withdrawn supply record.

A retired row is moved out of its layer table into ``row_history`` (op ``retire``, the row as it
was), so every derived result leaves it out with no filter anywhere, and its history stays.
Importing its key again restores it (op ``restore``). Rows whose KEY names the retired row (an
enterprise's outputs CC and failed standards BD, a district's statistics TJ) cannot exist without
it and are retired with it (``cause`` names the row); rows that only mention it (an enterprise's
declared parcels, a parcel's supply number) are kept and simply no longer link to it.

``landlink retire LAYER KEY...``, ``landlink import LAYER FILE --replace`` (the rows the file does
not hold) and ``POST /api/layers/{code}/retire`` all come here; the derivation graph is refreshed
with the retired keys inside the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from gis.core import graph
from gis.core.config import get_settings
from gis.core.graph import Changes
from gis.core.layers import IMPORT_ORDER, LAYERS, Layer
from gis.core.layers import layer as get_layer
from gis.ingest.history import key_sql, last_version_join, parse_keys, row_sql, summary

# Retired keys listed in a report (all are counted).
KEYS_SHOWN = 1000


class UnknownKeys(LookupError):
    """Keys that name no current row of the layer (nothing was changed)."""

    def __init__(self, layer: Layer, missing: list[str], retired: dict[str, str]):
        self.layer, self.missing, self.retired = layer, missing, retired
        shown = []
        for k in missing[:20]:
            shown.append(f"{k} (retired {retired[k]})" if k in retired else k)
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        super().__init__(
            f"no current row of layer {layer.code} ({layer.label}) with key "
            f"{', '.join(shown)}{more}; nothing was retired"
        )


def dependents(layer: Layer) -> list[tuple[Layer, str]]:
    """Layers whose key includes a field naming ``layer``'s key: (layer, that field's column),
    in import order. Their rows are retired with the row they name."""
    out = []
    for code in IMPORT_ORDER:
        other = LAYERS[code]
        for f in other.fields:
            if f.references == layer.code and f.code in other.key:
                out.append((other, f.column))
    return out


def layers_touched(layer: Layer) -> list[Layer]:
    """``layer`` and, recursively, the layers retired with it, in import order (lock order)."""
    seen = {layer.code}
    todo = [layer]
    while todo:
        for d, _ in dependents(todo.pop()):
            if d.code not in seen:
                seen.add(d.code)
                todo.append(d)
    return [LAYERS[c] for c in IMPORT_ORDER if c in seen]


def _key_arrays(layer: Layer, keys: list[tuple]) -> tuple[str, dict]:
    """``unnest(...) AS u(k0, k1, ...)`` over the given key tuples, with its parameters."""
    casts, params = [], {}
    for i, code in enumerate(layer.key):
        sql_type = "int" if layer.field(code).type == "int" else "text"
        casts.append(f"CAST(:k{i} AS {sql_type}[])")
        params[f"k{i}"] = [k[i] for k in keys]
    names = ", ".join(f"k{i}" for i in range(len(layer.key)))
    return f"unnest({', '.join(casts)}) AS u({names})", params


def _match(layer: Layer, alias: str) -> str:
    return " AND ".join(f"{alias}.{c} = u.k{i}" for i, c in enumerate(layer.key_columns))


def _move(
    conn: Connection,
    layer: Layer,
    where: str,
    params: dict,
    who: str,
    via: str,
    cause: str = "NULL",
) -> list[str]:
    """Move the rows of ``layer`` matching ``where`` (alias ``t``) into row_history as retired;
    returns their keys."""
    key = key_sql(layer, "g")
    rows = conn.execute(
        text(
            f"WITH g AS (DELETE FROM {layer.table} t WHERE {where} RETURNING t.*) "
            "INSERT INTO row_history (layer, key, version, op, who, via, row, cause) "
            f"SELECT :layer, {key}, COALESCE(v.version, 0) + 1, 'retire', :who, :via, "
            f"{row_sql(layer, 'g')}, {cause} FROM g {last_version_join('v', key)} "
            "RETURNING key"
        ),
        {**params, "layer": layer.code, "who": who, "via": via},
    )
    return sorted(r[0] for r in rows)


def _cascade(
    conn: Connection, layer: Layer, keys: list[str], who: str, via: str, changes: Changes
) -> None:
    """Retire the rows whose key names one of ``keys`` of ``layer`` (and theirs, in turn)."""
    if not keys:
        return
    for d, column in dependents(layer):
        gone = _move(
            conn,
            d,
            f"t.{column}::text = ANY(CAST(:parents AS text[]))",
            {"parents": keys},
            who,
            via,
            cause=f"'{layer.code} ' || g.{column}::text",
        )
        if gone:
            changes.add(d.table, gone)
            _cascade(conn, d, gone, who, via, changes)


def retire_keys(
    conn: Connection, layer: Layer, keys: list[tuple], who: str, via: str
) -> tuple[list[str], Changes]:
    """Retire the named rows (key tuples) and the rows retired with them, in ``conn``'s
    transaction; UnknownKeys (before any write) if one names no current row."""
    unnest, params = _key_arrays(layer, keys)
    given = [":".join(str(x) for x in k) for k in keys]
    present = {
        r[0]
        for r in conn.execute(
            text(
                f"SELECT {key_sql(layer, 't')} FROM {layer.table} t "
                f"WHERE EXISTS (SELECT 1 FROM {unnest} WHERE {_match(layer, 't')})"
            ),
            params,
        )
    }
    missing = [k for k in dict.fromkeys(given) if k not in present]
    if missing:
        retired = {
            r.key: f"{r.at:%Y-%m-%d %H:%M} by {r.who}"
            for r in conn.execute(
                text(
                    "SELECT DISTINCT ON (key) key, op, at, who FROM row_history "
                    "WHERE layer = :layer AND key = ANY(:keys) ORDER BY key, version DESC"
                ),
                {"layer": layer.code, "keys": missing},
            )
            if r.op == "retire"
        }
        raise UnknownKeys(layer, missing, retired)
    where = f"EXISTS (SELECT 1 FROM {unnest} WHERE {_match(layer, 't')})"
    gone = _move(conn, layer, where, params, who, via)
    changes = Changes().add(layer.table, gone)
    _cascade(conn, layer, gone, who, via, changes)
    return gone, changes


def retire_missing(
    conn: Connection, layer: Layer, held: list[tuple], who: str, via: str
) -> tuple[list[str], Changes]:
    """Retire every current row of ``layer`` whose key is not among ``held`` (the keys a file
    holds: ``import --replace``), and the rows retired with them."""
    unnest, params = _key_arrays(layer, held)
    where = f"NOT EXISTS (SELECT 1 FROM {unnest} WHERE {_match(layer, 't')})"
    gone = _move(conn, layer, where, params, who, via)
    changes = Changes().add(layer.table, gone)
    _cascade(conn, layer, gone, who, via, changes)
    return gone, changes


def lock_layers(conn: Connection, layer: Layer, what: str) -> None:
    """The import lock of ``layer`` and of every layer retired with it, in import order."""
    from gis.ingest.pipeline import _lock_layer

    wait = get_settings().import_lock_wait_seconds
    for lyr in layers_touched(layer):
        _lock_layer(conn, lyr, what, wait)


def refresh_report(ctx: graph.Context) -> dict:
    """What a refresh did, for a report: per-producer seconds, counts and notes."""
    return {
        "trigger": ctx.trigger,
        "producers": dict(ctx.timings),
        "counts": dict(ctx.counts),
        "notes": list(ctx.notes),
    }


def report_keys(gone: list[str], changes: Changes, layer: Layer) -> dict:
    """The retired keys of a report: the layer's (the first KEYS_SHOWN) and, per layer, the
    count of rows retired with them."""
    tables = {lyr.table: code for code, lyr in LAYERS.items()}
    return {
        "retired": len(gone),
        "retired_keys": gone[:KEYS_SHOWN],
        "retired_with": {tables[t]: len(k) for t, k in changes.items() if t != layer.table and k},
    }


def retire(
    engine: Engine,
    layer_code: str,
    keys: list[str],
    who: str = "cli",
    via: str | None = None,
    dry_run: bool = False,
    precheck: Callable[[Connection], None] | None = None,
) -> dict:
    """Retire the named rows of a layer (keys as text, composite ones ``:``-joined) in one
    transaction with the refresh of every derived result. KeyError for an unknown layer,
    ValueError for a malformed key, UnknownKeys for a key with no current row; nothing changes
    then. A dry run checks, and names the producers the refresh would run, and writes nothing.
    ``precheck(conn)`` runs under the layers' locks first (a version check)."""
    t0 = time.perf_counter()
    layer = get_layer(layer_code)
    if not keys:
        raise ValueError("name at least one key to retire")
    tuples = parse_keys(layer, keys)
    via = via or f"retire:{int(time.time() * 1000)}"
    with engine.begin() as conn:
        lock_layers(conn, layer, "retire")
        if precheck is not None:
            precheck(conn)
        gone, changes = retire_keys(conn, layer, tuples, who, via)
        report = {
            "layer": layer.code,
            "table": layer.table,
            "dry_run": dry_run,
            "via": via,
            **report_keys(gone, changes, layer),
            "changed": summary(changes),
        }
        if dry_run:
            report["would_refresh"] = graph.planned(changes)
            conn.rollback()
        else:
            t1 = time.perf_counter()
            ctx = graph.refresh(conn, changes, trigger=f"retire:{layer.code}:{via}")
            report["refreshed"] = refresh_report(ctx)
            report["timings_s"] = {"refresh": round(time.perf_counter() - t1, 3)}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report
