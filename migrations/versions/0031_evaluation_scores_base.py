"""The view evaluation_scores shows each row's base score

Revision ID: 0031_evaluation_scores_base
Revises: 0030_evaluation_score_counts
Create Date: 2026-12-06

The classes are kept by scoring exactly the rows whose base score lies in a band (docs/
EVALUATION.md, "How classes are kept"). They were found in ``evaluation_ranking`` and each then
looked up in the view ``evaluation_scores`` by its key: two index reads a row, some 5,000 rows
for one enterprise moved on the 98,048-parcel city. With ``base_score`` in the view, a band is
one range of the base-score index read through the view, which scores its rows as it reads
them. ``evaluations`` (the rows with their rank) is unchanged: it lists the columns it had.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0031_evaluation_scores_base"
down_revision = "0030_evaluation_score_counts"
branch_labels = None
depends_on = None


def _migration(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _scores(with_base: bool) -> str:
    """Migration 0026's ``evaluation_scores`` as CREATE OR REPLACE, with the base score last."""
    sql = _migration("0026_evaluation_score_bases").view_sql()
    scores = sql[: sql.index("CREATE VIEW evaluations AS")].strip().rstrip(";")
    scores = scores.replace(
        "CREATE VIEW evaluation_scores AS", "CREATE OR REPLACE VIEW evaluation_scores AS"
    )
    if with_base:
        outer, inner = "q.rule, q.run_id, q.as_of", "FROM evaluation_ranking s"
        assert scores.count(outer) == 1 and scores.count(inner) == 1, "0026's view changed"
        scores = scores.replace(outer, f"{outer}, q.base_score").replace(
            "g.n_graded, g.benchmarks AS g_benchmarks,",
            "g.n_graded, g.benchmarks AS g_benchmarks, s.base_score,",
        )
        assert "s.base_score" in scores, "0020's view changed"
    return scores


def upgrade() -> None:
    op.execute(_scores(True))


def downgrade() -> None:
    # a view's columns cannot be dropped by replacing it: both views made again as 0026 made them
    op.execute("DROP VIEW evaluations")
    op.execute("DROP VIEW evaluation_scores")
    op.execute(_migration("0026_evaluation_score_bases").view_sql())
