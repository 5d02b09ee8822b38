"""The data contract's layers in one place: contract field codes <-> database names and types.

Everything that needs to know a layer's table, key, geometry or fields reads it from here
(the importer, the API's layer list, the sample generator, the public/restricted split).
Source: ../shared/DATA_CONTRACT.md, "Layers".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gis.core.vocabulary import labels

FieldType = Literal["text", "int", "float", "date", "bool", "uscc", "list", "code"]
GeomKind = Literal["polygon", "point", "point_or_table", "polygon_or_table", None]


@dataclass(frozen=True)
class Field:
    code: str  # contract field code (pinyin initials), e.g. "DKBH"
    column: str  # database column, clear English
    type: FieldType = "text"
    required: bool = False
    label: str = ""  # Chinese label for docs, exports and the UI
    choices: tuple[str, ...] = ()  # allowed values, where the contract fixes them
    restricted: bool = False  # tax / energy / emission figures: analyst token only
    references: str | None = None  # layer code whose key this field must name


@dataclass(frozen=True)
class Layer:
    code: str  # XZQ, PT, ...
    table: str
    label: str
    key: tuple[str, ...]  # contract codes of the key fields
    geometry: GeomKind
    fields: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(self.field(c).column for c in self.key)

    def field(self, code: str) -> Field:
        for f in self.fields:
            if f.code == code:
                return f
        raise KeyError(code)

    @property
    def spatial(self) -> bool:
        return self.geometry is not None

    @property
    def polygonal(self) -> bool:
        return self.geometry in ("polygon", "polygon_or_table")

    @property
    def has_geom(self) -> bool:
        """Whether the layer's table has ``geom`` (gis/core/models.py): polygons, or X/Y points."""
        return self.polygonal or self.geometry == "point_or_table"

    @property
    def has_source_crs(self) -> bool:
        """Whether the layer's table has ``source_crs``: points given as X/Y with their ZBXT."""
        return self.geometry == "point_or_table"

    @property
    def table_fields(self) -> tuple[Field, ...]:
        """The columns a table of this layer (CSV, XLSX) may have: its fields, and for a point
        layer given as a table (QY) the X, Y and ZBXT columns that give its points."""
        if self.geometry == "point_or_table":
            return self.fields + POINT_FIELDS
        return self.fields


# X, Y and ZBXT: a point layer as a table (contract: "table with X, Y and ZBXT (a CRS code, or
# gcj02)"). Not stored as columns of their own: they make ``geom`` and ``source_crs``.
POINT_FIELDS = (
    Field("X", "geom", "float", False, "X坐标"),
    Field("Y", "geom", "float", False, "Y坐标"),
    Field("ZBXT", "source_crs", "code", False, "坐标系统"),
)

# Plausible years (ND) and dates: outside these they are typing errors (docs/DATA_DECISIONS.md).
YEARS = (1949, 2100)
DATE_YEARS = (1900, 2100)
# Plausible sizes of a figure in its own unit (万元, m², tce, t, persons): at most 1e12 (a
# trillion 万元, 1e16 yuan, is about eighty times China's GDP of 2023) and, when not 0, at
# least 1e-9 (a thousandth of a fen in 万元). Beyond them a value is a unit or typing error,
# and a ratio of two such figures (value added per tce) overflows double precision
# (docs/DATA_DECISIONS.md).
NUMBER_MAX = 1e12
NUMBER_MIN = 1e-9

PLATFORM_LEVELS = ("国家级", "省级", "市级", "其他")
PLATFORM_TYPES = (
    "经济技术开发区",
    "高新技术产业开发区",
    "经济开发区",
    "工业园区",
    "工业功能区",
    "小微企业园",
    "特色小镇",
)
SUPPLY_METHODS = ("出让", "划拨", "租赁", "作价出资")
ACTUAL_USES = ("工业", "创新型产业", "挪作他用", "闲置")
PROJECT_STATUSES = ("未开工", "在建", "停建", "投产")
STANDARD_KINDS = ("安全生产", "环境保护", "节能降耗", "产品质量")
TARGET_LEVELS = ("区县", "平台")
# MB's ZB: a §7 indicator by its Chinese name (gis/core/vocabulary.py "indicator"), or the
# mu of 批而未供 / 闲置 / 低效 land to bring back into use this year, or enterprises to leave
# under 淘汰落后产能 (TT)
TARGET_LAND_INDICATORS = ("PH_PEWG", "PH_GEWY", "PH_DX")
TARGET_INDICATORS = (*labels("indicator").values(), *TARGET_LAND_INDICATORS, "TT")
TASK_STATUSES = tuple(labels("task_status"))  # RW's ZT: not started, in progress, done

# Land-use codes recognised as industrial (DATA_CONTRACT, "Land-use codes").
INDUSTRIAL_LAND_CODES = {
    "0601": "工业用地",
    "0602": "采矿用地",
    "0604": "仓储用地",
    "1001": "工业用地",
    "100101": "一类工业用地",
    "100102": "二类工业用地",
    "100103": "三类工业用地",
    "1101": "仓储用地",
    "M0": "创新型产业用地",
    "100104": "创新型产业用地",
}

F = Field
LAYERS: dict[str, Layer] = {
    layer.code: layer
    for layer in [
        Layer(
            "XZQ",
            "districts",
            "行政区",
            ("XZQDM",),
            "polygon",
            (
                F("XZQDM", "code", "code", True, "行政区代码"),
                F("XZQMC", "name", "text", True, "行政区名称"),
                F("ZCQ", "main_urban", "bool", False, "主城区"),
            ),
        ),
        Layer(
            "PT",
            "platforms",
            "工业平台",
            ("PTDM",),
            "polygon",
            (
                F("PTDM", "code", "code", True, "平台代码"),
                F("PTMC", "name", "text", True, "平台名称"),
                F("PTJB", "level", "text", True, "平台级别", PLATFORM_LEVELS),
                F("PTLX", "type", "text", False, "平台类型", PLATFORM_TYPES),
                F("XZQDM", "district_code", "code", False, "行政区代码", references="XZQ"),
                F("TSCY", "featured_industries", "list", False, "特色产业"),
                F("FMQD", "negative_list", "list", False, "负面清单"),
            ),
        ),
        Layer(
            "ZL",
            "corridors",
            "走廊",
            ("ZLDM",),
            "polygon",
            (
                F("ZLDM", "code", "code", True, "走廊代码"),
                F("ZLMC", "name", "text", True, "走廊名称"),
            ),
        ),
        Layer(
            "PZ",
            "approvals",
            "批准用地",
            ("PZWH",),
            "polygon",
            (
                F("PZWH", "doc_no", "code", True, "批准文号"),
                F("PCMC", "batch_name", "text", False, "批次名称"),
                F("PZRQ", "approved_on", "date", True, "批准日期"),
                F("PZMJ", "declared_area_m2", "float", False, "批准面积(m²)"),
            ),
        ),
        Layer(
            "GD",
            "supplies",
            "供地",
            ("DZJGH",),
            "polygon",
            (
                F("DZJGH", "supply_no", "code", True, "电子监管号"),
                F("GDFS", "method", "text", True, "供地方式", SUPPLY_METHODS),
                F("TDYT", "land_use_code", "code", True, "土地用途"),
                F("GDRQ", "supplied_on", "date", True, "供地日期"),
                F("SRR", "grantee_name", "text", False, "受让人"),
                F("SRRDM", "grantee_uscc", "uscc", False, "受让人信用代码"),
                F("HTKGSJ", "agreed_start", "date", True, "约定开工时间"),
                F("HTJGSJ", "agreed_completion", "date", False, "约定竣工时间"),
                F("SJKGSJ", "actual_start", "date", False, "实际开工时间"),
                F("SJJGSJ", "actual_completion", "date", False, "实际竣工时间"),
                F("TGRQ", "stopped_on", "date", False, "停工日期"),
                F("RJLXX", "plot_ratio_min", "float", False, "容积率下限"),
                F("RJLSX", "plot_ratio_max", "float", False, "容积率上限"),
                F("YDTZ", "agreed_investment", "float", False, "约定总投资(万元)"),
                F("SJTZ", "investment_made", "float", False, "已完成投资(万元)"),
                F("YKFMJ", "developed_area_m2", "float", False, "已开发面积(m²)"),
            ),
        ),
        Layer(
            "DK",
            "parcels",
            "现状工业用地",
            ("DKBH",),
            "polygon",
            (
                F("DKBH", "parcel_no", "code", True, "地块编号"),
                F("DLBM", "land_use_code", "code", True, "地类编码"),
                F("SJYT", "actual_use", "text", False, "实际用途", ACTUAL_USES),
                F("JZMJ", "floor_area_m2", "float", False, "建筑面积(m²)"),
                F("JZJDMJ", "footprint_m2", "float", False, "建筑基底面积(m²)"),
                F("DZJGH", "supply_no", "code", False, "电子监管号", references="GD"),
                F("QLR", "holder_name", "text", False, "权利人"),
                F("QLRDM", "holder_uscc", "uscc", False, "权利人信用代码"),
                F("XZQDM", "district_code", "code", False, "行政区代码", references="XZQ"),
            ),
        ),
        Layer(
            "QY",
            "enterprises",
            "企业名录",
            ("TYSHXYDM",),
            "point_or_table",
            (
                F("TYSHXYDM", "uscc", "uscc", True, "统一社会信用代码"),
                F("QYMC", "name", "text", True, "企业名称"),
                F("HYDM", "industry_code", "code", True, "行业代码"),
                F("GMYS", "above_size", "bool", False, "规模以上"),
                F("DKBH", "parcel_nos", "list", False, "占用地块", references="DK"),
            ),
        ),
        Layer(
            "CC",
            "outputs",
            "企业产出",
            ("TYSHXYDM", "ND"),
            None,
            (
                F("TYSHXYDM", "uscc", "uscc", True, "统一社会信用代码", references="QY"),
                F("ND", "year", "int", True, "年度"),
                F("GYZCZ", "gross_output", "float", False, "工业总产值(万元)"),
                F("YYSR", "revenue", "float", False, "营业收入(万元)"),
                F("GYZJZ", "value_added", "float", False, "工业增加值(万元)"),
                F("SJSJ", "tax_paid", "float", True, "实缴税金(万元)", restricted=True),
                F("ZHNH", "energy_tce", "float", False, "综合能耗(吨标准煤)", restricted=True),
                F("PFDL", "emissions_t", "float", False, "排放当量(吨)", restricted=True),
                F("YFFY", "rd_spending", "float", False, "研发费用(万元)"),
                F("CYRS", "employees", "float", False, "从业人数"),
                F("YDMJ", "declared_land_m2", "float", False, "用地面积(m²)"),
            ),
        ),
        Layer(
            "XM",
            "projects",
            "投资项目",
            ("XMDM",),
            "polygon_or_table",
            (
                F("XMDM", "project_code", "code", True, "项目代码"),
                F("XMMC", "name", "text", True, "项目名称"),
                F("TYSHXYDM", "uscc", "uscc", False, "统一社会信用代码"),
                F("DZJGH", "supply_no", "code", False, "电子监管号", references="GD"),
                F("DKBH", "parcel_no", "code", False, "地块编号", references="DK"),
                F("JHTZ", "planned_investment", "float", True, "计划投资(万元)"),
                F("LJWCTZ", "investment_made", "float", False, "累计完成投资(万元)"),
                F("XMZT", "status", "text", False, "项目状态", PROJECT_STATUSES),
                F("KGRQ", "started_on", "date", False, "开工日期"),
                F("TCRQ", "production_on", "date", False, "投产日期"),
            ),
        ),
        Layer(
            "BD",
            "failed_standards",
            "不达标企业",
            ("TYSHXYDM", "ND", "BDLX"),
            None,
            (
                F("TYSHXYDM", "uscc", "uscc", True, "统一社会信用代码", references="QY"),
                F("ND", "year", "int", True, "年度"),
                F("BDLX", "kind", "text", True, "不达标类型", STANDARD_KINDS),
                F("SM", "note", "text", False, "说明"),
            ),
        ),
        Layer(
            "TJ",
            "district_stats",
            "区县统计",
            ("XZQDM", "ND"),
            None,
            (
                F("XZQDM", "district_code", "code", True, "行政区代码", references="XZQ"),
                F("ND", "year", "int", True, "年度"),
                F("GDP", "gdp", "float", False, "地区生产总值(万元)"),
                F("GYZJZ", "value_added", "float", False, "工业增加值(万元)"),
                F("GYYDMJ", "industrial_land_m2", "float", False, "工业用地面积(m²)"),
            ),
        ),
        Layer(
            "MB",
            "targets",
            "年度目标",
            ("ND", "JB", "DM", "ZB"),
            None,
            (
                F("ND", "year", "int", True, "年度"),
                F("JB", "level", "text", True, "层级", TARGET_LEVELS),
                F("DM", "zone_code", "code", True, "区县或平台代码"),
                F("ZB", "indicator", "text", True, "指标", TARGET_INDICATORS),
                F("MBZ", "target_value", "float", True, "目标值"),
                F("ZRDW", "responsible_unit", "text", False, "责任单位"),
                F("SM", "note", "text", False, "说明"),
            ),
        ),
        Layer(
            "RW",
            "tasks",
            "任务",
            ("RWDM",),
            None,
            (
                F("RWDM", "code", "code", True, "任务编号"),
                F("SJRW", "parent_code", "code", False, "上级任务", references="RW"),
                F("GZXM", "work_item", "text", True, "工作项目"),
                F("JTYQ", "requirement", "text", False, "具体要求"),
                F("JDYQ", "schedule", "text", False, "进度要求"),
                F("QTDW", "lead_units", "list", False, "牵头单位"),
                F("ZRDW", "responsible_units", "list", False, "责任单位"),
                F("PHDW", "cooperating_units", "list", False, "配合单位"),
                F("ZT", "status", "text", False, "状态", TASK_STATUSES),
                F("SM", "note", "text", False, "佐证说明"),
            ),
        ),
    ]
}

# The order in which layers must be imported so that every reference can be checked.
IMPORT_ORDER = ("XZQ", "PT", "ZL", "PZ", "GD", "DK", "QY", "CC", "XM", "BD", "TJ", "MB", "RW")

STORAGE_SRID = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E, metres
M2_PER_MU = 10000 / 15  # 1 亩 = 666.67 m²


def layer(code: str) -> Layer:
    """The layer for a contract code, case-insensitive; KeyError names the known codes."""
    try:
        return LAYERS[code.upper()]
    except KeyError:
        known = ", ".join(c.lower() for c in IMPORT_ORDER)
        raise KeyError(f"unknown layer {code!r}; known layers: {known}") from None
