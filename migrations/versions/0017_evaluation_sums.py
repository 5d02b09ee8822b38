"""The evaluation's group sums, kept by differences

Revision ID: 0017_evaluation_sums
Revises: 0016_zone_sums
Create Date: 2026-12-04

A benchmark is the mean of an indicator over the evaluated enterprises of a group and year
(DOMAIN_RULES §2): one changed enterprise moved it, and the mean was taken again over the whole
group-year (about 40,000 rows on a 98,048-parcel city). ``evaluation_groups`` now keeps the sums
the means are made of: the number of rows ``n_rows``, and per indicator the exact (numeric) sum
``s_<indicator>`` and number ``c_<indicator>`` of evaluated rows that have it. A change adds the
changed rows as they are and takes them away as they were. This migration fills the sums from
the stored rows.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_evaluation_sums"
down_revision = "0016_zone_sums"
branch_labels = None
depends_on = None

# gis/core/analysis_columns.RATIO_COLUMNS
RATIOS = (
    "output_per_mu",
    "revenue_per_mu",
    "va_per_mu",
    "tax_per_mu",
    "va_per_energy",
    "va_per_emission",
    "labour_productivity",
    "rd_intensity",
)


def upgrade() -> None:
    op.add_column("evaluation_groups", sa.Column("n_rows", sa.Integer(), nullable=True))
    for i in RATIOS:
        op.add_column("evaluation_groups", sa.Column(f"s_{i}", sa.Numeric(), nullable=True))
        op.add_column("evaluation_groups", sa.Column(f"c_{i}", sa.Integer(), nullable=True))
    has = {i: f"evaluated AND {i} IS NOT NULL" for i in RATIOS}
    sets = ", ".join(["n_rows = x.n_rows"] + [f"s_{i} = x.s_{i}, c_{i} = x.c_{i}" for i in RATIOS])
    cols = ", ".join(
        ["count(*) AS n_rows"]
        + [
            f"sum({i}::numeric) FILTER (WHERE {has[i]}) AS s_{i}, "
            f"count(*) FILTER (WHERE {has[i]}) AS c_{i}"
            for i in RATIOS
        ]
    )
    op.execute(
        f"""
        UPDATE evaluation_groups g SET {sets}
        FROM (SELECT year, "group", {cols} FROM evaluation_rows GROUP BY year, "group") x
        WHERE x.year = g.year AND x."group" = g."group"
        """
    )
    # a group row without rows (none should exist) has nothing to sum
    op.execute(
        "UPDATE evaluation_groups SET n_rows = 0"
        + "".join(f", c_{i} = 0" for i in RATIOS)
        + " WHERE n_rows IS NULL"
    )
    op.alter_column("evaluation_groups", "n_rows", nullable=False)
    for i in RATIOS:
        op.alter_column("evaluation_groups", f"c_{i}", nullable=False)


def downgrade() -> None:
    for i in RATIOS:
        op.drop_column("evaluation_groups", f"c_{i}")
        op.drop_column("evaluation_groups", f"s_{i}")
    op.drop_column("evaluation_groups", "n_rows")
