"""The change feed's baseline: a kind published for the first time by a refresh by keys records
every value of the kind silently (not only the changed keys'), so the feed's memory equals what a
recompute from scratch publishes, and a later change of any other key is logged with its old
value."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check
from gis.core.graph import Changes
from tests.conftest import database_copy, sample_as_of


def test_a_first_refresh_by_keys_publishes_every_value_silently(analysed_sample):
    with database_copy(analysed_sample, "feedbase") as url:
        eng = create_engine(url)
        with eng.begin() as c:
            c.execute(text("DELETE FROM feed_values"))  # as on a database before the feed
            before = c.execute(text("SELECT count(*) FROM derived_changes")).scalar_one()
            key = c.execute(
                text(
                    "UPDATE outputs SET tax_paid = tax_paid * 3 + 7 WHERE (uscc, year) = ("
                    "SELECT o.uscc, o.year FROM outputs o JOIN per_mu p ON p.level = 'enterprise'"
                    " AND p.code = o.uscc AND p.year = o.year WHERE o.tax_paid > 0 "
                    "ORDER BY 1, 2 LIMIT 1) RETURNING uscc || ':' || year"
                )
            ).scalar_one()
            graph.refresh(c, Changes(outputs={key}), sample_as_of(), trigger="test")
            kinds = dict(
                c.execute(text("SELECT kind, count(*) FROM feed_values GROUP BY kind")).all()
            )
            # every kind whole: the enterprises' classes of every year, not one enterprise's
            assert kinds["evaluation"] > 1000 and kinds["per_mu"] > 100, kinds
            assert c.execute(text("SELECT count(*) FROM derived_changes")).scalar_one() == before
        with eng.connect() as c:
            assert recompute_check.differences(c, sample_as_of(), tables=["feed_values"]) == []
            c.rollback()
        # a later change of another key is logged, with the value it had
        with eng.begin() as c:
            other = c.execute(
                text(
                    "UPDATE outputs SET tax_paid = tax_paid * 5 + 9 WHERE (uscc, year) = ("
                    "SELECT o.uscc, o.year FROM outputs o JOIN per_mu p ON p.level = 'enterprise'"
                    " AND p.code = o.uscc AND p.year = o.year WHERE o.tax_paid > 0 "
                    "ORDER BY 1 DESC, 2 LIMIT 1) RETURNING uscc || ':' || year"
                )
            ).scalar_one()
            graph.refresh(c, Changes(outputs={other}), sample_as_of(), trigger="test")
            logged = (
                c.execute(text("SELECT old FROM derived_changes WHERE kind = 'per_mu' AND id > 0"))
                .scalars()
                .all()
            )
            assert logged and all(v is not None for v in logged), logged
        eng.dispose()
