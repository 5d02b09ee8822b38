"""The three lands' result rows by their natural keys

Revision ID: 0013_result_key_indexes
Revises: 0012_live_detection
Create Date: 2026-12-04

The live detection run is kept current by changed keys (PZWH, DZJGH, DKBH): each refresh reads,
deletes and rewrites the rows of those keys. Without an index on (run_id, key) every such lookup
read all the run's rows (94,976 supply records on a 98,048-parcel city), and the planner joined
the zones to every supply record before filtering by the key (1.4 s for one DZJGH).
"""

from alembic import op

revision = "0013_result_key_indexes"
down_revision = "0012_live_detection"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_unsupplied_results_key", "unsupplied_results", "approval_no"),
    ("ix_idle_results_key", "idle_results", "supply_no"),
    ("ix_low_efficiency_results_key", "low_efficiency_results", "parcel_no"),
)


def upgrade() -> None:
    for name, table, key in INDEXES:
        op.create_index(name, table, ["run_id", key])


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
