"""What land-reserve staff ask of a detection run: filtered, sorted, paged lists and summaries.

Lists read the result tables of one run (default: the latest) and filter by district, platform or
corridor (the one holding the largest share of the item's area), minimum area in 亩, a bounding
box (in CRS84 lon/lat unless another CRS is given), a polygon to intersect (GeoJSON, CRS84), and
a kind-specific status or reason. Geometry of an item: the unsupplied remainder (批而未供), the
supply record's polygon (闲置), the parcel's polygon (低效). Areas in m² / 亩; geometry EPSG:4549,
GeoJSON in CRS84. Public callers get no tax figures (the ``tax_per_mu`` reason's figure is
withheld); analysts get everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import shapely
from sqlalchemy import Engine, text

from gis.core.detection_models import IDLE_STATUSES, REASON_CODES, UNSUPPLIED_STATUSES
from gis.lands.detection import ZONE_LEVELS, get_run
from gis.serving import features_sql as fs
from gis.serving.export import Field

ZONES = [
    Field("district", "XZQDM", "行政区"),
    Field("platform", "PTDM", "工业平台"),
    Field("corridor", "ZLDM", "走廊"),
]
ZONE_SQL = {
    "district": "r.district_code",
    "platform": "r.platform_code",
    "corridor": "r.corridor_code",
}


class QueryError(ValueError):
    """A query a person can fix (bad filter value, unknown sort field)."""


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    join: str  # joins the source layer as ``g`` (for the geometry)
    geom: str
    area_mu: str
    key: str
    columns: dict[str, str]  # API name -> SQL expression
    fields: list[Field]
    status_col: str | None = None
    statuses: tuple[str, ...] = ()
    default_statuses: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "unsupplied": Kind(
        name="unsupplied",
        table="unsupplied_results",
        join="JOIN approvals g ON g.id = r.approval_id",
        geom="r.geom",
        area_mu="r.unsupplied_mu",
        key="r.approval_no",
        columns={
            "approval_id": "r.approval_no",
            "batch_name": "r.batch_name",
            "approved_on": "r.approved_on",
            "approved_m2": "round(r.approved_m2::numeric, 2)::float8",
            "supplied_m2": "round(r.supplied_m2::numeric, 2)::float8",
            "unsupplied_m2": "round(r.unsupplied_m2::numeric, 2)::float8",
            "unsupplied_mu": "round(r.unsupplied_mu::numeric, 4)::float8",
            "unsupplied_share": "round(r.unsupplied_share::numeric, 4)::float8",
            "sliver_m2": "round(r.sliver_m2::numeric, 2)::float8",
            "years_since_approval": "r.years_since_approval",
            "age_band": "r.age_band",
            "status": "r.status",
            "supply_nos": "r.supply_nos",
        },
        fields=[
            Field("approval_id", "PZWH", "批准文号"),
            Field("batch_name", "PCMC", "批次名称"),
            Field("approved_on", "PZRQ", "批准日期", "date"),
            Field("approved_m2", "PZMJ", "批准面积(平方米)", "float"),
            Field("supplied_m2", "GDMJ", "已供面积(平方米)", "float"),
            Field("unsupplied_m2", "WGMJ", "未供面积(平方米)", "float"),
            Field("unsupplied_mu", "WGMJ_MU", "未供面积(亩)", "float"),
            Field("unsupplied_share", "WG_BL", "未供比例", "float"),
            Field("sliver_m2", "SLIVER_M2", "剔除碎片面积(平方米)", "float"),
            Field("years_since_approval", "PZ_NS", "批准年数", "float"),
            Field("age_band", "NS_FD", "年限分段"),
            Field("status", "ZT", "状态", vocab="unsupplied_status"),
            Field("supply_nos", "GD_DZJGH", "相关供地电子监管号", "list"),
            *ZONES,
        ],
        status_col="r.status",
        statuses=UNSUPPLIED_STATUSES,
        default_statuses=("unsupplied", "partial"),
    ),
    "idle": Kind(
        name="idle",
        table="idle_results",
        join="JOIN supplies g ON g.id = r.supply_id",
        geom="g.geom",
        area_mu="r.area_mu",
        key="r.supply_no",
        columns={
            "supply_id": "r.supply_no",
            "status": "r.status",
            "days_overdue": "r.days_overdue",
            "area_m2": "round(r.area_m2::numeric, 2)::float8",
            "area_mu": "round(r.area_mu::numeric, 4)::float8",
            "supplied_on": "r.supplied_on",
            "agreed_start": "r.agreed_start",
            "actual_start": "r.actual_start",
            "actual_completion": "r.actual_completion",
            "stopped_on": "r.stopped_on",
            "consequence": "r.consequence",
            "rule": "r.rule",
            "records_disagree": "r.records_disagree",
            "footprint_share": "round(r.footprint_share::numeric, 4)::float8",
            "parcel_nos": "r.parcel_nos",
            "figures": "r.figures",
            "grantee": "g.grantee_name",
        },
        fields=[
            Field("supply_id", "DZJGH", "电子监管号"),
            Field("status", "ZT", "状态", vocab="idle_status"),
            Field("days_overdue", "YQTS", "逾期天数", "int"),
            Field("area_m2", "MJ", "面积(平方米)", "float"),
            Field("area_mu", "MJ_MU", "面积(亩)", "float"),
            Field("supplied_on", "GDRQ", "供地日期", "date"),
            Field("agreed_start", "HTKGSJ", "约定开工时间", "date"),
            Field("actual_start", "SJKGSJ", "实际开工时间", "date"),
            Field("actual_completion", "SJJGSJ", "实际竣工时间", "date"),
            Field("stopped_on", "TGRQ", "停工日期", "date"),
            Field("consequence", "CZ", "处置后果"),
            Field("rule", "YJ", "认定依据"),
            Field("records_disagree", "JL_BY", "记录与现状不一致", "bool"),
            Field("footprint_share", "JD_BL", "建筑基底占比", "float"),
            Field("parcel_nos", "DKBH", "地块编号", "list"),
            Field("figures", "FIGURES", "认定数据", "json"),
            Field("grantee", "SRR", "受让人"),
            *ZONES,
        ],
        status_col="r.status",
        statuses=IDLE_STATUSES,
        default_statuses=("overdue", "idle", "idle_reclaimable", "partial_idle"),
    ),
    "low_efficiency": Kind(
        name="low_efficiency",
        table="low_efficiency_results",
        join="JOIN parcels g ON g.id = r.parcel_id",
        geom="g.geom",
        area_mu="r.area_mu",
        key="r.parcel_no",
        columns={
            "parcel_id": "r.parcel_no",
            "area_m2": "round(r.area_m2::numeric, 2)::float8",
            "area_mu": "round(r.area_mu::numeric, 4)::float8",
            "actual_use": "r.actual_use",
            "supply_no": "r.supply_no",
            "reason_codes": "r.reason_codes",
            "reasons": "r.reasons",
            "holder": "g.holder_name",
        },
        fields=[
            Field("parcel_id", "DKBH", "地块编号"),
            Field("area_m2", "MJ", "面积(平方米)", "float"),
            Field("area_mu", "MJ_MU", "面积(亩)", "float"),
            Field("actual_use", "SJYT", "实际用途"),
            Field("supply_no", "DZJGH", "电子监管号"),
            Field("reason_codes", "YY", "低效原因", "list", "low_efficiency_reason"),
            Field("reasons", "REASONS", "原因明细(数值与标准)", "json"),
            Field("holder", "QLR", "权利人"),
            *ZONES,
        ],
    ),
}
SORTABLE = {"text", "float", "int", "date"}


@dataclass
class LandQuery:
    """Filters of a list request. ``bbox`` is (minx, miny, maxx, maxy) in ``bbox_srid``;
    ``intersects`` a GeoJSON polygon in CRS84; ``status`` statuses (or reason codes)."""

    run: int | None = None
    district: str | None = None
    platform: str | None = None
    corridor: str | None = None
    min_mu: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    intersects: str | None = None
    status: list[str] | None = None
    age_band: list[str] | None = None
    records_disagree: bool | None = None
    sort: str | None = None
    limit: int | None = 100
    offset: int = 0
    extra: dict = field(default_factory=dict)


def _where(kind: Kind, q: LandQuery, params: dict) -> str:
    conds = ["r.run_id = :run"]
    for level in ("district", "platform", "corridor"):
        v = getattr(q, level)
        if v:
            conds.append(f"{ZONE_SQL[level]} = :{level}")
            params[level] = v
    if q.min_mu is not None:
        conds.append(f"{kind.area_mu} >= :min_mu")
        params["min_mu"] = q.min_mu
    if q.bbox is not None:  # as OGC API Features filters (checked, clipped, densified)
        try:
            crs = fs.crs_of(q.bbox_srid)
            cond, p = fs.bbox_condition(kind.geom, crs, fs.check_bbox(q.bbox, crs))
        except fs.FeaturesError as e:
            raise QueryError(e.message) from None
        conds.append(cond)
        params.update(p)
    if q.intersects:
        try:
            g = shapely.from_geojson(q.intersects)
        except Exception:
            raise QueryError("intersects must be a GeoJSON Polygon or MultiPolygon") from None
        if g.geom_type not in ("Polygon", "MultiPolygon") or not g.is_valid:
            raise QueryError(
                f"intersects must be a valid GeoJSON Polygon or MultiPolygon in lon/lat "
                f"(CRS84); got {g.geom_type}{'' if g.is_valid else ' (invalid)'}"
            )
        params["ix"] = g.wkt
        ix = "ST_Transform(ST_GeomFromText(:ix, 4326), 4549)"
        conds.append(f"{kind.geom} && {ix} AND ST_Intersects({kind.geom}, {ix})")
    if kind.status_col:
        statuses = q.status or list(kind.default_statuses)
        if statuses != ["all"]:
            bad = [s for s in statuses if s not in kind.statuses]
            if bad:
                raise QueryError(
                    f"unknown status {', '.join(bad)}; one of {', '.join(kind.statuses)} or all"
                )
            conds.append(f"{kind.status_col} = ANY(:status)")
            params["status"] = statuses
    elif q.status:
        bad = [s for s in q.status if s not in REASON_CODES]
        if bad:
            raise QueryError(f"unknown reason {', '.join(bad)}; one of {', '.join(REASON_CODES)}")
        conds.append("r.reason_codes && CAST(:status AS text[])")
        params["status"] = q.status
    if q.age_band and kind.name == "unsupplied":
        conds.append("r.age_band = ANY(:bands)")
        params["bands"] = q.age_band
    if q.records_disagree is not None and kind.name == "idle":
        conds.append("r.records_disagree = :rd")
        params["rd"] = q.records_disagree
    return " AND ".join(conds)


def _order(kind: Kind, q: LandQuery) -> str:
    if not q.sort:
        return f"{kind.area_mu} DESC, {kind.key}"
    parts = []
    fields = {f.name: f for f in kind.fields}
    for s in q.sort.split(","):
        desc = s.startswith("-")
        name = s.lstrip("-+").strip()
        f = fields.get(name)
        if f is None or f.kind not in SORTABLE:
            ok = [f.name for f in kind.fields if f.kind in SORTABLE]
            raise QueryError(f"cannot sort by {name!r}; sort by one of {', '.join(ok)}")
        expr = ZONE_SQL.get(name) or kind.columns[name]
        parts.append(f"{expr} {'DESC' if desc else 'ASC'} NULLS LAST")
    return ", ".join(parts + [kind.key])


def redact(kind: str, row: dict, analyst: bool) -> dict:
    """Withhold tax figures from public callers (the tax_per_mu reason's figure and basis)."""
    if analyst or kind != "low_efficiency" or not row.get("reasons"):
        return row
    reasons = []
    for r in row["reasons"]:
        if r.get("code") == "tax_per_mu":
            r = {**r, "figure": None, "basis": "亩均税收: analyst token needed", "restricted": True}
        reasons.append(r)
    return {**row, "reasons": reasons}


def list_items(
    engine: Engine, kind_name: str, q: LandQuery, analyst: bool, geometry: str | None = None
) -> dict:
    """Rows of one kind for one run: {run, items, geometries, number_matched}.

    ``geometry``: None, "geojson" (GeoJSON text in CRS84) or "wkb" (EPSG:4549).
    """
    kind = KINDS[kind_name]
    run = get_run(engine, q.run)
    params: dict[str, Any] = {"run": run["id"]}
    where = _where(kind, q, params)
    cols = [f"{expr} AS {name}" for name, expr in kind.columns.items()]
    cols += [f"{ZONE_SQL[z]} AS {z}" for z in ZONE_SQL]
    if geometry == "geojson":
        cols.append(f"ST_AsGeoJSON(ST_Transform({kind.geom}, 4326), 7) AS _geom")
    elif geometry == "wkb":
        cols.append(f"ST_AsBinary({kind.geom}) AS _geom")
    page = ""
    if q.limit is not None:
        page = " LIMIT :limit OFFSET :offset"
        params.update(limit=q.limit, offset=q.offset)
    sql = (
        f"SELECT {', '.join(cols)} FROM {kind.table} r {kind.join} WHERE {where} "
        f"ORDER BY {_order(kind, q)}{page}"
    )
    with engine.connect() as conn:
        result = conn.execute(text(sql), params).mappings().all()
        total = conn.execute(
            text(f"SELECT count(*) FROM {kind.table} r {kind.join} WHERE {where}"), params
        ).scalar_one()
    items, geoms = [], []
    for m in result:
        d = dict(m)
        g = d.pop("_geom", None)
        if isinstance(g, memoryview):
            g = bytes(g)
        items.append(redact(kind_name, d, analyst))
        geoms.append(g)
    return {"run": run, "items": items, "geometries": geoms, "number_matched": total}


SUMMARY_FIELDS = [
    Field("level", "LEVEL", "层级"),
    Field("code", "CODE", "代码"),
    Field("name", "NAME", "名称"),
    Field("unsupplied_count", "PWG_N", "批而未供宗数", "int"),
    Field("unsupplied_mu", "PWG_MU", "批而未供面积(亩)", "float"),
    Field("idle_count", "GWY_N", "供而未用/闲置宗数", "int"),
    Field("idle_mu", "GWY_MU", "供而未用/闲置面积(亩)", "float"),
    Field("low_efficiency_count", "DX_N", "低效用地宗数", "int"),
    Field("low_efficiency_mu", "DX_MU", "低效用地面积(亩)", "float"),
]


def summary(
    engine: Engine, level: str, run_id: int | None = None, geometry: str | None = None
) -> dict:
    """Per district, platform or corridor: count and area (亩) of each kind, for one run.

    Counts: items whose largest area share lies in the zone; areas: the share of each item's
    area lying in it (an item split by a boundary adds to both). Every zone is listed.
    """
    if level not in ZONE_LEVELS:
        raise QueryError(f"level must be one of {', '.join(ZONE_LEVELS)}")
    run = get_run(engine, run_id)
    geom_col = ""
    if geometry == "geojson":
        geom_col = ", ST_AsGeoJSON(ST_Transform(z.geom, 4326), 7) AS _geom"
    elif geometry == "wkb":
        geom_col = ", ST_AsBinary(z.geom) AS _geom"
    aggs = ", ".join(
        f"coalesce(max(s.count) FILTER (WHERE s.kind = '{k}'), 0) AS {k}_count, "
        f"round(coalesce(max(s.area_mu) FILTER (WHERE s.kind = '{k}'), 0)::numeric, 4)::float8"
        f" AS {k}_mu"
        for k in ("unsupplied", "idle", "low_efficiency")
    )
    sql = f"""
        SELECT :level AS level, z.code, z.name, {aggs} {geom_col}
        FROM {ZONE_LEVELS[level]} z
        LEFT JOIN detection_summaries s
               ON s.run_id = :run AND s.level = :level AND s.code = z.code
        GROUP BY z.code, z.name, z.geom
        ORDER BY z.code
    """
    with engine.connect() as conn:
        result = conn.execute(text(sql), {"run": run["id"], "level": level}).mappings().all()
    items, geoms = [], []
    for m in result:
        d = dict(m)
        g = d.pop("_geom", None)
        geoms.append(bytes(g) if isinstance(g, memoryview) else g)
        items.append(d)
    return {"run": run, "items": items, "geometries": geoms, "number_matched": len(items)}


def parse_geojson_param(value: str) -> str:
    """Validate the text of a GeoJSON parameter early (raises QueryError)."""
    try:
        json.loads(value)
    except ValueError:
        raise QueryError("intersects is not valid JSON (a GeoJSON Polygon)") from None
    return value
