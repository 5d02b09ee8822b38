"""The evaluation stored as what each row owns and one benchmark row per year and group

Revision ID: 0014_evaluation_groups
Revises: 0013_result_key_indexes
Create Date: 2026-12-04

Every score is Σ weight × value ÷ the group's mean (DOMAIN_RULES §2), so one enterprise whose
land or figures change moves the means of its group and year and with them every score of it:
storing scores and points meant rewriting a whole group-year (about 37,000 rows on a
98,048-parcel city) for one changed row. Now:

- ``evaluation_rows``: what a row owns (land, the group's indicator values, reasons, zone codes)
  and its rank and class (the published result, rewritten only where it changes);
- ``evaluation_groups``: one row per year and group: its weights, benchmarks (means), the mean
  points a missing energy or emission figure scores, and the number graded;
- the view ``evaluations``: the rows with their score, points, benchmarks and group size computed
  from the two when read (the columns ``evaluations`` had, and each indicator's points).

Existing rows keep their rank and class; their scores and points appear after the next
``landlink analyse-all`` (the group rows are made by the evaluation, not by this migration).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_evaluation_groups"
down_revision = "0013_result_key_indexes"
branch_labels = None
depends_on = None

# the per-mu ratio columns an indicator may be (gis/core/analysis_columns.RATIO_COLUMNS)
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


def _points(i: str) -> str:
    """Points of indicator ``i``: weight × value ÷ benchmark (0 when the benchmark is not
    positive); a missing value scores the group's mean points where the group has them (energy
    and emissions, ``m_``), else 0; NULL when not evaluated or not the group's indicator."""
    return (
        f"CASE WHEN r.evaluated AND g.w_{i} IS NOT NULL THEN coalesce("
        f"CASE WHEN r.{i} IS NOT NULL THEN CASE WHEN g.b_{i} > 0 "
        f"THEN g.w_{i} * r.{i} / g.b_{i} ELSE 0 END END, g.m_{i}, 0) END"
    )


def view_sql() -> str:
    pts = ",\n               ".join(f"{_points(i)} AS points_{i}" for i in RATIOS)
    score = " + ".join(f"coalesce(q.points_{i}, 0)" for i in RATIOS)
    js = ", ".join(f"'{i}', round(q.points_{i}::numeric, 4)" for i in RATIOS)
    ratios = ", ".join(f"q.{i}" for i in RATIOS)
    points = ", ".join(f"q.points_{i}" for i in RATIOS)
    return f"""
        CREATE VIEW evaluations AS
        SELECT q.year, q.uscc, q.name, q.industry_code, q."group", q.evaluated, q.graded,
               q.area_mu, q.land_basis,
               CASE WHEN q.evaluated THEN {score} END AS score,
               q.class, q.rank, CASE WHEN q.rank IS NOT NULL THEN q.n_graded END AS group_size,
               q.indicators,
               CASE WHEN q.evaluated THEN coalesce(q.g_benchmarks, '{{}}') ELSE '{{}}' END
                   AS benchmarks,
               CASE WHEN q.evaluated THEN jsonb_strip_nulls(jsonb_build_object({js}))
                    ELSE '{{}}' END AS points,
               q.missing, q.not_evaluated_reason, q.not_graded_reason,
               q.district_code, q.platform_code, q.corridor_code,
               {ratios}, {points},
               q.rule, q.run_id, q.as_of
        FROM (
            SELECT r.*, g.n_graded, g.benchmarks AS g_benchmarks,
               {pts}
            FROM evaluation_rows r
            LEFT JOIN evaluation_groups g ON g.year = r.year AND g."group" = r."group"
        ) q
    """


def upgrade() -> None:
    op.rename_table("evaluations", "evaluation_rows")
    op.execute("ALTER TABLE evaluation_rows RENAME CONSTRAINT pk_evaluations TO pk_evaluation_rows")
    for ck in ("group", "class"):  # named by the metadata's convention, ck_<table>_<name>
        op.execute(
            f"ALTER TABLE evaluation_rows RENAME CONSTRAINT ck_evaluations_ck_evaluations_{ck} "
            f"TO ck_evaluation_rows_{ck}"
        )
    op.execute("ALTER INDEX ix_evaluations_uscc RENAME TO ix_evaluation_rows_uscc")
    for c in ("score", "group_size", "benchmarks", "points"):
        op.drop_column("evaluation_rows", c)
    for i in RATIOS:
        op.add_column("evaluation_rows", sa.Column(i, sa.Double()))
    # the supply records holding a row "still building" (a changed record finds its rows by
    # this GIN index instead of searching every not_graded_reason)
    op.add_column(
        "evaluation_rows",
        sa.Column(
            "building_supply_nos",
            sa.dialects.postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default="{}",
        ),
    )
    op.execute(
        "UPDATE evaluation_rows SET building_supply_nos = ARRAY(SELECT m[1] FROM "
        "regexp_matches(not_graded_reason, 'newly supplied land: (\\S+) supplied ', 'g') m "
        "ORDER BY 1) WHERE not_graded_reason LIKE '%newly supplied land: %'"
    )
    op.create_index(
        "ix_evaluation_rows_building",
        "evaluation_rows",
        ["building_supply_nos"],
        postgresql_using="gin",
    )
    # the indicator values the rows were scored on: the enterprise's per-mu row of the year
    op.execute(
        "UPDATE evaluation_rows r SET "
        + ", ".join(f"{i} = pm.{i}" for i in RATIOS)
        + " FROM per_mu pm WHERE pm.level = 'enterprise' AND pm.code = r.uscc"
        " AND pm.year = r.year"
    )
    cols = [
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("n_graded", sa.Integer(), nullable=False),
    ]
    for i in RATIOS:
        cols += [
            sa.Column(f"w_{i}", sa.Double()),  # weight; NULL: not the group's indicator
            sa.Column(f"b_{i}", sa.Double()),  # benchmark: the mean over the evaluated
            sa.Column(f"m_{i}", sa.Double()),  # mean points, scored where the value is missing
        ]
    op.create_table(
        "evaluation_groups",
        *cols,
        sa.Column("benchmarks", sa.dialects.postgresql.JSONB(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("year", "group", name="pk_evaluation_groups"),
    )
    op.execute(view_sql())


def downgrade() -> None:
    op.execute("DROP VIEW evaluations")
    op.drop_table("evaluation_groups")
    op.drop_index("ix_evaluation_rows_building", table_name="evaluation_rows")
    op.drop_column("evaluation_rows", "building_supply_nos")
    for i in RATIOS:
        op.drop_column("evaluation_rows", i)
    op.add_column("evaluation_rows", sa.Column("score", sa.Double()))
    op.add_column("evaluation_rows", sa.Column("group_size", sa.Integer()))
    for c, d in (("benchmarks", "{}"), ("points", "{}")):
        op.add_column(
            "evaluation_rows",
            sa.Column(
                c, sa.dialects.postgresql.JSONB(), nullable=False, server_default=sa.text(f"'{d}'")
            ),
        )
    op.execute("ALTER INDEX ix_evaluation_rows_uscc RENAME TO ix_evaluations_uscc")
    op.execute("ALTER TABLE evaluation_rows RENAME CONSTRAINT pk_evaluation_rows TO pk_evaluations")
    for ck in ("group", "class"):
        op.execute(
            f"ALTER TABLE evaluation_rows RENAME CONSTRAINT ck_evaluation_rows_{ck} "
            f"TO ck_evaluations_ck_evaluations_{ck}"
        )
    op.rename_table("evaluation_rows", "evaluations")
