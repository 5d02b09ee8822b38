"""Row history: every version of every source row, and retired rows

Revision ID: 0011_row_history
Revises: 0010
Create Date: 2026-12-10

``row_history`` holds one row per version of a layer row: ``op`` insert, update, retire or
restore, who wrote it, when, through what (``via``: ``batch:N`` for a file import, a request or
command id), the row as it became (``row``: contract columns, ``geom`` as hex EWKB in EPSG:4549;
for a retirement, the row as it was when retired) and, for updates, the changed columns with
their old and new values. A retired row is moved here out of its layer table, so every current
result leaves it out without a filter.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011_row_history"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "row_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("op", sa.Text(), nullable=False),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("via", sa.Text(), nullable=False),
        sa.Column("row", JSONB(), nullable=True),
        sa.Column("changes", JSONB(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "op IN ('insert', 'update', 'retire', 'restore')", name=op.f("ck_row_history_op")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_row_history")),
        sa.UniqueConstraint("layer", "key", "version", name=op.f("uq_row_history_layer")),
    )
    op.create_index(op.f("ix_row_history_at"), "row_history", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_row_history_at"), table_name="row_history")
    op.drop_table("row_history")
