"""The three kinds of land over HTTP: detection runs, their diff, lists, summaries and exports."""

from __future__ import annotations

import json
import re
from datetime import date

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from app.deps import Caller, caller, engine_dep, require
from app.errors import ApiError
from app.links import request_link
from app.params import AsOf, DbInt, Mu, Offset
from gis.core import vocabulary
from gis.lands import detection
from gis.lands.land_summary import KINDS, SUMMARY_FIELDS, LandQuery, QueryError, list_items, summary
from gis.serving import export
from gis.serving import features_sql as fs
from gis.serving.export import to_geojson_features

router = APIRouter(tags=["three kinds of land (三块地)"])

FILE_FORMATS = ("csv", "xlsx", "gpkg", "shp")
FORMAT_PATTERN = "^(json|geojson|csv|xlsx|gpkg|shp)$"
MAX_PAGE = 10_000
_CRS84 = {"crs84", "ogc:crs84", "http://www.opengis.net/def/crs/ogc/1.3/crs84"}
_ALLOWED_SRID = {4326, 4490, 4549, 3857}


def parse_crs(value: str | None) -> tuple[int, bool]:
    """(SRID, lat/lon axis order) for a bbox-crs: CRS84 (default) or an EPSG code as URI,
    ``EPSG:n`` or ``n``. Geographic EPSG codes (4326, 4490) take lat,lon as OGC API says."""
    if not value or value.strip().lower() in _CRS84:
        return 4326, False
    m = re.fullmatch(
        r"(?:https?://www\.opengis\.net/def/crs/EPSG/0/|EPSG:)?(\d+)", value.strip(), re.I
    )
    if not m or int(m.group(1)) not in _ALLOWED_SRID:
        raise ApiError(
            400,
            f"bbox-crs {value!r} not supported; use CRS84 (lon/lat, the default), "
            "EPSG:4326 or EPSG:4490 (lat/lon), EPSG:4549 or EPSG:3857 (metres)",
        )
    srid = int(m.group(1))
    return srid, srid in (4326, 4490)


def parse_bbox(value: str | None, crs: str | None) -> tuple[tuple, int] | None:
    """bbox in the axis order of ``crs`` (see :func:`parse_crs`) -> x=east numbers and their
    SRID, checked as the OGC items check theirs (gis.serving.features_sql); 400 naming the
    problem."""
    if not value:
        return None
    srid, latlon = parse_crs(crs)
    try:
        return fs.parse_bbox(value, fs.crs_of(srid, flip=latlon)), srid
    except fs.FeaturesError as e:
        raise ApiError(e.status, e.message) from None


def _csv_list(v: str | None) -> list[str] | None:
    return [s.strip() for s in v.split(",") if s.strip()] if v else None


def _run_call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except detection.RunNotFound as e:
        raise ApiError(404, str(e)) from None
    except QueryError as e:
        raise ApiError(400, str(e)) from None


def _json_default(v):
    if isinstance(v, date):
        return v.isoformat()
    raise TypeError(type(v))


def _respond(
    request: Request,
    kind: str,
    fmt: str,
    result: dict,
    limit: int | None,
    offset: int,
    fields,
) -> Response:
    items, run = result["items"], result["run"]
    run_info = {"id": run["id"], "as_of": run["as_of"], "config_hash": run["config_hash"]}
    if fmt in FILE_FORMATS:
        title = f"{vocabulary.label('land_kind', kind)}清单(检测批次 {run['id']}, {run['as_of']})"
        data, media, name = export.write(fmt, items, result["geometries"], fields, kind, title)
        name = f"{kind}_run{run['id']}_{run['as_of']}.{name.rsplit('.', 1)[1]}"
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    links = [{"rel": "self", "href": request_link(request)}]
    if limit is not None and offset + len(items) < result["number_matched"]:
        nxt = request_link(request, offset=offset + limit, limit=limit)
        links.append({"rel": "next", "href": nxt, "type": export.MEDIA_TYPES[fmt]})
    body: dict = {
        "run": run_info,
        "numberMatched": result["number_matched"],
        "numberReturned": len(items),
        "links": links,
        "next": links[-1]["href"] if links[-1]["rel"] == "next" else None,
    }
    if fmt == "geojson":
        body = {
            "type": "FeatureCollection",
            "features": to_geojson_features(items, result["geometries"]),
            **body,
        }
        media = "application/geo+json"
    else:
        body["items"] = items
        media = "application/json"
    return JSONResponse(
        json.loads(json.dumps(body, default=_json_default, ensure_ascii=False)), media_type=media
    )


def _list_endpoint(kind: str, status_param: str):
    async def endpoint(
        request: Request,
        district: str | None = Query(None, description="XZQDM (largest area share)"),
        platform: str | None = Query(None, description="PTDM (largest area share)"),
        corridor: str | None = Query(None, description="ZLDM: CXKC or CDZZ"),
        min_mu: Mu | None = Query(None, description="minimum area in 亩"),
        bbox: str | None = Query(None, description="minx,miny,maxx,maxy (default lon/lat)"),
        bbox_crs: str | None = Query(None, alias="bbox-crs"),
        intersects: str | None = Query(None, description="a GeoJSON Polygon in CRS84"),
        status: str | None = Query(None, alias=status_param),
        age_band: str | None = Query(None, description="unsupplied only: <1,1-2,2-3,3-5,>=5"),
        records_disagree: bool | None = Query(None, description="idle only"),
        run: DbInt | None = Query(None, description="detection run id (default: the latest)"),
        sort: str | None = Query(None, description="field, -field for descending; comma list"),
        limit: int | None = Query(None, ge=1, le=MAX_PAGE),
        offset: Offset = 0,
        format: str = Query("json", pattern=FORMAT_PATTERN),
        who: Caller = Depends(caller),
        engine: Engine = Depends(engine_dep),
    ) -> Response:
        box = parse_bbox(bbox, bbox_crs)
        if limit is None and format not in FILE_FORMATS:
            limit = 100  # files hold every matching row unless a limit is asked for
        q = LandQuery(
            run=run,
            district=district,
            platform=platform,
            corridor=corridor,
            min_mu=min_mu,
            bbox=box[0] if box else None,
            bbox_srid=box[1] if box else 4326,
            intersects=intersects,
            status=_csv_list(status),
            age_band=_csv_list(age_band),
            records_disagree=records_disagree,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        geometry = {"geojson": "geojson", "json": None}.get(format, "wkb")
        result = await run_in_threadpool(
            _run_call, list_items, engine, kind, q, who.analyst, geometry
        )
        return _respond(request, kind, format, result, limit, offset, KINDS[kind].fields)

    return endpoint


router.add_api_route(
    "/api/land/unsupplied",
    _list_endpoint("unsupplied", "status"),
    methods=["GET"],
    summary="批而未供: per approval, the unsupplied remainder (status: unsupplied, partial, "
    "supplied or all; default unsupplied,partial)",
)
router.add_api_route(
    "/api/land/idle",
    _list_endpoint("idle", "status"),
    methods=["GET"],
    summary="供而未用/闲置: per supply record, its status as of the run's date (status: not_due, "
    "started, overdue, idle, idle_reclaimable, partial_idle or all; default the last four)",
)
router.add_api_route(
    "/api/land/low-efficiency",
    _list_endpoint("low_efficiency", "reason"),
    methods=["GET"],
    summary="低效利用: per parcel, every reason that applies (reason: plot_ratio, tax_per_mu, "
    "class_d, diverted, idle_use; any of)",
)


@router.get("/api/land/summary")
async def land_summary(
    request: Request,
    level: str = Query("district", pattern="^(district|platform|corridor)$"),
    run: DbInt | None = Query(None),
    format: str = Query("json", pattern=FORMAT_PATTERN),
    engine: Engine = Depends(engine_dep),
) -> Response:
    """Per district, platform or corridor: count and area (亩) of each kind in one run."""
    geometry = {"geojson": "geojson", "json": None}.get(format, "wkb")
    result = await run_in_threadpool(_run_call, summary, engine, level, run, geometry)
    return _respond(request, f"summary_{level}", format, result, None, 0, SUMMARY_FIELDS)


@router.get("/api/detections")
def list_detections(engine: Engine = Depends(engine_dep)) -> dict:
    """The latest detection runs, newest first."""
    return {"runs": detection.list_runs(engine)}


@router.post("/api/detections", status_code=201)
async def create_detection(
    as_of: AsOf | None = Query(None, description="YYYY-MM-DD (default: today)"),
    who: Caller = Depends(require("analyst")),
    engine: Engine = Depends(engine_dep),
) -> dict:
    """Run all three detections as one recorded run (analyst token)."""
    return await run_in_threadpool(detection.run_detection, engine, as_of, f"api:{who.name}")


@router.get("/api/detections/{run_id}")
def get_detection(run_id: DbInt, engine: Engine = Depends(engine_dep)) -> dict:
    return _run_call(detection.get_run, engine, run_id)


@router.get("/api/detections/{run_id}/diff/{other}")
def diff_detections(run_id: DbInt, other: DbInt, engine: Engine = Depends(engine_dep)) -> dict:
    """What became and what stopped being unsupplied / idle / low-efficiency going from run
    ``run_id`` to run ``other``, and what changed status (or reasons) in between."""
    return _run_call(detection.diff, engine, run_id, other)
