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


class Rules(Section):
    linkage: LinkageRules = LinkageRules()


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
