"""Stored areas to the hundredth of a square metre

Revision ID: 0029_areas_to_the_hundredth
Revises: 0028_refresh_lookup_indexes
Create Date: 2026-12-05

``area_m2`` of every polygon layer (approvals, corridors, districts, parcels, platforms,
projects, supplies) was ``ST_Area(geom)`` to the last bit of a double. The same parcel written
two ways (a shapefile's coordinates against the same coordinates sent as GeoJSON text, rounded
in their last digit) then had areas 1.5e-8 m² apart, and the derivation graph took that for a
change of the parcel's area: its enterprises' land, their per-mu figures, evaluation, platform
kinds and every year's §7 indicators were made again for nothing (a one-parcel refresh on a
98,048-parcel city took 0.51-0.55 s instead of 0.23-0.26 s). A land register records areas to
0.01 m²; so does landlink now: ``round(ST_Area(geom), 2)``, in EPSG:4549 as before (a sliver
under 0.005 m² keeps its own area, not 0: shares divide by it).

The derived tables were made from the unrounded areas. The zone sums are emptied here, and
``landlink migrate`` recomputes the derived tables whole when it finds them so (as after 0019).
"""

from alembic import op

revision = "0029_areas_to_the_hundredth"
down_revision = "0028_refresh_lookup_indexes"
branch_labels = None
depends_on = None

TABLES = ("approvals", "corridors", "districts", "parcels", "platforms", "projects", "supplies")
ROUNDED = (  # a sliver under 0.005 m² keeps its own area: rounded it would be 0
    "CASE WHEN ST_Area(geom) < 0.005 THEN ST_Area(geom) "
    "ELSE round(ST_Area(geom)::numeric, 2)::double precision END"
)
EXACT = "ST_Area(geom)"


def _area(expr: str) -> None:
    for t in TABLES:  # one rewrite per table
        op.execute(
            f"ALTER TABLE {t} DROP COLUMN area_m2, "
            f"ADD COLUMN area_m2 double precision GENERATED ALWAYS AS ({expr}) STORED"
        )
    op.execute("DELETE FROM zone_sums")


def upgrade() -> None:
    _area(ROUNDED)


def downgrade() -> None:
    _area(EXACT)
