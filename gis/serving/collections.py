"""The collection registry: what OGC API Features and the vector tiles serve, in one place.

A ``Collection`` says where its rows come from (a FROM clause over our tables, the main row
aliased ``t``), its feature id (the contract key: XZQDM, PTDM, ZLDM, PZWH, DZJGH, DKBH, TYSHXYDM),
its geometry (EPSG:4549, metres), its properties (API field names, each an SQL expression we
wrote, typed, public or restricted) and its temporal field. Nothing a client sends is ever put
into these expressions: clients name properties, and the registry maps names to SQL.

Derived collections read the analyses' tables when they exist (three-lands detection results,
evaluation classes, platform kinds). ``registry(conn)`` looks at the
database's tables; a collection whose table is missing is left out, and a derived property whose
table is missing is NULL, so the service works before those issues land.

Restricted properties (tax, energy, emission figures) are only listed and served for analysts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from gis.core.layers import LAYERS, M2_PER_MU, Layer
from gis.lands.detection import CURRENT_RUN

PropType = str  # "string" | "integer" | "number" | "date" | "boolean" | "array"
_JSON_TYPES = {
    "text": "string",
    "code": "string",
    "uscc": "string",
    "int": "integer",
    "float": "number",
    "date": "date",
    "bool": "boolean",
    "list": "array",
}
MU = 1 / M2_PER_MU  # 亩 per m²
IDLE_FLAGGED = "('overdue', 'idle', 'idle_reclaimable', 'partial_idle')"


@dataclass(frozen=True)
class Prop:
    name: str  # API field name (as in /api and the exports)
    sql: str  # SQL expression over the collection's FROM clause (ours, never the client's)
    type: PropType = "string"
    title: str = ""  # Chinese label and contract code
    restricted: bool = False  # tax / energy / emission figures: analysts only

    @property
    def sortable(self) -> bool:
        return self.type != "array"


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    source: str  # FROM clause; the main row is ``t``
    key: str  # SQL of the feature id (text), the contract key
    key_name: str  # contract code of the key, e.g. DKBH
    geometry_type: str  # GeoJSON type of every feature: MultiPolygon | Point
    props: tuple[Prop, ...]
    geom: str = "t.geom"  # SQL of the geometry, EPSG:4549
    where: str = "true"  # rows that belong to the collection
    temporal: str | None = None  # name of the date property datetime= filters on
    tables: tuple[str, ...] = field(default=())  # tables it reads (must exist)
    layer: str | None = None  # the contract layer it is the source of (editable), else derived

    @property
    def has_restricted(self) -> bool:
        """Whether any property is a restricted figure (tax, energy, emissions)."""
        return any(p.restricted for p in self.props)

    def visible(self, analyst: bool) -> tuple[Prop, ...]:
        return tuple(p for p in self.props if analyst or not p.restricted)

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)


def _layer_props(layer: Layer, alias: str = "t") -> list[Prop]:
    """The contract fields as properties; lists as ``;``-joined text (as the exports do), so
    they filter with LIKE and fit vector tiles."""
    return [
        Prop(
            f.column,
            f"array_to_string({alias}.{f.column}, ';')"
            if f.type == "list"
            else f"{alias}.{f.column}",
            "string" if f.type == "list" else _JSON_TYPES[f.type],
            f"{f.label} ({f.code})",
            f.restricted,
        )
        for f in layer.fields
    ]


def _area_props(alias: str = "t") -> list[Prop]:
    return [
        Prop("area_m2", f"{alias}.area_m2", "number", "面积 (m²)"),
        Prop(
            "area_mu", f"round(({alias}.area_m2 * {MU})::numeric, 2)::float8", "number", "面积 (亩)"
        ),
    ]


# ---- introspection: which of the optional tables exist --------------------------------------

_SCHEMA_CACHE: dict[str, tuple[float, dict[str, set[str]]]] = {}
SCHEMA_TTL = 30.0  # seconds


def tables(conn: Connection) -> dict[str, set[str]]:
    """Tables of the current schema and their columns (cached for ``SCHEMA_TTL`` seconds)."""
    db = conn.engine.url.render_as_string(hide_password=True)
    hit = _SCHEMA_CACHE.get(db)
    if hit and time.monotonic() - hit[0] < SCHEMA_TTL:
        return hit[1]
    out: dict[str, set[str]] = {}
    # from the catalog: ``information_schema.columns`` is a view over several catalogs (6 ms a
    # read, once in every command-line write's refresh)
    for t, c in conn.execute(
        text(
            "SELECT c.relname, a.attname FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relnamespace = to_regnamespace(current_schema()) "
            "AND c.relkind IN ('r', 'v', 'm', 'f', 'p')"
        )
    ):
        out.setdefault(t, set()).add(c)
    _SCHEMA_CACHE[db] = (time.monotonic(), out)
    return out


def forget_schema() -> None:
    _SCHEMA_CACHE.clear()


_CLASS_COLS = ("eval_class", "class", "grade", "klass", "rating")


def _class_col(cols: set[str]) -> str | None:
    return next((c for c in _CLASS_COLS if c in cols), None)


def _enterprise_class_sql(tabs: dict[str, set[str]], uscc: str) -> str:
    """SQL of an enterprise's latest A/B/C/D class from the evaluation table, else NULL."""
    for t in ("enterprise_evaluations", "evaluation_ranking", "evaluations", "evaluation_results"):
        cols = tabs.get(t, set())
        klass = _class_col(cols)
        if klass and {"uscc", "year"} <= cols:
            # the class of the latest evaluated year (an InitPlan, computed once per query)
            run = " ORDER BY ev.run_id DESC" if "run_id" in cols else ""
            return (
                f'(SELECT ev."{klass}"::text FROM {t} ev WHERE ev.uscc = {uscc} '
                f"AND ev.year = (SELECT max(year) FROM {t}){run} LIMIT 1)"
            )
    return "NULL::text"


def _parcel_class_sql(tabs: dict[str, set[str]]) -> str:
    """A parcel's class: per-parcel class if present, else the best class of the
    enterprises occupying it (by DKBH), else NULL."""
    for t in ("parcel_evaluations", "parcel_figures", "parcel_metrics"):
        cols = tabs.get(t, set())
        klass = _class_col(cols)
        if klass and "parcel_no" in cols:
            order = "ORDER BY pe.year DESC " if "year" in cols else ""
            return (
                f"(SELECT pe.{klass}::text FROM {t} pe WHERE pe.parcel_no = t.parcel_no "
                f"{order}LIMIT 1)"
            )
    ent = _enterprise_class_sql(tabs, "e.uscc")
    if ent == "NULL::text":
        return "NULL::text"
    if "tile_parcel_classes" in tabs and {"kind", "from_key", "to_key"} <= tabs.get("links", set()):
        # the same, precomputed per link/evaluation run (gis/tiles.refresh_parcel_classes,
        # kept current by the servers' tile-cache poll)
        return "(SELECT pc.eval_class FROM tile_parcel_classes pc WHERE pc.parcel_no = t.parcel_no)"
    if {"kind", "from_key", "to_key"} <= tabs.get("links", set()):
        # enterprise -> parcel links (indexed on kind, to_key)
        ent = _enterprise_class_sql(tabs, "l.from_key")
        return (
            f"(SELECT min({ent}) FROM links l WHERE l.kind = 'enterprise_parcel' "
            "AND l.to_key = t.parcel_no)"
        )
    return f"(SELECT min({ent}) FROM enterprises e WHERE e.parcel_nos @> ARRAY[t.parcel_no])"


def _platform_kind_sql(tabs: dict[str, set[str]]) -> str:
    """The platform kind (四类平台) if it exists, else NULL."""
    if "kind" in tabs.get("platforms", set()):
        return "t.kind::text"
    for t in ("platform_kinds", "platform_classifications", "platform_kind_results"):
        cols = tabs.get(t, set())
        if "kind" in cols and ("platform_code" in cols or "code" in cols):
            c = "platform_code" if "platform_code" in cols else "code"
            order = "ORDER BY pk.run_id DESC " if "run_id" in cols else ""
            if "platform_kind_runs" in tabs:
                # the current kinds (kept by the graph) before any recorded snapshot
                order = (
                    "ORDER BY pk.run_id = (SELECT min(id) FROM platform_kind_runs "
                    "WHERE trigger = 'current') DESC NULLS LAST, pk.run_id DESC "
                )
            return f"(SELECT pk.kind::text FROM {t} pk WHERE pk.{c} = t.code {order}LIMIT 1)"
    return "NULL::text"


def _parcel_status_sql(tabs: dict[str, set[str]]) -> str:
    """三块地 status of a parcel in the latest detection run: idle > low_efficiency > NULL."""
    if "detection_runs" not in tabs:
        return "NULL::text"
    parts = []
    if "idle_results" in tabs:
        parts.append(
            "WHEN EXISTS (SELECT 1 FROM supplies s JOIN idle_results r ON r.supply_id = s.id "
            f"AND r.run_id = {CURRENT_RUN} WHERE s.supply_no = t.supply_no "
            f"AND r.status IN {IDLE_FLAGGED}) THEN 'idle'"
        )
    if "low_efficiency_results" in tabs:
        parts.append(
            "WHEN EXISTS (SELECT 1 FROM low_efficiency_results r "
            f"WHERE r.run_id = {CURRENT_RUN} AND r.parcel_id = t.id) THEN 'low_efficiency'"
        )
    return f"(CASE {' '.join(parts)} END)" if parts else "NULL::text"


def _latest_output(col: str) -> str:
    return f"(SELECT o.{col} FROM outputs o WHERE o.uscc = t.uscc ORDER BY o.year DESC LIMIT 1)"


def _build(tabs: dict[str, set[str]]) -> dict[str, Collection]:
    L = LAYERS
    out: list[Collection] = [
        Collection(
            "districts",
            "行政区 districts",
            "Hangzhou's districts (XZQ), key XZQDM.",
            "districts t",
            "t.code",
            "XZQDM",
            "MultiPolygon",
            (*_layer_props(L["XZQ"]), *_area_props()),
            tables=("districts",),
            layer="XZQ",
        ),
        Collection(
            "platforms",
            "工业平台 industrial platforms",
            "Industrial platforms (PT), key PTDM; kind = 四类平台, null until known.",
            "platforms t",
            "t.code",
            "PTDM",
            "MultiPolygon",
            (
                *_layer_props(L["PT"]),
                Prop("kind", _platform_kind_sql(tabs), "string", "平台类型 (四类平台)"),
                *_area_props(),
            ),
            tables=("platforms",),
            layer="PT",
        ),
        Collection(
            "corridors",
            "走廊 corridors",
            "The two corridors (ZL), key ZLDM.",
            "corridors t",
            "t.code",
            "ZLDM",
            "MultiPolygon",
            (*_layer_props(L["ZL"]), *_area_props()),
            tables=("corridors",),
            layer="ZL",
        ),
        Collection(
            "approvals",
            "批准用地 land approvals",
            "Approved land (PZ), key PZWH.",
            "approvals t",
            "t.doc_no",
            "PZWH",
            "MultiPolygon",
            (*_layer_props(L["PZ"]), *_area_props()),
            temporal="approved_on",
            tables=("approvals",),
            layer="PZ",
        ),
        Collection(
            "supplies",
            "供地 land supply records",
            "Land supply records (GD), key DZJGH.",
            "supplies t",
            "t.supply_no",
            "DZJGH",
            "MultiPolygon",
            (*_layer_props(L["GD"]), *_area_props()),
            temporal="supplied_on",
            tables=("supplies",),
            layer="GD",
        ),
        Collection(
            "parcels",
            "现状工业用地 industrial parcels",
            "Surveyed industrial parcels (DK), key DKBH, with the evaluation class of their "
            "enterprises and their 三块地 status in the latest detection run.",
            "parcels t",
            "t.parcel_no",
            "DKBH",
            "MultiPolygon",
            (
                *_layer_props(L["DK"]),
                *_area_props(),
                Prop(
                    "plot_ratio",
                    "CASE WHEN t.area_m2 > 0 THEN round((t.floor_area_m2 / t.area_m2)::numeric,"
                    " 2)::float8 END",
                    "number",
                    "容积率 (JZMJ / 面积)",
                ),
                Prop("eval_class", _parcel_class_sql(tabs), "string", "亩均评价 A/B/C/D"),
                Prop("land_status", _parcel_status_sql(tabs), "string", "三块地 (latest run)"),
            ),
            tables=("parcels",),
            layer="DK",
        ),
        Collection(
            "enterprises",
            "企业 enterprises (points)",
            "Enterprise registry (QY), key TYSHXYDM; points, enterprises without one are left "
            "out. Latest year's tax, energy and emissions for analysts only.",
            "enterprises t",
            "t.uscc",
            "TYSHXYDM",
            "Point",
            (
                *[p for p in _layer_props(L["QY"])],
                Prop(
                    "eval_class",
                    _enterprise_class_sql(tabs, "t.uscc"),
                    "string",
                    "亩均评价 A/B/C/D",
                ),
                Prop(
                    "output_year",
                    "(SELECT max(o.year) FROM outputs o WHERE o.uscc = t.uscc)",
                    "integer",
                    "产出年度 (ND)",
                ),
                Prop(
                    "tax_paid", _latest_output("tax_paid"), "number", "实缴税金 万元 (SJSJ)", True
                ),
                Prop(
                    "energy_tce",
                    _latest_output("energy_tce"),
                    "number",
                    "综合能耗 tce (ZHNH)",
                    True,
                ),
                Prop(
                    "emissions_t",
                    _latest_output("emissions_t"),
                    "number",
                    "排放当量 t (PFDL)",
                    True,
                ),
            ),
            where="t.geom IS NOT NULL",
            tables=("enterprises", "outputs"),
            layer="QY",
        ),
    ]
    if {"detection_runs", "unsupplied_results"} <= tabs.keys():
        out.append(
            Collection(
                "unsupplied",
                "批而未供 approved, not supplied",
                "Remainders of approvals not supplied, latest detection run, key PZWH.",
                "unsupplied_results t",
                "t.approval_no",
                "PZWH",
                "MultiPolygon",
                (
                    Prop("doc_no", "t.approval_no", "string", "批准文号 (PZWH)"),
                    Prop("batch_name", "t.batch_name", "string", "批次名称 (PCMC)"),
                    Prop("approved_on", "t.approved_on", "date", "批准日期 (PZRQ)"),
                    Prop("status", "t.status", "string", "状态"),
                    Prop("approved_m2", "t.approved_m2", "number", "批准面积 m²"),
                    Prop("unsupplied_m2", "t.unsupplied_m2", "number", "未供面积 m²"),
                    Prop("unsupplied_mu", "t.unsupplied_mu", "number", "未供面积 亩"),
                    Prop("unsupplied_share", "t.unsupplied_share", "number", "未供比例"),
                    Prop("age_band", "t.age_band", "string", "批后年限"),
                    Prop("district_code", "t.district_code", "string", "行政区 (XZQDM)"),
                    Prop("platform_code", "t.platform_code", "string", "平台 (PTDM)"),
                    Prop("corridor_code", "t.corridor_code", "string", "走廊 (ZLDM)"),
                    Prop("run_id", "t.run_id", "integer", "检测批次"),
                ),
                where=f"t.run_id = {CURRENT_RUN} AND t.status <> 'supplied' AND t.geom IS NOT NULL",
                temporal="approved_on",
                tables=("unsupplied_results",),
            )
        )
    if {"detection_runs", "idle_results"} <= tabs.keys():
        out.append(
            Collection(
                "idle",
                "供而未用 / 闲置 idle supply records",
                "Supply records overdue, idle or partly idle in the latest detection run, "
                "key DZJGH; geometry of the supply record.",
                "idle_results t JOIN supplies s ON s.id = t.supply_id",
                "t.supply_no",
                "DZJGH",
                "MultiPolygon",
                (
                    Prop("supply_no", "t.supply_no", "string", "电子监管号 (DZJGH)"),
                    Prop("status", "t.status", "string", "状态"),
                    Prop("days_overdue", "t.days_overdue", "integer", "逾期天数"),
                    Prop("area_m2", "t.area_m2", "number", "面积 m²"),
                    Prop("area_mu", "t.area_mu", "number", "面积 亩"),
                    Prop("supplied_on", "t.supplied_on", "date", "供地日期 (GDRQ)"),
                    Prop("agreed_start", "t.agreed_start", "date", "约定开工 (HTKGSJ)"),
                    Prop("rule", "t.rule", "string", "依据"),
                    Prop("consequence", "t.consequence", "string", "处置"),
                    Prop("grantee_name", "s.grantee_name", "string", "受让人 (SRR)"),
                    Prop("district_code", "t.district_code", "string", "行政区 (XZQDM)"),
                    Prop("platform_code", "t.platform_code", "string", "平台 (PTDM)"),
                    Prop("corridor_code", "t.corridor_code", "string", "走廊 (ZLDM)"),
                    Prop("run_id", "t.run_id", "integer", "检测批次"),
                ),
                geom="s.geom",
                where=f"t.run_id = {CURRENT_RUN} AND t.status IN {IDLE_FLAGGED}",
                temporal="supplied_on",
                tables=("idle_results", "supplies"),
            )
        )
    if {"detection_runs", "low_efficiency_results"} <= tabs.keys():
        out.append(
            Collection(
                "low_efficiency",
                "低效利用 low-efficiency parcels",
                "Parcels with a low-efficiency reason in the latest detection run, "
                "key DKBH. The reasons with their figures (taxes among them) for analysts only.",
                "low_efficiency_results t JOIN parcels p ON p.id = t.parcel_id",
                "t.parcel_no",
                "DKBH",
                "MultiPolygon",
                (
                    Prop("parcel_no", "t.parcel_no", "string", "地块编号 (DKBH)"),
                    Prop("actual_use", "t.actual_use", "string", "实际用途 (SJYT)"),
                    Prop("supply_no", "t.supply_no", "string", "电子监管号 (DZJGH)"),
                    Prop("area_m2", "t.area_m2", "number", "面积 m²"),
                    Prop("area_mu", "t.area_mu", "number", "面积 亩"),
                    Prop(
                        "reason_codes", "array_to_string(t.reason_codes, ';')", "string", "低效原因"
                    ),
                    Prop("reasons", "t.reasons::text", "string", "原因与数值 (JSON)", True),
                    Prop("district_code", "t.district_code", "string", "行政区 (XZQDM)"),
                    Prop("platform_code", "t.platform_code", "string", "平台 (PTDM)"),
                    Prop("corridor_code", "t.corridor_code", "string", "走廊 (ZLDM)"),
                    Prop("run_id", "t.run_id", "integer", "检测批次"),
                ),
                geom="p.geom",
                where=f"t.run_id = {CURRENT_RUN}",
                tables=("low_efficiency_results", "parcels"),
            )
        )
    if {"plans", "plan_blocks"} <= tabs.keys():  # blocks of the latest layout plan
        out.append(
            Collection(
                "plan_blocks",
                "用地布局规划 plan blocks",
                "Corridor blocks and their function (keep_industrial, to_m0, redevelop, exit) in "
                "the latest layout plan; /api/plans/{id} serves every plan.",
                "plan_blocks t",
                "t.plan_id::text || '-' || t.block_no::text",
                "plan_id-block_no",
                "MultiPolygon",
                (
                    Prop("plan_id", "t.plan_id", "integer", "规划方案"),
                    Prop("block_no", "t.block_no", "integer", "地块组编号"),
                    Prop("function", "t.function", "string", "规划功能"),
                    Prop("corridor_code", "t.corridor_code", "string", "走廊 (ZLDM)"),
                    Prop("platform_code", "t.platform_code", "string", "平台 (PTDM)"),
                    Prop("platform_kind", "t.platform_kind", "string", "平台类型 (四类平台)"),
                    Prop("district_code", "t.district_code", "string", "行政区 (XZQDM)"),
                    Prop("parcel_count", "t.parcel_count", "integer", "地块数"),
                    Prop("parcel_nos", "array_to_string(t.parcel_nos, ';')", "string", "DKBH"),
                    Prop("area_mu", "round(t.area_mu::numeric, 2)::float8", "number", "面积 亩"),
                    Prop(
                        "flagged_mu",
                        "round(t.flagged_mu::numeric, 2)::float8",
                        "number",
                        "闲置+低效 亩",
                    ),
                    Prop(
                        "innovation_mu",
                        "round(t.innovation_mu::numeric, 2)::float8",
                        "number",
                        "创新型产业 亩",
                    ),
                ),
                where="t.plan_id = (SELECT max(id) FROM plans)",
                tables=("plans", "plan_blocks"),
            )
        )
    return {c.id: c for c in out if all(t in tabs for t in c.tables)}


def registry(conn: Connection) -> dict[str, Collection]:
    """The collections this database can serve, by id (derived ones only where their tables
    exist)."""
    return _build(tables(conn))


COLLECTION_IDS = (
    "districts",
    "platforms",
    "corridors",
    "approvals",
    "supplies",
    "parcels",
    "enterprises",
    "unsupplied",
    "idle",
    "low_efficiency",
    "plan_blocks",
)
