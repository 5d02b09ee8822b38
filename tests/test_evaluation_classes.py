"""The A/B/C/D classes kept by score bounds (gis/economy/evaluation_classes.py) on the analysed
sample city: a change near a cut reclasses, through the bounds and without scoring its
group-year whole, a row that did not change itself, and the result equals a recompute from
scratch; the bound the bases promise holds after it; ranks are computed when read, one
enterprise's as the whole group-year's."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check
from gis.core.analysis_columns import RATIO_COLUMNS
from gis.core.graph import Changes
from gis.economy import evaluation_classes, evaluation_read
from tests.conftest import SAMPLE_DIR, database_copy

AS_OF = date.fromisoformat(json.loads((SAMPLE_DIR / "planted.json").read_text())["reference_date"])
EVALUATION_TABLES = ["evaluation_rows", "evaluation_ranking", "evaluation_groups", "evaluations"]


@pytest.fixture(scope="module")
def city(analysed_sample):
    with database_copy(analysed_sample, "classes") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def _cut(conn, year: int, group: str) -> tuple:  # noqa: ANN001
    """The last A and the first B of a group-year, with different scores, and the B's land and
    tax (the row to lift above the A)."""
    rows = conn.execute(
        text(
            """SELECT uscc, class, score, rank FROM evaluations
               WHERE year = :y AND "group" = :g AND graded ORDER BY rank, uscc"""
        ),
        {"y": year, "g": group},
    ).all()
    a = [r for r in rows if r[1] == "A"]
    b = [r for r in rows if r[1] == "B"]
    last_a, first_b = a[-1], b[0]
    assert last_a[2] > first_b[2], "the cut falls between two equal scores"
    return last_a, first_b


def test_a_change_near_a_cut_reclasses_another_row_by_the_bounds(city):
    with city.connect() as conn, conn.begin() as tx:
        assert evaluation_classes.bound_violations(conn) == []
        year, group = conn.execute(
            text(
                """SELECT year, "group" FROM evaluation_groups WHERE n_graded >= 8
                   ORDER BY "group", year DESC LIMIT 1"""
            )
        ).one()
        last_a, first_b = _cut(conn, year, group)
        # lift the first B just above the last A by its tax: points = w·v/b, v = tax ÷ 亩
        w, b, mu, tax = conn.execute(
            text(
                """SELECT g.w_tax_per_mu, g.b_tax_per_mu, el.area_mu, o.tax_paid
                   FROM evaluation_groups g, enterprise_land el, outputs o
                   WHERE g.year = :y AND g."group" = :g AND el.year = :y AND el.uscc = :u
                     AND o.year = :y AND o.uscc = :u"""
            ),
            {"y": year, "g": group, "u": first_b[0]},
        ).one()
        gap = last_a[2] - first_b[2]
        lift = (gap + min(gap, 1e-3) * 0.5) * b / w * mu * 1.05
        conn.execute(
            text(
                "UPDATE outputs SET tax_paid = coalesce(tax_paid, 0) + :d "
                "WHERE uscc = :u AND year = :y"
            ),
            {"d": lift, "u": first_b[0], "y": year},
        )
        ctx = graph.refresh(conn, Changes(outputs={f"{first_b[0]}:{year}"}), AS_OF, trigger="test")
        kept = ctx.counts["evaluation_group_years"]
        assert kept["bounded"] >= 1 and kept["rescored"] == 0, kept
        now = dict(
            conn.execute(
                text(
                    "SELECT uscc, class FROM evaluation_ranking "
                    "WHERE year = :y AND uscc IN (:a, :b)"
                ),
                {"y": year, "a": last_a[0], "b": first_b[0]},
            ).all()
        )
        # the lifted row passes the last A, which did not change itself, and drops to B
        assert now == {first_b[0]: "A", last_a[0]: "B"}
        assert evaluation_classes.bound_violations(conn) == []
        diffs = recompute_check.differences(conn, AS_OF, tables=EVALUATION_TABLES)
        assert [line for d in diffs for line in d.lines()] == []
        tx.rollback()


def test_one_enterprise_is_ranked_as_its_group_year(city):
    """The dossier counts one enterprise's rank; the list ranks the group-year by a window:
    the same numbers, ties included."""
    with city.connect() as conn:
        uscc, year, group = conn.execute(
            text(
                """SELECT uscc, year, "group" FROM evaluation_ranking WHERE graded
                   ORDER BY year DESC, uscc LIMIT 1 OFFSET 3"""
            )
        ).one()
        listed = {
            (r["uscc"], r["year"]): r["rank"]
            for r in evaluation_read.evaluations(conn, year, group, analyst=True)["items"]
        }
        one = evaluation_read.dossier(conn, uscc, analyst=True)["evaluations"]
        assert one and all(
            e["rank"]
            == conn.execute(
                text(
                    """SELECT rank FROM evaluations WHERE year = :y AND "group" = :g
                       AND uscc = :u"""
                ),
                {"y": e["year"], "g": e["group"], "u": uscc},
            ).scalar()
            for e in one
        )
        assert any(e["year"] == year and e["rank"] == listed[(uscc, year)] for e in one)


def test_a_page_ranked_by_the_bounds_is_the_views_page(city, monkeypatch):
    """The evaluation list's pages, ranked through the score bounds (``ranked_rows``), equal
    those the view ranks by a window over the whole year: after a change that moved the
    benchmarks (every score drifted from its base score), across the end of a group's graded
    rows, its rows not graded and the next group, and of one class."""
    with city.connect() as conn, conn.begin() as tx:
        year, group = conn.execute(
            text(
                """SELECT year, "group" FROM evaluation_groups WHERE n_graded >= 8
                   ORDER BY "group", year DESC LIMIT 1"""
            )
        ).one()
        u = conn.execute(
            text(
                'SELECT uscc FROM evaluation_ranking WHERE year = :y AND "group" = :g '
                "AND graded ORDER BY uscc LIMIT 1"
            ),
            {"y": year, "g": group},
        ).scalar_one()
        conn.execute(
            text(
                "UPDATE outputs SET tax_paid = coalesce(tax_paid, 0) + 1 "
                "WHERE uscc = :u AND year = :y"
            ),
            {"u": u, "y": year},
        )
        ctx = graph.refresh(conn, Changes(outputs={f"{u}:{year}"}), AS_OF, trigger="test")
        assert ctx.counts["evaluation_group_years"]["bounded"] >= 1
        # widen every bound (the bases' mean points moved by 0.1 each: the bound still holds,
        # looser) and move the base scores within it, so that the order of the base scores is
        # not that of the scores and the bands hold many rows around the pages' ends
        conn.execute(
            text(
                "UPDATE evaluation_score_bases SET "
                + ", ".join(f"m_{i} = coalesce(m_{i}, 0) + 0.1" for i in RATIO_COLUMNS)
            )
        )
        conn.execute(
            text(
                "UPDATE evaluation_ranking SET "
                "base_score = base_score + (abs(hashtext(uscc)) % 1001 - 500) / 1000.0 * 0.3 "
                "WHERE graded"
            )
        )
        assert evaluation_classes.bound_violations(conn) == []
        n_above = conn.execute(
            text("SELECT n_graded FROM evaluation_groups WHERE year = :y AND \"group\" = 'above'"),
            {"y": year},
        ).scalar_one()
        pages = [
            (None, None, 7, 0),
            (None, None, 25, max(0, n_above - 10)),  # the graded's end, the rest, then 规下
            ("below", None, 10, 3),
            (group, "B", 6, 1),
            (None, "C", 9, 0),
        ]

        def page(g, k, limit, offset, bounded):  # noqa: ANN001, ANN202
            monkeypatch.setattr(
                evaluation_read,
                "RANKED_READ_MAX",
                evaluation_classes.RANKED_READ_MAX if bounded else 0,
            )
            return evaluation_read.evaluations(conn, year, g, True, k, limit, offset)

        for g, k, limit, offset in pages:
            by_bounds = page(g, k, limit, offset, True)
            assert by_bounds["items"], (g, k, limit, offset)
            assert by_bounds == page(g, k, limit, offset, False), (g, k, limit, offset)

        def view_ranks(uscc):  # noqa: ANN001, ANN202
            return dict(
                conn.execute(
                    text("SELECT year, rank FROM evaluations WHERE uscc = :u AND graded"),
                    {"u": uscc},
                ).all()
            )

        # an enterprise list (USCC order): its ranks through the bounds, then by the view
        for kw in ({"limit": 50}, {"limit": 30, "offset": 20, "klass": "B"}, {"year": year}):
            by_bounds = evaluation_read.enterprises(conn, True, **kw)
            assert any(it["rank"] for it in by_bounds["items"]), kw
            monkeypatch.setattr(evaluation_classes, "RANKS_OF_MAX", 0)
            assert by_bounds == evaluation_read.enterprises(conn, True, **kw), kw
            monkeypatch.setattr(evaluation_classes, "RANKS_OF_MAX", 1_000)
        # a dossier's ranks, counted through the bounds, then without a base (over the scores)
        some = [it["uscc"] for it in page(None, None, 40, 0, True)["items"][::8]] + [u]
        for uscc in some:
            one = evaluation_read.dossier(conn, uscc, analyst=True)["evaluations"]
            assert {e["year"]: e["rank"] for e in one if e["graded"]} == view_ranks(uscc)
        conn.execute(text("DELETE FROM evaluation_score_bases"))
        one = evaluation_read.dossier(conn, u, analyst=True)["evaluations"]
        assert {e["year"]: e["rank"] for e in one if e["graded"]} == view_ranks(u)
        tx.rollback()


def test_group_years_drifting_together_are_rebased_one_per_write(city, monkeypatch):
    """Past REBASE_SOON the most drifted group-year of a write is scored whole and the others
    stay bounded: the years of one enterprise, which drift together, do not all rescore in one
    write."""
    monkeypatch.setattr(evaluation_classes, "REBASE_SOON", 0.0)
    with city.connect() as conn, conn.begin() as tx:
        uscc, years = conn.execute(
            text(
                """SELECT uscc, array_agg(year ORDER BY year) FROM evaluation_ranking
                   WHERE graded GROUP BY uscc HAVING count(*) >= 2 ORDER BY uscc LIMIT 1"""
            )
        ).one()
        conn.execute(
            text(
                "UPDATE outputs SET tax_paid = coalesce(tax_paid, 0) + 1 "
                "WHERE uscc = :u AND year = ANY(:y)"
            ),
            {"u": uscc, "y": years[:2]},
        )
        ctx = graph.refresh(
            conn, Changes(outputs={f"{uscc}:{y}" for y in years[:2]}), AS_OF, trigger="test"
        )
        assert ctx.counts["evaluation_group_years"] == {"bounded": 1, "rescored": 1}
        assert evaluation_classes.bound_violations(conn) == []
        diffs = recompute_check.differences(conn, AS_OF, tables=EVALUATION_TABLES)
        assert [line for d in diffs for line in d.lines()] == []
        tx.rollback()


@pytest.mark.parametrize("cutoffs", [(0.25, 0.70, 0.95), (0.25, 0.50, 0.75), (0.3, 0.3, 1.0)])
def test_the_cut_ranks_are_those_of_the_rule_at_every_rank(city, cutoffs):
    """The ranks of the last A, the last B and the first D, found by a coarse and a fine pass,
    are those of the quota rule evaluated at every rank 1..n."""
    from gis.economy.evaluation import class_sql

    params = dict(zip(("c1", "c2", "c3"), cutoffs, strict=True))
    ns = {1, 2, 3, 4, 5, 19, 20, 21, 99, 100, 101, 1000, 40001}
    evaluation_classes._CUTS.clear()
    with city.connect() as conn:
        got = evaluation_classes._cuts(conn, ns, class_sql, params)
        brute = {
            n: (ka, kb, rd)
            for n, ka, kb, rd in conn.execute(
                text(
                    "SELECT n, max(r) FILTER (WHERE c = 'A'), "
                    "max(r) FILTER (WHERE c IN ('A', 'B')), min(r) FILTER (WHERE c = 'D') "
                    f"FROM (SELECT n, r, {class_sql('r', 'n')} AS c "
                    "FROM unnest(CAST(:ns AS int[])) n, generate_series(1, n) r) x GROUP BY n"
                ),
                {**params, "ns": sorted(ns)},
            )
        }
    assert got == brute


def test_the_order_statistics_are_the_scores_at_those_ranks(city):
    """``_order_statistics`` reads the j-th highest score of a group-year off the band of
    base scores around the j-th highest base score. Given a bound at least the rows' drift
    (score against base score), it is the j-th highest score the view computes: at both ends,
    in the middle, either side of n / 2 (the index is walked from its nearer end), for bands
    of several widths."""
    with city.connect() as conn:
        groups = conn.execute(
            text(
                """SELECT g.year, g."group", g.n_graded,
                          (SELECT max(abs(v.score - t.base_score)) FROM evaluation_scores v
                           JOIN evaluation_ranking t USING (year, uscc)
                           WHERE t.year = g.year AND t."group" = g."group" AND t.graded)
                   FROM evaluation_groups g WHERE g.n_graded > 2 ORDER BY 1, 2 LIMIT 4"""
            )
        ).all()
        assert groups
        wanted = []
        for y, g, n, drift in groups:
            ranks = {1, 2, n // 4, n // 2, n // 2 + 1, (n + 1) // 2, (n + 1) // 2 + 1, n - 1, n}
            for j in sorted(r for r in ranks if 1 <= r <= n):
                for d in (drift + evaluation_classes.ROUND_MARGIN, drift + 0.5, drift + 5.0):
                    wanted.append((y, g, j, n, d))
        got = evaluation_classes._order_statistics(conn, wanted)
        for (y, g, j, _, d), k in zip(wanted, got, strict=True):
            brute = conn.execute(
                text(
                    """SELECT round(score * 1e6::float8) FROM evaluation_scores
                       WHERE year = :y AND "group" = :g AND graded
                       ORDER BY 1 DESC OFFSET :o LIMIT 1"""
                ),
                {"y": y, "g": g, "o": j - 1},
            ).scalar_one()
            assert k == brute, (y, g, j, d)
