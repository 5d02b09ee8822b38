"""linkage, per-mu figures, A/B/C/D evaluation and §7 indicators

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28

analysis_runs, links, enterprise_land, per_mu, evaluations and area_indicators
(gis/core/analysis_models.py). Hand-written; a branch off 0001.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

LINK_KINDS = (
    "enterprise_parcel",
    "supply_parcel",
    "project_supply",
    "project_parcel",
    "parcel_district",
    "parcel_platform",
    "parcel_corridor",
    "enterprise_district",
    "enterprise_platform",
    "enterprise_corridor",
)
SUMS = (
    "gross_output",
    "revenue",
    "value_added",
    "tax_paid",
    "energy_tce",
    "emissions_t",
    "rd_spending",
    "employees",
)
RATIOS = (
    "output_per_mu",
    "revenue_per_mu",
    "va_per_mu",
    "tax_per_mu",
    "va_per_energy",
    "va_per_emission",
    "labour_productivity",
    "rd_intensity",
)


def _prov():
    return [
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "analysis_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("config_hash", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("counts", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("notes", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("seconds", sa.Double()),
        sa.PrimaryKeyConstraint("id", name="pk_analysis_runs"),
    )
    op.create_table(
        "links",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("from_key", sa.Text()),
        sa.Column("to_key", sa.Text()),
        sa.Column("method", sa.Text()),
        sa.Column("distance_m", sa.Double()),
        sa.Column("share", sa.Double()),
        sa.Column("is_primary", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("reason", sa.Text()),
        *_prov(),
        sa.CheckConstraint(f"kind IN {LINK_KINDS}", name="ck_links_kind"),
        sa.CheckConstraint(
            "method IS NULL OR method IN ('key', 'contains', 'nearest', 'overlap')",
            name="ck_links_method",
        ),
    )
    op.create_index("ix_links_kind_from", "links", ["kind", "from_key"])
    op.create_index("ix_links_kind_to", "links", ["kind", "to_key"])
    op.create_table(
        "enterprise_land",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.Double()),
        sa.Column("area_mu", sa.Double()),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("parcel_nos", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "parcel_shares", postgresql.ARRAY(sa.Double()), server_default="{}", nullable=False
        ),
        sa.Column("reason", sa.Text()),
        *_prov(),
        sa.PrimaryKeyConstraint("year", "uscc", name="pk_enterprise_land"),
        sa.CheckConstraint(
            "basis IN ('parcels', 'declared', 'none')", name="ck_enterprise_land_basis"
        ),
    )
    op.create_index("ix_enterprise_land_uscc", "enterprise_land", ["uscc"])
    op.create_table(
        "per_mu",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("area_m2", sa.Double()),
        sa.Column("area_mu", sa.Double()),
        sa.Column("n_enterprises", sa.Integer(), server_default="0", nullable=False),
        *[sa.Column(c, sa.Double()) for c in SUMS + RATIOS],
        *_prov(),
        sa.PrimaryKeyConstraint("level", "code", "year", name="pk_per_mu"),
        sa.CheckConstraint(
            "level IN ('enterprise', 'parcel', 'platform', 'district', 'corridor')",
            name="ck_per_mu_level",
        ),
    )
    op.create_index("ix_per_mu_level_year", "per_mu", ["level", "year"])
    op.create_table(
        "evaluations",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("industry_code", sa.Text()),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
        sa.Column("graded", sa.Boolean(), nullable=False),
        sa.Column("area_mu", sa.Double()),
        sa.Column("land_basis", sa.Text()),
        sa.Column("score", sa.Double()),
        sa.Column("class", sa.Text()),
        sa.Column("rank", sa.Integer()),
        sa.Column("group_size", sa.Integer()),
        sa.Column("indicators", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("benchmarks", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("points", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("missing", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("not_evaluated_reason", sa.Text()),
        sa.Column("not_graded_reason", sa.Text()),
        sa.Column("district_code", sa.Text()),
        sa.Column("platform_code", sa.Text()),
        sa.Column("corridor_code", sa.Text()),
        *_prov(),
        sa.PrimaryKeyConstraint("year", "uscc", name="pk_evaluations"),
        sa.CheckConstraint("\"group\" IN ('above', 'below')", name="ck_evaluations_group"),
        sa.CheckConstraint(
            "class IS NULL OR class IN ('A', 'B', 'C', 'D')", name="ck_evaluations_class"
        ),
    )
    op.create_index("ix_evaluations_uscc", "evaluations", ["uscc"])
    op.create_table(
        "area_indicators",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("value", sa.Double()),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("previous", sa.Double()),
        sa.Column("change", sa.Double()),
        sa.Column("rank", sa.Integer()),
        sa.Column("better", sa.Text(), nullable=False),
        sa.Column("restricted", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("figures", postgresql.JSONB(), server_default="{}", nullable=False),
        *_prov(),
        sa.PrimaryKeyConstraint("level", "code", "year", "indicator", name="pk_area_indicators"),
    )


def downgrade() -> None:
    for t in (
        "area_indicators",
        "evaluations",
        "per_mu",
        "enterprise_land",
        "links",
        "analysis_runs",
    ):
        op.drop_table(t)
