"""An index on the output year (CC ND)

Revision ID: 0015_outputs_year_index
Revises: 0014_evaluation_groups
Create Date: 2026-12-04

Every refresh asks for output years: the tax year (the latest ND up to a year), the first data
year, the years in the data. Without an index each was a scan of every CC row (373,000 on a
98,048-parcel city, 50-80 ms each, four to six times per refresh).
"""

from alembic import op

revision = "0015_outputs_year_index"
down_revision = "0014_evaluation_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outputs_year", "outputs", ["year"])


def downgrade() -> None:
    op.drop_index("ix_outputs_year", table_name="outputs")
