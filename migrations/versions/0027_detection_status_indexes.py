"""Detection results by run and status

Revision ID: 0027_detection_status_indexes
Revises: 0026_evaluation_score_bases
Create Date: 2026-12-05

The progress of 盘活 targets (gis/management/targets.py) reads, at every write that touches
supply records or the three lands, the records a baseline run flagged (``status IN (...)``): on a
98,048-parcel city one baseline run holds about 94,000 idle results of which about 1,000 are
flagged, and finding them took a sequential scan of every run's results (72 ms by ``EXPLAIN
ANALYZE`` of one year's 闲置 items, 0.09–0.10 s per year in a write).
"""

from alembic import op

revision = "0027_detection_status_indexes"
down_revision = "0026_evaluation_score_bases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idle_results_status", "idle_results", ["run_id", "status"])
    op.create_index("ix_unsupplied_results_status", "unsupplied_results", ["run_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_unsupplied_results_status", "unsupplied_results")
    op.drop_index("ix_idle_results_status", "idle_results")
