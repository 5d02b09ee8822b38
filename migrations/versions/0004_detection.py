"""three kinds of land: detection runs and their results

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-28

detection_runs (as_of, configuration hash, input batches, counts, time) and, keyed by run id,
unsupplied_results (批而未供, with the remainder geometry), idle_results (供而未用/闲置),
low_efficiency_results (低效利用, reasons as jsonb) and detection_summaries. Hand-written
(gis/core/detection_models.py); a branch off 0001.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _zones():
    return [
        sa.Column("district_code", sa.Text()),
        sa.Column("platform_code", sa.Text()),
        sa.Column("corridor_code", sa.Text()),
    ]


def upgrade() -> None:
    op.create_table(
        "detection_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("config_hash", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("inputs", postgresql.JSONB(), nullable=False),
        sa.Column("inputs_hash", sa.Text(), nullable=False),
        sa.Column("counts", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("notes", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("seconds", sa.Double()),
        sa.PrimaryKeyConstraint("id", name="pk_detection_runs"),
    )
    op.create_table(
        "unsupplied_results",
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "detection_runs.id", ondelete="CASCADE", name="fk_unsupplied_results_run_id"
            ),
            nullable=False,
        ),
        sa.Column("approval_id", sa.BigInteger(), nullable=False),
        sa.Column("approval_no", sa.Text(), nullable=False),
        sa.Column("batch_name", sa.Text()),
        sa.Column("approved_on", sa.Date(), nullable=False),
        sa.Column("approved_m2", sa.Double(), nullable=False),
        sa.Column("supplied_m2", sa.Double(), nullable=False),
        sa.Column("sliver_m2", sa.Double(), nullable=False),
        sa.Column("unsupplied_m2", sa.Double(), nullable=False),
        sa.Column("unsupplied_mu", sa.Double(), nullable=False),
        sa.Column("unsupplied_share", sa.Double(), nullable=False),
        sa.Column("years_since_approval", sa.Double(), nullable=False),
        sa.Column("age_band", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("supply_nos", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        *_zones(),
        sa.Column("geom", Geometry(geometry_type="MULTIPOLYGON", srid=4549, spatial_index=False)),
        sa.PrimaryKeyConstraint("run_id", "approval_id", name="pk_unsupplied_results"),
        sa.CheckConstraint(
            "status IN ('unsupplied', 'partial', 'supplied')", name="ck_unsupplied_results_status"
        ),
    )
    op.create_index(
        "ix_unsupplied_results_geom", "unsupplied_results", ["geom"], postgresql_using="gist"
    )
    op.create_table(
        "idle_results",
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey("detection_runs.id", ondelete="CASCADE", name="fk_idle_results_run_id"),
            nullable=False,
        ),
        sa.Column("supply_id", sa.BigInteger(), nullable=False),
        sa.Column("supply_no", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("days_overdue", sa.Integer()),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("supplied_on", sa.Date()),
        sa.Column("agreed_start", sa.Date()),
        sa.Column("actual_start", sa.Date()),
        sa.Column("actual_completion", sa.Date()),
        sa.Column("stopped_on", sa.Date()),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("consequence", sa.Text(), nullable=False),
        sa.Column("figures", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("footprint_share", sa.Double()),
        sa.Column("records_disagree", sa.Boolean()),
        sa.Column("parcel_nos", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        *_zones(),
        sa.PrimaryKeyConstraint("run_id", "supply_id", name="pk_idle_results"),
        sa.CheckConstraint(
            "status IN ('not_due', 'started', 'overdue', 'idle', 'idle_reclaimable', 'partial_idle')",
            name="ck_idle_results_status",
        ),
    )
    op.create_table(
        "low_efficiency_results",
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "detection_runs.id", ondelete="CASCADE", name="fk_low_efficiency_results_run_id"
            ),
            nullable=False,
        ),
        sa.Column("parcel_id", sa.BigInteger(), nullable=False),
        sa.Column("parcel_no", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("actual_use", sa.Text()),
        sa.Column("supply_no", sa.Text()),
        sa.Column("reasons", postgresql.JSONB(), nullable=False),
        sa.Column("reason_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        *_zones(),
        sa.PrimaryKeyConstraint("run_id", "parcel_id", name="pk_low_efficiency_results"),
    )
    op.create_index(
        "ix_low_efficiency_results_reason_codes",
        "low_efficiency_results",
        ["reason_codes"],
        postgresql_using="gin",
    )
    op.create_table(
        "detection_summaries",
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "detection_runs.id", ondelete="CASCADE", name="fk_detection_summaries_run_id"
            ),
            nullable=False,
        ),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "level", "code", "kind", name="pk_detection_summaries"),
    )


def downgrade() -> None:
    for t in (
        "detection_summaries",
        "low_efficiency_results",
        "idle_results",
        "unsupplied_results",
        "detection_runs",
    ):
        op.drop_table(t)
