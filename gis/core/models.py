"""Database tables. Layer tables are derived from gis/core/layers.py, so the contract
maps in one place.

Every layer table has: a surrogate ``id``, the contract key as a unique constraint, the contract
fields under their English names, ``geom`` in EPSG:4549 (polygonal layers: MultiPolygon, area
``area_m2`` computed once by PostgreSQL), and provenance: ``batch_id`` (the import batch that last
wrote the row), ``row_hash`` (detects unchanged rows on re-import) and ``updated_at``.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType

from gis.core.layers import LAYERS, STORAGE_SRID, Layer

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Xid8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id (``pg_current_xact_id()``)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


# known to reflection too (Alembic's autogenerate and the schema comparison of the tests)
ischema_names["xid8"] = Xid8

# a polygon's area in m² (EPSG:4549), to the hundredth as a land register records it: the same
# shape sent two ways (a shapefile, GeoJSON text) differs in its coordinates' last bits, and an
# unrounded area then "changed" and re-derived its enterprises' figures for nothing. A sliver
# under 0.005 m² keeps its own area (rounded it would be 0, and shares divide by it).
AREA_M2_SQL = (
    "CASE WHEN ST_Area(geom) < 0.005 THEN ST_Area(geom) "
    "ELSE round(ST_Area(geom)::numeric, 2)::double precision END"
)

_SQL_TYPES = {
    "text": Text,
    "code": Text,
    "uscc": Text,
    "int": Integer,
    "float": Double,
    "date": Date,
    "bool": Boolean,
}

import_batches = Table(
    "import_batches",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("layer", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("file_hash", Text, nullable=False),
    Column("options", JSONB, nullable=False, server_default="{}"),
    Column("status", Text, nullable=False),  # loaded | rejected
    Column("rows_read", Integer, nullable=False, server_default="0"),
    Column("inserted", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("unchanged", Integer, nullable=False, server_default="0"),
    Column("rejected", Integer, nullable=False, server_default="0"),
    Column("report", JSONB, nullable=False, server_default="{}"),
    Column("created_by", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('loaded', 'rejected')", name="status"),
)

# What each batch changed: one row per inserted or updated key, with old -> new values.
import_changes = Table(
    "import_changes",
    metadata,
    Column(
        "batch_id",
        BigInteger,
        ForeignKey("import_batches.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("layer", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("action", Text, nullable=False),  # update (inserts are rows with this batch_id)
    Column("changes", JSONB),  # {column: [old, new]} for updates
    CheckConstraint("action IN ('insert', 'update')", name="action"),
)

# Every version of every layer row (migration 0011): op insert / update / retire / restore, who,
# when, through what (``via``: ``batch:N``, a request or command id), the row as it became
# (contract columns, ``geom`` as hex EWKB; for a retirement the row as it was), the changed
# columns {column: [old, new]} of an update, and for a row retired with another the ``cause``
# (``QY:<USCC>``). A retired row lives only here (gis/ingest/history.py).
row_history = Table(
    "row_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("layer", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("op", Text, nullable=False),
    Column("who", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
    Column("via", Text, nullable=False),
    Column("row", JSONB),
    Column("changes", JSONB),
    Column("cause", Text),
    # the writing transaction, for the change feed's commit order (migration 0022)
    Column("txid", Xid8, nullable=False, server_default=text("pg_current_xact_id()")),
    UniqueConstraint("layer", "key", "version"),
    CheckConstraint("op IN ('insert', 'update', 'retire', 'restore')", name="op"),
    Index("ix_row_history_txid", "txid", "id"),
)

# Derived results whose value changed, for the change feed (gis/ingest/feed.py, migration 0022):
# an enterprise-year's class, a parcel's 三块地 status, a zone's 亩均 figures; old and new value.
derived_changes = Table(
    "derived_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("txid", Xid8, nullable=False, server_default=text("pg_current_xact_id()")),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("old", JSONB),
    Column("new", JSONB),
    Column("trigger", Text, nullable=False),
    Column("run_id", BigInteger),
    Index("ix_derived_changes_txid", "txid", "id"),
)

# Each such result's value as the feed last published it.
feed_values = Table(
    "feed_values",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", JSONB),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Column("prefix", Text),  # the token's first characters, to tell tokens apart (migration 0010)
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    # an editor's layers (contract codes) it may write; NULL for every other role (0021)
    Column("layers", ARRAY(Text)),
    CheckConstraint("role IN ('viewer', 'editor', 'analyst', 'admin')", name="role"),
    CheckConstraint(
        "(role = 'editor') = (layers IS NOT NULL AND cardinality(layers) > 0)",
        name="editor_layers",
    ),
)


def _upper_prefix_index(name: str, column: str) -> Index:
    """``upper(column) text_pattern_ops``: serves ``upper(column) LIKE 'PREFIX%'`` whatever the
    database's collation."""
    label = f"{column}_upper"
    return Index(
        name,
        func.upper(literal_column(column)).label(label),
        postgresql_ops={label: "text_pattern_ops"},
    )


def _layer_table(layer: Layer) -> Table:
    cols: list = [Column("id", BigInteger, Identity(), primary_key=True)]
    checks: list = []
    for f in layer.fields:
        sql_type = ARRAY(Text) if f.type == "list" else _SQL_TYPES[f.type]()
        cols.append(
            Column(f.column, sql_type, nullable=not f.required, comment=f"{f.code} {f.label}")
        )
        if f.choices:
            allowed = ", ".join(f"'{c}'" for c in f.choices)
            checks.append(CheckConstraint(f"{f.column} IN ({allowed})", name=f"{f.column}_choice"))
        if f.type == "uscc":
            checks.append(
                CheckConstraint(
                    f"{f.column} ~ '^[0-9A-HJ-NPQRTUWXY]{{18}}$'", name=f"{f.column}_uscc"
                )
            )
    if layer.polygonal:
        cols.append(
            Column(
                "geom",
                Geometry("MULTIPOLYGON", srid=STORAGE_SRID, spatial_index=True),
                nullable=layer.geometry == "polygon_or_table",
            )
        )
        cols.append(Column("area_m2", Double, Computed(AREA_M2_SQL, persisted=True)))
        checks.append(
            CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="geom_valid")
        )
    elif layer.has_geom:  # points
        cols.append(Column("geom", Geometry("POINT", srid=STORAGE_SRID, spatial_index=True)))
    if layer.has_source_crs:
        cols.append(Column("source_crs", Text, comment="ZBXT 坐标系"))
    cols += [
        # The import batch that last wrote the row (import_batches.id). Not a foreign key: a
        # per-row RI trigger costs a quarter of a 100,000-row load, and batches are never deleted.
        Column("batch_id", BigInteger, nullable=False, index=True),
        Column("row_hash", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]
    # lookups of every refresh (0015): the output year (the tax year, the first and the latest
    # year), the parcels an enterprise declares (QY DKBH); the linkage's (0018): the parcels and
    # projects naming a supply record (GDBH), the projects on a parcel (XM DKBH); the
    # evaluation's (0028): the supply records granted to an enterprise (SRRDM); the dossier's
    # (0032): an enterprise's projects (XM TYSHXYDM); the search's (0033): DKBH and DZJGH by
    # their start in any case, the parcels an enterprise holds (QLRDM)
    extra = {
        "outputs": [Index("ix_outputs_year", "year")],
        "enterprises": [Index("ix_enterprises_parcel_nos", "parcel_nos", postgresql_using="gin")],
        "parcels": [
            Index("ix_parcels_supply_no", "supply_no"),
            Index("ix_parcels_holder_uscc", "holder_uscc"),
            _upper_prefix_index("ix_parcels_parcel_no_upper", "parcel_no"),
        ],
        "supplies": [
            Index("ix_supplies_grantee_uscc", "grantee_uscc"),
            _upper_prefix_index("ix_supplies_supply_no_upper", "supply_no"),
        ],
        "projects": [
            Index("ix_projects_parcel_no", "parcel_no"),
            Index("ix_projects_supply_no", "supply_no"),
            Index("ix_projects_uscc", "uscc"),
        ],
    }.get(layer.table, [])
    return Table(
        layer.table, metadata, *cols, UniqueConstraint(*layer.key_columns), *checks, *extra
    )


LAYER_TABLES: dict[str, Table] = {code: _layer_table(layer) for code, layer in LAYERS.items()}
