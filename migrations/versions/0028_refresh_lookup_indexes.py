"""Indexes for lookups every one-row refresh makes

Revision ID: 0028_refresh_lookup_indexes
Revises: 0027_detection_status_indexes
Create Date: 2026-12-05

Found by counting the sequential scans of a one-row change's refresh (``pg_stat_user_tables``
before and after ``bench/refresh_profile.py``, statements by ``auto_explain``) on a 98,048-parcel
city:

- the evaluation's supply records of the enterprises in question (their own GD records by the
  grantee's USCC, SRRDM): every CC or QY change read all 94,253 supply records (35-38 ms);
- the 低效 results of changed supply records (the targets' 盘活 items, the three lands' scope):
  every change read all 38,000 low-efficiency results (12-20 ms).
"""

from alembic import op

revision = "0028_refresh_lookup_indexes"
down_revision = "0027_detection_status_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_supplies_grantee_uscc", "supplies", ["grantee_uscc"])
    op.create_index("ix_low_efficiency_results_supply_no", "low_efficiency_results", ["supply_no"])


def downgrade() -> None:
    op.drop_index("ix_low_efficiency_results_supply_no", "low_efficiency_results")
    op.drop_index("ix_supplies_grantee_uscc", "supplies")
