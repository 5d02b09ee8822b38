"""The ``landlink`` command. Every command ends with a one-screen summary."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from app.cli_options import iso_date

STAGES = ("read", "validate", "geometry", "load")


def _engine():
    from gis.core.db import get_engine

    return get_engine()


def _print_report(report: dict) -> None:
    status = report.get("status", "?")
    print(
        f"{report['file']} -> {report['layer']} ({report['table']}): {status}"
        + (" [dry run]" if report.get("dry_run") else "")
    )
    print(
        f"  read {report['rows_read']}  inserted {report.get('inserted', 0)}  updated "
        f"{report.get('updated', 0)}  unchanged {report.get('unchanged', 0)}  rejected "
        f"{report.get('rejected', 0)}"
        + (f"  batch {report['batch_id']}" if report.get("batch_id") else "")
    )
    ni = report.get("not_industrial", {})
    if ni.get("count"):
        print(f"  not industrial land-use codes: {ni['count']} rows {ni['codes']}")
    for w in report.get("warnings", []):
        print(f"  note: {w}")
    _print_changes(report)
    errors = report.get("errors", [])
    for e in errors[:15]:
        key = f" [{e['key']}]" if e.get("key") else ""
        print(f"  ERROR {report['file']} {e['where']}{key} field {e['field']}: {e['reason']}")
    total = report.get("errors_total", len(errors))
    if total > 15:
        listed = "" if total == len(errors) else f"; the first {len(errors)} listed"
        print(f"  ... {total - 15} more errors (--report FILE{listed})")


def _write_marked(path: Path, report: dict, target: str) -> None:
    """``--report-xlsx``: the workbook with its bad cells marked, when the report has errors."""
    from gis.ingest.template import CannotMark, marked

    if not report.get("errors"):
        print(f"no problems: {target} not written", file=sys.stderr)
        return
    try:
        data = marked(path, report)
    except CannotMark as e:
        print(f"ERROR --report-xlsx {target} not written: {e}", file=sys.stderr)
        return
    Path(target).write_bytes(data)
    print(
        f"marked workbook written to {target}: {len(report['errors'])} problem(s) in red, "
        "the reason in each cell's comment",
        file=sys.stderr,
    )


def _import_one(
    layer: str,
    path: Path,
    opts,
    report_file: str | None = None,
    quiet: bool = False,
    report_xlsx: str | None = None,
) -> dict | None:
    from tqdm import tqdm

    from gis.ingest import ImportRejected, InputError, import_file

    bar = tqdm(
        total=len(STAGES),
        desc=f"{layer.upper()} {path.name}",
        unit="step",
        disable=quiet or not sys.stderr.isatty(),
        leave=False,
    )

    def progress(stage: str) -> None:
        bar.set_postfix_str(stage)
        bar.n = STAGES.index(stage) + 1
        bar.refresh()

    try:
        report = import_file(
            _engine(), layer, path, opts, user=f"cli:{getpass.getuser()}", progress=progress
        )
    except InputError as e:
        bar.close()
        print(f"ERROR {e}", file=sys.stderr)
        return None
    except ImportRejected as e:
        bar.close()
        _print_report(e.report)
        print(
            f"REFUSED: {e.report['rejected']} bad row(s); nothing was imported "
            "(--lenient loads the good rows)",
            file=sys.stderr,
        )
        if report_file:
            Path(report_file).write_text(json.dumps(e.report, ensure_ascii=False, indent=1))
        if report_xlsx:
            _write_marked(path, e.report, report_xlsx)
        return None
    except Exception as e:
        bar.close()
        if not _is_database_error(e):
            raise
        # main names the database's reason; this says which file, and that its transaction went
        print(
            f"ERROR {path} ({layer.upper()}): not imported, nothing of it written", file=sys.stderr
        )
        raise
    bar.close()
    if not quiet:
        _print_report(report)
    if report_file:
        Path(report_file).write_text(json.dumps(report, ensure_ascii=False, indent=1))
    if report_xlsx:
        _write_marked(path, report, report_xlsx)
    return report


def _is_database_error(e: BaseException) -> bool:
    """An error the database raised: SQLAlchemy wraps the driver's error; a statement run on
    the driver's own cursor (a COPY, a prepared statement) raises it bare."""
    from sqlalchemy.exc import DBAPIError

    psycopg = sys.modules.get("psycopg")
    return isinstance(e, DBAPIError) or (psycopg is not None and isinstance(e, psycopg.Error))


def _options(ns, overrides: dict | None = None):
    from gis.ingest import ImportOptions

    o = overrides or {}
    strict = o.get("strict", not o.get("lenient", False))
    if getattr(ns, "mode", None) is not None:
        strict = ns.mode == "strict"
    return ImportOptions(
        encoding=getattr(ns, "encoding", None) or o.get("encoding"),
        crs=getattr(ns, "crs", None) or o.get("crs"),
        sheet=getattr(ns, "sheet", None) or o.get("sheet"),
        strict=strict,
        dry_run=bool(getattr(ns, "dry_run", False) or o.get("dry_run", False)),
        replace=bool(getattr(ns, "replace", False)),
    )


def cmd_import(ns) -> int:
    path = Path(ns.file)
    if ns.report_xlsx and path.suffix.lower() != ".xlsx":
        print(
            f"ERROR --report-xlsx marks the cells of an .xlsx file; {path.name} is not one "
            "(use --report R.json for the report)",
            file=sys.stderr,
        )
        return 2
    report = _import_one(ns.layer, path, _options(ns), ns.report, report_xlsx=ns.report_xlsx)
    return 0 if report else 1


def cmd_template(ns) -> int:
    """``landlink template LAYER [--out F]``: the layer's Excel template."""
    from gis.core.layers import layer as get_layer
    from gis.ingest.template import file_name, workbook

    layer = get_layer(ns.layer)  # KeyError: main() names the known layers
    out = Path(ns.out) if ns.out else Path.cwd() / file_name(layer)
    if out.is_dir():
        out = out / file_name(layer)
    try:
        out.write_bytes(workbook(layer))
    except OSError as e:
        print(f"ERROR cannot write {out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"template for {layer.code} ({layer.label}) written to {out}")
    if layer.geometry == "polygon":
        print(
            f"note: {layer.code} needs polygons: the workbook is for its attributes; send the "
            "layer as a shapefile, GeoPackage or GeoJSON (see the sheet 填表说明)",
            file=sys.stderr,
        )
    return 0


def _print_changes(report: dict) -> None:
    """The retired keys, the changed keys and the refresh of an import or retirement."""
    if report.get("retired"):
        keys = report.get("retired_keys", [])
        more = report["retired"] - len(keys[:20])
        print(
            f"  retired {report['retired']}: {', '.join(keys[:20])}"
            + (f" and {more} more" if more > 0 else "")
        )
        for layer, n in report.get("retired_with", {}).items():
            print(f"  retired with them: {n} row(s) of {layer}")
    if "would_refresh" in report:
        names = ", ".join(report["would_refresh"]) or "none"
        print(f"  would refresh (not run, dry run): {names}")
    refreshed = report.get("refreshed")
    if refreshed:
        done = ", ".join(f"{k} {v:.2f} s" for k, v in refreshed["producers"].items()) or "none"
        print(f"  refreshed: {done}")


def cmd_retire(ns) -> int:
    from gis.core.layers import layer as get_layer
    from gis.ingest.errors import ImportBusy
    from gis.ingest.retire import UnknownKeys, retire

    try:
        get_layer(ns.layer)
        report = retire(
            _engine(), ns.layer, ns.keys, who=f"cli:{getpass.getuser()}", dry_run=ns.dry_run
        )
    except KeyError as e:
        print(f"ERROR {e.args[0]}", file=sys.stderr)
        return 1
    except (ValueError, UnknownKeys, ImportBusy) as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    print(
        f"{report['layer']} ({report['table']}): retired {report['retired']} row(s)"
        + (" [dry run: nothing changed]" if report["dry_run"] else "")
        + f" in {report['seconds']:.2f} s"
    )
    _print_changes(report)
    return 0


def find_layer_files(directory: Path) -> list[tuple[str, Path]]:
    """Files named after a layer code (case-insensitive), in dependency order."""
    from gis.core.layers import IMPORT_ORDER

    suffixes = {".shp", ".gpkg", ".geojson", ".json", ".csv", ".xlsx", ".xls"}
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() in suffixes and p.stem.upper() in IMPORT_ORDER:
            if p.stem.upper() in found:
                raise SystemExit(
                    f"ERROR {directory}: two files for layer {p.stem.upper()}: "
                    f"{found[p.stem.upper()].name} and {p.name}"
                )
            found[p.stem.upper()] = p
    return [(code, found[code]) for code in IMPORT_ORDER if code in found]


def cmd_import_dir(ns) -> int:
    import tomllib

    from tqdm import tqdm

    directory = Path(ns.dir)
    if not directory.is_dir():
        print(f"ERROR {directory}: not a directory", file=sys.stderr)
        return 1
    manifest: dict = {}
    mf = directory / "manifest.toml"
    if mf.exists():
        try:
            manifest = {k.upper(): v for k, v in tomllib.loads(mf.read_text("utf-8")).items()}
        except tomllib.TOMLDecodeError as e:
            print(f"ERROR {mf}: {e}", file=sys.stderr)
            return 1
    files = find_layer_files(directory)
    if not files:
        print(
            f"ERROR {directory}: no file named after a layer code (XZQ, PT, ZL, PZ, GD, DK, QY, "
            "CC, XM, BD, TJ)",
            file=sys.stderr,
        )
        return 1
    t0 = time.perf_counter()
    rows: list[dict] = []
    stopped: str | None = None  # the layer of the file being imported, until it is
    try:
        for code, path in tqdm(
            files, desc="import-dir", unit="file", disable=not sys.stderr.isatty()
        ):
            stopped = code
            report = _import_one(code, path, _options(ns, manifest.get(code, {})), quiet=True)
            if report is None:
                break  # _import_one printed why; later layers depend on this one
            stopped = None
            rows.append(report)
    finally:  # also when a file's import raised (a database error): what was loaded before it
        _import_dir_table(rows, len(files), stopped, time.perf_counter() - t0)
    return 1 if stopped else 0


def _import_dir_table(rows: list[dict], files: int, stopped: str | None, seconds: float) -> None:
    print(f"{'layer':6}{'file':16}{'read':>8}{'new':>8}{'upd':>8}{'same':>8}{'rej':>6}")
    for r in rows:
        print(
            f"{r['layer']:6}{r['file']:16}{r['rows_read']:>8}{r['inserted']:>8}"
            f"{r['updated']:>8}{r['unchanged']:>8}{r['rejected']:>6}"
        )
    print(
        f"{len(rows)} of {files} files imported in {seconds:.1f} s"
        + (f"; stopped at {stopped}" if stopped else "")
    )


def cmd_db(ns) -> int:
    from app import localdb
    from gis.core.config import get_settings

    s = get_settings()
    if not s.local_cluster:
        print(
            f"DATABASE_URL is set: landlink uses {s.sqlalchemy_url.split('@')[-1]} and manages "
            "no local cluster"
        )
        return 0
    try:
        msg = {
            "up": localdb.up,
            "down": localdb.down,
            "status": lambda st: f"local cluster: {localdb.status(st)}",
        }[ns.action](s)
    except Exception as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 1
    print(msg)
    return 0


def cmd_migrate(ns) -> int:
    from gis.core.migrate import upgrade

    try:
        upgrade(revision=ns.revision)
    except Exception as e:
        print(f"ERROR migration failed: {e}", file=sys.stderr)
        return 1
    print(f"database migrated to {ns.revision}")
    if ns.revision not in ("head", "heads"):
        return 0  # the code's producers need the latest schema to recompute anything
    from gis.economy import per_mu
    from gis.lands import chain

    engine = _engine()
    with engine.connect() as conn:
        missing = [
            name
            for name, empty in (
                ("the zone sums", per_mu.zone_sums_missing),
                ("the parcels' places on the chain", chain.positions_missing),
            )
            if empty(conn)
        ]
        as_of = conn.exec_driver_sql(
            "SELECT as_of FROM analysis_runs ORDER BY id DESC LIMIT 1"
        ).scalar_one_or_none()
    if missing:  # a migration reset or added a derived table: every one made whole again
        from gis.core import graph

        print(f"{' and '.join(missing)} are empty: every derived table recomputed as of {as_of}")
        print(_graph_run(engine, None, as_of, "migrate"))
        print(graph.vacuum_derived(engine))  # as after analyse-all: the rewritten rows' space
    return 0


def cmd_sample(ns) -> int:
    from gis.sample.city import generate

    t0 = time.perf_counter()
    summary = generate(ns.out, scale=ns.scale, seed=ns.seed)
    for k, v in summary.items():
        if k != "files":
            print(f"  {k:6} {v}")
    print(f"sample city written to {ns.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_token(ns) -> int:
    from gis.core import tokens

    try:
        expires_at = tokens.expiry(ns.expires_in_days, ns.expires)
    except ValueError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    try:
        layers = tokens.editor_layers(ns.role, (ns.layers or "").split(","))
    except ValueError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return 2
    with _engine().begin() as conn:
        token = tokens.create(conn, ns.role, ns.name or "", expires_at, layers)
    print(
        f"token {ns.name or ns.role!r} for role {ns.role}"
        + (f" (writes {', '.join(layers)})" if layers else "")
        + ", expires "
        f"{expires_at:%Y-%m-%d %H:%M %Z} (shown once; send it as 'Authorization: Bearer <token>'):"
    )
    print(token)
    return 0


def _when(t) -> str:  # type: ignore[no-untyped-def]
    return t.astimezone().strftime("%Y-%m-%d %H:%M") if t else "-"


def cmd_token_list(ns) -> int:
    from gis.core import tokens

    with _engine().connect() as conn:
        rows = tokens.list_tokens(conn, include_revoked=not ns.live)
    print(
        f"{'id':>4}  {'prefix':9} {'name':20} {'role':8} {'layers':12} {'created':17} "
        f"{'expires':17} {'revoked':17} {'last used':17} state"
    )
    for r in rows:
        layers = ",".join(r["layers"] or ()).lower() or "-"
        print(
            f"{r['id']:>4}  {(r['prefix'] or '?'):9} {r['name'][:20]:20} {r['role']:8} "
            f"{layers:12} "
            f"{_when(r['created_at']):17} {_when(r['expires_at']):17} "
            f"{_when(r['revoked_at']):17} {_when(r['last_used_at']):17} {r['state']}"
        )
    live = sum(r["state"] == "live" for r in rows)
    print(f"{len(rows)} token(s), {live} live")
    return 0


def cmd_token_revoke(ns) -> int:
    from gis.core import tokens

    with _engine().begin() as conn:
        done = tokens.revoke(conn, ns.name_or_id)
    if not done:
        print(
            f"ERROR no unrevoked token with id or name {ns.name_or_id!r} ('landlink token list')",
            file=sys.stderr,
        )
        return 1
    for r in done:
        print(f"revoked token {r['id']} {r['name']!r} ({r['role']}): refused from now on")
    return 0


def cmd_audit(ns) -> int:
    from gis.core import audit

    since, until = ns.since, ns.until
    from datetime import datetime

    def start(d):  # type: ignore[no-untyped-def]
        return datetime.combine(d, datetime.min.time()).astimezone() if d else None

    with _engine().connect() as conn:
        res = audit.entries(conn, start(since), start(until), ns.token, ns.limit, 0)
    print(f"{'when':19} {'token':16} {'role':8} {'rows':>6}  request -> what")
    for e in res["items"]:
        at = datetime.fromisoformat(e["at"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        q = f"?{e['query']}" if e["query"] else ""
        rows = "" if e["rows"] is None else e["rows"]
        print(
            f"{at:19} {e['token_name'][:16]:16} {e['role']:8} {rows:>6}  "
            f"{e['method']} {e['path']}{q[:60]} -> {', '.join(e['what'])}"
        )
    print(f"{len(res['items'])} of {res['numberMatched']} restricted read(s)")
    return 0


def _graph_run(engine, changes, as_of: date | None, trigger: str) -> str:
    """One ``graph.refresh`` in a transaction of its own; a line with its run and each
    producer's seconds and changed keys."""
    from gis.core import graph

    with engine.begin() as conn:
        ctx = graph.refresh(conn, changes, as_of, trigger=trigger)
    if ctx.run_id is None:
        return "nothing to do"
    kind = "full" if ctx.full else "refresh"
    parts = []
    for name, seconds in ctx.timings.items():
        changed = ", ".join(f"{t} {n}" for t, n in ctx.changed.get(name, {}).items())
        parts.append(f"{name} {seconds:.2f} s" + (f" ({changed})" if changed else ""))
    notes = "".join(f"\n  note: {n}" for n in ctx.notes)
    return (
        f"run {ctx.run_id} ({kind}, as of {ctx.as_of}) in {ctx.seconds:.1f} s\n  "
        + "\n  ".join(parts)
        + notes
    )


def analysis_steps(as_of: date | None = None) -> list[tuple[str, callable]]:
    """What `make demo` runs after loading, in order (each step takes an engine and returns a
    summary): the derivation graph (every derived table, one transaction, order from the
    producers' declarations: ``landlink graph``), then what is not a derived table: a recorded
    three-lands detection run (a snapshot to compare) and the demo's layout plan (§8); last, the
    derived tables the graph rewrote are vacuumed (``graph.vacuum_derived``).

    ``as_of`` is the date deadlines are judged by (default today).
    """
    from gis.core import graph
    from gis.lands.detection import baselines_summary_line, detect_summary_line
    from gis.platforms.layout_plan import plan_summary_line

    names = " -> ".join(p.name for p in graph.producers())
    return [
        (
            f"derivation graph ({names})",
            lambda engine: _graph_run(engine, None, as_of, "analyse-all"),
        ),
        (
            f"three kinds of land §3, recorded run as of {as_of or 'today'}",
            lambda engine: detect_summary_line(engine, as_of),
        ),
        ("baseline runs of the years with targets (as of 1 January)", baselines_summary_line),
        ("layout plan §8, both corridors", plan_summary_line),
        ("the derived tables rewritten: VACUUM (ANALYZE)", graph.vacuum_derived),
    ]


def cmd_analyse_all(ns) -> int:
    as_of = ns.as_of
    t0 = time.perf_counter()
    for name, step in analysis_steps(as_of):
        t = time.perf_counter()
        print(f"{name}: {step(_engine())} ({time.perf_counter() - t:.1f} s)")
    print(f"analyses done in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_refresh(ns) -> int:
    """``landlink refresh [--as-of D]``: re-judge every result that depends on the date."""
    from gis.core.graph import ALL, CALENDAR, Changes

    as_of = ns.as_of
    changes = Changes().add(CALENDAR, [ALL])
    print(f"refresh: {_graph_run(_engine(), changes, as_of, 'refresh')}")
    return 0


def cmd_verify_derived(ns) -> int:
    """``landlink verify-derived``: do the derived tables equal a recompute from scratch?
    (Recomputed in a transaction that is rolled back: nothing changes.)"""
    from gis.core import recompute_check

    as_of = ns.as_of
    t0 = time.perf_counter()
    with _engine().connect() as conn:
        as_of = as_of or recompute_check.judged_as_of(conn)
        tables = recompute_check.compared_tables()
        unknown = sorted(set(ns.table or ()) - set(tables))
        if unknown:
            print(
                f"ERROR --table {', '.join(unknown)}: not a derived table; the derived tables "
                f"are {', '.join(tables)}",
                file=sys.stderr,
            )
            return 2
        found = recompute_check.differences(conn, as_of, tables=ns.table or None)
        conn.rollback()
    seconds = time.perf_counter() - t0
    # the rolled-back recompute rewrote every derived table: its dead rows and the pages it
    # unmarked would slow the refreshes by key until autovacuum came (docs/BENCHMARKS.md)
    from gis.core.graph import vacuum_derived

    vacuumed = vacuum_derived(_engine())
    n = len(ns.table or tables)
    if not found:
        print(
            f"the {n} derived tables agree with a recompute from scratch as of {as_of} "
            f"({seconds:.1f} s; then {vacuumed})"
        )
        return 0
    for d in found:
        print("\n".join(d.lines()))
    print(
        f"{len(found)} of {n} derived tables differ from a recompute from scratch as of "
        f"{as_of} ({seconds:.1f} s); if only deadline-dependent results differ, the day "
        "changed since the last refresh: run `landlink refresh`"
    )
    return 1


def cmd_graph(ns) -> int:
    """``landlink graph``: the producers, what they read and write, in the order they run."""
    from gis.core import graph

    if ns.format == "mermaid":
        print(graph.mermaid())
    elif ns.format == "json":
        print(json.dumps(graph.describe(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(graph.text_lines()))
    return 0


def cmd_evaluate(ns) -> int:
    """``landlink link`` / ``landlink evaluate``: the evaluation and §7 indicators and what they
    are made from (links, land, per-mu figures), recomputed as one graph run; a summary."""

    from gis.economy.evaluation import run_all, summary_lines, unlinked_summary

    as_of = ns.as_of
    r = run_all(_engine(), as_of=as_of, trigger="cli")
    lines = summary_lines(r)
    if ns.command == "link":
        lines = [x for x in lines if not x.startswith("  20")][:14] + unlinked_summary(_engine())
    print("\n".join(lines))
    return 0


def cmd_detect(ns) -> int:

    from gis.lands.detection import run_detection

    as_of = ns.as_of
    r = run_detection(_engine(), as_of, user=f"cli:{getpass.getuser()}", baseline=ns.baseline)
    c = r["counts"]
    print(
        f"detection run {r['id']} as of {r['as_of']} (rules {r['config_hash']}, "
        f"inputs {r['inputs_hash']}) in {r['seconds']:.1f} s"
    )
    if r.get("baseline_year"):
        print(f"  baseline of {r['baseline_year']} for 盘活 / 淘汰 targets (landlink targets)")
    u, i, le = c["unsupplied"], c["idle"], c["low_efficiency"]
    print(
        f"  批而未供 unsupplied {u['unsupplied']}  partial {u['partial']}  supplied {u['supplied']}"
    )
    idle_order = ("not_due", "started", "overdue", "idle", "idle_reclaimable", "partial_idle")
    print(
        "  供而未用/闲置 "
        + "  ".join(f"{k} {i.get(k, 0)}" for k in idle_order)
        + f"  (records disagree {i.get('records_disagree', 0)})"
    )
    le_order = ("parcels", "plot_ratio", "tax_per_mu", "class_d", "diverted", "idle_use")
    print(
        "  低效利用 "
        + "  ".join(f"{k} {le.get(k, 0)}" for k in le_order)
        + f"  (tax year {le.get('tax_year')})"
    )
    for n in r["notes"]:
        print(f"  note: {n}")
    return 0


def cmd_targets(ns) -> int:
    """``landlink targets --year Y``: each target with its actual, completion and state (a
    command-line user reads the database directly: every figure, restricted ones included)."""
    from gis.core.vocabulary import label
    from gis.management.targets import list_targets

    with _engine().connect() as conn:
        items = list_targets(conn, ns.year, ns.level, ns.code, analyst=True)
    if ns.json:
        print(json.dumps(items, indent=1, ensure_ascii=False, default=str))
        return 0
    if not items:
        print(f"{ns.year} 年没有目标（导入 MB：landlink import mb 文件）")
        return 0

    def num(v, digits=2) -> str:
        return "—" if v is None else f"{v:,.{digits}f}"

    head = ("层级", "代码", "名称", "指标", "单位", "目标值", "实际值", "完成率%", "状态")
    rows = [
        (
            t["JB"],
            t["DM"],
            t["zone_name"] or "",
            t["indicator_label"],
            t["unit"] or "",
            num(t["MBZ"]),
            num(t["actual"]),
            num(t["completion"], 1),
            label("target_state", t["state"]) if t["state"] else "未计算",
        )
        for t in items
    ]

    def width(s: str) -> int:
        return sum(2 if ord(c) > 0x2E80 else 1 for c in s)

    cols = [max(width(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    share = items[0]["share_of_year"]
    as_of = items[0]["as_of"]
    print(f"{ns.year} 年度目标（判断日 {as_of}，全年已过 {num((share or 0) * 100, 1)}%）")
    for r in (head, *rows):
        print("  ".join(str(v) + " " * (cols[i] - width(str(v))) for i, v in enumerate(r)))
    return 0


def cmd_serve(ns) -> int:
    import uvicorn

    from app.deps import log_config
    from gis.core.config import get_settings

    # through the environment, so that every worker process builds its app with them
    for name, value in (
        ("LANDLINK_PUBLIC_URL", ns.public_url),
        ("LANDLINK_FORWARDED_ALLOW_IPS", ns.forwarded_allow_ips),
    ):
        if value is not None:
            os.environ[name] = value
    get_settings.cache_clear()
    s = get_settings()
    root_path = (ns.root_path or "").rstrip("/")
    if root_path and not root_path.startswith("/"):
        print(f"ERROR --root-path {ns.root_path!r}: give a path such as /gis", file=sys.stderr)
        return 2
    uvicorn.run(
        "app.main:app",
        host=ns.host or s.host,
        port=ns.port or s.port,
        workers=ns.workers,
        log_level="info",
        log_config=log_config(),  # token values in URLs never reach the log
        root_path=root_path,
        # X-Forwarded-* are read by the app (app/links.py), from --forwarded-allow-ips only
        proxy_headers=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="landlink", description="Industrial-land economic GIS")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the local PostGIS cluster")
    db.add_argument("action", choices=["up", "down", "status"])
    db.set_defaults(fn=cmd_db)

    mg = sub.add_parser("migrate", help="apply database migrations (Alembic)")
    mg.add_argument("revision", nargs="?", default="heads")
    mg.set_defaults(fn=cmd_migrate)

    def import_opts(sp):
        sp.add_argument("--encoding", help="text encoding of a shapefile without .cpg, or a CSV")
        sp.add_argument("--crs", help="CRS of a layer without one (EPSG code), or gcj02 / bd09")
        sp.add_argument(
            "--sheet",
            "--layer",
            dest="sheet",
            help="XLSX/XLS sheet name (default: the first), or the layer of a .gdb "
            "File Geodatabase (needed when it holds several)",
        )
        mode = sp.add_mutually_exclusive_group()
        mode.add_argument(
            "--strict",
            dest="mode",
            action="store_const",
            const="strict",
            help="refuse the whole file on any bad row (default)",
        )
        mode.add_argument(
            "--lenient",
            dest="mode",
            action="store_const",
            const="lenient",
            help="load the good rows and report the rest",
        )
        sp.add_argument("--dry-run", action="store_true", help="check and report; write nothing")

    from gis.core.layers import IMPORT_ORDER  # plain data: no settings, database or library

    layer_codes = ", ".join(c.lower() for c in IMPORT_ORDER)
    im = sub.add_parser("import", help="import one file into a layer")
    im.add_argument("layer", help=layer_codes)
    im.add_argument("file")
    import_opts(im)
    im.add_argument("--report", help="write the full import report (JSON) to this file")
    im.add_argument(
        "--report-xlsx",
        metavar="F",
        help="an .xlsx file with problems: write it to F with the bad cells in red and the "
        "reason in each one's comment",
    )
    im.add_argument(
        "--replace",
        action="store_true",
        help="the file is the whole layer: retire the rows it does not hold (kept in history)",
    )
    im.set_defaults(fn=cmd_import, mode=None)

    tp = sub.add_parser("template", help="an Excel template of a layer for a department to fill in")
    tp.add_argument("layer", help=layer_codes)
    tp.add_argument("--out", help="the file to write (default: <CODE>_template.xlsx here)")
    tp.set_defaults(fn=cmd_template)

    rt = sub.add_parser(
        "retire", help="retire rows of a layer (a closed enterprise, a split parcel)"
    )
    rt.add_argument("layer", help=layer_codes)
    rt.add_argument(
        "keys",
        nargs="+",
        metavar="KEY",
        help="contract keys; a composite one joined by ':' in contract order "
        "(CC: 91330102169913999J:2023)",
    )
    rt.add_argument("--dry-run", action="store_true", help="check and report; write nothing")
    rt.set_defaults(fn=cmd_retire)

    idir = sub.add_parser("import-dir", help="import every layer file in a folder")
    idir.add_argument("dir")
    idir.add_argument("--strict", dest="mode", action="store_const", const="strict")
    idir.add_argument("--lenient", dest="mode", action="store_const", const="lenient")
    idir.add_argument("--dry-run", action="store_true")
    idir.set_defaults(fn=cmd_import_dir, mode=None)

    sm = sub.add_parser("sample", help="the synthetic sample city")
    sm_sub = sm.add_subparsers(dest="sample_cmd", required=True)
    gen = sm_sub.add_parser("generate")
    gen.add_argument("--out", required=True)
    gen.add_argument("--scale", type=int, default=1)
    gen.add_argument("--seed", type=int, default=20261128)
    gen.set_defaults(fn=cmd_sample)

    tk = sub.add_parser("token", help="API tokens")
    tk_sub = tk.add_subparsers(dest="token_cmd", required=True)
    tc = tk_sub.add_parser("create")
    tc.add_argument("--role", required=True, choices=["viewer", "editor", "analyst", "admin"])
    tc.add_argument(
        "--layers",
        help="an editor's layers, comma-separated contract codes (e.g. cc,bd): it may write "
        "those and read their restricted fields",
    )
    tc.add_argument("--name", help="who or what it is for, e.g. 市统计局 (default: the role)")
    exp = tc.add_mutually_exclusive_group()
    exp.add_argument(
        "--expires-in-days",
        type=int,
        help="lifetime in days (default: 365)",
    )
    exp.add_argument("--expires", type=iso_date, help="last day it works, YYYY-MM-DD")
    tc.set_defaults(fn=cmd_token)
    tl = tk_sub.add_parser(
        "list", help="every token: prefix, name, role, an editor's layers, dates, state"
    )
    tl.add_argument("--live", action="store_true", help="leave out revoked tokens")
    tl.set_defaults(fn=cmd_token_list)
    tr = tk_sub.add_parser("revoke", help="revoke a token (by id, or every token of a name)")
    tr.add_argument("name_or_id")
    tr.set_defaults(fn=cmd_token_revoke)

    au = sub.add_parser("audit", help="reads of restricted data by tokens, newest first")
    au.add_argument("--since", type=iso_date, help="from this day on, YYYY-MM-DD")
    au.add_argument("--until", type=iso_date, help="before this day, YYYY-MM-DD")
    au.add_argument("--token", help="a token's name")
    au.add_argument("--limit", type=int, default=50)
    au.set_defaults(fn=cmd_audit)

    aa = sub.add_parser(
        "analyse-all",
        help="recompute every derived table from scratch, then the demo's detection run and plan "
        "(make demo)",
    )
    aa.add_argument(
        "--full",
        action="store_true",
        help="recompute everything from scratch (what analyse-all always does; accepted for "
        "clarity)",
    )
    aa.add_argument(
        "--as-of",
        type=iso_date,
        help="date the three-lands detection judges deadlines by (YYYY-MM-DD; default today)",
    )
    aa.set_defaults(fn=cmd_analyse_all)

    rf = sub.add_parser(
        "refresh",
        help="re-judge every result that depends on the date (deadlines); what a daily timer runs",
    )
    rf.add_argument(
        "--as-of", type=iso_date, help="the date to judge by, YYYY-MM-DD (default: today)"
    )
    rf.set_defaults(fn=cmd_refresh)

    vd = sub.add_parser(
        "verify-derived",
        help="check that every derived table equals a recompute from scratch (nothing changes)",
    )
    vd.add_argument(
        "--as-of",
        type=iso_date,
        help="judge dates as of YYYY-MM-DD (default: the day the state was judged)",
    )
    vd.add_argument("--table", action="append", help="only this derived table (repeatable)")
    vd.set_defaults(fn=cmd_verify_derived)

    gr = sub.add_parser("graph", help="the derivation graph: producers, what they read and write")
    gr.add_argument("--format", choices=["text", "mermaid", "json"], default="text")
    gr.set_defaults(fn=cmd_graph)

    for name, what in (
        ("link", "project-land-output links (§1), and what depends on them"),
        ("evaluate", "亩均 figures, A/B/C/D evaluation (§2), §7 indicators"),
    ):
        ev = sub.add_parser(name, help=what)
        ev.add_argument(
            "--as-of", type=iso_date, help="the date recorded with the results (default: today)"
        )
        ev.set_defaults(fn=cmd_evaluate)

    dt = sub.add_parser("detect", help="find the three kinds of land (三块地) as one recorded run")
    dt.add_argument(
        "--as-of", type=iso_date, help="the date to judge by, YYYY-MM-DD (default: today)"
    )
    dt.add_argument(
        "--baseline",
        action="store_true",
        help="mark the recorded run as the baseline of its year for 盘活 / 淘汰 targets "
        "(default baseline: the year's first recorded run)",
    )
    dt.set_defaults(fn=cmd_detect)

    tg = sub.add_parser("targets", help="annual targets (MB) and their progress")
    tg.add_argument("--year", type=int, required=True, help="ND 年度")
    tg.add_argument("--level", choices=["区县", "平台"], help="JB 层级")
    tg.add_argument("--code", help="DM: a district's XZQDM or a platform's PTDM")
    tg.add_argument("--json", action="store_true", help="JSON instead of a table")
    tg.set_defaults(fn=cmd_targets)

    from app.plan_cli import add_parsers as plan_parsers  # classify, plan

    plan_parsers(sub)

    from app.tasks_cli import add_parsers as task_parsers  # tasks

    task_parsers(sub)
    from app.survey_cli import add_parsers as survey_parsers  # survey

    survey_parsers(sub)
    from app.publish_cli import add_parsers as publish_parsers  # assess, publish

    publish_parsers(sub)
    from app.report_cli import add_parsers as report_parsers  # report

    report_parsers(sub)

    sv = sub.add_parser("serve", help="serve the API and the map")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--workers", type=int, default=1)
    sv.add_argument(
        "--root-path",
        default="",
        help="the prefix a gateway serves landlink under and strips before forwarding, e.g. "
        "/gis: every link the server writes carries it",
    )
    sv.add_argument(
        "--forwarded-allow-ips",
        help="proxies (IPs, CIDRs, comma list; '*' any) whose X-Forwarded-For/-Proto/-Host/-Port "
        "are believed (default: LANDLINK_FORWARDED_ALLOW_IPS, else none)",
    )
    sv.add_argument(
        "--public-url",
        help="the URL clients reach the server at, e.g. https://gis.example.gov.cn/gis; links "
        "start with it (default: LANDLINK_PUBLIC_URL)",
    )
    sv.set_defaults(fn=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return ns.fn(ns)
    except KeyError as e:  # unknown layer code
        print(f"ERROR {e.args[0]}", file=sys.stderr)
        return 2
    except Exception as e:
        from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

        if isinstance(e, ArgumentError) and "URL" in str(e):
            print(
                "ERROR DATABASE_URL is not a database URL (e.g. "
                f"postgresql+psycopg://user@host:5432/landlink): {e}",
                file=sys.stderr,
            )
            return 1

        if not _is_database_error(e):
            raise
        psycopg = sys.modules.get("psycopg")
        bare = not isinstance(e, DBAPIError)  # raised on psycopg's own cursor
        orig = e if bare else e.orig
        state = getattr(orig, "sqlstate", None)
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        # connection failures only (no SQLSTATE, class 08, or the server starting or stopping);
        # other OperationalErrors (a lock timeout, a write to a view) are the statement's
        lost = isinstance(e, OperationalError) or (bare and isinstance(e, psycopg.OperationalError))
        down = state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
        if lost and down:
            print(
                "ERROR cannot reach the database: start it with 'landlink db up' or set "
                f"DATABASE_URL ({first})",
                file=sys.stderr,
            )
            return 1
        if state == "42P01":  # undefined_table
            print(
                "ERROR the database has no landlink tables yet (or an older schema): run "
                f"'landlink migrate' first ({first})",
                file=sys.stderr,
            )
            return 1
        # schema errors (class 42: an undefined column, function ...) after an upgrade want a
        # migration; others (class 22, a value out of range ...) do not
        hint = (
            "If this landlink was just upgraded, run 'landlink migrate'"
            if state is not None and state.startswith("42")
            else "Its transaction was rolled back"
        )
        print(
            f"ERROR the database refused the operation (SQLSTATE {state}): {first}. {hint}",
            file=sys.stderr,
        )
        return 1


def run() -> None:
    """The ``landlink`` executable: :func:`main`, then a quick exit.

    A command's work is committed and its output written when :func:`main` returns; what
    remains is the interpreter's teardown of pandas, SQLAlchemy and psycopg, 0.15-0.2 s of
    every one-row import (docs/BENCHMARKS.md). So the connections are closed, the streams
    flushed and the process ends there. A large first collection threshold keeps the
    collector from walking the module objects repeatedly while they are imported (0.05 s)."""
    import gc
    import logging

    gc.set_threshold(20_000, 10, 10)
    rc = main()
    if "gis.core.db" in sys.modules:
        from gis.core.db import dispose_engines

        dispose_engines()
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`landlink … | head`): what was read is all that is wanted
        pass
    os._exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    run()
