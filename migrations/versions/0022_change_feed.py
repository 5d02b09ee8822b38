"""The change feed: source rows' versions and the derived results they changed, in commit order

Revision ID: 0022_change_feed
Revises: 0021_editor_tokens
Create Date: 2026-12-04

A department's system polls ``GET /api/changes?since=CURSOR`` and must see each change exactly
once, even when writers commit out of the order they started in. Each feed row carries the id
of the transaction that wrote it (``txid``, ``pg_current_xact_id()``); a reader hands out only
rows of transactions older than every transaction of the database still running, ordered
by (txid, id), so nothing can later appear before a cursor already given out.

- ``row_history`` gains ``txid`` (existing rows: the migration's transaction);
- ``derived_changes``: one row per derived result whose value changed (an enterprise-year's
  class, a parcel's 三块地 status, a zone's 亩均 figures), old and new value, the refresh's
  trigger and run;
- ``feed_values``: the value of each such result as the feed last published it (what the next
  refresh compares with).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0022_change_feed"
down_revision = "0021_editor_tokens"
branch_labels = None
depends_on = None


class _Xid8(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw) -> str:  # type: ignore[no-untyped-def]
        return "xid8"


def upgrade() -> None:
    op.add_column(
        "row_history",
        sa.Column("txid", _Xid8(), nullable=False, server_default=sa.text("pg_current_xact_id()")),
    )
    op.create_index("ix_row_history_txid", "row_history", ["txid", "id"])
    op.create_table(
        "derived_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("txid", _Xid8(), nullable=False, server_default=sa.text("pg_current_xact_id()")),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("old", JSONB()),
        sa.Column("new", JSONB()),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_changes")),
    )
    op.create_index("ix_derived_changes_txid", "derived_changes", ["txid", "id"])
    op.create_table(
        "feed_values",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", JSONB()),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_feed_values")),
    )


def downgrade() -> None:
    op.drop_table("feed_values")
    op.drop_table("derived_changes")
    op.drop_index("ix_row_history_txid", table_name="row_history")
    op.drop_column("row_history", "txid")
