"""Tables of the three-kinds-of-land detection (三块地): one recorded run, results keyed by run id.

Every result row belongs to one ``detection_runs`` row (as-of date, configuration hash, the input
batches it read, counts, time), so a figure can be explained and re-run. Geometries are EPSG:4549
(metres); areas are m² and 亩 (m² × 0.0015). Written by gis/lands/detection.py; migrations 0004
and 0012 (the live run, kept current by the derivation graph, and the zone shares).
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from gis.core.layers import STORAGE_SRID
from gis.core.models import metadata

IDLE_STATUSES = ("not_due", "started", "overdue", "idle", "idle_reclaimable", "partial_idle")
UNSUPPLIED_STATUSES = ("unsupplied", "partial", "supplied")
REASON_CODES = ("plot_ratio", "tax_per_mu", "class_d", "diverted", "idle_use")
AGE_BANDS = ("<1", "1-2", "2-3", "3-5", ">=5")


def _run_fk() -> Column:
    return Column(
        "run_id", BigInteger, ForeignKey("detection_runs.id", ondelete="CASCADE"), nullable=False
    )


def _zones() -> list[Column]:
    """District / platform / corridor holding the largest share of the row's area (§1), and the
    day the row was judged as of (in the live run, the refresh that last wrote it)."""
    return [
        Column("district_code", Text),
        Column("platform_code", Text),
        Column("corridor_code", Text),
        Column("as_of", Date),
    ]


detection_runs = Table(
    "detection_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("config_hash", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    # {layer: {"rows": n, "batches": [ids], "hash": md5 of row hashes}}
    Column("inputs", JSONB, nullable=False),
    Column("inputs_hash", Text, nullable=False),
    Column("counts", JSONB, nullable=False, server_default="{}"),
    Column("notes", JSONB, nullable=False, server_default="[]"),
    Column("created_by", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("seconds", Double),
    # the one run the derivation graph keeps current (recorded runs are frozen snapshots)
    Column("live", Boolean, nullable=False, server_default="false"),
    # the year this recorded run is the baseline of for 盘活 / 淘汰 targets (``landlink detect
    # --baseline``, migration 0024); without one, a year's baseline is its first recorded run
    Column("baseline_year", Integer),
    Index("uq_detection_runs_live", "live", unique=True, postgresql_where=text("live")),
    Index(
        "uq_detection_runs_baseline_year",
        "baseline_year",
        unique=True,
        postgresql_where=text("baseline_year IS NOT NULL"),
    ),
)

unsupplied_results = Table(
    "unsupplied_results",
    metadata,
    _run_fk(),
    Column("approval_id", BigInteger, nullable=False),
    Column("approval_no", Text, nullable=False),  # PZWH
    Column("batch_name", Text),
    Column("approved_on", Date, nullable=False),
    Column("approved_m2", Double, nullable=False),
    Column("supplied_m2", Double, nullable=False),  # approval ∩ ∪ supplies
    Column("sliver_m2", Double, nullable=False),  # remainder parts dropped as slivers
    Column("unsupplied_m2", Double, nullable=False),
    Column("unsupplied_mu", Double, nullable=False),
    Column("unsupplied_share", Double, nullable=False),  # unsupplied_m2 / approved_m2
    Column("years_since_approval", Double, nullable=False),
    Column("age_band", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("supply_nos", ARRAY(Text), nullable=False, server_default="{}"),
    *_zones(),
    Column("geom", Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=False)),
    PrimaryKeyConstraint("run_id", "approval_id", name="pk_unsupplied_results"),
    CheckConstraint(f"status IN {UNSUPPLIED_STATUSES}", name="status"),
    Index("ix_unsupplied_results_geom", "geom", postgresql_using="gist"),
    Index("ix_unsupplied_results_key", "run_id", "approval_no"),
    Index("ix_unsupplied_results_status", "run_id", "status"),
    Index("ix_unsupplied_results_supply_nos", "supply_nos", postgresql_using="gin"),
)

idle_results = Table(
    "idle_results",
    metadata,
    _run_fk(),
    Column("supply_id", BigInteger, nullable=False),
    Column("supply_no", Text, nullable=False),  # DZJGH
    Column("status", Text, nullable=False),
    Column("days_overdue", Integer),
    Column("area_m2", Double, nullable=False),
    Column("area_mu", Double, nullable=False),
    Column("supplied_on", Date),
    Column("agreed_start", Date),
    Column("actual_start", Date),
    Column("actual_completion", Date),
    Column("stopped_on", Date),
    Column("rule", Text, nullable=False),
    Column("consequence", Text, nullable=False),
    Column("figures", JSONB, nullable=False, server_default="{}"),
    Column("footprint_share", Double),
    Column("records_disagree", Boolean),
    Column("parcel_nos", ARRAY(Text), nullable=False, server_default="{}"),
    *_zones(),
    PrimaryKeyConstraint("run_id", "supply_id", name="pk_idle_results"),
    CheckConstraint(f"status IN {IDLE_STATUSES}", name="status"),
    Index("ix_idle_results_key", "run_id", "supply_no"),
    Index("ix_idle_results_status", "run_id", "status"),
    Index("ix_idle_results_parcel_nos", "parcel_nos", postgresql_using="gin"),
)

low_efficiency_results = Table(
    "low_efficiency_results",
    metadata,
    _run_fk(),
    Column("parcel_id", BigInteger, nullable=False),
    Column("parcel_no", Text, nullable=False),  # DKBH
    Column("area_m2", Double, nullable=False),
    Column("area_mu", Double, nullable=False),
    Column("actual_use", Text),
    Column("supply_no", Text),
    # [{"code", "figure", "threshold", "unit", "source"}], one per reason that applies
    Column("reasons", JSONB, nullable=False),
    Column("reason_codes", ARRAY(Text), nullable=False),
    *_zones(),
    PrimaryKeyConstraint("run_id", "parcel_id", name="pk_low_efficiency_results"),
    Index("ix_low_efficiency_results_reason_codes", "reason_codes", postgresql_using="gin"),
    Index("ix_low_efficiency_results_key", "run_id", "parcel_no"),
    Index("ix_low_efficiency_results_supply_no", "supply_no"),
)

detection_summaries = Table(
    "detection_summaries",
    metadata,
    _run_fk(),
    Column("level", Text, nullable=False),  # district | platform | corridor
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("kind", Text, nullable=False),  # unsupplied | idle | low_efficiency
    Column("count", Integer, nullable=False),  # items whose largest area share lies here
    Column("area_mu", Double, nullable=False),  # area shares lying here (split by boundaries)
    PrimaryKeyConstraint("run_id", "level", "code", "kind", name="pk_detection_summaries"),
)

# Per flagged item of a run: the area of it in each zone (批而未供: of the unsupplied remainder)
# and whether the zone holds the item's largest share; detection_summaries are sums over it.
detection_zone_shares = Table(
    "detection_zone_shares",
    metadata,
    _run_fk(),
    Column("kind", Text, nullable=False),  # unsupplied | idle | low_efficiency
    Column("key", Text, nullable=False),  # PZWH, DZJGH or DKBH
    Column("level", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("area_m2", Double, nullable=False),
    Column("top", Boolean, nullable=False),
    PrimaryKeyConstraint("run_id", "kind", "key", "level", "code", name="pk_detection_zone_shares"),
    Index("ix_detection_zone_shares_zone", "run_id", "level", "code"),
)

# A recorded run's §6 backward-capacity candidate list (gis/economy/backward_capacity.py) as it
# stood when the run was recorded, for the evaluation year then latest: what a year's 淘汰 (TT)
# targets count from (migration 0024). The live run keeps none.
detection_backward_capacity = Table(
    "detection_backward_capacity",
    metadata,
    _run_fk(),
    Column("uscc", Text, nullable=False),
    Column("year", Integer, nullable=False),  # the evaluation year of the list
    Column("name", Text),
    Column("industry_code", Text),
    Column("industry", Text),
    Column("class", Text),
    Column("failed_standards", ARRAY(Text), nullable=False, server_default="{}"),
    Column("district_code", Text),
    Column("platform_code", Text),
    Column("area_mu", Double),
    PrimaryKeyConstraint("run_id", "uscc", name="pk_detection_backward_capacity"),
)

RESULT_TABLES = {
    "unsupplied": unsupplied_results,
    "idle": idle_results,
    "low_efficiency": low_efficiency_results,
}

# Each surveyed parcel's place on the chain of land (gis/lands/chain.py), as the live run and
# the other rules stand: kept by the graph's producer ``chain`` (migration 0034). One row per
# parcel; ``position`` a ``chain_stage`` code or ``cleared``.
chain_positions = Table(
    "chain_positions",
    metadata,
    Column("parcel_no", Text, nullable=False),  # DKBH
    Column("position", Text, nullable=False),
    PrimaryKeyConstraint("parcel_no", name="pk_chain_positions"),
)
