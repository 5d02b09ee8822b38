"""One import: read -> parse -> geometry -> row checks -> load (upsert by key) -> report.

Strict mode (the default for the API) refuses the whole file on any bad row and writes no layer
data; lenient mode loads the good rows. Either way every bad row is in the report with file,
row or feature, key, field and reason. The load is one transaction: a failure leaves the
database as it was. Every inserted, updated, restored or (``replace``) retired row gets a version
in ``row_history``, and the derivation graph is refreshed with exactly the changed keys inside
the same transaction; a dry run computes the keys and names the producers it would run. A
rejected strict import is still logged in ``import_batches`` (status ``rejected``, with its
report) so that ``GET /api/imports/{id}`` can show it; no layer row changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from gis.core import graph
from gis.core.config import get_settings
from gis.core.graph import ALL, Changes
from gis.core.layers import IMPORT_ORDER, INDUSTRIAL_LAND_CODES, LAYERS, STORAGE_SRID, Layer
from gis.core.layers import layer as get_layer
from gis.ingest.errors import ImportBusy, ImportRejected, InputError, scrub_paths
from gis.ingest.history import key_sql, last_version_join, record_all, row_sql, summary
from gis.ingest.read import RawFrame, read_file, read_records
from gis.ingest.retire import lock_layers, refresh_report, report_keys, retire_missing
from gis.ingest.validate import DATABASE_CHECKS, Issues, as_text, parse_layer

# Advisory lock class of imports (two-key form: this, the layer's place in IMPORT_ORDER).
IMPORT_LOCK = 5507
# Rows per COPY chunk (formatted while the previous chunk is sent and stored).
COPY_CHUNK_ROWS = 10_000
# Land-use codes listed in a report's ``not_industrial`` (the most frequent; all are counted).
NOT_INDUSTRIAL_CODES_SHOWN = 100


@dataclass
class ImportOptions:
    encoding: str | None = None
    crs: str | None = None
    sheet: str | None = None
    strict: bool = True
    dry_run: bool = False
    replace: bool = False  # retire the layer's rows the file does not hold


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():  # a File Geodatabase: its files, by name
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode())
            h.update(p.read_bytes())
        return h.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    # a shapefile is several files: hash the parts that carry data
    if path.suffix.lower() == ".shp":
        for ext in (".dbf", ".prj", ".cpg"):
            p = path.with_suffix(ext)
            if p.exists():
                h.update(p.read_bytes())
    return h.hexdigest()


def _geometry(
    raw: RawFrame, layer: Layer, opts: ImportOptions, issues: Issues, file: str, warnings: list[str]
) -> np.ndarray | None:
    """Storage geometries (EPSG:4549) or None for a table-only load."""
    df = raw.frame
    spatial_file = "geometry" in df.columns
    if layer.geometry is None:
        if spatial_file:
            warnings.append("geometry ignored: this layer is a table")
        return None
    # shapely and pyproj: for layers with geometry only
    import shapely

    from gis.ingest.geometry import (
        check_lonlat,
        is_gcj02,
        old_datum,
        old_datum_message,
        points_from_table,
        polygons,
        resolve_crs,
        to_storage,
    )

    if not spatial_file:
        if layer.geometry == "polygon":
            raise InputError(
                file, f"layer {layer.code} needs polygons; give a shapefile, GeoPackage or GeoJSON"
            )
        if layer.geometry == "point_or_table":
            default = resolve_crs(opts.crs, file) if opts.crs else None
            return points_from_table(df, default, issues, file)
        return None
    crs = raw.crs
    if opts.crs:
        given = resolve_crs(opts.crs, file)
        if crs is not None and not is_gcj02(given) and given != crs:
            warnings.append(
                f"CRS {opts.crs} given with --crs overrides the file's {crs.to_string()}"
            )
        crs = given
    label = old_datum(crs)
    if label:
        raise InputError(file, old_datum_message(crs, label), field="crs")
    if crs is None:
        raise InputError(
            file,
            "the layer has no CRS (.prj or metadata); give one with --crs "
            "(e.g. --crs EPSG:4549, --crs gcj02 for AMap lon/lat, bd09 for Baidu)",
            field="crs",
        )
    geoms = np.asarray(df.geometry.values, dtype=object)
    out_of_range = Issues()
    check_lonlat(geoms, crs, out_of_range, "geometry")
    if out_of_range.pos:
        issues.pos += out_of_range.pos
        issues.fields += out_of_range.fields
        issues.reasons += out_of_range.reasons
        geoms = geoms.copy()
        geoms[out_of_range.pos] = None
    geoms = to_storage(geoms, crs)
    if layer.polygonal:
        rejected_rows = np.zeros(len(geoms), bool)
        rejected_rows[out_of_range.pos] = True
        geoms, repaired = polygons(geoms, issues, rejected_rows)
        if repaired.any():
            warnings.append(
                f"{int(repaired.sum())} invalid geometries repaired by make_valid "
                f"(features {_labels(raw, np.flatnonzero(repaired)[:20])})"
            )
        return geoms
    # points
    types = shapely.get_type_id(geoms)
    multi = types == 4
    if multi.any():
        one = multi & (shapely.get_num_geometries(geoms) == 1)
        geoms[one] = shapely.get_geometry(geoms[one], 0)
        issues.add(multi & ~one, "geometry", "a multipoint with several points; give one point")
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    issues.add(~empty & ~np.isin(shapely.get_type_id(geoms), (0, 4)), "geometry", "not a point")
    return geoms


def _source_crs(raw: RawFrame, opts: ImportOptions, geoms: np.ndarray | None) -> pd.Series:
    """Where each point's coordinates came from: ZBXT, else --crs, else the file's CRS."""
    import shapely

    df = raw.frame
    zb = (
        as_text(df["ZBXT"])
        if "ZBXT" in df.columns
        else pd.Series(None, index=df.index, dtype=object)
    )
    fallback = opts.crs or (raw.crs.to_string() if raw.crs is not None else None)
    zb = zb.where(zb.notna(), fallback)
    has_point = ~shapely.is_missing(geoms) if geoms is not None else np.zeros(len(df), bool)
    return zb.where(has_point, None)


def _labels(raw: RawFrame, positions: np.ndarray) -> list[str]:
    idx = raw.frame.index.to_numpy()
    if raw.row_label == "feature":
        return [f"feature {idx[p]}" for p in positions]
    return [f"row {p + raw.row_offset}" for p in positions]


def _reference_checks(conn: Connection, layer: Layer, typed: pd.DataFrame, issues: Issues) -> None:
    for f in layer.fields:
        if not f.references or f.references == layer.code:  # a parent: _parent_checks
            continue
        ref = LAYERS[f.references]
        ref_col = ref.key_columns[0]
        values = typed[f.column]
        if f.type == "list":
            exploded = values.explode().dropna()
        else:
            exploded = values.dropna()
        if exploded.empty:
            continue
        as_str = exploded.astype(str)
        wanted = pd.unique(as_str)
        # set-based on the server: only the values no row of the referenced layer has come back
        unknown = {
            r[0]
            for r in conn.execute(
                text(
                    f"SELECT v FROM unnest(CAST(:v AS text[])) v WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {ref.table} r WHERE r.{ref_col} = v)"
                ),
                {"v": list(wanted)},
            )
        }
        if not unknown:
            continue
        missing = exploded[as_str.isin(unknown)]
        if missing.empty:
            continue
        pos = typed.index.get_indexer(missing.index.unique())
        first = missing.groupby(level=0).first()
        reason = pd.Series(None, index=typed.index, dtype=object)
        reason[first.index] = first.map(
            lambda v, f=f, ref=ref: (
                f"{v!r} is not in layer {ref.code} ({ref.label}); "
                f"import {ref.code} first or correct {f.code}"
            )
        )
        mask = np.zeros(len(typed), bool)
        mask[pos] = True
        issues.add(mask, f.code, reason.to_numpy())


def _parent_checks(conn: Connection, layer: Layer, typed: pd.DataFrame, issues: Issues) -> None:
    """A field naming a row of its own layer (RW's SJRW, the parent task) must name a row of
    the file (one that is loaded with it) or a stored row, not the row itself, and must not
    close a cycle (a task under its own sub-task). A stored row sent again with its parent
    unchanged is not asked for that parent again (it may have been retired since: the row
    stays editable). Rows refused for any reason do not count as parents, so in lenient mode
    their sub-tasks are refused too. Single-field keys only."""
    for f in layer.fields:
        if f.references != layer.code:
            continue
        key_col = layer.key_columns[0]
        stored = dict(conn.execute(text(f"SELECT {key_col}, {f.column} FROM {layer.table}")).all())
        codes = typed[key_col].to_numpy(dtype=object)
        parents = typed[f.column].to_numpy(dtype=object)
        own = np.array([p is not None and p == c for p, c in zip(parents, codes, strict=True)])
        issues.add(
            own,
            f.code,
            np.array([f"{f.code} names the row itself ({c!r}): a task cannot be its own parent"
                      for c in codes], dtype=object),
        )  # fmt: skip
        flagged = {int(p) for p in np.flatnonzero(own)}
        while True:
            bad = set(issues.bad_positions().tolist()) | flagged
            good = [i for i in range(len(codes)) if i not in bad and codes[i] is not None]
            known = set(stored) | {codes[i] for i in good}
            tree = {**stored, **{codes[i]: parents[i] for i in good}}
            new: dict[int, str] = {}
            for i in good:
                p = parents[i]
                if p is None:
                    continue
                if p not in known and stored.get(codes[i], object()) != p:
                    new[i] = (
                        f"{p!r} is not a task of this file nor of layer {layer.code} "
                        f"({layer.label}); give the {layer.key[0]} of a task, or leave "
                        f"{f.code} empty for a top-level task"
                    )
                    continue
                path, seen, at = [codes[i]], {codes[i]}, p
                while at is not None and at not in seen:
                    path.append(at)
                    seen.add(at)
                    at = tree.get(at)
                if at == codes[i]:
                    new[i] = (
                        f"{f.code} makes a cycle of tasks: {' → '.join([*path, codes[i]])}; a "
                        "task cannot be under its own sub-task"
                    )
            if not new:
                return
            mask = np.zeros(len(codes), bool)
            mask[list(new)] = True
            reason = np.empty(len(codes), dtype=object)
            for i, r in new.items():
                reason[i] = r
            issues.add(mask, f.code, reason)
            flagged |= set(new)


# Row labels named in one duplicate-key reason; the reason counts them all.
DUPLICATE_ROWS_SHOWN = 10


def _duplicate_keys(layer: Layer, typed: pd.DataFrame, raw: RawFrame, issues: Issues) -> None:
    """Every row whose key another row of the file has too. One reason per duplicated key
    (naming its first rows and counting them all), shared by its rows: linear in the file."""
    keys = typed[list(layer.key_columns)]
    complete = keys.notna().all(axis=1).to_numpy()
    dup = keys.duplicated(keep=False).to_numpy() & complete
    if not dup.any():
        return
    dup_pos = np.flatnonzero(dup)
    group = keys.iloc[dup_pos].groupby(list(keys.columns), sort=False, dropna=False).ngroup()
    group = group.to_numpy()
    # positions grouped by key, in file order within each key
    order = np.lexsort((dup_pos, group))
    sorted_groups = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    texts = keys.iloc[dup_pos].astype(str)
    reasons = np.empty(len(starts), dtype=object)
    for start, size in zip(starts, sizes, strict=True):
        first = dup_pos[order[start : start + min(size, DUPLICATE_ROWS_SHOWN)]]
        where = ", ".join(_labels(raw, first))
        if size > DUPLICATE_ROWS_SHOWN:
            where += f" and {size - DUPLICATE_ROWS_SHOWN:,} more"
        k = "|".join(texts.iloc[order[start]])
        reasons[sorted_groups[start]] = f"duplicate key {k} in this file, {size:,} rows ({where})"
    reason = np.empty(len(typed), dtype=object)
    reason[dup_pos] = reasons[group]
    issues.add(dup, "+".join(layer.key), reason)


def _row_hash(typed: pd.DataFrame, wkb: pd.Series | None) -> pd.Series:
    """A 64-bit hash of each row's typed values and geometry (EWKB hex), as 16 hex digits.

    Object columns hash as their ``str`` (lists joined by U+001F first); stored hashes depend
    on exactly this, so a change here would make every stored row look changed once."""
    h = typed.copy()
    for c in h.columns:
        if h[c].dtype == object:
            col = h[c]
            if col.map(type).eq(list).any():
                col = col.map(lambda v: "\x1f".join(v) if isinstance(v, list) else v)
            h[c] = col.astype(str)
    if wkb is not None:
        h["__geom"] = wkb.astype(str)
    values = pd.util.hash_pandas_object(h, index=False)
    return pd.Series([f"{v:016x}" for v in values.tolist()], index=values.index, dtype=object)


def _pg_array(v) -> str | None:
    if not isinstance(v, list):
        return None
    items = ['"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in v]
    return "{" + ",".join(items) + "}"


def _copy_frame(typed: pd.DataFrame, layer: Layer) -> pd.DataFrame:
    out = typed.copy()
    for f in layer.fields:
        if f.type == "date":
            out[f.column] = out[f.column].dt.strftime("%Y-%m-%d")
        elif f.type == "list":
            out[f.column] = out[f.column].map(_pg_array)
    return out


def import_file(
    engine: Engine,
    layer_code: str,
    path: Path | str,
    options: ImportOptions | None = None,
    user: str = "cli",
    display_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Import one file into one layer. Returns the report; raises InputError or ImportRejected.

    Geometries are stored in EPSG:4549 (metres). The whole load is one transaction. Messages
    name the file as ``display_name`` (else its name), never the folder it was read from.
    """
    path = Path(path)
    try:
        return _import_file(engine, layer_code, path, options, user, display_name, progress)
    except InputError as e:
        file = display_name or path.name
        clean = type(e)(
            scrub_paths(e.file, path, file),
            scrub_paths(e.reason, path, file),
            field=e.field,
            status=e.status,
        )
        raise clean from None


def _lock_layer(conn: Connection, layer: Layer, file: str, wait_seconds: float) -> None:
    """One import of a layer at a time: a transaction-level advisory lock on the layer, waited
    for up to ``wait_seconds``; then ImportBusy saying since when the other import runs."""
    key = IMPORT_ORDER.index(layer.code)
    previous = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    conn.execute(
        text("SELECT set_config('lock_timeout', :t, true)"),
        {"t": f"{max(1, int(wait_seconds * 1000))}ms"},
    )
    try:
        with conn.begin_nested():
            conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": IMPORT_LOCK, "b": key})
    except OperationalError as e:
        if getattr(e.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        since = conn.execute(
            text(
                "SELECT to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ') FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.classid = :a AND l.objid = :b AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"a": IMPORT_LOCK, "b": key},
        ).scalar()
        raise ImportBusy(
            file,
            f"another import of {layer.code} is running"
            + (f" since {since}" if since else "")
            + f" (waited {wait_seconds:g} s); try again when it ends",
        ) from None
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})


def import_rows(
    engine: Engine,
    layer_code: str,
    body: object,
    options: ImportOptions | None = None,
    user: str = "api",
    via: str = "request",
    precheck: Callable[[Connection], None] | None = None,
) -> dict:
    """Import rows sent as JSON (``read_records``: an array of rows or a GeoJSON
    FeatureCollection, geometry in ``options.crs`` or CGCS2000 lon/lat) into one layer: the same
    validation, report, upsert by key, row history and derived refresh as a file, in one
    transaction. The rows are named ``via`` (a request id) in the report and their history.
    ``precheck(conn)`` runs under the layer's lock before anything is written (a version check:
    what it raises propagates and nothing is written). Raises InputError or ImportRejected."""
    import json

    opts = options or ImportOptions()
    data = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()
    return _import(
        engine,
        layer_code,
        lambda: read_records(body, via, opts.crs),
        lambda: hashlib.sha256(data).hexdigest(),
        via,
        opts,
        user,
        None,
        via,
        precheck,
    )


def _import_file(
    engine: Engine,
    layer_code: str,
    path: Path | str,
    options: ImportOptions | None = None,
    user: str = "cli",
    display_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    opts = options or ImportOptions()
    return _import(
        engine,
        layer_code,
        lambda: read_file(path, opts.encoding, opts.sheet, get_layer(layer_code)),
        lambda: file_hash(path),
        display_name or path.name,
        opts,
        user,
        progress,
    )


def _import(
    engine: Engine,
    layer_code: str,
    read: Callable[[], RawFrame],
    content_hash: Callable[[], str],
    file: str,
    opts: ImportOptions,
    user: str,
    progress: Callable[[str], None] | None,
    via: str | None = None,
    precheck: Callable[[Connection], None] | None = None,
) -> dict:
    """One import: read, validate, then load, record history (``via``, else the batch) and
    refresh in one transaction."""
    settings = get_settings()
    layer = get_layer(layer_code)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    last = [t0, None]

    def step(stage: str, notify: bool = True) -> None:
        """Progress callback, and seconds per stage for the report (``timings_s``)."""
        now = time.perf_counter()
        if last[1] is not None:
            timings[last[1]] = round(now - last[0], 3)
        last[:] = [now, stage]
        if progress is not None and notify:
            progress(stage)

    step("read")
    raw = read()
    df = raw.frame
    present = set(df.columns)
    missing = [f.code for f in layer.fields if f.required and f.code not in present]
    if missing:
        found = ", ".join(c for c in df.columns if c != "geometry")
        raise InputError(
            file,
            f"required column(s) {', '.join(missing)} missing for layer "
            f"{layer.code} ({layer.label}); the file has: {found}",
        )
    known = {f.code for f in layer.fields} | {"geometry", "X", "Y", "ZBXT", "FID", "OBJECTID"}
    warnings: list[str] = [
        f"text decoded as {raw.encoding}, from {raw.encoding_source}",
        *raw.notes,
    ]
    extra = [c for c in df.columns if c not in known]
    if extra:
        warnings.append(f"columns not in the contract, ignored: {', '.join(extra)}")
    absent = [f.code for f in layer.fields if not f.required and f.code not in present]
    if absent:
        warnings.append(
            f"optional columns not in the file, read as empty (a row stored before loses its "
            f"values there): {', '.join(absent)}"
        )

    issues = Issues()
    step("validate")
    typed = parse_layer(df, layer, issues)
    step("geometry")
    geoms = _geometry(raw, layer, opts, issues, file, warnings)
    if layer.geometry == "point_or_table":
        typed["source_crs"] = _source_crs(raw, opts, geoms)
    _duplicate_keys(layer, typed, raw, issues)
    not_industrial: dict[str, int] = {}
    n_odd = 0
    for code in ("DLBM", "TDYT"):
        f = next((f for f in layer.fields if f.code == code), None)
        if f is not None:
            col = typed[f.column]
            odd = col.notna() & ~col.isin(list(INDUSTRIAL_LAND_CODES))
            counts = col[odd].value_counts()
            n_odd = int(counts.sum())
            not_industrial = counts.head(NOT_INDUSTRIAL_CODES_SHOWN).to_dict()
    report: dict = {
        "file": file,
        "layer": layer.code,
        "table": layer.table,
        "mode": "strict" if opts.strict else "lenient",
        "dry_run": opts.dry_run,
        "options": {k: v for k, v in asdict(opts).items() if v not in (None, False)},
        "encoding": raw.encoding,
        "rows_read": len(df),
        "not_industrial": {
            "count": n_odd,
            "codes": {str(k): int(v) for k, v in not_industrial.items()},
        },
        "warnings": warnings,
    }
    fhash = content_hash()
    step("checks", notify=False)
    with engine.begin() as conn:
        if opts.replace:
            lock_layers(conn, layer, file)
        else:
            _lock_layer(conn, layer, file, settings.import_lock_wait_seconds)
        if precheck is not None:
            precheck(conn)
        _reference_checks(conn, layer, typed, issues)
        if layer.code in DATABASE_CHECKS:
            DATABASE_CHECKS[layer.code](conn, typed, issues)
        _parent_checks(conn, layer, typed, issues)
        errors, total = _error_list(raw, typed, layer, issues, settings.max_report_errors)
        report["errors"] = errors
        report["errors_total"] = total
        report["errors_truncated"] = total > len(errors)
        bad = issues.bad_positions()
        report["rejected"] = int(len(bad))
        if errors and opts.strict:
            report.update(inserted=0, updated=0, unchanged=0, status="rejected")
            if not opts.dry_run:
                report["batch_id"] = _record_batch(conn, layer, file, fhash, opts, user, report)
            conn.commit() if not opts.dry_run else conn.rollback()
            raise ImportRejected(report)
        keep = np.ones(len(typed), bool)
        keep[bad] = False
        good = typed[keep]
        good_geoms = geoms[keep] if geoms is not None else None
        batch_id = _record_batch(conn, layer, file, fhash, opts, user, report)
        step("load")
        via = via or f"batch:{batch_id}"
        counts, changes = _load(conn, layer, good, good_geoms, batch_id, user, via)
        if opts.replace:
            held = _held_keys(layer, typed, warnings)
            if held is not None:
                gone, retired = retire_missing(conn, layer, held, user, via)
                changes.merge(retired)
                report.update(report_keys(gone, retired, layer))
        report.update(counts, status="loaded", batch_id=batch_id)
        report["changed"] = summary(changes)
        now = time.perf_counter()
        timings["load"] = round(now - last[0], 3)
        report["seconds"] = round(now - t0, 3)  # the import itself, without the refresh
        if opts.dry_run:
            report["would_refresh"] = graph.planned(changes) if changes else []
        elif changes:
            ctx = graph.refresh(conn, changes, trigger=f"import:{layer.code}:{batch_id}")
            report["refreshed"] = refresh_report(ctx)
            timings["refresh"] = round(time.perf_counter() - now, 3)
        report["timings_s"] = timings
        conn.execute(
            text(
                "UPDATE import_batches SET inserted=:inserted, updated=:updated, "
                "unchanged=:unchanged,"
                " rejected=:rejected, report=CAST(:report AS jsonb), finished_at=now() WHERE id=:id"
            ),
            {**counts, "rejected": report["rejected"], "report": _json(report), "id": batch_id},
        )
        if opts.dry_run:
            conn.rollback()
            report.pop("batch_id", None)
    return report


def _json(obj) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=str)


def _error_list(
    raw: RawFrame, typed: pd.DataFrame, layer: Layer, issues: Issues, limit: int
) -> tuple[list[dict], int]:
    """The report's problems, in file order: the first ``limit`` of them (file, row or
    feature, key, field, reason) and how many there are. Every check's problems pass here, so
    this is where a report is capped (CLI, HTTP and dry runs alike)."""
    if not issues.pos:
        return [], 0
    pos = np.asarray(issues.pos)
    order = np.argsort(pos, kind="stable")[:limit]
    where = _labels(raw, pos[order])
    keys = typed[layer.key_columns[0]].to_numpy()[pos[order]]
    return [
        {
            "where": where[j],
            "key": None if pd.isna(keys[j]) else str(keys[j]),
            "field": issues.fields[i],
            "reason": issues.reasons[i],
        }
        for j, i in enumerate(order)
    ], len(pos)


def _record_batch(
    conn: Connection,
    layer: Layer,
    file: str,
    fhash: str,
    opts: ImportOptions,
    user: str,
    report: dict,
) -> int:
    return conn.execute(
        text(
            "INSERT INTO import_batches (layer, file_name, file_hash, options, status, rows_read, "
            "rejected, report, created_by, finished_at) VALUES (:layer, :file, :hash, "
            "CAST(:opts AS jsonb), :status, :rows, :rejected, CAST(:report AS jsonb), :user, "
            "CASE WHEN :status = 'rejected' THEN now() END) RETURNING id"
        ),
        {
            "layer": layer.code,
            "file": file,
            "hash": fhash,
            "opts": _json(report["options"]),
            "status": report.get("status", "loaded"),
            "rows": report["rows_read"],
            "rejected": report.get("rejected", 0),
            "report": _json(report),
            "user": user,
        },
    ).scalar_one()


def _copy(
    conn: Connection,
    table: str,
    frame: pd.DataFrame,
    cols: list[str],
    prepare: Callable[[pd.DataFrame, int, int], pd.DataFrame] | None = None,
) -> None:
    """COPY ``frame[cols]`` into ``table`` as CSV, in chunks (bounded memory).

    A psycopg writer thread sends each chunk while the next one is formatted (and, with
    ``prepare(part, start, stop)``, completed), so the server parses and stores rows on the
    second core while Python works on the next ones.
    """
    raw_conn = conn.connection.driver_connection
    chunk = COPY_CHUNK_ROWS
    sql = f"COPY {table} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)"
    with raw_conn.cursor() as cur:
        with cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
            for start in range(0, len(frame), chunk):
                stop = min(start + chunk, len(frame))
                part = frame.iloc[start:stop]
                if prepare is not None:
                    part = prepare(part, start, stop)
                cp.write(_csv(part[cols]))


_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def _csv(part: pd.DataFrame):
    """CSV for COPY: Arrow's C++ writer (NaN and None -> empty = NULL, strings quoted, floats
    in shortest round-trip form); pandas' writer for what Arrow cannot type."""
    try:
        table = pa.Table.from_pandas(part, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return part.to_csv(header=False, index=False)
    out = pa.BufferOutputStream()
    pa_csv.write_csv(table, out, _CSV_OPTIONS)
    return memoryview(out.getvalue())


def _changed_rows(conn: Connection, layer: Layer, frame: pd.DataFrame) -> np.ndarray:
    """Mask of rows that are new or differ from the stored row (by key and row hash).

    Only keys and hashes travel to the database here; full rows are sent for these alone.
    """
    keys = list(layer.key_columns)
    conn.execute(
        text(
            f"CREATE TEMP TABLE stg_keys ON COMMIT DROP AS SELECT {', '.join(keys)}, row_hash "
            f"FROM {layer.table} WITH NO DATA"
        )
    )
    _copy(conn, "stg_keys", frame, [*keys, "row_hash"])
    # its size for the planner: unanalysed, a one-row file's keys were hash-joined to every
    # stored row (20 ms for 76,437 enterprises) instead of looked up by the key's index
    conn.execute(text("ANALYZE stg_keys"))
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    changed = pd.DataFrame(
        conn.execute(
            text(
                f"SELECT {', '.join('s.' + k for k in keys)} FROM stg_keys s "
                f"LEFT JOIN {layer.table} t ON {on} "
                "WHERE t.id IS NULL OR t.row_hash IS DISTINCT FROM s.row_hash"
            )
        ).all(),
        columns=keys,
    )
    if changed.empty:
        return np.zeros(len(frame), bool)
    ours = frame[keys].astype(str).agg("\x1f".join, axis=1)
    theirs = changed.astype(str).agg("\x1f".join, axis=1)
    return ours.isin(set(theirs)).to_numpy()


def _held_keys(layer: Layer, typed: pd.DataFrame, warnings: list[str]) -> list[tuple] | None:
    """The keys a file holds (its rejected rows' too: a bad row still names its key), or None
    with a warning when some row's key could not be read (then no row is retired: a mistyped
    key must not retire the row it meant)."""
    keys = typed[list(layer.key_columns)]
    incomplete = int((~keys.notna().all(axis=1)).sum())
    if incomplete:
        warnings.append(
            f"--replace: {incomplete} row(s) without a readable key "
            f"({'+'.join(layer.key)}); no row was retired"
        )
        return None
    out = []
    for row in keys.itertuples(index=False, name=None):
        out.append(
            tuple(
                int(v) if layer.field(c).type == "int" else str(v)
                for c, v in zip(layer.key, row, strict=True)
            )
        )
    return out


def _load(
    conn: Connection,
    layer: Layer,
    good: pd.DataFrame,
    geoms: np.ndarray | None,
    batch_id: int,
    user: str,
    via: str,
) -> tuple[dict, Changes]:
    """Upsert the good rows by key. Unchanged rows (same hash) are not sent again or touched;
    updates are recorded key by key in import_changes; inserted rows carry ``batch_id``; every
    inserted, updated or restored row gets its version in row_history (naming ``via``).
    Returns the counts and the changed keys."""
    cols = [f.column for f in layer.fields]
    frame = _copy_frame(good, layer)
    wkb = None
    with_geom = geoms is not None and layer.has_geom
    if with_geom:
        geoms = np.asarray(geoms, dtype=object)
        cols.append("geom")
    if layer.has_source_crs:
        cols.append("source_crs")
    cols.append("row_hash")
    # Concurrent imports of one layer queue here (readers are not blocked), so "empty" below
    # stays true until this transaction commits.
    conn.execute(text(f"LOCK TABLE {layer.table} IN SHARE ROW EXCLUSIVE MODE"))
    before = conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {layer.table})")).scalar_one()
    if not before and not frame.empty:
        counts = _first_load(conn, layer, good, geoms if with_geom else None, frame, cols, batch_id)
        record_all(conn, layer, user, via)
        # the planner's statistics of the rows just loaded, for the derivation that reads them
        # in this transaction: they said the table was empty, and the linkage then joined every
        # enterprise to a scan of all the others' parcels (a first load of QY on the scale-20
        # city: the linkage 311-438 s instead of seconds)
        conn.execute(text(f"ANALYZE {layer.table}"))
        return counts, Changes().add(layer.table, [ALL])
    if with_geom:
        wkb = _ewkb(geoms, good.index)
        frame["geom"] = wkb
    frame["row_hash"] = _row_hash(good, wkb)
    if before:
        frame = frame[_changed_rows(conn, layer, frame)]
    if frame.empty:
        return {"inserted": 0, "updated": 0, "unchanged": len(good)}, Changes()
    stg = f"stg_{layer.table}"
    col_list = ", ".join(cols)
    untyped = ", ".join("geom::geometry AS geom" if c == "geom" else c for c in cols)
    conn.execute(
        text(
            f"CREATE TEMP TABLE {stg} ON COMMIT DROP AS SELECT {untyped} "
            f"FROM {layer.table} WITH NO DATA"
        )
    )
    _copy(conn, stg, frame, cols)
    select_list = ", ".join(
        "ST_Multi(geom)" if c == "geom" and layer.polygonal else c for c in cols
    )
    keys = layer.key_columns
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    key_expr = "concat_ws('|', " + ", ".join(f"s.{k}" for k in keys) + ")"
    geom_diff = (
        "CASE WHEN ST_Multi(s.geom) IS DISTINCT FROM t.geom THEN "
        "jsonb_build_object('geom', 'changed') ELSE '{}'::jsonb END"
        if "geom" in cols
        else "'{}'::jsonb"
    )
    updated = conn.execute(
        text(f"""
        INSERT INTO import_changes (batch_id, layer, key, action, changes)
        SELECT :b, :layer, {key_expr}, 'update', COALESCE((
                   SELECT jsonb_object_agg(n.key, jsonb_build_array(o.value, n.value))
                   FROM jsonb_each(to_jsonb(s) - 'row_hash' - 'geom') n
                   JOIN jsonb_each(to_jsonb(t)) o ON o.key = n.key
                   WHERE n.value IS DISTINCT FROM o.value), '{{}}'::jsonb) || {geom_diff}
        FROM {stg} s JOIN {layer.table} t ON {on}"""),
        {"b": batch_id, "layer": layer.code},
    ).rowcount
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys)
    # the upsert and its versions in one statement; xmax = 0 marks a row inserted, not updated
    key = key_sql(layer, "up")
    old_key = "concat_ws('|', " + ", ".join(f"up.{k}" for k in keys) + ")"
    changed = conn.execute(
        text(f"""
        WITH up AS (
            INSERT INTO {layer.table} ({col_list}, batch_id)
            SELECT {select_list}, :b FROM {stg}
            ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {sets}, batch_id = EXCLUDED.batch_id,
                updated_at = now()
            RETURNING *, (xmax = 0) AS fresh)
        INSERT INTO row_history (layer, key, version, op, who, via, row, changes)
        SELECT :layer, {key}, COALESCE(v.version, 0) + 1,
               CASE WHEN NOT up.fresh THEN 'update' WHEN v.op = 'retire' THEN 'restore'
                    ELSE 'insert' END,
               :who, :via, {row_sql(layer, "up")}, c.changes
        FROM up {last_version_join("v", key)}
        LEFT JOIN import_changes c ON c.batch_id = :b AND c.key = {old_key}
        RETURNING key"""),
        {"b": batch_id, "layer": layer.code, "who": user, "via": via},
    )
    changes = Changes().add(layer.table, [r[0] for r in changed])
    inserted = len(frame) - updated
    counts = {"inserted": inserted, "updated": updated, "unchanged": len(good) - len(frame)}
    return counts, changes


# EWKB (hex) headers, little-endian, with the SRID flag: a polygon, and a multipolygon of one.
_POLYGON_EWKB = f"0103000020{STORAGE_SRID.to_bytes(4, 'little').hex().upper()}"
_MULTI_OF_ONE = (
    f"0106000020{STORAGE_SRID.to_bytes(4, 'little').hex().upper()}01000000" + "0103000000"
)


def multi_ewkb(hex_ewkb: pd.Series) -> pd.Series:
    """Hex EWKB polygons rewritten as multipolygons of one part (what ``ST_Multi`` does), by
    their headers alone; other geometries and None pass unchanged."""
    head = len(_POLYGON_EWKB)

    def conv(v):
        if isinstance(v, str) and v[:head].upper() == _POLYGON_EWKB:
            return _MULTI_OF_ONE + v[head:]
        return v

    return hex_ewkb.map(conv)


def _ewkb(geoms: np.ndarray, index: pd.Index) -> pd.Series:
    """Hex EWKB with the storage SRID (what COPY sends and the row hash reads)."""
    import shapely

    g = shapely.set_srid(geoms, STORAGE_SRID)
    return pd.Series(shapely.to_wkb(g, hex=True, include_srid=True), index=index, dtype=object)


def _first_load(
    conn: Connection,
    layer: Layer,
    good: pd.DataFrame,
    geoms: np.ndarray | None,
    frame: pd.DataFrame,
    cols: list[str],
    batch_id: int,
) -> dict:
    """Load into an empty table: one COPY straight into it (no staging table, no upsert, no
    change records: there is nothing to change). EWKB, row hashes and multipolygons are made
    chunk by chunk inside the COPY, overlapping the server's work. The indexes are kept up
    row by row: dropping one to build it at the end (as bulk loaders do, 0.3-0.5 s less for
    98,048 parcels) would lock the table against every reader until the import commits."""
    multi = geoms is not None and layer.polygonal

    def prepare(part: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
        part = part.copy()
        wkb = _ewkb(geoms[start:stop], part.index) if geoms is not None else None
        part["row_hash"] = _row_hash(good.iloc[start:stop], wkb)
        if wkb is not None:
            part["geom"] = multi_ewkb(wkb) if multi else wkb
        part["batch_id"] = batch_id
        return part

    _copy(conn, layer.table, frame, [*cols, "batch_id"], prepare)
    return {"inserted": len(frame), "updated": 0, "unchanged": 0}
