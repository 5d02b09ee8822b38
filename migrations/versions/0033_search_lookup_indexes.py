"""Indexes for the map page's search

Revision ID: 0033_search_lookup_indexes
Revises: 0032_projects_uscc_index
Create Date: 2026-12-06

The search (gis/serving/search.py) matches DKBH and DZJGH from their start, case-insensitively,
and places an enterprise without DKBH on the parcels it holds (QLRDM). Each of these read the
whole table: on the 98,048-parcel city (94,253 supply records) 60 ms for the parcels, 64 ms for
the supply records and 30 ms per enterprise placed by its holding, of a 0.34 s search.
``upper(...) text_pattern_ops`` serves ``upper(col) LIKE 'PREFIX%'`` whatever the database's
collation.
"""

from alembic import op

revision = "0033_search_lookup_indexes"
down_revision = "0032_projects_uscc_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_parcels_holder_uscc", "parcels", ["holder_uscc"])
    op.execute(
        "CREATE INDEX ix_parcels_parcel_no_upper ON parcels (upper(parcel_no) text_pattern_ops)"
    )
    op.execute(
        "CREATE INDEX ix_supplies_supply_no_upper ON supplies (upper(supply_no) text_pattern_ops)"
    )


def downgrade() -> None:
    op.drop_index("ix_supplies_supply_no_upper", "supplies")
    op.drop_index("ix_parcels_parcel_no_upper", "parcels")
    op.drop_index("ix_parcels_holder_uscc", "parcels")
