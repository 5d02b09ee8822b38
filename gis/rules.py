"""Domain-rule configuration: every threshold and weight, in one TOML file, validated at start.

The default file is gis/rules.toml (``LANDLINK_RULES_FILE`` points elsewhere). Each value cites
its source there; "default (ours)" marks our own choice where no source fixes a number
(../shared/DOMAIN_RULES.md). Each analysis module reads its own section.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gis.config import get_settings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkageRules(Section):
    nearest_max_m: float = 50.0  # §1 enterprise -> nearest parcel within 50 m, default (ours)
    supply_min_overlap: float = 0.5  # §1 supply -> parcel: largest overlap >= 50 % of parcel


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


class Rules(Section):
    linkage: LinkageRules = LinkageRules()
    unsupplied: UnsuppliedRules = UnsuppliedRules()
    idle: IdleRules = IdleRules()
    low_efficiency: LowEfficiencyRules = LowEfficiencyRules()


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
