"""tile-cache invalidation log

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-28

tile_invalidations: the area (EPSG:4549 box) and tile layers each import batch or detection run
changed, read by every worker to drop exactly the cached tiles it touched (gis/tile_models.py).
tile_zone_stats: per district / platform parcel count, area in 亩 and 亩均税收 class for
low-zoom tiles. Hand-written; a branch off 0001.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tile_invalidations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("layers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("extent", Geometry(geometry_type="POLYGON", srid=4549, spatial_index=False)),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tile_invalidations"),
        sa.UniqueConstraint("source", name="uq_tile_invalidations_source"),
    )
    op.create_index("ix_tile_invalidations_at", "tile_invalidations", ["at"])
    op.create_table(
        "tile_zone_stats",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("tax_per_mu", sa.Double()),
        sa.Column("tax_class", sa.Text()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("level", "code", name="pk_tile_zone_stats"),
    )


def downgrade() -> None:
    op.drop_table("tile_zone_stats")
    op.drop_table("tile_invalidations")
