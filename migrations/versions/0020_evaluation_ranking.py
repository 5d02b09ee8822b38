"""The evaluation's ranking in a narrow table of its own

Revision ID: 0020_evaluation_ranking
Revises: 0019_zone_share_sums
Create Date: 2026-12-04

A change that moves a benchmark re-ranks its whole group-year, and an enterprise that leaves (or
joins) shifts the rank of every enterprise below it: some 30,000 rows of a group-year on a
98,048-parcel city. Those ranks lived in ``evaluation_rows`` (about 700 bytes a row, three
indexes), where updating 31,364 of them took 470 ms, and the ranking read the whole wide table to
score a group-year (250 ms). Now:

- ``evaluation_ranking``: what ranks a row (group, evaluated, graded, the indicator values it is
  scored on) and its rank and class; narrow, with half of each page free (fillfactor 50) so that
  a rank rewritten is updated in place: the same 31,364 ranks in 51 ms; indexed by its key and
  by USCC (an enterprise's rows: 25 ms without, by the key's index scanned whole);
- ``evaluation_rows``: the rest of the row (land, the indicators as shown, the reasons, zones);
- the view ``evaluations``: the same columns as before, from the two and ``evaluation_groups``.

Figures: ``psql`` with ``\\timing`` on the scale-20 sample city (``UPDATE ... SET rank = rank + 1
WHERE year = 2024 AND "group" = 'above' AND rank > 100`` in a rolled-back transaction).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0020_evaluation_ranking"
down_revision = "0019_zone_share_sums"
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
MOVED = ("group", "evaluated", "graded", *RATIOS, "rank", "class")


def _points(i: str) -> str:
    """Points of indicator ``i``: weight × value ÷ benchmark (0 when the benchmark is not
    positive); a missing value scores the group's mean points where the group has them (energy
    and emissions, ``m_``), else 0; NULL when not evaluated or not the group's indicator."""
    return (
        f"CASE WHEN s.evaluated AND g.w_{i} IS NOT NULL THEN coalesce("
        f"CASE WHEN s.{i} IS NOT NULL THEN CASE WHEN g.b_{i} > 0 "
        f"THEN g.w_{i} * s.{i} / g.b_{i} ELSE 0 END END, g.m_{i}, 0) END"
    )


def view_sql() -> str:
    """The view ``evaluations``: the columns it had (migration 0014), the ranking's from
    ``evaluation_ranking`` joined to the row's own. The rows are joined with LEFT JOIN on their
    primary key so that a query of the ranking's columns alone (the re-ranking) does not read
    ``evaluation_rows`` at all (the planner removes the join)."""
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
            SELECT s.year, s.uscc, r.name, r.industry_code, s."group", s.evaluated, s.graded,
               r.area_mu, r.land_basis, s.class, s.rank, r.indicators, r.missing,
               r.not_evaluated_reason, r.not_graded_reason, r.district_code, r.platform_code,
               r.corridor_code, r.rule, r.run_id, r.as_of,
               {", ".join(f"s.{i}" for i in RATIOS)},
               g.n_graded, g.benchmarks AS g_benchmarks,
               {pts}
            FROM evaluation_ranking s
            LEFT JOIN evaluation_rows r ON r.year = s.year AND r.uscc = s.uscc
            LEFT JOIN evaluation_groups g ON g.year = s.year AND g."group" = s."group"
        ) q
    """


def upgrade() -> None:
    op.execute("DROP VIEW evaluations")
    op.create_table(
        "evaluation_ranking",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.Text(), nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
        sa.Column("graded", sa.Boolean(), nullable=False),
        *(sa.Column(i, sa.Double()) for i in RATIOS),
        sa.Column("rank", sa.Integer()),
        sa.Column("class", sa.Text()),
        sa.PrimaryKeyConstraint("year", "uscc", name="pk_evaluation_ranking"),
        sa.CheckConstraint("\"group\" IN ('above', 'below')", name="ck_evaluation_ranking_group"),
        sa.CheckConstraint(
            "class IS NULL OR class IN ('A', 'B', 'C', 'D')", name="ck_evaluation_ranking_class"
        ),
        postgresql_with={"fillfactor": 50},
    )
    # an enterprise's rows by its USCC (dossiers, the enterprise layer's class)
    op.create_index("ix_evaluation_ranking_uscc", "evaluation_ranking", ["uscc"])
    cols = ", ".join(f'"{c}"' for c in MOVED)
    op.execute(
        f"INSERT INTO evaluation_ranking (year, uscc, {cols}) "
        f'SELECT year, uscc, {cols} FROM evaluation_rows ORDER BY year, "group", uscc'
    )
    for c in MOVED:
        op.drop_column("evaluation_rows", c)
    op.execute(view_sql())


def downgrade() -> None:
    op.execute("DROP VIEW evaluations")
    op.add_column("evaluation_rows", sa.Column("group", sa.Text()))
    op.add_column("evaluation_rows", sa.Column("evaluated", sa.Boolean()))
    op.add_column("evaluation_rows", sa.Column("graded", sa.Boolean()))
    op.add_column("evaluation_rows", sa.Column("class", sa.Text()))
    op.add_column("evaluation_rows", sa.Column("rank", sa.Integer()))
    for i in RATIOS:
        op.add_column("evaluation_rows", sa.Column(i, sa.Double()))
    op.execute(
        "UPDATE evaluation_rows r SET "
        + ", ".join(f'"{c}" = s."{c}"' for c in MOVED)
        + " FROM evaluation_ranking s WHERE s.year = r.year AND s.uscc = r.uscc"
    )
    for c in ("group", "evaluated", "graded"):
        op.alter_column("evaluation_rows", c, nullable=False)
    # named as migration 0014 left them (raw SQL: the naming convention would prefix them)
    op.execute(
        "ALTER TABLE evaluation_rows ADD CONSTRAINT ck_evaluation_rows_group "
        "CHECK (\"group\" IN ('above', 'below')), ADD CONSTRAINT ck_evaluation_rows_class "
        "CHECK (class IS NULL OR class IN ('A', 'B', 'C', 'D'))"
    )
    op.drop_table("evaluation_ranking")
    # the view as migration 0014 made it
    spec = importlib.util.spec_from_file_location(
        "evaluation_groups_0014", Path(__file__).with_name("0014_evaluation_groups.py")
    )
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    op.execute(m.view_sql())
