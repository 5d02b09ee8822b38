"""Indexes for the lookups every refresh by changed keys makes

Revision ID: 0015_refresh_indexes
Revises: 0014_evaluation_groups
Create Date: 2026-12-04

- the output year (CC ND): the tax year (the latest ND up to a year), the first data year and the
  years in the data were each a scan of every CC row (373,000 on a 98,048-parcel city, 50-80 ms
  each, four to six times per refresh);
- the arrays the three lands and the linkage look keys up in (``&&``): the supply records an
  unsupplied approval met, the parcels of an idle supply record, the parcels an enterprise
  declares (QY DKBH): without them every row of the live run, or every enterprise, was read.
"""

from alembic import op

revision = "0015_refresh_indexes"
down_revision = "0014_evaluation_groups"
branch_labels = None
depends_on = None

GIN = (
    ("ix_unsupplied_results_supply_nos", "unsupplied_results", "supply_nos"),
    ("ix_idle_results_parcel_nos", "idle_results", "parcel_nos"),
    ("ix_enterprises_parcel_nos", "enterprises", "parcel_nos"),
)


def upgrade() -> None:
    op.create_index("ix_outputs_year", "outputs", ["year"])
    for name, table, column in GIN:
        op.create_index(name, table, [column], postgresql_using="gin")


def downgrade() -> None:
    for name, table, _ in GIN:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_outputs_year", table_name="outputs")
