"""Indexes for the linkage's lookups of a changed supply record or parcel

Revision ID: 0018_link_key_indexes
Revises: 0017_evaluation_sums
Create Date: 2026-12-04

A changed supply record (GD) finds the parcels that name it (DK GDBH) and the projects that name
it (XM GDBH); a changed parcel the projects on it (XM DKBH). Each was a scan of every parcel or
project (98,048 parcels on the scale-20 city): the linkage of one GD record took 0.06 s, 0.036 s
with these indexes (measured in an earlier round of this work, not re-measured with the
migration).
"""

from alembic import op

revision = "0018_link_key_indexes"
down_revision = "0017_evaluation_sums"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_parcels_supply_no", "parcels", "supply_no"),
    ("ix_projects_parcel_no", "projects", "parcel_no"),
    ("ix_projects_supply_no", "projects", "supply_no"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
