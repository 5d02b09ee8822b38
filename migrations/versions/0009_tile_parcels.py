"""tile_parcels: a Web Mercator copy of parcels for vector tiles, kept in step by triggers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

One row per parcel with what a parcel tile reads (gis/serving/tiles.py): the attributes, the parcel's
class and 三块地 status for tiles (from tile_parcel_classes / tile_parcel_status), its geometry
in EPSG:3857 (GiST indexed: a tile's && needs no transform) and, for the dense parcel zooms 13
and 14, the geometry already in that zoom's global MVT pixel grid (4096 << z pixels around the
world, y down, snapped and validated by ST_AsMVTGeom once): a parcel inside a tile of such a
zoom and its buffer is then a translation, with no per-tile ST_AsMVTGeom.

Statement triggers on parcels keep the copy in step inside the writing transaction, for every
write path (imports, the refresh plugins, scripts, tests): INSERT and UPDATE upsert the new or
changed rows, DELETE removes, TRUNCATE empties. gis/serving/tiles.py keeps eval_class and land_status
current when it rebuilds tile_parcel_classes / tile_parcel_status.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Zooms with a pre-quantised copy (columns q13, q14); gis/tile_models.QUANTISED_ZOOMS.
QUANTISED_ZOOMS = (13, 14)

QUANTISE = """
CREATE OR REPLACE FUNCTION tile_quantise(g geometry, z integer) RETURNS geometry
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- g (EPSG:3857) in zoom z's global MVT grid: 4096 << z pixels across the world, y down
    SELECT ST_AsMVTGeom(g, ST_MakeBox2D(ST_Point(-20037508.342789244, -20037508.342789244),
                                        ST_Point(20037508.342789244, 20037508.342789244)),
                        4096 << z, 0, false)
$$;
"""

_COLS = "id, parcel_no, actual_use, land_use_code, area_m2, floor_area_m2, eval_class, " + (
    "land_status, geom, " + ", ".join(f"q{z}" for z in QUANTISED_ZOOMS)
)
_ROWS = f"""
    SELECT n.id, n.parcel_no, n.actual_use, n.land_use_code, n.area_m2, n.floor_area_m2,
           pc.eval_class, ps.land_status, m.g,
           {", ".join(f"tile_quantise(m.g, {z})" for z in QUANTISED_ZOOMS)}
    FROM {{src}} n
    CROSS JOIN LATERAL (SELECT ST_Transform(n.geom, 3857) AS g OFFSET 0) m  -- once per row
    LEFT JOIN tile_parcel_classes pc ON pc.parcel_no = n.parcel_no
    LEFT JOIN tile_parcel_status ps ON ps.parcel_no = n.parcel_no
"""
_UPSERT = (
    f"INSERT INTO tile_parcels ({_COLS}) {{rows}} ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLS.split(", ")[1:])
)

SYNC = f"""
CREATE OR REPLACE FUNCTION tile_parcels_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        BEGIN
            TRUNCATE tile_parcels;
        EXCEPTION WHEN object_in_use THEN
            -- truncated by the same statement as parcels (so already empty, or nearly)
            DELETE FROM tile_parcels;
        END;
    ELSIF TG_OP = 'INSERT' THEN
        {_UPSERT.format(rows=_ROWS.format(src="new_rows"))};
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM tile_parcels t USING old_rows o WHERE t.id = o.id;
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM tile_parcels t USING old_rows o
        WHERE t.id = o.id AND NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id);
        {
    _UPSERT.format(
        rows=_ROWS.format(
            src="(SELECT n.* FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id "
            "WHERE o.id IS NULL OR (n.parcel_no, n.actual_use, n.land_use_code, "
            "n.floor_area_m2, ST_AsEWKB(n.geom)) IS DISTINCT FROM (o.parcel_no, o.actual_use, "
            "o.land_use_code, o.floor_area_m2, ST_AsEWKB(o.geom)))"
        )
    )
};
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "tile_parcels",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("parcel_no", sa.Text(), nullable=False),
        sa.Column("actual_use", sa.Text()),
        sa.Column("land_use_code", sa.Text()),
        sa.Column("area_m2", sa.Double()),
        sa.Column("floor_area_m2", sa.Double()),
        sa.Column("eval_class", sa.Text()),
        sa.Column("land_status", sa.Text()),
        sa.Column(
            "geom",
            Geometry(geometry_type="MULTIPOLYGON", srid=3857, spatial_index=False),
            nullable=False,
        ),
        *(
            sa.Column(f"q{z}", Geometry(geometry_type="GEOMETRY", srid=0, spatial_index=False))
            for z in QUANTISED_ZOOMS
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tile_parcels"),
    )
    op.execute(QUANTISE)
    op.execute(SYNC)
    op.execute(_UPSERT.format(rows=_ROWS.format(src="parcels")))
    op.execute("CREATE INDEX idx_tile_parcels_geom ON tile_parcels USING gist (geom)")
    for event, ref in (
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ):
        op.execute(
            f"CREATE TRIGGER tile_parcels_{event.lower()} AFTER {event} ON parcels {ref} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tile_parcels_sync()"
        )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS tile_parcels_{event} ON parcels")
    op.execute("DROP FUNCTION IF EXISTS tile_parcels_sync()")
    op.execute("DROP FUNCTION IF EXISTS tile_quantise(geometry, integer)")
    op.drop_table("tile_parcels")
