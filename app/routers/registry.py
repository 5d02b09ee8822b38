"""Health, the layer list, and imports over HTTP."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, text

from app.deps import Caller, engine_dep, require
from app.errors import ApiError
from gis.ingest import ImportOptions, ImportRejected, InputError, import_file
from gis.layers import IMPORT_ORDER, LAYERS

router = APIRouter(tags=["registry"])

MAX_UPLOAD_BYTES = 512 * 1024 * 1024


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


def _main_file(folder: Path) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    for suffix in (".shp", ".gpkg", ".geojson", ".json", ".xlsx", ".csv"):
        hits = [p for p in files if p.suffix.lower() == suffix]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ApiError(
                400, f"the upload holds several {suffix} files; send one layer per import"
            )
    raise ApiError(
        400,
        "no importable file in the upload (.shp with .dbf/.shx/.prj/.cpg, "
        "or a zip of them, .gpkg, .geojson, .csv, .xlsx)",
    )


@router.post("/api/imports", status_code=201)
async def create_import(
    layer: str = Form(..., description="layer code: xzq, pt, zl, pz, gd, dk, qy, cc, xm, tj, bd"),
    files: list[UploadFile] = File(..., description="the file, a shapefile's parts, or a zip"),
    encoding: str | None = Form(None),
    crs: str | None = Form(None),
    sheet: str | None = Form(None),
    mode: str = Form("strict", pattern="^(strict|lenient)$"),
    dry_run: bool = Form(False),
    who: Caller = Depends(require("admin")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Upload and import one layer (admin token). Strict by default: any bad row refuses the
    file (422 with the report) and changes nothing."""
    if layer.upper() not in LAYERS:
        raise ApiError(
            400, f"unknown layer {layer!r}; one of {', '.join(c.lower() for c in IMPORT_ORDER)}"
        )
    with tempfile.TemporaryDirectory(prefix="landlink-upload-") as tmp:
        folder = Path(tmp)
        total = 0
        for up in files:
            name = Path(up.filename or "upload").name
            data = await up.read()
            total += len(data)
            if total > MAX_UPLOAD_BYTES:
                raise ApiError(413, f"upload over {MAX_UPLOAD_BYTES // 2**20} MB")
            (folder / name).write_bytes(data)
            if name.lower().endswith(".zip"):
                try:
                    with zipfile.ZipFile(folder / name) as z:
                        for m in z.infolist():
                            target = folder / "unzipped" / Path(m.filename).name
                            if m.is_dir():
                                continue
                            target.parent.mkdir(exist_ok=True)
                            target.write_bytes(z.read(m))
                except zipfile.BadZipFile:
                    raise ApiError(400, f"{name} is not a valid zip file") from None
                (folder / name).unlink()
        path = _main_file(folder)
        opts = ImportOptions(
            encoding=encoding, crs=crs, sheet=sheet, strict=mode == "strict", dry_run=dry_run
        )
        try:
            return await run_in_threadpool(
                import_file, engine, layer, path, opts, f"token:{who.name}", path.name
            )
        except InputError as e:
            raise ApiError(400, str(e), file=e.file, field=e.field) from None
        except ImportRejected as e:
            raise ApiError(
                422,
                f"{len(e.report['errors'])} bad row(s) in {e.report['file']}; "
                "nothing was imported (mode=lenient loads the good rows)",
                report=e.report,
            ) from None


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
