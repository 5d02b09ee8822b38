"""Excel templates for the departments, and a rejected workbook handed back marked.

``workbook(layer)``: an XLSX whose first sheet has the layer's fields as headers
``label(code)`` (``企业名称(QYMC)``), required ones bold on an orange fill with the comment
"必填", a drop-down list for fields with allowed values, whole numbers, decimals and dates where
the contract types them, text format for codes (so that Excel keeps leading zeros), and a sheet
``填表说明`` saying what each field means, its unit, the key, the encoding and, for QY, the
coordinates. Labels, types, choices and keys come from ``gis/core/layers.py``; what a field
means is written here, in Chinese, from ../shared/DATA_CONTRACT.md.

``marked(workbook, report)``: the workbook an import refused, with each bad cell filled red and a
comment holding the reason(s), and a sheet ``导入问题`` listing the problems.

openpyxl is imported inside the functions (a CSV import never loads it).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable
from copy import copy
from datetime import date
from pathlib import Path

from gis.core.layers import DATE_YEARS, LAYERS, YEARS, Field, Layer
from gis.ingest.validate import DEADLINE_FIELDS

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NOTES_SHEET = "填表说明"
PROBLEMS_SHEET = "导入问题"
AUTHOR = "landlink"  # of the comments marked() writes (and removes again from a resubmission)

REQUIRED_FILL = "FFC000"  # orange: a required field's header
OPTIONAL_FILL = "DDEBF7"  # pale blue: an optional one
BAD_FILL = "FF8080"  # red: a cell an import refused
BAD_FONT = "9C0006"

# Rows x columns of a sheet marked() will load (openpyxl holds every cell in memory, a few
# hundred bytes each): a department's file is far smaller; above it, the JSON report.
MARK_MAX_CELLS = 2_000_000
# Characters of one comment (a cell with many reasons) and of a data-validation list.
COMMENT_MAX_CHARS = 2000
EXCEL_LIST_MAX_CHARS = 255

# Common values of ZBXT, offered in a drop-down that accepts any other CRS code too.
ZBXT_SUGGESTED = ("EPSG:4549", "EPSG:4490", "EPSG:4326", "gcj02")

# What each field means (DATA_CONTRACT.md, "Layers"), by code; "LAYER.CODE" where a layer
# uses the code differently.
MEANINGS: dict[str, str] = {
    "XZQDM": "6 位行政区划代码",
    "XZQMC": "行政区名称",
    "ZCQ": "是否主城区：1 = 主城区，0 = 否",
    "PTDM": "工业平台代码",
    "PTMC": "工业平台名称",
    "PTJB": "平台级别",
    "PTLX": "平台类型",
    "TSCY": "特色产业名称，多个用 、 或 ; 分隔",
    "FMQD": "负面清单：GB/T 4754 行业代码（2 至 4 位），多个用 ; 分隔",
    "ZLDM": "走廊代码：CXKC 城西科创大走廊，CDZZ 城东智造大走廊",
    "ZLMC": "走廊名称",
    "PZWH": "批准文号（农用地转用/征收批次）",
    "PCMC": "批次名称",
    "PZRQ": "批准日期",
    "PZMJ": "批准面积",
    "DZJGH": "供地的电子监管号",
    "GDFS": "供地方式",
    "TDYT": "土地用途代码：GB/T 21010-2017（如 0601 工业用地）或国土空间用地用海分类（如 1001、"
    "100101），创新型产业用地 M0 或 100104",
    "GDRQ": "供地日期",
    "SRR": "受让人名称",
    "SRRDM": "受让人的统一社会信用代码",
    "HTKGSJ": "合同约定开工时间",
    "HTJGSJ": "合同约定竣工时间",
    "SJKGSJ": "实际开工时间",
    "SJJGSJ": "实际竣工时间",
    "TGRQ": "停工日期（留空 = 未停工）",
    "RJLXX": "容积率下限",
    "RJLSX": "容积率上限",
    "YDTZ": "合同约定总投资",
    "SJTZ": "已完成投资",
    "YKFMJ": "已开发面积",
    "DKBH": "地块编号",
    "QY.DKBH": "企业占用的地块编号，多个用 ; 分隔",
    "DLBM": "地类编码（代码同土地用途 TDYT）",
    "SJYT": "地块的实际用途",
    "JZMJ": "总建筑面积",
    "JZJDMJ": "建筑基底面积",
    "QLR": "权利人名称",
    "QLRDM": "权利人的统一社会信用代码",
    "TYSHXYDM": "18 位统一社会信用代码（GB 32100-2015），校验位会被核对",
    "QYMC": "企业名称",
    "HYDM": "国民经济行业分类（GB/T 4754-2017）4 位行业小类代码",
    "GMYS": "是否规模以上企业：1 = 规上，0 = 规下",
    "ND": "年度（4 位年份）",
    "GYZCZ": "工业总产值",
    "YYSR": "营业收入",
    "GYZJZ": "工业增加值",
    "SJSJ": "实缴税金",
    "ZHNH": "综合能耗",
    "PFDL": "主要污染物排放当量",
    "YFFY": "研发费用",
    "CYRS": "年平均从业人数",
    "YDMJ": "企业申报的用地面积（含租用土地）",
    "XMDM": "投资项目代码",
    "XMMC": "项目名称",
    "JHTZ": "计划总投资",
    "LJWCTZ": "累计完成投资",
    "XMZT": "项目状态",
    "KGRQ": "开工日期",
    "TCRQ": "投产日期",
    "BDLX": "不达标类型",
    "SM": "说明",
    "GDP": "地区生产总值",
    "GYYDMJ": "工业用地面积",
    "JB": "层级：区县 或 平台",
    "MB.DM": "区县代码（JB 为区县时，XZQDM）或平台代码（JB 为平台时，PTDM）",
    "ZB": "指标：§7 指标的中文名称（工业增加值占GDP比重 仅限区县），或 PH_PEWG / PH_GEWY / "
    "PH_DX（本年度盘活批而未供 / 供而未用(闲置) / 低效用地的亩数），"
    "或 TT（本年度淘汰落后产能退出企业数）",
    "MBZ": "目标值，单位同该指标：比重填百分数（35 表示 35%，不超过 100），亩均产值、亩均税收为"
    "万元/亩，单位工业增加值能耗为吨标准煤/万元，排放总量为吨，工业用地面积和 PH_* 为亩，TT 为家；"
    "不小于 0",
    "ZRDW": "责任单位",
    "MB.SM": "说明",
    "RWDM": "任务编号，如 4（工作项目）、4.1（其子任务）",
    "SJRW": "上级任务的任务编号，须是本表中或已导入的任务；工作项目留空",
    "GZXM": "工作项目（任务名称）",
    "JTYQ": "具体要求",
    "JDYQ": "进度要求：完成期限，如 2018-06-30、2018年6月底前、2018年底前、2018~2020、长期",
    "QTDW": "牵头单位，多个用 、 分隔（单位名称中不要含 、）",
    "RW.ZRDW": "责任单位，多个用 、 分隔",
    "PHDW": "配合单位，多个用 、 分隔",
    "ZT": "任务状态",
    "RW.SM": "佐证说明：完成情况、文号等",
    "X": "X 坐标：经度（EPSG:4490、EPSG:4326、gcj02）或东坐标（EPSG:4549，米）",
    "Y": "Y 坐标：纬度，或北坐标（EPSG:4549，米）",
    "ZBXT": "X、Y 的坐标系统：EPSG:4549、EPSG:4490、EPSG:4326 或 gcj02",
}

# Units the label does not carry in parentheses.
UNITS = {"ND": "年", "CYRS": "人", "X": "米或度", "Y": "米或度"}

TYPE_NAMES = {
    "text": "文本",
    "code": "代码（文本）",
    "uscc": "统一社会信用代码（18 位文本）",
    "int": "整数",
    "float": "数值",
    "date": "日期",
    "bool": "是否（1/0）",
    "list": "列表（; 分隔）",
}
TEXT_TYPES = ("text", "code", "uscc", "list")

_UNIT = re.compile(r"\(([^()]*)\)$")
_ROW = re.compile(r"^row (\d+)$")


def header(f: Field) -> str:
    """A field's header in a template: ``企业名称(QYMC)``."""
    return f"{f.label}({f.code})"


def sheet_title(layer: Layer) -> str:
    """The data sheet's name: ``企业产出(CC)`` (at most 31 characters, as Excel wants)."""
    return f"{layer.label}({layer.code})"[:31]


def file_name(layer: Layer) -> str:
    """The CLI's default file name: ``CC_template.xlsx``."""
    return f"{layer.code}_template.xlsx"


def download_name(layer: Layer) -> str:
    """The name a browser saves a template as: ``企业产出(CC)_填报模板.xlsx``."""
    return f"{sheet_title(layer)}_填报模板.xlsx"


def meaning(layer: Layer, f: Field) -> str:
    return MEANINGS.get(f"{layer.code}.{f.code}") or MEANINGS.get(f.code) or f.label


def unit(f: Field) -> str:
    """The unit: from the label's parentheses (``实缴税金(万元)``), else the contract's."""
    m = _UNIT.search(f.label)
    return m.group(1) if m else UNITS.get(f.code, "")


def allowed(f: Field) -> str:
    """What values the field takes, as the 填表说明 sheet says it."""
    if f.choices:
        return " / ".join(f.choices)
    if f.type == "bool":
        return "1 / 0（也可写 是 / 否）"
    if f.type == "int" and f.code == "ND":
        return f"{YEARS[0]}–{YEARS[1]}"
    if f.type == "date":
        return f"{DATE_YEARS[0]}-01-01 至 {DATE_YEARS[1]}-12-31"
    if f.code == "ZBXT":
        return " / ".join(ZBXT_SUGGESTED) + " 或其他 EPSG 代码"
    if f.code in DEADLINE_FIELDS:
        return (
            "日期 YYYY-MM-DD；2018年6月[30日][前]、2018年6月底[前]；2018年底[前]；"
            "年度区间 2018~2020 或 2018-2020（末年年底）；长期 / 持续（无期限）"
        )
    return ""


def _excel_serial(d: date) -> int:
    """Excel's day number of ``d`` (1900-01-01 is 1; Excel counts a 29 February 1900)."""
    return (d - date(1899, 12, 30)).days - (d < date(1900, 3, 1))


def _list_formula(values: Iterable[str], f: Field) -> str:
    text = ",".join(values)
    if len(text) > EXCEL_LIST_MAX_CHARS or any('"' in v or "," in v for v in values):
        raise ValueError(
            f"field {f.code}: allowed values do not fit an Excel drop-down list "
            f"({len(text)} characters, at most {EXCEL_LIST_MAX_CHARS}, no commas or quotes)"
        )
    return f'"{text}"'


def _validation(layer: Layer, f: Field):
    """The data validation of a field's column (openpyxl), with its input message."""
    from openpyxl.worksheet.datavalidation import DataValidation

    kind: dict = {}
    error = ""
    if f.choices:
        kind = dict(type="list", formula1=_list_formula(f.choices, f))
        error = "请从下拉列表中选择：" + " / ".join(f.choices)
    elif f.type == "bool":
        kind = dict(type="list", formula1=_list_formula(("1", "0"), f))
        error = "请填 1（是）或 0（否）"
    elif f.code == "ZBXT":  # suggestions; any other CRS code is accepted
        kind = dict(type="list", formula1=_list_formula(ZBXT_SUGGESTED, f))
    elif f.type == "int":
        low, high = YEARS if f.code == "ND" else (-(2**31), 2**31 - 1)
        kind = dict(type="whole", operator="between", formula1=str(low), formula2=str(high))
        error = f"请填 {low} 至 {high} 之间的整数" if f.code == "ND" else "请填整数"
    elif f.type == "float":
        kind = dict(type="decimal", operator="between", formula1="-1E+15", formula2="1E+15")
        error = "请填数值（不带单位）"
    elif f.type == "date":
        low, high = date(DATE_YEARS[0], 1, 1), date(DATE_YEARS[1], 12, 31)
        kind = dict(
            type="date",
            operator="between",
            formula1=str(_excel_serial(low)),
            formula2=str(_excel_serial(high)),
        )
        error = f"请填日期（YYYY-MM-DD），{low.year} 至 {high.year} 年之间"
    required = "必填。" if f.required else "选填。"
    dv = DataValidation(
        allow_blank=True,
        showInputMessage=True,
        showErrorMessage=bool(error),
        promptTitle=header(f)[:32],
        prompt=(required + meaning(layer, f))[:255],
        errorTitle=header(f)[:32] if error else None,
        error=error[:255] or None,
        **kind,
    )
    return dv


def _number_format(f: Field) -> str | None:
    if f.type in TEXT_TYPES:
        return "@"  # text: Excel keeps leading zeros and long codes as typed
    if f.type == "date":
        return "yyyy-mm-dd"
    if f.type == "int":
        return "0"
    if f.type == "float" and f.code not in ("X", "Y"):
        return "0.00"
    return None


def _width(text: str) -> float:
    """Columns an Excel cell needs for ``text`` (a CJK character takes two)."""
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _notes(layer: Layer) -> list[tuple[str, str]]:
    """The notes below the field table of 填表说明: (heading, text)."""
    f_by = {f.code: f for f in layer.table_fields}
    key = " + ".join(header(f_by[c]) for c in layer.key)
    notes = [
        (
            "表头",
            "第一行是表头，写作“中文名称(字段代码)”。导入时表头也可只写字段代码"
            "（如 QYMC）或只写中文名称（如 企业名称；带单位的名称也可不写单位），"
            "括号半角、全角均可。必填列不能删；不用的选填列可以删去；不认识的列会被忽略，"
            "并在导入报告中列出。",
        ),
        (
            "必填",
            "表头加粗、橙色底色、批注写着“必填”的列是必填字段，每一行都要填；浅蓝底色的列选填，"
            "留空表示未知。选中单元格时会显示该字段的说明。",
        ),
        (
            "主键",
            f"{key}。同一文件中主键不能重复；再次导入主键相同的行即更新该行（原值记入历史）。"
            + (
                "复合主键在表中分列填写；在命令行或接口中指称一行时，按此顺序用英文冒号连接，"
                "如 91330102169913999J:2023。"
                if len(layer.key) > 1
                else ""
            ),
        ),
        (
            "编码",
            "本工作簿为 XLSX（Unicode），填好后直接导入；导入读取第一个工作表（或导入时用 --sheet "
            "指定的表）。如另存为 CSV，请用 UTF-8（可带 BOM）或 GBK/GB18030 编码，第一行为表头。",
        ),
        (
            "单位",
            "金额单位为万元，能耗为吨标准煤，排放为吨（污染当量），面积为平方米（m²）；"
            "1 亩 = 10000/15 m² ≈ 666.67 m²。数值只填数字，不带单位。",
        ),
    ]
    types = {f.type for f in layer.table_fields}
    if "date" in types:
        notes.append(
            (
                "日期",
                "日期填 YYYY-MM-DD（也可 YYYY/MM/DD、YYYYMMDD 或 Excel 日期），"
                f"年份在 {DATE_YEARS[0]}–{DATE_YEARS[1]} 之间；留空表示未知。",
            )
        )
    if any(f.code == "ND" for f in layer.fields):
        notes.append(("年度", f"年度（ND）填 4 位年份，{YEARS[0]}–{YEARS[1]}。"))
    if "bool" in types:
        notes.append(("是否", "是否类字段填 1（是）或 0（否），也可写 是 / 否；留空表示未知。"))
    if "list" in types:
        notes.append(("列表", "一格填多个值时用 ; 分隔（也可用 ；、 , ，）。"))
    if types & {"code", "uscc"}:
        notes.append(
            (
                "代码",
                "信用代码、行政区代码、地块编号、电子监管号等代码列设为文本格式，以保留开头的 0；"
                "从别处粘贴时请用“只粘贴值”。",
            )
        )
    refs = [f for f in layer.fields if f.references]
    if refs:
        notes.append(
            (
                "关联",
                "；".join(
                    f"{header(f)} 须是本表中或已导入的"
                    f"{header(layer.field(layer.key[0]))}（不能是本行自身，也不能形成循环）"
                    if f.references == layer.code
                    else f"{header(f)} 须是{LAYERS[f.references].label}（{f.references}）中已有的"
                    f"{header(LAYERS[f.references].field(LAYERS[f.references].key[0]))}"
                    for f in refs
                )
                + "。请先导入被关联的图层，否则这些行会被拒绝。",
            )
        )
    restricted = [f for f in layer.fields if f.restricted]
    if restricted:
        notes.append(
            (
                "受限数据",
                "、".join(header(f) for f in restricted)
                + " 为受限数据（税收、能耗、排放），只有分析人员的令牌可以查看。",
            )
        )
    if layer.code == "MB":
        notes.append(
            (
                "目标",
                "每行是一个年度目标：年度 + 层级 + 区县或平台代码 + 指标 为主键。目标值的单位同指标"
                "（比重填百分数，如 35 表示 35%）；"
                "单位工业增加值能耗、排放总量越低越好，其余越高越好。"
                "landlink 按判断日已过的全年比例评价完成进度（已完成 / 进度正常 / 进度滞后），"
                "见 docs/TARGETS.md。",
            )
        )
    if layer.geometry == "point_or_table":
        notes.append(
            (
                "坐标",
                "企业位置用 X、Y 两列给出，ZBXT 写明坐标系统：EPSG:4549（CGCS2000 "
                "3 度带高斯-克吕格投影，中央经线 120°E，单位米，X 为东坐标、Y 为北坐标）、"
                "EPSG:4490（CGCS2000 经纬度，X 为经度、Y 为纬度）、EPSG:4326（WGS84 经纬度）"
                "或 gcj02（高德等国内网络地图的经纬度，先转换为 WGS84）。"
                "X、Y 须同时填写；不填坐标的企业只按占用地块（DKBH）关联；"
                "填了坐标却没填 ZBXT 的行会被拒绝（除非导入时用 --crs 指定）。",
            )
        )
    elif layer.geometry == "polygon":
        notes.append(
            (
                "图形",
                f"{layer.label}（{layer.code}）是面图层：图形须以 Shapefile"
                "（.shp 与 .dbf、.shx、.prj、.cpg 一起）、GeoPackage 或 GeoJSON 提交，"
                "XLSX/CSV 不能单独导入本图层。本工作簿用于"
                "整理属性：在 GIS 软件中把属性表连接到图形（属性字段名用字段代码，如 "
                f"{layer.key[0]}），再导出为上述格式导入。",
            )
        )
    elif layer.geometry == "polygon_or_table":
        notes.append(
            (
                "图形",
                f"{layer.label}（{layer.code}）可以是面图层（Shapefile、GeoPackage、GeoJSON），"
                "也可以是表格：表格通过电子监管号（DZJGH）或地块编号（DKBH）关联到地块。",
            )
        )
    notes.append(
        (
            "导入",
            f"landlink import {layer.code.lower()} 文件.xlsx（默认严格模式：有任何一行出错，"
            "整个文件都不导入，什么也不改变；--lenient 只导入正确的行）。"
            "导入被拒时加 --report-xlsx "
            "标注.xlsx，得到本工作簿的标注版：出错的单元格标红，批注写明原因。网页接口：POST "
            "/api/imports，report=xlsx。",
        )
    )
    return notes


def workbook(layer: Layer) -> bytes:
    """The layer's template as XLSX bytes (see the module's docstring)."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = sheet_title(layer)
    fields = layer.table_fields
    for i, f in enumerate(fields, start=1):
        letter = get_column_letter(i)
        cell = ws.cell(1, i, header(f))
        cell.font = Font(bold=f.required)
        cell.fill = PatternFill("solid", fgColor=REQUIRED_FILL if f.required else OPTIONAL_FILL)
        cell.alignment = Alignment(horizontal="center", vertical="center")
        cell.number_format = "@"
        lines = ["必填" if f.required else "选填", meaning(layer, f)]
        if unit(f):
            lines.append(f"单位：{unit(f)}")
        if allowed(f):
            lines.append(f"允许值：{allowed(f)}")
        cell.comment = Comment("\n".join(lines), AUTHOR, width=260, height=30 + 18 * len(lines))
        dim = ws.column_dimensions[letter]
        dim.width = min(max(_width(header(f)) + 4, 12), 40)
        fmt = _number_format(f)
        if fmt:
            dim.number_format = fmt  # the column's style: what a clerk types takes it
        dv = _validation(layer, f)
        dv.add(f"{letter}2:{letter}1048576")
        ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    ws.row_dimensions[1].height = 22

    notes = wb.create_sheet(NOTES_SHEET)
    notes.append([f"{sheet_title(layer)} 填表说明"])
    notes["A1"].font = Font(bold=True, size=14)
    notes.append([])
    columns = ["字段代码", "中文名称", "表头", "类型", "必填", "单位", "允许值", "说明"]
    notes.append(columns)
    for c in notes[3]:
        c.font = Font(bold=True)
        c.fill = PatternFill("solid", fgColor=OPTIONAL_FILL)
    for f in fields:
        notes.append(
            [
                f.code,
                f.label,
                header(f),
                TYPE_NAMES[f.type],
                "是" if f.required else "",
                unit(f),
                allowed(f),
                meaning(layer, f),
            ]
        )
        if f.required:
            notes.cell(notes.max_row, 5).font = Font(bold=True)
    notes.append([])
    wrap = Alignment(wrap_text=True, vertical="top")
    for heading, text in _notes(layer):
        notes.append([heading, text])
        row = notes.max_row
        notes.cell(row, 1).font = Font(bold=True)
        notes.cell(row, 1).alignment = Alignment(vertical="top")
        notes.cell(row, 2).alignment = wrap
        notes.merge_cells(start_row=row, start_column=2, end_row=row, end_column=len(columns))
        notes.row_dimensions[row].height = 15 * (1 + _width(text) // 150)
    for i, w in enumerate((12, 22, 28, 16, 6, 12, 30, 50), start=1):
        notes.column_dimensions[get_column_letter(i)].width = w
    notes.freeze_panes = "A4"
    wb.active = 0
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


class CannotMark(ValueError):
    """No marked workbook can be made; the JSON report lists the problems instead."""


class TooLargeToMark(CannotMark):
    """The sheet has more cells than :data:`MARK_MAX_CELLS`."""


def _colored(font, color: str | None):  # type: ignore[no-untyped-def]
    out = copy(font)
    out.color = color
    return out


def _cells_of(errors: list[dict], columns: dict[str, int]) -> dict[tuple[int, int], list[str]]:
    """(row, column) -> reasons, from a report's errors: the row from ``where`` (``row N``),
    the column from ``field`` (each part of a composite key's ``A+B``); a problem whose field
    is no column of the sheet marks the row's first cell."""
    cells: dict[tuple[int, int], list[str]] = {}
    for e in errors:
        m = _ROW.match(str(e.get("where", "")))
        if not m:
            continue
        row = int(m.group(1))
        field = str(e.get("field") or "")
        cols = [columns[c] for c in field.split("+") if c in columns] or [1]
        text = f"{field}: {e.get('reason', '')}" if field else str(e.get("reason", ""))
        for col in cols:
            reasons = cells.setdefault((row, col), [])
            if text not in reasons:
                reasons.append(text)
    return cells


def marked(source: Path | str | bytes, report: dict) -> bytes:
    """The workbook an import refused (its bytes or path), with each cell the report names
    filled red and a comment holding the reason(s), and a sheet 导入问题 listing the report's
    problems. The sheet is the one the import read (``report["options"]["sheet"]``, else the
    first). Marks and the problem sheet of an earlier round are removed first, so a workbook
    sent again shows this round's problems only. TooLargeToMark above MARK_MAX_CELLS,
    CannotMark for a workbook openpyxl cannot open as a whole."""
    import openpyxl
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill

    from gis.core.layers import layer as get_layer
    from gis.ingest.read import header_codes

    layer = get_layer(report["layer"])
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    sheet = (report.get("options") or {}).get("sheet")
    with warnings.catch_warnings():  # "extension not supported": kept as far as openpyxl can
        warnings.simplefilter("ignore", UserWarning)
        try:
            probe = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
            try:
                ws = probe[sheet] if sheet else probe.worksheets[0]
                cells = (ws.max_row or 0) * (ws.max_column or 0)
            finally:
                probe.close()
        except Exception as e:  # openpyxl raises many kinds for a damaged file
            raise CannotMark(f"the workbook cannot be opened to mark it ({e})") from None
        if cells > MARK_MAX_CELLS:
            raise TooLargeToMark(
                f"the sheet has {cells:,} cells; a marked workbook is made for at most "
                f"{MARK_MAX_CELLS:,}: see the report's errors instead"
            )
        try:
            wb = openpyxl.load_workbook(io.BytesIO(data))
        except Exception as e:
            raise CannotMark(f"the workbook cannot be opened to mark it ({e})") from None
    ws = wb[sheet] if sheet else wb.worksheets[0]
    heads = [("" if c.value is None else str(c.value)) for c in ws[1]]
    columns: dict[str, int] = {}
    for i, code in enumerate(header_codes(heads, layer, report.get("file", "")), start=1):
        columns.setdefault(code, i)

    bad_fill = PatternFill("solid", fgColor=BAD_FILL)
    for row in ws.iter_rows(min_row=2):  # an earlier round's marks
        for cell in row:
            if cell.comment is not None and cell.comment.author == AUTHOR:
                cell.comment = None
                rgb = cell.fill.fgColor.rgb
                if isinstance(rgb, str) and rgb.endswith(BAD_FILL):
                    cell.fill = PatternFill()
                    cell.font = _colored(cell.font, None)
    if PROBLEMS_SHEET in wb.sheetnames:
        del wb[PROBLEMS_SHEET]

    errors = report.get("errors", [])
    for (row, col), reasons in sorted(_cells_of(errors, columns).items()):
        cell = ws.cell(row, col)
        text = "\n".join(reasons)
        if len(text) > COMMENT_MAX_CHARS:
            text = text[: COMMENT_MAX_CHARS - 1] + "…"
        cell.fill = bad_fill
        cell.font = _colored(cell.font, BAD_FONT)
        lines = sum(1 + _width(r) // 40 for r in reasons)
        cell.comment = Comment(text, AUTHOR, width=300, height=min(30 + 18 * lines, 400))

    problems = wb.create_sheet(PROBLEMS_SHEET)
    total = report.get("errors_total", len(errors))
    if report.get("dry_run"):
        outcome = "试运行（dry run）：什么也没有改变。"
    elif report.get("status") == "rejected":
        outcome = "严格模式：整个文件未导入，什么也没有改变。"
    else:
        outcome = "出错的行未导入，其余的行已导入。"
    problems.append(
        [
            f"{report.get('file', '')}：{total} 个问题，{report.get('rejected', 0)} 行有错。"
            + outcome
            + "改正标红的单元格（批注写明原因）后再次导入。"
            + (f"此处只列出前 {len(errors)} 个问题。" if total > len(errors) else "")
        ]
    )
    problems["A1"].font = Font(bold=True)
    problems.append(["位置", "主键", "字段", "原因"])
    for c in problems[2]:
        c.font = Font(bold=True)
    for e in errors:
        problems.append([e.get("where"), e.get("key"), e.get("field"), e.get("reason")])
    for letter, w in zip("ABCD", (12, 24, 16, 80), strict=True):
        problems.column_dimensions[letter].width = w
    for row in problems.iter_rows(min_row=3, min_col=4, max_col=4):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    wb.active = wb.worksheets.index(ws)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
