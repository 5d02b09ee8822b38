"""A zone's GYZCZ of featured, high-tech and platform enterprises kept in zone_sums

Revision ID: 0019_zone_share_sums
Revises: 0018_link_key_indexes
Create Date: 2026-12-04

The §7 output shares (featured, high-tech, platform) were summed over every enterprise with land
in a zone each time a zone was in question (0.4-0.5 s of a one-row refresh on a 98,048-parcel
city). per_mu now keeps their numerators in ``zone_sums`` by differences, like the other sums:
``out_featured``, ``out_hightech``, ``out_platform`` with ``n_`` counts, and each
enterprise-year's flags as counted (``enterprise_land.featured``, ``hightech``).

The flags depend on rules.toml (``[indicators]``), which a migration does not read: the zone
sums are emptied here, and ``landlink migrate`` recomputes the derived tables whole when it finds
them so (the next refresh of per_mu would too).
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_zone_share_sums"
down_revision = "0018_link_key_indexes"
branch_labels = None
depends_on = None

SHARES = ("out_featured", "out_hightech", "out_platform")


def upgrade() -> None:
    for c in ("featured", "hightech"):
        op.add_column(
            "enterprise_land",
            sa.Column(c, sa.Boolean(), nullable=False, server_default=sa.text("false")),
        )
    op.execute("DELETE FROM zone_sums")
    for c in SHARES:
        op.add_column("zone_sums", sa.Column(c, sa.Numeric()))
        op.add_column(
            "zone_sums", sa.Column(f"n_{c}", sa.Integer(), nullable=False, server_default="0")
        )
        op.alter_column("zone_sums", f"n_{c}", server_default=None)


def downgrade() -> None:
    for c in SHARES:
        op.drop_column("zone_sums", f"n_{c}")
        op.drop_column("zone_sums", c)
    for c in ("featured", "hightech"):
        op.drop_column("enterprise_land", c)
