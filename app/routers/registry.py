"""Health, the layer list, and imports over HTTP."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException

from app.deps import Caller, caller, engine_dep, require, writer_of
from app.errors import ApiError
from gis.core.config import get_settings
from gis.core.layers import IMPORT_ORDER, LAYERS
from gis.ingest import ImportOptions, ImportRejected, InputError, import_file
from gis.ingest.limits import ByteBudget, unpack_zip
from gis.ingest.template import XLSX_MEDIA_TYPE, CannotMark, download_name, marked, workbook

router = APIRouter(tags=["registry"])
LAYER_CODES_DOC = "layer code: " + ", ".join(c.lower() for c in IMPORT_ORDER)


@router.get("/health")
def health(engine: Engine = Depends(engine_dep)) -> dict:
    """Database and PostGIS versions; 503 when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            pg = conn.execute(text("SHOW server_version")).scalar_one()
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            rev = conn.execute(
                text("SELECT string_agg(version_num, ',') FROM alembic_version")
            ).scalar_one()
    except Exception as e:
        raise ApiError(
            503,
            f"database unreachable: {type(e).__name__}; is it running "
            "('landlink db up') and is DATABASE_URL right?",
        ) from None
    return {"status": "ok", "database": f"PostgreSQL {pg}", "postgis": postgis, "migration": rev}


@router.get("/api/layers")
def list_layers(engine: Engine = Depends(engine_dep)) -> dict:
    """For each contract layer: its table, row count and last import."""
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                " UNION ALL ".join(
                    f"SELECT '{c}' AS code, count(*) AS n FROM {LAYERS[c].table}"
                    for c in IMPORT_ORDER
                )
            )
        ).all()
        last = {
            r.layer: r
            for r in conn.execute(
                text(
                    "SELECT DISTINCT ON (layer) layer, id, file_name, status, finished_at, "
                    "inserted, "
                    "updated, unchanged, rejected FROM import_batches ORDER BY layer, id DESC"
                )
            )
        }
    out = []
    for code, n in counts:
        lyr = LAYERS[code]
        b = last.get(code)
        out.append(
            {
                "code": code,
                "name": lyr.label,
                "table": lyr.table,
                "count": n,
                "geometry": lyr.geometry,
                "key": list(lyr.key),
                "last_import": None
                if b is None
                else {
                    "id": b.id,
                    "file": b.file_name,
                    "status": b.status,
                    "finished_at": b.finished_at,
                    "inserted": b.inserted,
                    "updated": b.updated,
                    "unchanged": b.unchanged,
                    "rejected": b.rejected,
                },
            }
        )
    return {"layers": out}


def _attachment(name: str, fallback: str) -> str:
    """A Content-Disposition naming the file in UTF-8 (RFC 6266), with an ASCII fallback."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/api/layers/{code}/template.xlsx",
    response_class=Response,
    responses={
        200: {"content": {XLSX_MEDIA_TYPE: {}}, "description": "the layer's Excel template"},
        404: {"description": "unknown layer"},
    },
)
def layer_template(code: str) -> Response:
    """The layer's Excel template for a department to fill in (public: it holds no data):
    headers ``label(code)``, required ones marked, drop-down lists, number and date formats,
    and a sheet 填表说明. A polygon layer's template is for its attributes; its geometry comes
    as a shapefile, GeoPackage or GeoJSON."""
    lyr = LAYERS.get(code.upper())
    if lyr is None:
        raise ApiError(
            404, f"unknown layer {code!r}; one of {', '.join(c.lower() for c in IMPORT_ORDER)}"
        )
    return Response(
        workbook(lyr),
        media_type=XLSX_MEDIA_TYPE,
        headers={
            "Content-Disposition": _attachment(download_name(lyr), f"{lyr.code}_template.xlsx")
        },
    )


def _main_file(folder: Path) -> Path:
    """The one importable file of an upload, or the File Geodatabase a zipped ``.gdb`` folder
    unpacks to (its tables, ``*.gdbtable``, gathered again into a ``.gdb`` folder, which GDAL's
    OpenFileGDB reads; the zip is unpacked flat, so two geodatabases in one zip are refused
    there, by their tables' names)."""
    tables = [p for p in folder.rglob("*.gdbtable") if p.is_file()]
    if tables:
        gdb = folder / "upload.gdb"
        gdb.mkdir()
        for f in [p for p in tables[0].parent.iterdir() if p.is_file()]:
            f.rename(gdb / f.name)
        return gdb
    files = [p for p in folder.rglob("*") if p.is_file()]
    for suffix in (".shp", ".gpkg", ".geojson", ".json", ".xlsx", ".xls", ".csv"):
        hits = [p for p in files if p.suffix.lower() == suffix]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ApiError(
                400, f"the upload holds several {suffix} files; send one layer per import"
            )
    sent = ", ".join(sorted(p.name for p in files)[:10]) or "nothing"
    raise ApiError(
        400,
        "no importable file in the upload (.shp with .dbf/.shx/.prj/.cpg, "
        "or a zip of them, .gpkg, .geojson, .csv, .xlsx, .xls, a zipped .gdb folder); "
        f"it holds: {sent}",
    )


# Room for the multipart framing and form fields beside the files (which are counted exactly).
MULTIPART_SLACK = 64 * 1024


def _too_large(limit: int) -> HTTPException:
    # an HTTPException: FastAPI passes it through while it parses the body (others become 400)
    return HTTPException(
        413, f"upload over the limit of {limit / 2**20:g} MB (setting LANDLINK_MAX_UPLOAD_BYTES)"
    )


class BoundedUpload(APIRoute):
    """A route whose request body may not exceed ``max_upload_bytes`` (plus framing): a larger
    ``Content-Length`` is refused before the body is read, and a body without one is counted as
    it arrives. Starlette spools the files to disk while parsing, so none is held in memory."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def bounded(request: Request):
            limit = get_settings().max_upload_bytes
            cap = limit + MULTIPART_SLACK
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise _too_large(limit)
            receive, seen = request.receive, 0

            async def counting_receive():
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _too_large(limit)
                return message

            return await handler(Request(request.scope, counting_receive))

        return bounded


def _safe_name(name: str | None) -> str:
    """A file name to save an upload as: its last part, printable, encodable, not too long."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = "".join(c for c in name if c.isprintable()).strip()
    if len(name.encode()) > 200:
        stem, dot, suffix = name.rpartition(".")
        keep = suffix[:16] if dot else ""
        name = stem.encode()[:150].decode("utf-8", "ignore") + (("." + keep) if keep else "")
    return name if name not in ("", ".", "..") else "upload"


def _save_uploads(files: list[UploadFile], folder: Path) -> None:
    """Each part copied to ``folder`` in chunks and each zip unpacked member by member, all
    within one byte budget (``max_upload_bytes``) and ``max_archive_members``."""
    budget = ByteBudget()
    names: set[str] = set()
    for up in files:
        name = _safe_name(up.filename)
        if name.lower() in names:
            raise InputError(name, "sent twice; send each file once", status=422)
        names.add(name.lower())
        target = folder / name
        budget.copy(up.file, target, name)
        if name.lower().endswith(".zip"):
            unpacked = folder / "unzipped"
            unpacked.mkdir(exist_ok=True)
            unpack_zip(target, unpacked, budget, name)
            target.unlink()


async def create_import(
    layer: str = Form(..., description=LAYER_CODES_DOC),
    files: list[UploadFile] = File(
        ...,
        description="the file, a shapefile's parts, or a zip (a File Geodatabase: zipped)",
    ),
    encoding: str | None = Form(None),
    crs: str | None = Form(None),
    sheet: str | None = Form(None),
    mode: str = Form("strict", pattern="^(strict|lenient)$"),
    dry_run: bool = Form(False),
    replace: bool = Form(
        False, description="the file is the whole layer: retire the rows it does not hold"
    ),
    report: str | None = Form(
        None,
        pattern="^(json|xlsx)$",
        description="xlsx: a refused .xlsx upload answers with the workbook marked",
    ),
    report_query: str | None = Query(
        None,
        alias="report",
        pattern="^(json|xlsx)$",
        description="the same as the form field report",
    ),
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Upload and import one layer (an admin token, or an editor token for the layer). Strict
    by default: any bad row refuses the file (422 with the report) and changes nothing.

    ``report=xlsx`` (form field or query) with an .xlsx upload: a refused import answers 422
    with the workbook itself, each bad cell filled red and the reason in its comment, and a
    sheet 导入问题 listing the problems (``X-Import-Errors``: how many; ``X-Import-Batch``: the
    logged attempt); every other answer stays JSON. A non-.xlsx upload with it: 400.

    Limits (settings): the upload, and what its zips unpack to, up to
    ``LANDLINK_MAX_UPLOAD_BYTES`` (413 above); files in a zip, columns and CSV line length
    (422 naming the file, where and the limit); the report lists the first
    ``LANDLINK_MAX_REPORT_ERRORS`` problems and counts them all (``errors_total``). Another
    import of the same layer running: it waits, then 409. ``replace=true``: the rows of the
    layer the file does not hold are retired (``retired``, ``retired_keys`` in the report).
    The report names the derived results refreshed (``refreshed``; a dry run: ``would_refresh``,
    not run)."""
    if layer.upper() not in LAYERS:
        raise ApiError(
            400, f"unknown layer {layer!r}; one of {', '.join(c.lower() for c in IMPORT_ORDER)}"
        )
    writer_of(who, layer.upper())
    if report and report_query and report != report_query:
        raise ApiError(400, f"report={report} (form) and report={report_query} (query) differ")
    as_xlsx = (report or report_query) == "xlsx"
    with tempfile.TemporaryDirectory(prefix="landlink-upload-") as tmp:
        folder = Path(tmp)
        try:
            await run_in_threadpool(_save_uploads, files, folder)
            path = _main_file(folder)
            if as_xlsx and path.suffix.lower() != ".xlsx":
                raise ApiError(
                    400,
                    f"report=xlsx marks the cells of an .xlsx upload; {path.name} is not one "
                    "(leave report out for the JSON report)",
                )
            opts = ImportOptions(
                encoding=encoding,
                crs=crs,
                sheet=sheet,
                strict=mode == "strict",
                dry_run=dry_run,
                replace=replace,
            )
            return await run_in_threadpool(
                import_file, engine, layer, path, opts, f"token:{who.name}", path.name
            )
        except InputError as e:
            raise ApiError(e.status, str(e), file=e.file, field=e.field) from None
        except ImportRejected as e:
            rep = e.report
            message = (
                f"{rep['rejected']} bad row(s) in {rep['file']} ({rep['errors_total']} "
                "problem(s)"
                + (f", the first {len(rep['errors'])} listed" if rep["errors_truncated"] else "")
                + "); nothing was imported (mode=lenient loads the good rows)"
            )
            if as_xlsx:
                try:
                    data = await run_in_threadpool(marked, path, rep)
                except CannotMark as why:
                    message += f"; no marked workbook: {why}"
                else:
                    stem = path.name[: -len(path.suffix)]
                    headers = {
                        "Content-Disposition": _attachment(
                            f"{stem}_标注.xlsx", "import_problems.xlsx"
                        ),
                        "X-Import-Errors": str(rep["errors_total"]),
                    }
                    if rep.get("batch_id") is not None:  # a dry run logs no attempt
                        headers["X-Import-Batch"] = str(rep["batch_id"])
                    return Response(  # type: ignore[return-value]
                        data, status_code=422, media_type=XLSX_MEDIA_TYPE, headers=headers
                    )
            raise ApiError(422, message, report=rep) from None


router.add_api_route(
    "/api/imports",
    create_import,
    methods=["POST"],
    status_code=201,
    route_class_override=BoundedUpload,
    responses={
        422: {
            "description": "bad rows: the report as JSON, or with report=xlsx the workbook "
            "marked (X-Import-Errors: how many problems)",
            "content": {"application/problem+json": {}, XLSX_MEDIA_TYPE: {}},
        }
    },
)


@router.get("/api/imports/{batch_id}")
def get_import(
    batch_id: int,
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """An import batch and its report (errors name file, row or feature, field and reason).

    Analyst token: a report quotes rejected values, which may be tax or energy figures."""
    with engine.connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM import_batches WHERE id = :id"), {"id": batch_id})
            .mappings()
            .first()
        )
        if row is None:
            raise ApiError(404, f"no import batch {batch_id}")
        changes = conn.execute(
            text(
                "SELECT action, count(*) FROM import_changes WHERE batch_id = :id GROUP BY action"
            ),
            {"id": batch_id},
        ).all()
    return {**dict(row), "changes": {a: n for a, n in changes}}


class RetireRequest(BaseModel):
    keys: list[str] = PydanticField(
        ...,
        min_length=1,
        max_length=10_000,
        description="contract keys; a composite one joined by ':' (CC: 91330102169913999J:2023)",
    )
    dry_run: bool = False


@router.post("/api/layers/{code}/retire")
def retire_rows(
    code: str,
    body: RetireRequest,
    who: Caller = Depends(caller),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Retire rows of a layer (an admin token, or an editor token for the layer): each is
    moved to the row history and leaves every derived result; rows whose key names it (an
    enterprise's outputs) are retired with it.
    404 for an unknown layer or a key with no current row (nothing changes), 422 for a
    malformed key, 409 while an import of the layer runs."""
    from gis.ingest.errors import ImportBusy
    from gis.ingest.retire import UnknownKeys, retire

    if code.upper() not in LAYERS:
        raise ApiError(
            404, f"unknown layer {code!r}; one of {', '.join(c.lower() for c in IMPORT_ORDER)}"
        )
    writer_of(who, code.upper())
    via = f"request:{uuid.uuid4().hex[:16]}"
    try:
        return retire(
            engine, code, body.keys, who=f"token:{who.name}", via=via, dry_run=body.dry_run
        )
    except UnknownKeys as e:
        raise ApiError(404, str(e), missing=e.missing[:1000]) from None
    except ValueError as e:
        raise ApiError(422, str(e)) from None
    except ImportBusy as e:
        raise ApiError(e.status, str(e)) from None
