"""The yearly publication: frozen editions of a year's figures, in a public and an analyst audience

Revision ID: 0025_publications
Revises: 0023_targets_tasks
Create Date: 2026-12-05

- ``publications``: year + edition, who and when, note, the rules' hash and the data's as-of
  date, the sections held, the content hash and the zones' outlines the maps are drawn from;
- ``publication_contents``: each edition's content per audience (public: disclosure control
  applied; analyst: everything) as JSONB with its hash and its diff from the previous edition.

Both tables are append-only: a trigger refuses UPDATE and DELETE (a correction of the data makes a
new edition, never a changed one).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0025_publications"
down_revision = "0024_target_progress"
branch_labels = None
depends_on = None

IMMUTABLE = """
CREATE FUNCTION publications_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a publication is immutable: % on % refused (publish again for a new edition)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("edition", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("rules_hash", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date()),
        sa.Column("contents", JSONB(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("geometry", JSONB(), server_default="{}", nullable=False),
        sa.CheckConstraint("edition >= 1", name=op.f("ck_publications_edition")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
        sa.UniqueConstraint("year", "edition", name="uq_publications_year"),
    )
    op.create_table(
        "publication_contents",
        sa.Column("publication_id", sa.BigInteger(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("content", JSONB(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("diff", JSONB()),
        sa.CheckConstraint(
            "audience IN ('public', 'analyst')", name=op.f("ck_publication_contents_audience")
        ),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publications.id"],
            name=op.f("fk_publication_contents_publication_id"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("publication_id", "audience", name="pk_publication_contents"),
    )
    op.execute(IMMUTABLE)
    for t in ("publications", "publication_contents"):
        op.execute(
            f"CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION publications_immutable()"
        )


def downgrade() -> None:
    for t in ("publication_contents", "publications"):
        op.execute(f"DROP TRIGGER {t}_immutable ON {t}")
    op.drop_table("publication_contents")
    op.drop_table("publications")
    op.execute("DROP FUNCTION publications_immutable()")
