"""platform kinds and layout plans: kind overrides, plans, allocations, blocks

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-28

platform_kind_overrides (§4, append-only, who and when), platform_kind_runs / platform_kinds
(recorded classifications), plans (versioned scenarios, §8),
plan_allocations (new land per district / platform / corridor) and plan_blocks (corridor blocks
with their function and geometry). Hand-written (gis/core/plan_models.py); a branch off 0001.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None

KINDS = "('consolidate_host', 'consolidate_member', 'to_innovation', 'retain_upgrade', 'phase_out')"


def upgrade() -> None:
    op.create_table(
        "platform_kind_overrides",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("platform_code", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_platform_kind_overrides"),
        sa.CheckConstraint(
            f"kind IS NULL OR kind IN {KINDS}", name="ck_platform_kind_overrides_kind"
        ),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="ck_platform_kind_overrides_reason"),
    )
    op.create_index(
        "ix_platform_kind_overrides_platform_code", "platform_kind_overrides", ["platform_code"]
    )
    op.create_table(
        "platform_kind_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("tax_year", sa.Integer()),
        sa.Column("tax_source", sa.Text(), nullable=False),
        sa.Column("median_tax_per_mu", sa.Double()),
        sa.Column("rules", postgresql.JSONB(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_platform_kind_runs"),
    )
    op.create_table(
        "platform_kinds",
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "platform_kind_runs.id", ondelete="CASCADE", name="fk_platform_kinds_run_id"
            ),
            nullable=False,
        ),
        sa.Column("platform_code", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("rule_kind", sa.Text(), nullable=False),
        sa.Column("host_code", sa.Text()),
        sa.Column("host_distance_m", sa.Double()),
        sa.Column("tax_per_mu", sa.Double()),
        sa.Column("reasons", postgresql.JSONB(), nullable=False),
        sa.Column("override", postgresql.JSONB()),
        sa.PrimaryKeyConstraint("run_id", "platform_code", name="pk_platform_kinds"),
        sa.CheckConstraint(f"kind IN {KINDS}", name="ck_platform_kinds_kind"),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("target_year", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("tax_year", sa.Integer()),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("rules_hash", sa.Text(), nullable=False),
        sa.Column("detection_run_id", sa.BigInteger()),
        sa.Column("kinds", postgresql.JSONB(), nullable=False),
        sa.Column("totals", postgresql.JSONB(), nullable=False),
        sa.Column("invariants", postgresql.JSONB(), nullable=False),
        sa.Column("notes", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("seconds", sa.Double()),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
        sa.UniqueConstraint("name", "version", name="uq_plans_name"),
    )
    op.create_table(
        "plan_allocations",
        sa.Column(
            "plan_id",
            sa.BigInteger(),
            sa.ForeignKey("plans.id", ondelete="CASCADE", name="fk_plan_allocations_plan_id"),
            nullable=False,
        ),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("district_code", sa.Text()),
        sa.Column("kind", sa.Text()),
        sa.Column("tax_per_mu", sa.Double()),
        sa.Column("score", sa.Double()),
        sa.Column("capacity_mu", sa.Double(), nullable=False),
        sa.Column("corridor_capacity_mu", sa.Double(), nullable=False),
        sa.Column("new_mu", sa.Double(), nullable=False),
        sa.Column("corridor_mu", sa.Double(), nullable=False),
        sa.Column("industrial_mu_today", sa.Double(), nullable=False),
        sa.Column("exit_mu", sa.Double(), nullable=False),
        sa.Column("m0_mu", sa.Double(), nullable=False),
        sa.Column("redevelop_mu", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "level", "code", name="pk_plan_allocations"),
        sa.CheckConstraint(
            "level IN ('district', 'platform', 'corridor')", name="ck_plan_allocations_level"
        ),
    )
    op.create_table(
        "plan_blocks",
        sa.Column(
            "plan_id",
            sa.BigInteger(),
            sa.ForeignKey("plans.id", ondelete="CASCADE", name="fk_plan_blocks_plan_id"),
            nullable=False,
        ),
        sa.Column("block_no", sa.Integer(), nullable=False),
        sa.Column("corridor_code", sa.Text(), nullable=False),
        sa.Column("platform_code", sa.Text()),
        sa.Column("platform_kind", sa.Text()),
        sa.Column("district_code", sa.Text()),
        sa.Column("function", sa.Text(), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("parcel_nos", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("idle_mu", sa.Double(), nullable=False),
        sa.Column("low_efficiency_mu", sa.Double(), nullable=False),
        sa.Column("flagged_mu", sa.Double(), nullable=False),
        sa.Column("innovation_mu", sa.Double(), nullable=False),
        sa.Column("reasons", postgresql.JSONB(), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4549, spatial_index=False)),
        sa.PrimaryKeyConstraint("plan_id", "block_no", name="pk_plan_blocks"),
        sa.CheckConstraint(
            "function IN ('keep_industrial', 'to_m0', 'redevelop', 'exit')",
            name="ck_plan_blocks_function",
        ),
    )
    op.create_index("ix_plan_blocks_geom", "plan_blocks", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    for t in (
        "plan_blocks",
        "plan_allocations",
        "plans",
        "platform_kinds",
        "platform_kind_runs",
        "platform_kind_overrides",
    ):
        op.execute(f"DROP TABLE IF EXISTS {t}")
