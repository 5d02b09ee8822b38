"""Zone figures kept by differences: each enterprise's land in each zone, and exact zone sums

Revision ID: 0016_zone_sums
Revises: 0015_refresh_indexes
Create Date: 2026-12-04

A zone's per-mu row (亩均产值, 亩均税收 … of a district, platform or corridor) sums the figures of
every enterprise with land in it. Recomputing that sum for one changed enterprise read every
enterprise of the zone (a district of 20,000 parcels: about a second). Now:

- ``zone_allocations``: each enterprise-year's land in each zone (level, code, year, uscc,
  land_m2), kept by gis/economy/per_mu.py for the enterprises a change touches; the §7
  indicators read their output shares from it;
- ``zone_sums``: per zone-year, the sums of the allocated figures in numeric (exact, so adding
  what a change brings and taking away what it removes equals summing afresh), with the number
  of allocations and of reported figures per column, and the number of enterprises with land
  whose primary zone it is;
- ``enterprise_land`` gains the enterprise's primary zones (``district_code``,
  ``platform_code``, ``corridor_code``) as counted in those numbers, so that a change knows the
  zones an enterprise counted in before.

The new tables start empty; the next refresh (any import, or ``landlink analyse-all``) finds zone_sums
empty and recomputes the per-mu figures whole once, which fills them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_zone_sums"
down_revision = "0015_refresh_indexes"
branch_labels = None
depends_on = None

# gis/core/analysis_columns.ALLOCATED_COLUMNS
ALLOCATED = (
    "gross_output",
    "revenue",
    "value_added",
    "tax_paid",
    "energy_tce",
    "emissions_t",
    "rd_spending",
    "employees",
    "va_e",
    "va_p",
    "va_l",
    "rd_r",
    "rev_r",
)


def upgrade() -> None:
    op.create_table(
        "zone_allocations",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False),
        sa.Column("land_m2", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("level", "code", "year", "uscc", name="pk_zone_allocations"),
    )
    op.create_index("ix_zone_allocations_uscc_year", "zone_allocations", ["uscc", "year"])
    op.create_table(
        "zone_sums",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("land_m2", sa.Numeric(), nullable=False),
        *(sa.Column(c, sa.Numeric()) for c in ALLOCATED),
        *(sa.Column(f"n_{c}", sa.Integer(), nullable=False) for c in ALLOCATED),
        sa.Column("n_enterprises", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("level", "code", "year", name="pk_zone_sums"),
    )
    for level in ("district", "platform", "corridor"):
        op.add_column("enterprise_land", sa.Column(f"{level}_code", sa.Text(), nullable=True))


def downgrade() -> None:
    for level in ("district", "platform", "corridor"):
        op.drop_column("enterprise_land", f"{level}_code")
    op.drop_table("zone_sums")
    op.drop_index("ix_zone_allocations_uscc_year", table_name="zone_allocations")
    op.drop_table("zone_allocations")
