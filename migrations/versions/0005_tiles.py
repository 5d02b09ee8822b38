"""tile-cache invalidation log

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-28

tile_invalidations: the area (EPSG:4549 box) and tile layers each import batch or detection run
changed, read by every worker to drop exactly the cached tiles it touched (gis/core/tile_models.py).
tile_zone_stats: per district / platform parcel count, area in 亩 and 亩均税收 class for
low-zoom tiles; tile_parcel_classes / tile_parcel_status: parcels' A/B/C/D
class and 三块地 status for tiles. Hand-written; a
branch off 0001.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


# Tile layers (tilesets) that a change to each registry table can alter (gis/serving/tiles.py).
TABLE_TILESETS = {
    "districts": ("districts", "parcels"),
    "platforms": ("platforms", "parcels"),
    "corridors": ("corridors",),
    "approvals": ("approvals", "unsupplied"),
    "supplies": ("supplies", "idle", "parcels"),
    "parcels": ("parcels", "low_efficiency"),
    "enterprises": ("enterprises", "parcels"),
}

# Statement triggers log the box of the changed rows' old and new geometry (one log row per
# statement, read through transition tables), so every write path invalidates tiles: imports,
# scripts, tests. TRUNCATE logs "everything" for the table's tilesets.
FUNCTION = """
CREATE OR REPLACE FUNCTION tile_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE e box2d;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT ST_Extent(geom) INTO e FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT ST_Extent(geom) INTO e FROM old_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT ST_Extent(g) INTO e FROM (
            SELECT o.geom AS a, n.geom AS b FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (to_jsonb(o) - 'updated_at' - 'batch_id')
                  IS DISTINCT FROM (to_jsonb(n) - 'updated_at' - 'batch_id')
        ) c, LATERAL (VALUES (c.a), (c.b)) v(g);
    END IF;
    IF TG_OP = 'TRUNCATE' OR e IS NOT NULL THEN
        INSERT INTO tile_invalidations (source, layers, extent)
        VALUES (TG_TABLE_NAME || ':' || lower(TG_OP) || ':' || txid_current() || ':'
                || clock_timestamp(), TG_ARGV::text[],
                CASE WHEN e IS NULL THEN NULL
                     ELSE ST_SetSRID(ST_Expand(e, 1)::geometry, 4549) END)
        ON CONFLICT (source) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "tile_invalidations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("layers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("extent", Geometry(geometry_type="POLYGON", srid=4549, spatial_index=False)),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
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
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("level", "code", name="pk_tile_zone_stats"),
    )
    op.create_table(
        "tile_parcel_classes",
        sa.Column("parcel_no", sa.Text(), nullable=False),
        sa.Column("eval_class", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("parcel_no", name="pk_tile_parcel_classes"),
    )
    op.create_table(
        "tile_parcel_status",
        sa.Column("parcel_no", sa.Text(), nullable=False),
        sa.Column("land_status", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("parcel_no", name="pk_tile_parcel_status"),
    )
    op.execute(FUNCTION)
    for table, sets in TABLE_TILESETS.items():
        args = ", ".join(f"'{s}'" for s in sets)
        for event, ref in (
            ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
            ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
            ("TRUNCATE", ""),
        ):
            op.execute(
                f"CREATE TRIGGER tile_log_{event.lower()} AFTER {event} ON {table} {ref} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION tile_log_change({args})"
            )


def downgrade() -> None:
    for table in TABLE_TILESETS:
        for event in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS tile_log_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS tile_log_change()")
    op.drop_table("tile_parcel_status")
    op.drop_table("tile_parcel_classes")
    op.drop_table("tile_zone_stats")
    op.drop_table("tile_invalidations")
