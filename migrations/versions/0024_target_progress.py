"""Targets' progress: the baseline of a year, its backward-capacity list, progress and items

Revision ID: 0024_target_progress
Revises: 0023_targets_tasks
Create Date: 2026-12-04

- ``detection_runs.baseline_year``: the year a recorded run is the baseline of for 盘活 / 淘汰
  targets (``landlink detect --baseline``); at most one run per year;
- ``detection_backward_capacity``: a recorded run's §6 candidate list as it stood then;
- ``target_progress``: per MB target (year + level + zone + indicator) the actual figure,
  completion (%), state and what it was read from (derived: producer ``target_progress``);
- ``target_progress_items``: the items a 盘活 / 淘汰 target counts, with reason and the change
  that made each count.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0024_target_progress"
down_revision = "0023_targets_tasks"
branch_labels = None
depends_on = None


def _key() -> list:
    return [
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("zone_code", sa.Text(), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("detection_runs", sa.Column("baseline_year", sa.Integer(), nullable=True))
    op.create_index(
        "uq_detection_runs_baseline_year",
        "detection_runs",
        ["baseline_year"],
        unique=True,
        postgresql_where=sa.text("baseline_year IS NOT NULL"),
    )
    op.create_table(
        "detection_backward_capacity",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("industry_code", sa.Text()),
        sa.Column("industry", sa.Text()),
        sa.Column("class", sa.Text()),
        sa.Column("failed_standards", ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("district_code", sa.Text()),
        sa.Column("platform_code", sa.Text()),
        sa.Column("area_mu", sa.Double()),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["detection_runs.id"],
            name=op.f("fk_detection_backward_capacity_run_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "uscc", name="pk_detection_backward_capacity"),
    )
    op.create_table(
        "target_progress",
        *_key(),
        sa.Column("target_value", sa.Double(), nullable=False),
        sa.Column("actual", sa.Double()),
        sa.Column("completion", sa.Double()),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("share_of_year", sa.Double(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("better", sa.Text(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("baseline_run_id", sa.BigInteger()),
        sa.Column("items", sa.Integer()),
        sa.Column("figures", JSONB(), nullable=False, server_default="{}"),
        sa.Column("note", sa.Text()),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint(
            "year", "level", "zone_code", "indicator", name="pk_target_progress"
        ),
    )
    op.create_table(
        "target_progress_items",
        *_key(),
        sa.Column("item_key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("mu", sa.Double()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", JSONB(), nullable=False, server_default="{}"),
        sa.Column("after", JSONB(), nullable=False, server_default="{}"),
        sa.Column("change", JSONB()),
        sa.PrimaryKeyConstraint(
            "year",
            "level",
            "zone_code",
            "indicator",
            "item_key",
            name="pk_target_progress_items",
        ),
    )


def downgrade() -> None:
    op.drop_table("target_progress_items")
    op.drop_table("target_progress")
    op.drop_table("detection_backward_capacity")
    op.drop_index("uq_detection_runs_baseline_year", table_name="detection_runs")
    op.drop_column("detection_runs", "baseline_year")
