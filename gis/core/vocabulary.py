"""Every code the system shows, with its Chinese label, colour and order: the one vocabulary.

The map page (``GET /api/vocabulary``, fetched at start-up), the MapLibre style
(``/tiles/style.json``), the parcel dossier, the platform kinds and the plan report all read
their labels and colours from here; no other module or script keeps a copy.

A vocabulary is an ordered tuple of terms. A term's ``code`` is what the data and the API hold
(an English or pinyin code, or, for ``actual_use``, the contract's own SJYT value), ``label`` what
a person reads, ``colour`` how the map draws it (``None`` where it is never drawn), ``english``
a short English gloss. The order is the order of legends and lists. ``flagged`` marks the
statuses that are findings (the page's default filters and legends show those).

Wording follows DOMAIN_RULES (§2 classes, §3 the three kinds of land and the chain, §4 the four
kinds of platforms) and, for idle land, 《闲置土地处置办法》 art. 14 ("满一年" / "满两年").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Term:
    code: str
    label: str
    colour: str | None = None
    english: str = ""
    flagged: bool = False


@dataclass(frozen=True)
class Vocabulary:
    name: str
    title: str  # Chinese
    english: str
    terms: tuple[Term, ...]
    # label and colour of a missing or unknown code (the legend's last entry)
    other_label: str | None = None
    other_colour: str | None = None


def _v(name, title, english, terms, other_label=None, other_colour=None) -> Vocabulary:
    return Vocabulary(
        name, title, english, tuple(Term(*t) for t in terms), other_label, other_colour
    )


VOCABULARIES: tuple[Vocabulary, ...] = (
    _v(
        "land_kind",
        "三块地",
        "the three kinds of land (DOMAIN_RULES §3)",
        [
            ("unsupplied", "批而未供", "#6b46c1", "approved, not supplied"),
            ("idle", "供而未用/闲置", "#ed8936", "supplied, not used / idle"),
            ("low_efficiency", "低效用地", "#b7791f", "low efficiency"),
        ],
    ),
    _v(
        "unsupplied_status",
        "批而未供状态",
        "status of an approval",
        [
            ("unsupplied", "全部未供", "#6b46c1", "nothing supplied", True),
            ("partial", "部分未供", "#b794f4", "partly supplied", True),
            ("supplied", "已供", "#e9d8fd", "supplied"),
        ],
        "其他",
        "#6b46c1",
    ),
    _v(
        "idle_status",
        "供而未用/闲置状态",
        "status of a supply record (闲置土地处置办法 art. 2, 14)",
        [
            ("overdue", "供而未用(逾期未满一年)", "#ecc94b", "overdue under one year", True),
            ("idle", "闲置(满一年)", "#ed8936", "idle one to two years (fee)", True),
            (
                "idle_reclaimable",
                "闲置(满两年,可收回)",
                "#c53030",
                "idle two years or more (may be taken back)",
                True,
            ),
            ("partial_idle", "部分开发后中止", "#d53f8c", "partly developed, stopped", True),
            ("not_due", "未到开工期", "#a0aec0", "agreed start not yet reached"),
            ("started", "已开工", "#cbd5e0", "construction started"),
        ],
        "其他",
        "#ed8936",
    ),
    _v(
        "low_efficiency_reason",
        "低效原因",
        "reason a parcel is low-efficiency",
        [
            ("diverted", "挪作他用", "#e53e3e", "put to another use (SJYT)", True),
            ("idle_use", "现状闲置", "#dd6b20", "idle in use (SJYT)", True),
            ("class_d", "D类企业", "#9b2c2c", "its enterprise is class D", True),
            ("tax_per_mu", "亩均税收低于标准", "#d69e2e", "tax per mu below the threshold", True),
            ("plot_ratio", "容积率低于下限", "#718096", "plot ratio below the minimum", True),
        ],
        "其他",
        "#718096",
    ),
    _v(
        "chain_stage",
        "用地链条",
        "Zhejiang's chain of land (DOMAIN_RULES §3)",
        [
            ("unsupplied", "批而未供", None, "approved, not supplied"),
            ("unused", "供而未用", None, "supplied, not used (not started)"),
            (
                "underused",
                "用而未尽",
                None,
                "used, not fully (part developed, stopped or below plot ratio)",
            ),
            ("not_operating", "建而未投", None, "built, not in production"),
            (
                "below_standard",
                "投而未达标",
                None,
                "in production, below standard (tax per mu, class D, use)",
            ),
        ],
        "达标",
    ),
    _v(
        "eval_class",
        "评价等级",
        "A/B/C/D evaluation class (DOMAIN_RULES §2); also a zone's 亩均税收 class",
        [
            ("A", "A类", "#1a9850", "class A"),
            ("B", "B类", "#91cf60", "class B"),
            ("C", "C类", "#fc8d59", "class C"),
            ("D", "D类", "#d73027", "class D"),
        ],
        "未评价",
        "#cccccc",
    ),
    _v(
        "platform_kind",
        "四类平台",
        "the four kinds of platforms (DOMAIN_RULES §4)",
        [
            ("consolidate_host", "整合托管型(托管主体)", "#2b6cb0", "consolidate: host"),
            ("consolidate_member", "整合托管型(被托管)", "#63b3ed", "consolidate: member"),
            ("to_innovation", "转为创新型", "#805ad5", "turn to innovation"),
            ("retain_upgrade", "保留提升型", "#38a169", "retain and upgrade"),
            ("phase_out", "逐步退出型", "#a0aec0", "phase out"),
        ],
        "未分类",
        "#718096",
    ),
    _v(
        "block_function",
        "地块组功能",
        "function of a block in the layout plan (DOMAIN_RULES §8)",
        [
            ("keep_industrial", "保留工业", "#8da0cb", "keep industrial"),
            ("to_m0", "转创新型产业", "#66c2a5", "to M0"),
            ("redevelop", "再开发", "#fc8d62", "redevelop"),
            ("exit", "退出", "#e5c494", "exit"),
        ],
    ),
    _v(
        "actual_use",
        "实际用途",
        "actual use SJYT (the contract's values)",
        [
            ("工业", "工业", "#4c78a8", "industrial"),
            ("创新型产业", "创新型产业", "#72b7b2", "innovative industry (M0)"),
            ("挪作他用", "挪作他用", "#e45756", "put to another use"),
            ("闲置", "闲置", "#f58518", "idle"),
        ],
        "其他/未填",
        "#9fb3c8",
    ),
    _v(
        "tax_band",
        "亩均税收分段",
        "亩均税收 band, 万元/亩 (bounds in gis/map/map_layers.py)",
        [
            ("<5", "<5 万元/亩", "#c53030", "under 5"),
            ("5-15", "5-15 万元/亩", "#ed8936", "5 to 15"),
            ("15-30", "15-30 万元/亩", "#ecc94b", "15 to 30"),
            ("30-60", "30-60 万元/亩", "#68d391", "30 to 60"),
            (">=60", "≥60 万元/亩", "#276749", "60 or more"),
        ],
        "无数据",
        "#cbd2d9",
    ),
    _v(
        "corridor",
        "走廊",
        "the two corridors (DOMAIN_RULES §8)",
        [
            ("CXKC", "城西科创大走廊", "#d69e2e", "west innovation corridor"),
            ("CDZZ", "城东智造大走廊", "#dd6b20", "east manufacturing corridor"),
        ],
        "走廊",
        "#dd6b20",
    ),
    _v(
        "search_kind",
        "搜索结果类型",
        "kind of a search hit",
        [
            ("enterprise", "企业", None, "enterprise"),
            ("parcel", "地块", None, "parcel"),
            ("supply", "供地", None, "supply record"),
            ("approval", "批文", None, "approval"),
        ],
    ),
    _v(
        "link_how",
        "关联方式",
        "how an enterprise is linked to a parcel (DOMAIN_RULES §1)",
        [
            ("key", "地块编号", None, "by DKBH"),
            ("contains", "坐标落入", None, "its point lies in the parcel"),
            ("nearest", "最近", None, "nearest parcel within 50 m"),
        ],
    ),
    _v(
        "indicator",
        "§7 指标",
        "indicators (两底线 两降低 四提升, DOMAIN_RULES §7)",
        [
            ("va_gdp_share", "工业增加值占GDP比重", None, "industrial value added / GDP"),
            ("industrial_land_mu", "工业用地面积", None, "industrial land"),
            ("energy_per_va", "单位工业增加值能耗", None, "energy per value added"),
            ("emissions_t", "排放总量", None, "emissions"),
            ("output_per_mu", "亩均产值", None, "output per mu"),
            ("tax_per_mu", "亩均税收", None, "tax per mu"),
            ("platform_output_share", "平台产值占比", None, "platforms' share of output"),
            ("featured_output_share", "特色产业产值占比", None, "featured industries' share"),
            ("high_tech_output_share", "高新技术产业产值占比", None, "high-tech share"),
        ],
    ),
    _v(
        "target_state",
        "目标进度",
        "a target's progress against the share of its year gone (docs/TARGETS.md)",
        [
            ("met", "已完成", "#2f855a", "target met"),
            ("on_track", "进度正常", "#3182ce", "on track for the share of the year gone", True),
            ("behind", "进度滞后", "#c53030", "behind the share of the year gone", True),
            ("no_data", "暂无实际值", "#a0aec0", "no actual figure yet"),
        ],
        "未计算",
        "#cbd5e0",
    ),
    _v(
        "target_indicator",
        "目标指标",
        "MB indicators beyond §7 (ZB codes; §7 indicators by their Chinese name)",
        [
            ("PH_PEWG", "盘活批而未供土地", None, "approved-not-supplied land brought into use"),
            ("PH_GEWY", "盘活供而未用/闲置土地", None, "idle supplied land brought into use"),
            ("PH_DX", "盘活低效用地", None, "low-efficiency land brought into use"),
            ("TT", "淘汰落后产能企业", None, "enterprises leaving under 淘汰落后产能"),
        ],
    ),
    _v(
        "target_item_reason",
        "盘活/淘汰计入原因",
        "why an item counts towards a 盘活 or 淘汰 target (docs/TARGETS.md)",
        [
            ("supplied", "批而未供部分已供地", None, "an approval's remainder supplied"),
            ("started", "闲置/供而未用已开工", None, "an idle supply started"),
            ("reclaimed", "闲置土地已收回", None, "an idle supply taken back (retired)"),
            ("above_thresholds", "低效用地已达标", None, "a low-efficiency parcel now clear"),
            ("redeveloped", "低效用地已收储/再开发", None, "a low-efficiency parcel retired"),
            ("enterprise_retired", "企业已退出名录", None, "enterprise retired from QY"),
            ("standards_cleared", "不达标已整改", None, "its failed standards cleared (BD)"),
        ],
    ),
    _v(
        "task_status",
        "任务状态",
        "status of a task, RW's ZT (the contract's values; an empty ZT reads as 未开始)",
        [
            ("未开始", "未开始", "#a0aec0", "not started"),
            ("进行中", "进行中", "#3182ce", "in progress"),
            ("已完成", "已完成", "#38a169", "done"),
        ],
    ),
    _v(
        "task_deadline",
        "任务期限",
        "a task judged against its deadline (JDYQ) at the as-of date (docs/TASKS.md)",
        [
            (
                "overdue",
                "逾期未完成",
                "#e53e3e",
                "past its deadline and not done, or a sub-task is",
                True,
            ),
            ("open", "未到期", "#3182ce", "not done, deadline not yet passed"),
            ("no_deadline", "长期任务", "#805ad5", "not done, 长期 / 持续 or no deadline given"),
            ("done", "已完成", "#38a169", "done, and no sub-task overdue"),
        ],
    ),
    _v(
        "task_figure",
        "衡量任务的数据",
        "figures that measure a task (gis/core/rules.toml [tasks]; paths in app/routers/tasks.py)",
        [
            ("survey", "摸底调查家底", None, "the survey's totals and reconciliation lists"),
            ("plans", "工业用地布局规划", None, "layout plans of the corridors"),
            ("platforms", "四类平台", None, "platform kinds"),
            ("indicators", "两底线两降低四提升指标", None, "§7 indicators per zone"),
            ("evaluations", "亩均效益综合评价", None, "A/B/C/D evaluation"),
            ("unsupplied", "批而未供清单", None, "approved, not supplied"),
            ("idle", "供而未用/闲置清单", None, "supplied, not used / idle"),
            ("low_efficiency", "低效用地清单", None, "low-efficiency parcels"),
            ("land_summary", "三块地汇总", None, "three kinds of land per zone"),
            ("backward_capacity", "淘汰落后产能名单", None, "backward-capacity candidates"),
            ("admission", "项目准入审查", None, "admission review of a project"),
            ("changes", "数据变更记录", None, "the change feed of every layer"),
            ("targets", "年度目标完成情况", None, "the year's targets and progress"),
            ("publications", "年度公布与排名", None, "the yearly publication and rankings"),
        ],
    ),
    _v(
        "assessment_component",
        "考核评价构成",
        "components of the platforms' assessment beyond the §7 indicators (docs/PUBLICATIONS.md)",
        [
            ("target_completion", "年度目标完成率", None, "mean completion of the MB targets"),
        ],
    ),
    _v(
        "publication_section",
        "年度公布章节",
        "sections of the yearly publication (docs/PUBLICATIONS.md)",
        [
            ("indicators", "两底线 两降低 四提升指标", None, "§7 indicators with ranks"),
            ("assessment", "工业平台考核评价与排名", None, "the platforms' assessment"),
            ("evaluation", "企业亩均效益综合评价(A/B/C/D)", None, "A/B/C/D lists"),
            ("three_lands", "三块地", None, "three kinds of land"),
            ("targets", "年度目标完成情况", None, "target completion"),
        ],
    ),
    _v(
        "map",
        "地图配色",
        "colours of the map and charts that belong to no code",
        [
            ("background", "底色", "#f4f1ea", "background"),
            ("district_line", "行政区界", "#334e68", "district boundary"),
            ("district_main", "主城区", "#d5e3f0", "main urban district"),
            ("district_other", "其他区县", "#e2e8d8", "other district"),
            ("label", "注记", "#243b53", "label text"),
            ("platform_label", "平台注记", "#1a365d", "platform label text"),
            ("halo", "注记描边", "#ffffff", "label halo"),
            ("parcel_line", "地块边界", "#2d3748", "parcel outline"),
            ("unsupplied_line", "批而未供边界", "#44337a", "approval outline"),
            ("idle_line", "闲置边界", "#742a2a", "supply outline"),
            ("low_efficiency_line", "低效边界", "#5f370e", "low-efficiency outline"),
            ("aggregate", "平台汇总", "#b3c5d6", "zone aggregate below parcel zoom"),
            ("enterprise", "企业", "#222222", "enterprise point"),
            ("reserve_fill", "筛选结果", "#ff7a00", "land-reserve list"),
            ("reserve_line", "筛选结果边界", "#c05621", "land-reserve outline"),
            ("draw_fill", "绘制范围", "#4299e1", "drawn area"),
            ("draw_line", "绘制边界", "#2c5282", "drawn outline"),
            ("selected", "选中", "#00e5ff", "selected feature"),
            ("chart", "图表", "#12355b", "chart bars"),
            ("chart_other", "图表(其他)", "#4c6e91", "other zones' bars"),
            ("chart_this", "图表(本对象)", "#9b2335", "this zone's bar"),
            ("chart_this_2", "图表(本对象, 第二项)", "#63171b", "this zone's second bar"),
            ("better", "向好", "#22543d", "change for the better"),
            ("worse", "变差", "#9b2c2c", "change for the worse"),
            ("no_data", "无数据", "#d9d9d9", "no figure, or not published (printed maps)"),
        ],
    ),
)

BY_NAME: dict[str, Vocabulary] = {v.name: v for v in VOCABULARIES}


def vocabulary(name: str) -> Vocabulary:
    return BY_NAME[name]


def labels(name: str) -> dict[str, str]:
    """code -> Chinese label, in order."""
    return {t.code: t.label for t in BY_NAME[name].terms}


def colours(name: str) -> dict[str, str]:
    """code -> colour, in order (terms without a colour left out)."""
    return {t.code: t.colour for t in BY_NAME[name].terms if t.colour}


def label(name: str, code: str | None) -> str | None:
    """The label of ``code``; the vocabulary's ``other_label`` (or the code) when unknown."""
    v = BY_NAME[name]
    for t in v.terms:
        if t.code == code:
            return t.label
    return v.other_label if code is None else code


def colour(name: str, code: str) -> str:
    return colours(name)[code]


def match_expression(name: str, prop: str) -> list:
    """A MapLibre ``match`` expression colouring features by the code in ``prop``."""
    v = BY_NAME[name]
    expr: list = ["match", ["coalesce", ["get", prop], ""]]
    for code, c in colours(name).items():
        expr += [code, c]
    return [*expr, v.other_colour or "rgba(0,0,0,0)"]


def as_json() -> dict:
    """The whole vocabulary as ``GET /api/vocabulary`` serves it."""
    return {
        "vocabularies": {
            v.name: {
                "title": v.title,
                "english": v.english,
                "other": {"label": v.other_label, "colour": v.other_colour},
                "terms": [
                    {
                        "code": t.code,
                        "label": t.label,
                        "colour": t.colour,
                        "english": t.english,
                        "order": i,
                        "flagged": t.flagged,
                    }
                    for i, t in enumerate(v.terms)
                ],
            }
            for v in VOCABULARIES
        }
    }


@cache
def serialised() -> tuple[bytes, str]:
    """(JSON body, strong ETag) of :func:`as_json`."""
    body = json.dumps(as_json(), ensure_ascii=False, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
