"""Tables of the yearly publication (每年公布各类数据; gis/management/publication.py, migration
0025).

- ``publications``: one frozen edition of a year: year + edition (1, 2, …), who published it and
  when, a note, the rules' hash and the data's as-of date, the sections it holds (``contents``),
  the hash of its content and the zones' outlines its maps are drawn from (simplified, EPSG:4549
  GeoJSON), so that the report prints the same maps whatever the layers become.
- ``publication_contents``: the content of an edition in two audiences, ``public`` (disclosure
  control applied) and ``analyst`` (everything), as JSONB, each with its hash (SHA-256 of its
  canonical JSON) and its difference from the previous edition of the year.

Both are append-only: a trigger (migration 0025) refuses UPDATE and DELETE, so a later correction
of the data cannot change what was published.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from gis.core.models import metadata

AUDIENCES = ("public", "analyst")

publications = Table(
    "publications",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("edition", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("note", Text),
    Column("rules_hash", Text, nullable=False),
    Column("as_of", Date),  # the as-of date of the analysis the figures come from
    Column("contents", JSONB, nullable=False),  # [{section, title, present, note}]
    Column("content_hash", Text, nullable=False),  # SHA-256 of the two editions' hashes
    Column("geometry", JSONB, nullable=False, server_default="{}"),  # level -> [{code, geom}]
    UniqueConstraint("year", "edition", name="uq_publications_year"),
    CheckConstraint("edition >= 1", name="edition"),
)

publication_contents = Table(
    "publication_contents",
    metadata,
    Column(
        "publication_id",
        BigInteger,
        ForeignKey("publications.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("audience", Text, nullable=False),  # public | analyst
    Column("content", JSONB, nullable=False),
    Column("content_hash", Text, nullable=False),  # SHA-256 of the canonical JSON
    Column("diff", JSONB),  # against the previous edition's content of this audience
    PrimaryKeyConstraint("publication_id", "audience", name="pk_publication_contents"),
    CheckConstraint(f"audience IN {AUDIENCES}", name="audience"),
)

TABLES = (publications, publication_contents)
