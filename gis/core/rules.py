"""Domain-rule configuration: every threshold and weight, in one TOML file, validated at start.

The default file is gis/core/rules.toml (``LANDLINK_RULES_FILE`` points elsewhere). Each value cites
its source there; "default (ours)" marks our own choice where no source fixes a number
(../shared/DOMAIN_RULES.md). Each analysis module reads its own section.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from gis.core.config import get_settings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkageRules(Section):
    nearest_max_m: float = 50.0  # §1 enterprise -> nearest parcel within 50 m, default (ours)
    supply_min_overlap: float = 0.5  # §1 supply -> parcel: largest overlap >= 50 % of parcel
    project_min_overlap: float = 0.5  # §1 project -> supply/parcel by overlap >= 50 %, ours


class UnsuppliedRules(Section):
    """§3 批而未供: sliver removal and age bands."""

    sliver_min_m2: float = 100.0  # §3 parts under 100 m² are dropped, default (ours)
    sliver_min_width_m: float = 5.0  # §3 parts thinner than 5 m are dropped, default (ours)
    age_band_years: list[int] = [1, 2, 3, 5]  # §3 bands < 1, 1-2, 2-3, 3-5, >= 5 years


class IdleRules(Section):
    """§3 供而未用 / 闲置 (闲置土地处置办法, 国土资源部令第53号, art. 2 and 14)."""

    idle_after_years: int = 1  # art. 2: not started > 1 year after HTKGSJ
    reclaim_after_years: int = 2  # art. 14: idle >= 2 years -> may be taken back
    partial_developed_share: float = 1 / 3  # art. 2: developed < 1/3 of supplied area
    partial_investment_share: float = 0.25  # art. 2: investment < 25 % of the total
    partial_stopped_years: int = 1  # art. 2: stopped (TGRQ) for a year
    footprint_min_share: float = 0.05  # §3 footprint < 5 % while started: disagree, ours


class LowEfficiencyRules(Section):
    """§3 低效利用."""

    plot_ratio_floor: float = 1.0  # §3 floor where no RJLXX (Taizhou 2025 低效工业用地)
    tax_per_mu_min: float = 5.0  # §3 亩均税收 floor, 万元/亩, default (ours)
    tax_per_mu_by_platform: dict[str, float] = {}  # §3 per-platform floors (PTDM -> 万元/亩)
    tax_year_lag: int = 1  # ours: tax of the latest year up to as_of's year minus this
    skip_under_construction: bool = True  # ours: no plot-ratio reason before HTJGSJ


class PlatformKindRules(Section):
    """§4 四类平台 (杭政办函〔2017〕127号, 三(三)1); see docs/PLATFORMS_AND_PLAN.md."""

    host_levels: list[str] = ["国家级"]  # §4: every national-level zone hosts
    # §4: provincial 经济开发区 host; PTLX 经济技术开发区 at 省级 too; 省级 高新区 do not (ours)
    host_provincial_types: list[str] = ["经济技术开发区", "经济开发区"]
    member_max_distance_m: float = 2000.0  # §4 touching or within 2 km, default (ours)
    retain_min_area_m2: float = 1_000_000.0  # §4 保留提升型: >= 1 km²
    tax_year_lag: int = 1  # ours: 亩均税收 of the latest year <= year(as_of) - lag


class AdmissionStandard(Section):
    """杭政〔2014〕12号 admission standards for one district (万元, 万元/亩)."""

    investment_total_min: float  # 投资总额 >= (万元)
    investment_per_mu_min: float  # 亩均投资强度 >= (万元/亩)
    output_per_mu_min: float  # 亩均产值 >= (万元/亩)
    tax_per_mu_min: float  # 亩均税收 >= (万元/亩)


class AdmissionRules(Section):
    """§5 项目准入: thresholds per district (XZQDM), ``default`` for districts not listed."""

    default: AdmissionStandard = AdmissionStandard(
        investment_total_min=3000.0,
        investment_per_mu_min=300.0,
        output_per_mu_min=400.0,
        tax_per_mu_min=25.0,
    )
    districts: dict[str, AdmissionStandard] = {}
    supplied_overlap_min_m2: float = 1.0  # ours: overlaps under 1 m² are drawing noise


class PlanWeights(Section):
    """§8 weights of the allocation score (ours); a request may give its own."""

    tax: float = 1.0  # exponent on 亩均税收 ÷ city median of platforms
    corridor: float = 1.0  # score bonus inside a corridor: × (1 + corridor)
    kinds: dict[str, float] = {
        "consolidate_host": 1.0,
        "consolidate_member": 1.0,
        "retain_upgrade": 1.0,
        "to_innovation": 0.5,
        "phase_out": 0.0,
    }


class PlanRules(Section):
    """§8 用地布局规划 for the two corridors; every figure here is ours unless stated."""

    corridor_min_share: float = 0.6  # share of new land inside the corridors (request default)
    developable_share: float = 0.6  # share of a platform's vacant land that can be supplied
    block_gap_m: float = 10.0  # corridor parcels this close form one block
    tax_floor_ratio: float = 0.1  # 亩均税收 below this × median scores as this × median
    exit_min_share: float = 0.5  # idle + low-efficiency share for exit (no or phase_out platform)
    redevelop_min_share: float = 0.2  # idle + low-efficiency share for redevelop
    m0_min_share: float = 0.5  # innovation-land share for to_m0 in an innovation corridor
    innovation_corridors: list[str] = ["CXKC"]  # 城西科创大走廊 leans to 创新型产业 (M0)
    m0_counts_as_industrial: bool = True  # M0 / 100104 is industrial land (DATA_CONTRACT)
    idle_statuses: list[str] = ["overdue", "idle", "idle_reclaimable", "partial_idle"]
    weights: PlanWeights = PlanWeights()


class EvaluationRules(Section):
    """§2 A/B/C/D 亩均效益综合评价 (浙政发〔2018〕5号; weights as Huangyan 2022/2023)."""

    # §2 规上: score = Σ weight × value ÷ benchmark (benchmark = group mean of the year)
    above_weights: dict[str, float] = {
        "tax_per_mu": 30.0,
        "va_per_mu": 20.0,
        "va_per_energy": 20.0,
        "va_per_emission": 10.0,
        "labour_productivity": 10.0,
        "rd_intensity": 10.0,
    }
    below_weights: dict[str, float] = {"tax_per_mu": 50.0, "revenue_per_mu": 50.0}  # §2 规下
    mean_points_if_missing: list[str] = ["va_per_energy", "va_per_emission"]  # §2
    below_min_mu: float = 3.0  # §2 规下 evaluated on >= 3 亩 (several Zhejiang counties)
    class_cutoffs: list[float] = [0.25, 0.70, 0.95]  # §2 A top 25 %, B to 70 %, C to 95 %
    utility_prefixes: list[str] = ["44", "45", "46"]  # §2 utilities: GB/T 4754 44-46
    new_enterprise_years: int = 2  # §2 founded under 2 years ago: not graded
    new_supply_years: int = 2  # ours: "newly supplied" = GDRQ within 2 years of the year's end

    @model_validator(mode="after")
    def _check(self) -> EvaluationRules:
        known = {
            "tax_per_mu",
            "va_per_mu",
            "va_per_energy",
            "va_per_emission",
            "labour_productivity",
            "rd_intensity",
            "revenue_per_mu",
            "output_per_mu",
        }
        for name in ("above_weights", "below_weights"):
            w = getattr(self, name)
            if not w or set(w) - known or any(v < 0 for v in w.values()):
                raise ValueError(f"evaluation.{name}: weights >= 0 for indicators of {known}")
        c = self.class_cutoffs
        if len(c) != 3 or c[-1] > 1 or not all(a < b for a, b in zip([0.0, *c], c, strict=False)):
            raise ValueError("evaluation.class_cutoffs: three increasing shares in (0, 1]")
        return self


class BackwardCapacityRules(Section):
    """§6 淘汰落后产能 (GB/T 4754-2017 prefixes)."""

    industries: dict[str, list[str]] = {
        "造纸 paper": ["22"],
        "化工 chemicals": ["26"],
        "印染 dyeing": ["1713", "1723", "1733", "1743", "1752"],
        "纺织 textiles": ["17"],
        "建材 building materials": ["30"],
    }
    classes: list[str] = ["D"]  # §6 class D ...
    classes_with_failed_standard: list[str] = ["C"]  # ... or class C with a failed standard


class IndicatorRules(Section):
    """§7 两底线 两降低 四提升: what counts as featured and high-tech industry."""

    # ours: platform featured-industry names (TSCY) -> GB/T 4754-2017 prefixes
    featured_industry_codes: dict[str, list[str]] = {}
    # 国家统计局《高技术产业（制造业）分类（2017）》, by GB/T 4754-2017 prefix (ours, abridged)
    high_tech_prefixes: list[str] = ["27", "374", "39", "358", "40", "2664", "2665"]


class TaskMeasure(Section):
    """One rule of what measures a task: a task whose 工作项目 (GZXM) holds one of ``keywords``
    (its 具体要求 JTYQ when no rule matches the 工作项目) is measured by the year's targets of
    ``targets`` (MB indicators, ZB) and by the ``figures`` (vocabulary ``task_figure``)."""

    keywords: list[str]
    targets: list[str] = []
    figures: list[str] = []
    reason: str


class TaskRules(Section):
    """RW 任务: which targets and figures measure a task (docs/TASKS.md, "Measures"). The
    defaults are in rules.toml only; a rules file without [tasks] measures no task."""

    measures: list[TaskMeasure] = []

    @model_validator(mode="after")
    def _check(self) -> TaskRules:
        from gis.core.layers import TARGET_INDICATORS
        from gis.core.vocabulary import labels

        figures = set(labels("task_figure"))
        for m in self.measures:
            if not m.keywords or any(not k.strip() for k in m.keywords):
                raise ValueError(f"tasks.measures: keywords must be non-empty ({m.reason!r})")
            unknown = set(m.targets) - set(TARGET_INDICATORS)
            if unknown:
                raise ValueError(
                    f"tasks.measures {m.keywords}: targets {unknown} are not MB indicators "
                    f"({' / '.join(TARGET_INDICATORS)})"
                )
            if set(m.figures) - figures:
                raise ValueError(
                    f"tasks.measures {m.keywords}: figures {set(m.figures) - figures} are not of "
                    f"{', '.join(figures)}"
                )
        return self


class AssessmentRules(Section):
    """考核评价 of the platforms (杭政办函〔2017〕127号: 年度亩均产值、亩均税收考核指标,
    考核评价办法; weights after 浙政发〔2018〕5号 亩均效益评价, 亩均税收 and 亩均增加值
    heaviest). docs/PUBLICATIONS.md."""

    # §7 indicator (gis/economy/indicators.py INDICATORS) -> weight; better direction and
    # restriction are the indicator's own
    weights: dict[str, float] = {
        "tax_per_mu": 30.0,
        "output_per_mu": 20.0,
        "energy_per_va": 15.0,
        "high_tech_output_share": 10.0,
        "featured_output_share": 10.0,
    }
    target_completion: float = 15.0  # weight of the mean completion of the platform's MB targets

    @model_validator(mode="after")
    def _check(self) -> AssessmentRules:
        known = {
            "va_gdp_share",
            "industrial_land_mu",
            "energy_per_va",
            "emissions_t",
            "output_per_mu",
            "tax_per_mu",
            "platform_output_share",
            "featured_output_share",
            "high_tech_output_share",
        }
        w = self.weights
        if not w or set(w) - known or any(v <= 0 for v in w.values()):
            raise ValueError(f"assessment.weights: weights > 0 for §7 indicators of {known}")
        if self.target_completion < 0:
            raise ValueError("assessment.target_completion: a weight >= 0")
        return self


class PublicationRules(Section):
    """The yearly publication (每年公布各类数据) and its disclosure control."""

    publisher: str = "杭州市工业平台优化提升工作领导小组办公室"  # 发布单位 printed on the report
    # 统计法 art. 9 and 39; 统计调查中的个人信息和单个调查对象资料保密: a zone figure built from
    # fewer enterprises than this is suppressed in the public edition
    disclosure_min_enterprises: int = 3

    @model_validator(mode="after")
    def _check(self) -> PublicationRules:
        if self.disclosure_min_enterprises < 1:
            raise ValueError("publication.disclosure_min_enterprises: at least 1")
        return self


class Rules(Section):
    linkage: LinkageRules = LinkageRules()
    unsupplied: UnsuppliedRules = UnsuppliedRules()
    idle: IdleRules = IdleRules()
    low_efficiency: LowEfficiencyRules = LowEfficiencyRules()
    platform_kinds: PlatformKindRules = PlatformKindRules()
    admission: AdmissionRules = AdmissionRules()
    plan: PlanRules = PlanRules()
    evaluation: EvaluationRules = EvaluationRules()
    backward_capacity: BackwardCapacityRules = BackwardCapacityRules()
    indicators: IndicatorRules = IndicatorRules()
    tasks: TaskRules = TaskRules()
    assessment: AssessmentRules = AssessmentRules()
    publication: PublicationRules = PublicationRules()


def load(path: Path | None = None) -> Rules:
    """Parse and validate a rules file; raises ValueError naming the file and the problem."""
    p = Path(path or get_settings().rules_file)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
        return Rules.model_validate(data)
    except FileNotFoundError:
        raise ValueError(f"rules file {p} not found") from None
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ValueError(f"rules file {p}: {e}") from None


@lru_cache
def get_rules() -> Rules:
    return load()


def rules_hash(rules: Rules | None = None) -> str:
    """A short hash of the effective configuration, recorded with every analysis run."""
    r = rules or get_rules()
    return hashlib.sha256(r.model_dump_json().encode()).hexdigest()[:16]
