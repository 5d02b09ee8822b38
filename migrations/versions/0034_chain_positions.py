"""Each parcel's place on the chain of land, kept by the derivation graph

Revision ID: 0034_chain_positions
Revises: 0033_search_lookup_indexes
Create Date: 2026-12-06

The survey (家底) sums the industrial land of each zone by place on the chain (批而未供 → … →
投而未达标, or 达标). It placed every parcel on each request: the facts of 98,048 parcels read
in one statement (1.8 s) and judged in Python (0.9 s), 6-8 s a request on the scale-20 city
with its pandas work. ``chain_positions`` holds each parcel's place, written by the producer
``chain`` (gis/lands/chain.py) for the parcels whose facts changed. Created empty:
``landlink migrate`` recomputes the derived tables when it finds it empty on a database with
parcels.
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_chain_positions"
down_revision = "0033_search_lookup_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_positions",
        sa.Column("parcel_no", sa.Text(), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("parcel_no", name="pk_chain_positions"),
    )


def downgrade() -> None:
    op.drop_table("chain_positions")
