"""Merge the analysis branches into one head.

Revisions 0003 (evaluation), 0004 (three-lands detection), 0005 (tiles) and 0007 (plans) each
build on 0001 (the registry) only. This merge gives the history a single head, so
``alembic upgrade head`` (as well as ``landlink migrate``) works and later revisions have one
parent.

Revision ID: 0008
Revises: 0003, 0004, 0005, 0007
"""

from __future__ import annotations

revision = "0008"
down_revision = ("0003", "0004", "0005", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: a merge point."""


def downgrade() -> None:
    """Nothing to do: a merge point."""
