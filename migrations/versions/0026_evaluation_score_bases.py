"""The evaluation's classes kept by score bounds; ranks computed when read

Revision ID: 0026_evaluation_score_bases
Revises: 0025_publications
Create Date: 2026-12-05

A stored competition rank moves for every row below a change, and a benchmark that moves
rescores the whole group-year, so keeping ranks meant ranking and rewriting tens of thousands of
rows for one enterprise moved or retired. Now:

- ``evaluation_ranking`` keeps the class and no rank; ``base_score``: the row's score under its
  group-year's base coefficients (below), indexed, so that the rows whose class a change may
  move are found by a range of it;
- ``evaluation_score_bases``: per year and group, the coefficients (weight ÷ benchmark) and the
  mean points the base scores were computed with, and ``spread``, the largest Σ |c·v| of a row
  scored against them: with them a row's score now lies within ε·spread + μ of its base score
  (docs/EVALUATION.md);
- the view ``evaluation_scores``: what ``evaluations`` was, without the rank;
- the view ``evaluations``: ``evaluation_scores`` with the rank among the graded of the year and
  group (competition rank by the score rounded to 1e-6), computed when read (a window over the
  graded rows' scores, joined back).

The bases start empty: the first change of a group-year (or ``landlink analyse-all``) scores it
whole and records its base.
"""

import importlib.util
import re
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0026_evaluation_score_bases"
down_revision = "0025_publications"
branch_labels = None
depends_on = None


def _migration(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


_0020 = _migration("0020_evaluation_ranking")
RATIOS = _0020.RATIOS


def view_sql() -> str:
    """The two views: ``evaluation_scores`` (migration 0020's ``evaluations`` without the stored
    rank) and ``evaluations`` (those columns and the rank, computed when read)."""
    scores = (
        _0020.view_sql()
        .replace("CREATE VIEW evaluations AS", "CREATE VIEW evaluation_scores AS")
        .replace(
            "q.class, q.rank, CASE WHEN q.rank IS NOT NULL THEN q.n_graded END AS group_size",
            "q.class, CASE WHEN q.graded THEN q.n_graded END AS group_size",
        )
        .replace("s.class, s.rank,", "s.class,")
    )
    assert not re.search(r"\brank\b", scores), "migration 0020's view changed: adapt this one"
    # the window over the graded rows' scores alone, joined back: ranking a year reads the
    # narrow columns (the join to evaluation_rows is dropped there), not every row's JSON; a
    # query of a year or of a year and group ranks that year only (the year is pushed into the
    # window's partitions through the join)
    return f"""
        {scores};
        CREATE VIEW evaluations AS
        SELECT s.*, k.rank
        FROM evaluation_scores s
        LEFT JOIN (SELECT year, uscc, rank() OVER (PARTITION BY year, "group"
                                                   ORDER BY round(score * 1e6::float8) DESC)::int
                       AS rank
                   FROM evaluation_scores WHERE graded) k
             ON k.year = s.year AND k.uscc = s.uscc
    """


def upgrade() -> None:
    op.execute("DROP VIEW evaluations")
    op.drop_column("evaluation_ranking", "rank")
    op.add_column("evaluation_ranking", sa.Column("base_score", sa.Double()))
    op.create_table(
        "evaluation_score_bases",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        *(sa.Column(f"c_{i}", sa.Double()) for i in RATIOS),
        *(sa.Column(f"m_{i}", sa.Double()) for i in RATIOS),
        sa.Column("spread", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("year", "group", name="pk_evaluation_score_bases"),
    )
    # the graded rows of a group-year by base score (the order statistics), and by class and
    # base score (the rows whose class a change may move)
    op.create_index(
        "ix_evaluation_ranking_base",
        "evaluation_ranking",
        ["year", "group", "base_score"],
        postgresql_where=sa.text("graded"),
    )
    op.create_index(
        "ix_evaluation_ranking_class_base",
        "evaluation_ranking",
        ["year", "group", "class", "base_score"],
        postgresql_where=sa.text("graded"),
    )
    op.execute(view_sql())


def downgrade() -> None:
    op.execute("DROP VIEW evaluations")
    op.execute("DROP VIEW evaluation_scores")
    op.drop_index("ix_evaluation_ranking_class_base", "evaluation_ranking")
    op.drop_index("ix_evaluation_ranking_base", "evaluation_ranking")
    op.drop_table("evaluation_score_bases")
    op.drop_column("evaluation_ranking", "base_score")
    op.add_column("evaluation_ranking", sa.Column("rank", sa.Integer()))
    op.execute(_0020.view_sql())
    op.execute(
        """
        UPDATE evaluation_ranking t SET rank = k.rank FROM (
            SELECT year, uscc, rank() OVER (PARTITION BY year, "group"
                                            ORDER BY round(score * 1e6::float8) DESC) AS rank
            FROM evaluations WHERE graded) k
        WHERE t.year = k.year AND t.uscc = k.uscc
        """
    )
