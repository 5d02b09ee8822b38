"""Tables of platform kinds (§4) and layout plans (§8); migration 0007.

- ``platform_kind_overrides``: a planner's override of a platform's kind (§4), append-only: the
  latest row per platform applies; a row with ``kind`` NULL clears the override. Who and when are
  kept with the reason.
- ``platform_kind_runs`` / ``platform_kinds``: the current kinds (the one run of trigger
  ``current``, kept by the graph's ``platform_kinds`` producer) and recorded classifications
  (snapshots: CLI, overrides).
- ``plans``: one versioned scenario (name + version), its request, the rules and inputs it used,
  the kinds it saw, totals and the invariants it checked.
- ``plan_allocations``: the new industrial land per district, platform and corridor (亩).
- ``plan_blocks``: each block of the corridors (a parcel or a group of adjacent parcels) with its
  function and reasons; geometry MultiPolygon EPSG:4549, areas m² and 亩 (m² × 0.0015).

Admission checks (§5) and classifications are computed on request and write nothing.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from gis.core.layers import STORAGE_SRID
from gis.core.models import metadata
from gis.core.plan_names import ALLOCATION_LEVELS, FUNCTIONS, KINDS

platform_kind_overrides = Table(
    "platform_kind_overrides",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("platform_code", Text, nullable=False, index=True),  # PTDM
    Column("kind", Text),  # NULL: the override is withdrawn (the rules decide again)
    Column("reason", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"kind IS NULL OR kind IN {KINDS}", name="kind"),
    CheckConstraint("length(btrim(reason)) > 0", name="reason"),
)

# The current kinds (trigger ``current``: one run updated in place by the graph's producer) and
# recorded classifications (``landlink classify``, each override). The map and the OGC
# ``platforms`` collection show the current kinds; GET /api/platforms computes live instead.
platform_kind_runs = Table(
    "platform_kind_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("tax_year", Integer),
    Column("tax_source", Text, nullable=False),
    Column("median_tax_per_mu", Double),
    Column("rules", JSONB, nullable=False),
    Column("trigger", Text, nullable=False),  # cli | override | analyse-all
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

platform_kinds = Table(
    "platform_kinds",
    metadata,
    Column(
        "run_id",
        BigInteger,
        ForeignKey("platform_kind_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("platform_code", Text, nullable=False),  # PTDM
    Column("kind", Text, nullable=False),  # in force (override applied)
    Column("rule_kind", Text, nullable=False),  # what the rules decided
    Column("host_code", Text),
    Column("host_distance_m", Double),
    Column("tax_per_mu", Double),  # 万元/亩 (restricted)
    Column("reasons", JSONB, nullable=False),
    Column("override", JSONB),
    PrimaryKeyConstraint("run_id", "platform_code", name="pk_platform_kinds"),
    CheckConstraint(f"kind IN {KINDS}", name="kind"),
)

plans = Table(
    "plans",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("target_year", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("tax_year", Integer),
    Column("request", JSONB, nullable=False),  # the request as given, with defaults filled in
    Column("rules_hash", Text, nullable=False),
    Column("detection_run_id", BigInteger),  # the three-lands run whose idle / low-eff land it used
    Column("kinds", JSONB, nullable=False),  # {PTDM: kind} as the plan saw them
    Column("totals", JSONB, nullable=False),
    Column("invariants", JSONB, nullable=False),
    Column("notes", JSONB, nullable=False, server_default="[]"),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seconds", Double),
    UniqueConstraint("name", "version"),
)

plan_allocations = Table(
    "plan_allocations",
    metadata,
    Column("plan_id", BigInteger, ForeignKey("plans.id", ondelete="CASCADE"), nullable=False),
    Column("level", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("district_code", Text),
    Column("kind", Text),  # platforms only
    Column("tax_per_mu", Double),  # 万元/亩 (restricted: analysts only)
    Column("score", Double),
    Column("capacity_mu", Double, nullable=False),
    Column("corridor_capacity_mu", Double, nullable=False),
    Column("new_mu", Double, nullable=False),
    Column("corridor_mu", Double, nullable=False),  # part of new_mu inside the corridors
    Column("industrial_mu_today", Double, nullable=False),
    Column("exit_mu", Double, nullable=False),
    Column("m0_mu", Double, nullable=False),
    Column("redevelop_mu", Double, nullable=False),
    PrimaryKeyConstraint("plan_id", "level", "code", name="pk_plan_allocations"),
    CheckConstraint(f"level IN {ALLOCATION_LEVELS}", name="level"),
)

plan_blocks = Table(
    "plan_blocks",
    metadata,
    Column("plan_id", BigInteger, ForeignKey("plans.id", ondelete="CASCADE"), nullable=False),
    Column("block_no", Integer, nullable=False),
    Column("corridor_code", Text, nullable=False),
    Column("platform_code", Text),
    Column("platform_kind", Text),
    Column("district_code", Text),
    Column("function", Text, nullable=False),
    Column("parcel_count", Integer, nullable=False),
    Column("parcel_nos", ARRAY(Text), nullable=False),
    Column("area_m2", Double, nullable=False),
    Column("area_mu", Double, nullable=False),
    Column("idle_mu", Double, nullable=False),
    Column("low_efficiency_mu", Double, nullable=False),
    Column("flagged_mu", Double, nullable=False),  # idle or low-efficiency (each parcel once)
    Column("innovation_mu", Double, nullable=False),
    Column("reasons", JSONB, nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=False)),
    PrimaryKeyConstraint("plan_id", "block_no", name="pk_plan_blocks"),
    CheckConstraint(f"function IN {FUNCTIONS}", name="function"),
    Index("ix_plan_blocks_geom", "geom", postgresql_using="gist"),
)
