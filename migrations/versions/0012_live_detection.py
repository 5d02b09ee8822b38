"""The live detection run and its zone shares

Revision ID: 0012_live_detection
Revises: 0011_row_history
Create Date: 2026-12-10

``detection_runs.live``: the one run whose rows the derivation graph keeps current (at most one
row has it; recorded runs made by ``landlink detect`` are frozen snapshots). Each result table
gains ``as_of``: the day its row was judged as of. ``detection_zone_shares``: per flagged item of
a run, the area of it lying in each district, platform and corridor (for 批而未供 the unsupplied
remainder's) and whether that zone holds the largest share of the item; the zone summaries are
sums over it, so the summaries of the zones a change touches are recomputed alone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_live_detection"
down_revision = "0011_row_history"
branch_labels = None
depends_on = None

RESULTS = ("unsupplied_results", "idle_results", "low_efficiency_results")


def upgrade() -> None:
    op.add_column(
        "detection_runs",
        sa.Column("live", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "uq_detection_runs_live",
        "detection_runs",
        ["live"],
        unique=True,
        postgresql_where=sa.text("live"),
    )
    for t in RESULTS:
        op.add_column(t, sa.Column("as_of", sa.Date(), nullable=True))
    op.create_table(
        "detection_zone_shares",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("top", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["detection_runs.id"],
            name=op.f("fk_detection_zone_shares_run_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "kind", "key", "level", "code", name=op.f("pk_detection_zone_shares")
        ),
    )
    op.create_index(
        "ix_detection_zone_shares_zone",
        "detection_zone_shares",
        ["run_id", "level", "code"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_detection_zone_shares_zone", table_name="detection_zone_shares")
    op.drop_table("detection_zone_shares")
    for t in RESULTS:
        op.drop_column(t, "as_of")
    op.drop_index("uq_detection_runs_live", table_name="detection_runs")
    op.drop_column("detection_runs", "live")
