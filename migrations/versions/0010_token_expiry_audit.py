"""Tokens with an expiry, a shown prefix and a last use; the audit log of restricted reads

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

api_tokens gains ``expires_at`` (required; tokens made before this revision expire 365 days
after they were created), ``prefix`` (the token's first characters, unknown for older tokens)
and ``last_used_at``. ``audit_log`` records every request that served restricted data to a
token (gis/core/audit.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("prefix", sa.Text()))
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE api_tokens SET expires_at = created_at + interval '365 days'")
    op.alter_column("api_tokens", "expires_at", nullable=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("token_id", sa.BigInteger()),
        sa.Column("token_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False, server_default=""),
        sa.Column("route", sa.Text()),
        sa.Column("what", ARRAY(sa.Text()), nullable=False),
        sa.Column("rows", sa.Integer()),
        sa.Column("status", sa.Integer(), nullable=False),
    )
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("audit_log_token_name", "audit_log", ["token_name", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_column("api_tokens", "last_used_at")
    op.drop_column("api_tokens", "expires_at")
    op.drop_column("api_tokens", "prefix")
