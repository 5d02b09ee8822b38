"""Tables of the targets' progress (gis/management/targets.py, migration 0024).

``target_progress``: one row per MB target (key year + level + zone code + indicator, as MB),
with the actual figure, the completion (%), the state (vocabulary ``target_state``) judged against
the share of the year gone at ``as_of``, and what the figure was read from. Derived: written only
by the producer ``target_progress``. ``target_progress_items``: for a 盘活 (PH_*) or 淘汰 (TT)
target, each item that counts (an approval, supply record, parcel or enterprise), the reason it
counts, its state at the baseline and now, and the source row's history entry that made it count.
Areas in 亩.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Double,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from gis.core.models import metadata


def _key() -> list[Column]:
    return [
        Column("year", Integer, nullable=False),  # ND
        Column("level", Text, nullable=False),  # JB 区县 | 平台
        Column("zone_code", Text, nullable=False),  # DM
        Column("indicator", Text, nullable=False),  # ZB
    ]


target_progress = Table(
    "target_progress",
    metadata,
    *_key(),
    Column("target_value", Double, nullable=False),  # MBZ, in the indicator's unit
    Column("actual", Double),  # the same unit; NULL: no figure yet (see note)
    Column("completion", Double),  # %, see docs/TARGETS.md (lower-is-better: target / actual)
    Column("state", Text, nullable=False),  # met | on_track | behind | no_data
    Column("share_of_year", Double, nullable=False),  # 0..1 at as_of
    Column("kind", Text, nullable=False),  # indicator | land | backward
    Column("unit", Text, nullable=False),
    Column("better", Text, nullable=False),  # higher | lower
    Column("restricted", Boolean, nullable=False, server_default="false"),
    Column("baseline_run_id", BigInteger),  # 盘活 / 淘汰: the detection run compared with
    Column("items", Integer),  # 盘活 / 淘汰: items counted
    Column("figures", JSONB, nullable=False, server_default="{}"),
    Column("note", Text),
    Column("run_id", BigInteger, nullable=False),
    Column("as_of", Date, nullable=False),
    PrimaryKeyConstraint("year", "level", "zone_code", "indicator", name="pk_target_progress"),
)

target_progress_items = Table(
    "target_progress_items",
    metadata,
    *_key(),
    Column("item_key", Text, nullable=False),  # PZWH, DZJGH, DKBH or USCC
    Column("name", Text),
    Column("mu", Double),  # 亩 it counts for (盘活); NULL for an enterprise (淘汰)
    Column("reason", Text, nullable=False),  # vocabulary target_item_reason
    Column("before", JSONB, nullable=False, server_default="{}"),  # at the baseline
    Column("after", JSONB, nullable=False, server_default="{}"),  # now
    # the source row's history entry: layer, key, version, op, who, at, via (NULL: none found)
    Column("change", JSONB),
    PrimaryKeyConstraint(
        "year", "level", "zone_code", "indicator", "item_key", name="pk_target_progress_items"
    ),
)

TABLES = (target_progress, target_progress_items)
