"""The tile-cache invalidation log: which area of which tile layers changed, and when.

Every worker keeps its own in-process tile cache (gis/serving/tiles.py) and reads this log to drop
the cached tiles whose area a change touched. A row is written inside the transaction that changed
the data (the statement triggers on the registry tables, the "tiles" producer of the derivation
graph), so it commits, or not, with the change; readers never write it.
``extent`` is EPSG:4549 (metres): the box around the changed rows' old and new geometries.
Migration 0005.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from gis.core.layers import STORAGE_SRID
from gis.core.models import metadata

tile_invalidations = Table(
    "tile_invalidations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # import:<batch id> | detection:<run id> | manual; unique so a change is logged once
    Column("source", Text, nullable=False, unique=True),
    Column("layers", ARRAY(Text), nullable=False),  # tile layer ids affected
    Column("extent", Geometry("POLYGON", srid=STORAGE_SRID, spatial_index=False)),  # NULL: all
    # clock_timestamp(), not now(): the moment of the change, near its commit
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Index("ix_tile_invalidations_at", "at"),
)

# Per district and platform: what low-zoom tiles show instead of thousands of parcels. Kept by
# the "tiles" producer of the derivation graph (gis/serving/tiles.py): area and 亩均税收 from
# per_mu's zone rows (per_mu.zone_figures), parcel count from the primary parcel-zone links.
tile_zone_stats = Table(
    "tile_zone_stats",
    metadata,
    Column("level", Text, nullable=False),  # district | platform
    Column("code", Text, nullable=False),  # XZQDM | PTDM
    Column("parcel_count", Integer, nullable=False),  # parcels lying here most (links)
    Column("area_mu", Double, nullable=False),  # enterprise land here, 亩 (per_mu)
    Column("tax_per_mu", Double),  # 亩均税收, 万元/亩 (restricted: never in public tiles)
    Column("tax_class", Text),  # A/B/C/D by rank among zones of the same level (public)
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("level", "code", name="pk_tile_zone_stats"),
)

# A parcel's A/B/C/D class for tiles (the best class of the enterprises linked to it, latest
# evaluated year): links + evaluations, kept by the "tiles" producer for the changed keys
# instead of joined per parcel per tile.
tile_parcel_classes = Table(
    "tile_parcel_classes",
    metadata,
    Column("parcel_no", Text, primary_key=True),  # DKBH
    Column("eval_class", Text, nullable=False),
)

# A parcel's 三块地 status in the latest detection run (idle > low_efficiency), for tiles: kept
# by the "tiles" producer instead of two index probes per parcel per tile.
tile_parcel_status = Table(
    "tile_parcel_status",
    metadata,
    Column("parcel_no", Text, primary_key=True),  # DKBH
    Column("land_status", Text, nullable=False),
)

# What a parcel tile reads, one row per parcel (migration 0009): attributes, the class and
# 三块地 status above, the geometry in EPSG:3857 (GiST indexed) and, for the dense parcel zooms
# (QUANTISED_ZOOMS), the geometry already in that zoom's global MVT pixel grid (4096 << z pixels
# around the world, y down; ST_AsMVTGeom once, at write time). Statement triggers on parcels keep
# it in step in the writing transaction; the "tiles" producer updates eval_class and land_status
# of the parcels whose rows above it changed.
QUANTISED_ZOOMS = (13, 14)
tile_parcels = Table(
    "tile_parcels",
    metadata,
    Column("id", BigInteger, primary_key=True),  # parcels.id
    Column("parcel_no", Text, nullable=False),
    Column("actual_use", Text),
    Column("land_use_code", Text),
    Column("area_m2", Double),
    Column("floor_area_m2", Double),
    Column("eval_class", Text),
    Column("land_status", Text),
    Column("geom", Geometry("MULTIPOLYGON", srid=3857), nullable=False),
    *(Column(f"q{z}", Geometry("GEOMETRY", srid=0, spatial_index=False)) for z in QUANTISED_ZOOMS),
)
