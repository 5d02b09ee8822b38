"""The economy producers (per_mu, evaluation, indicators) refreshed by changed keys give, row by
row, what a full recompute gives: ``enterprise_land``, ``per_mu``, ``evaluations`` and
``area_indicators`` after one changed CC row (one enterprise-year's figures or declared land),
after one relinked enterprise (its point moved onto another parcel, or off every parcel) and
after one parcel moved from its platform into another (the platform it left, which the links as
they are now no longer name, loses its land), after an enterprise's industry changed and after a
platform's featured industries were cleared (output shares move, no per_mu row does). The §7
indicators are recomputed only for the zones a change touches: one zone's change must still
move the other zones' ranks and the platforms' shares of the city.

Each case runs in a transaction that is rolled back (every case starts from the same analysed
city); ``gis/core/recompute_check`` compares with a recompute from scratch in a savepoint after
the incremental refresh. The incremental
refresh's time is printed (``pytest -s``), not asserted.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check
from gis.core.graph import Changes
from gis.core.rules import get_rules
from tests.conftest import database_copy
from tests.test_incremental_property import AS_OF, derived_rows

ECONOMY = (
    "enterprise_land", "per_mu", "evaluation_rows", "evaluation_ranking", "evaluation_groups",
    "evaluations",
    "area_indicators",
)  # fmt: skip


@pytest.fixture(scope="module")
def city(analysed_sample):
    """A copy of the sample city, linked and analysed from scratch (conftest's
    ``analysed_sample``, as of AS_OF)."""
    with database_copy(analysed_sample, "econ_inc") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


def _pick(conn, sql: str, params: dict | None = None) -> tuple:  # noqa: ANN001
    row = conn.execute(text(sql), params or {}).first()
    assert row is not None, f"the sample city has no case for: {sql}"
    return tuple(row)


# Each case: (the change as SQL over the picked row, the keys a writer reports)
GRADED_ABOVE = """
    SELECT uscc, year FROM evaluations WHERE graded AND "group" = 'above'
    ORDER BY score DESC, uscc, year LIMIT 1 OFFSET 3"""
SHARED_PARCEL = """
    SELECT o.uscc, o.year FROM outputs o
    JOIN links l ON l.kind = 'enterprise_parcel' AND l.from_key = o.uscc
    WHERE o.declared_land_m2 > 0
      AND EXISTS (  -- the parcel is split by declared land among enterprises with output
        SELECT 1 FROM links x JOIN outputs xo ON xo.uscc = x.from_key AND xo.year = o.year
        WHERE x.kind = 'enterprise_parcel' AND x.to_key = l.to_key AND x.from_key <> o.uscc)
      AND NOT EXISTS (
        SELECT 1 FROM links x JOIN outputs xo ON xo.uscc = x.from_key AND xo.year = o.year
        WHERE x.kind = 'enterprise_parcel' AND x.to_key = l.to_key
          AND NOT coalesce(xo.declared_land_m2 > 0, false))
    ORDER BY o.uscc, o.year LIMIT 1"""
DECLARED = """
    SELECT uscc, year FROM enterprise_land WHERE basis = 'declared'
    ORDER BY uscc, year LIMIT 1"""


def _output_case(column: str, value: str, which: str):  # noqa: ANN202
    def change(conn) -> Changes:  # noqa: ANN001
        uscc, year = _pick(conn, which)
        conn.execute(
            text(f"UPDATE outputs SET {column} = {value} WHERE uscc = :u AND year = :y"),
            {"u": uscc, "y": year},
        )
        return Changes(outputs={f"{uscc}:{year}"})

    return change


def _relink_case(assignments: str):  # noqa: ANN202
    """An evaluated enterprise linked by its DKBH gets new ``assignments`` (SQL, given :u)."""

    def change(conn) -> Changes:  # noqa: ANN001
        (uscc,) = _pick(
            conn,
            """SELECT el.uscc FROM enterprise_land el
               JOIN links l ON l.kind = 'enterprise_parcel' AND l.from_key = el.uscc
                    AND l.method = 'key'
               WHERE el.basis = 'parcels' ORDER BY el.uscc LIMIT 1 OFFSET 5""",
        )
        conn.execute(text(f"UPDATE enterprises SET {assignments} WHERE uscc = :u"), {"u": uscc})
        return Changes(enterprises={uscc})  # the graph relinks it

    return change


# the parcel of another evaluated enterprise (the parcel becomes shared)
ANOTHER_PARCEL = """(
    SELECT p.parcel_no FROM parcels p
    JOIN links l ON l.kind = 'enterprise_parcel' AND l.to_key = p.parcel_no
    JOIN enterprise_land el ON el.uscc = l.from_key AND el.basis = 'parcels'
    WHERE l.from_key <> :u AND NOT EXISTS (
        SELECT 1 FROM links x WHERE x.kind = 'enterprise_parcel' AND x.from_key = :u
          AND x.to_key = p.parcel_no)
    ORDER BY p.parcel_no DESC LIMIT 1)"""
ONTO_ANOTHER = f"""parcel_nos = ARRAY[{ANOTHER_PARCEL}],
    geom = (SELECT ST_PointOnSurface(geom) FROM parcels WHERE parcel_no = {ANOTHER_PARCEL})"""
# no DKBH and a point far from every parcel (unlinked: declared land or none)
OFF_EVERY_PARCEL = "parcel_nos = NULL, geom = ST_Translate(geom, 20000, 20000)"


def _industry_case(conn) -> Changes:  # noqa: ANN001
    """An enterprise with output on its parcels, not high-tech, becomes so (GB/T 4754 27, 医药): the
    high-tech output share of every zone it has land in moves, while no per_mu row does."""
    hightech = ", ".join(f"'{p}%'" for p in get_rules().indicators.high_tech_prefixes)
    (uscc,) = _pick(
        conn,
        f"""SELECT el.uscc FROM enterprise_land el JOIN enterprises e ON e.uscc = el.uscc
            JOIN outputs o ON o.uscc = el.uscc AND o.year = el.year AND o.gross_output > 0
            WHERE el.basis = 'parcels'
              AND NOT coalesce(e.industry_code LIKE ANY (ARRAY[{hightech}]), false)
            ORDER BY el.uscc LIMIT 1""",
    )
    conn.execute(text("UPDATE enterprises SET industry_code = '2720' WHERE uscc = :u"), {"u": uscc})
    return Changes(enterprises={uscc})


def _featured_case(conn) -> Changes:  # noqa: ANN001
    """The platform with the largest featured-industry share loses its featured industries: the
    featured share of that platform and of the districts and corridors holding its enterprises
    moves, while no per_mu row does."""
    (code,) = _pick(
        conn,
        """SELECT code FROM area_indicators
           WHERE level = 'platform' AND indicator = 'featured_output_share' AND value > 0
           ORDER BY value DESC, code LIMIT 1""",
    )
    conn.execute(
        text("UPDATE platforms SET featured_industries = '{}' WHERE code = :c"), {"c": code}
    )
    return Changes(platforms={code})


# cases that move output shares without moving any per_mu row
MOVES_INDICATORS = ("industry code (high-tech share)", "a platform's featured industries cleared")
CASES = {
    "tax of a graded 规上 enterprise-year": _output_case(
        "tax_paid", "tax_paid * 3 + 7", GRADED_ABOVE
    ),
    "output cleared": _output_case("gross_output", "NULL", GRADED_ABOVE),
    "declared land on a shared parcel": _output_case(
        "declared_land_m2", "declared_land_m2 * 2.5", SHARED_PARCEL
    ),
    "declared land of an enterprise on declared land": _output_case(
        "declared_land_m2", "declared_land_m2 / 4", DECLARED
    ),
    "relinked (DKBH and point) to another enterprise's parcel": _relink_case(ONTO_ANOTHER),
    "unlinked (no DKBH, point off every parcel)": _relink_case(OFF_EVERY_PARCEL),
    "industry code (high-tech share)": _industry_case,
    "a platform's featured industries cleared": _featured_case,
}


def _economy(conn) -> dict[str, list[str]]:  # noqa: ANN001
    return derived_rows(conn, ECONOMY)


def _refresh_both_ways(city, case: str, change) -> tuple[dict, dict]:  # noqa: ANN001
    """``change(conn)`` refreshed by its keys, then compared with a recompute from scratch
    (``recompute_check``), in a rolled-back transaction; returns the economy tables before and
    after the refresh by keys."""
    with city.connect() as conn:
        tx = conn.begin()
        try:
            before = _economy(conn)
            changes = change(conn)
            t0 = time.perf_counter()
            ctx = graph.refresh(conn, changes, AS_OF, trigger="test")
            seconds = time.perf_counter() - t0
            incremental = _economy(conn)
            found = recompute_check.differences(conn, AS_OF, tables=list(ECONOMY))
        finally:
            tx.rollback()
    print(f"\n{case}: incremental {seconds * 1000:.0f} ms {ctx.timings} changed {ctx.changed}")
    assert incremental != before, "the change changed no derived row: the case tests nothing"
    if case in MOVES_INDICATORS:
        assert incremental["area_indicators"] != before["area_indicators"], (
            f"{case} changed no indicator: the case tests nothing"
        )
    assert not found, f"{case} ({changes.sizes()}):\n" + "\n".join(
        line for d in found for line in d.lines()
    )
    return before, incremental


@pytest.mark.parametrize("case", list(CASES))
def test_incremental_equals_full(city, case):
    _refresh_both_ways(city, case, CASES[case])


# a parcel wholly in one platform whose enterprises are linked to it (and only it) by DKBH: they
# go where it goes, and nothing else keeps them in the platform it leaves
PARCEL_IN_A_PLATFORM = """
    SELECT l.from_key, l.to_key FROM links l
    WHERE l.kind = 'parcel_platform' AND l.share = 1
      AND EXISTS (
        SELECT 1 FROM links e JOIN enterprise_land el ON el.uscc = e.from_key
        WHERE e.kind = 'enterprise_parcel' AND e.to_key = l.from_key AND el.basis = 'parcels')
      AND NOT EXISTS (
        SELECT 1 FROM links e WHERE e.kind = 'enterprise_parcel' AND e.to_key = l.from_key
          AND (e.method <> 'key' OR EXISTS (
            SELECT 1 FROM links f WHERE f.kind = 'enterprise_parcel' AND f.from_key = e.from_key
              AND f.to_key <> l.from_key)))
    ORDER BY l.from_key LIMIT 1"""


def test_a_parcel_leaving_its_platform(city):
    """A parcel moved into a platform far from its own: the platform it left loses the land of
    the enterprises on it (its per_mu rows change, or go when nothing is left), though no link
    names that platform any more; refresh by keys equals the full recompute."""
    left: list[str] = []

    def change(conn) -> Changes:  # noqa: ANN001
        parcel, old = _pick(conn, PARCEL_IN_A_PLATFORM)
        (new,) = _pick(
            conn,
            f"""SELECT z.code FROM platforms z, platforms o WHERE o.code = '{old}'
                AND z.code <> o.code AND NOT ST_DWithin(z.geom, o.geom, 2000)
                ORDER BY z.code LIMIT 1""",
        )
        conn.execute(
            text(
                """UPDATE parcels p SET geom = ST_Translate(p.geom,
                       ST_X(t.pt) - ST_X(ST_Centroid(p.geom)),
                       ST_Y(t.pt) - ST_Y(ST_Centroid(p.geom)))
                   FROM (SELECT ST_PointOnSurface(geom) AS pt FROM platforms WHERE code = :z) t
                   WHERE p.parcel_no = :p"""
            ),
            {"z": new, "p": parcel},
        )
        left.append(old)
        return Changes(parcels={parcel})

    before, after = _refresh_both_ways(city, "a parcel moved into another platform", change)
    (old,) = left

    def rows(state: dict) -> list[str]:
        return [r for r in state["per_mu"] if f'"code": "{old}"' in r]

    assert rows(before), f"platform {old} had no per_mu row: the case tests nothing"
    assert rows(after) != rows(before), f"platform {old} kept its rows: the case tests nothing"


# an industrial parcel wholly in one district and one platform, with no enterprise on it: its
# change moves only the zones' industrial land (the same in every year), no per_mu row
BARE_INDUSTRIAL_PARCEL = """
    SELECT p.parcel_no FROM parcels p
    JOIN links d ON d.kind = 'parcel_district' AND d.from_key = p.parcel_no AND d.share = 1
    JOIN links t ON t.kind = 'parcel_platform' AND t.from_key = p.parcel_no AND t.share = 1
    WHERE p.land_use_code = ANY(CAST(:codes AS text[]))
      AND NOT EXISTS (SELECT 1 FROM links e WHERE e.kind = 'enterprise_parcel'
                      AND e.to_key = p.parcel_no)
      AND NOT EXISTS (SELECT 1 FROM links c WHERE c.kind = 'parcel_corridor'
                      AND c.from_key = p.parcel_no AND c.to_key IS NOT NULL)
    ORDER BY p.parcel_no LIMIT 1"""

LAND_CHANGES = {  # the parcel's change: it moves its zones' industrial land in every year
    "grown by a tenth of its width": "UPDATE parcels SET geom = ST_Multi(ST_Scale(geom, "
    "ST_MakePoint(1.1, 1.1), ST_Centroid(geom))) WHERE parcel_no = :p",
    "no longer industrial (DLBM 0702)": "UPDATE parcels SET land_use_code = '0702' "
    "WHERE parcel_no = :p",
}


def _land_rows(conn) -> dict[tuple, float]:  # noqa: ANN001
    return {
        (r.level, r.code, r.year): r.value
        for r in conn.execute(
            text(
                "SELECT level, code, year, value FROM area_indicators "
                "WHERE indicator = 'industrial_land_mu'"
            )
        )
    }


def _bare_parcel(conn) -> str:  # noqa: ANN001
    from gis.core.layers import INDUSTRIAL_LAND_CODES

    (parcel,) = _pick(conn, BARE_INDUSTRIAL_PARCEL, {"codes": list(INDUSTRIAL_LAND_CODES)})
    return parcel


@pytest.mark.parametrize("case", list(LAND_CHANGES))
def test_a_parcel_moving_its_zones_industrial_land_in_every_year(city, case):
    """A bare industrial parcel grown, or no longer industrial: its zones' industrial land (a
    sum over their parcels, the same in every year) changes in every year's rows, though no
    per_mu row changes; refresh by keys equals the full recompute."""
    with city.connect() as conn:
        tx = conn.begin()
        try:
            before = _land_rows(conn)
            parcel = _bare_parcel(conn)
            conn.execute(text(LAND_CHANGES[case]), {"p": parcel})
            graph.refresh(conn, Changes(parcels={parcel}), AS_OF, trigger="test")
            after = _land_rows(conn)
            found = recompute_check.differences(conn, AS_OF, tables=list(ECONOMY))
        finally:
            tx.rollback()
    moved = {k for k in after if after[k] != before.get(k)}
    years = {y for _, _, y in before}
    assert len(years) > 1, "the sample city has one year: the case tests nothing"
    for level in ("district", "platform"):
        assert {y for lv, _, y in moved if lv == level} == years, (
            f"{case}: the {level}'s industrial land did not move in every year: {sorted(moved)}"
        )
    assert not found, "\n".join(line for d in found for line in d.lines())


def test_a_parcel_moved_within_its_zones_moves_no_indicator(city):
    """A bare industrial parcel moved 1 m, still wholly in its district and platform: its zones'
    industrial land is recomputed and found unchanged, so no indicator row changes (and none is
    made again for every year); refresh by keys equals the full recompute."""
    with city.connect() as conn:
        tx = conn.begin()
        try:
            before = derived_rows(conn, ("area_indicators",))
            parcel = _bare_parcel(conn)
            conn.execute(
                text("UPDATE parcels SET geom = ST_Translate(geom, 1, 0) WHERE parcel_no = :p"),
                {"p": parcel},
            )
            ctx = graph.refresh(conn, Changes(parcels={parcel}), AS_OF, trigger="test")
            shares = conn.execute(
                text(
                    "SELECT kind, share FROM links WHERE from_key = :p "
                    "AND kind IN ('parcel_district', 'parcel_platform')"
                ),
                {"p": parcel},
            ).all()
            after = derived_rows(conn, ("area_indicators",))
            found = recompute_check.differences(conn, AS_OF, tables=list(ECONOMY))
        finally:
            tx.rollback()
    assert sorted(s for _, s in shares) == [1, 1], f"the move left its zones: {shares}"
    assert "indicators" in ctx.timings, "the indicators were not asked: the case tests nothing"
    assert after == before
    assert not found, "\n".join(line for d in found for line in d.lines())


# an enterprise-year with output whose land lies wholly in one district, in a district ranked
# low on output per mu that year (its output multiplied, the district goes to the top)
LOW_DISTRICT = """
    SELECT el.uscc, el.year, d.to_key FROM enterprise_land el
    JOIN links d ON d.kind = 'enterprise_district' AND d.from_key = el.uscc AND d.is_primary
         AND d.share = 1
    JOIN outputs o ON o.uscc = el.uscc AND o.year = el.year AND o.gross_output > 0
    JOIN area_indicators ai ON ai.level = 'district' AND ai.code = d.to_key
         AND ai.year = el.year AND ai.indicator = 'output_per_mu'
    WHERE el.basis = 'parcels' AND ai.rank > 2
      AND EXISTS (SELECT 1 FROM outputs n WHERE n.year = el.year + 1)
    ORDER BY ai.rank DESC, el.year, el.uscc LIMIT 1"""


def _rows(state: dict, table: str, key: tuple[str, ...]) -> dict[tuple, dict]:
    rows = (json.loads(r) for r in state[table])
    return {tuple(r[k] for k in key): r for r in rows}


def test_a_change_in_one_zone_moves_the_other_zones(city):
    """The indicators are recomputed only for the zones a change touches, but ranks are per
    level and year and a platform's output share is a share of the city's output: one
    district's output raised must move the ranks of districts whose figures did not change,
    the platform_output_share of platforms it does not touch, and its own next year's
    previous value; refresh by keys equals the full recompute."""
    picked: list[tuple] = []

    def change(conn) -> Changes:  # noqa: ANN001
        uscc, year, district = _pick(conn, LOW_DISTRICT)
        conn.execute(
            text("UPDATE outputs SET gross_output = gross_output * 1000 "
                 "WHERE uscc = :u AND year = :y"),
            {"u": uscc, "y": year},
        )  # fmt: skip
        picked.append((year, district))
        return Changes(outputs={f"{uscc}:{year}"})

    before, after = _refresh_both_ways(city, "one district's output raised", change)
    ((year, district),) = picked
    key = ("level", "code", "year", "indicator")
    ai0, ai1 = _rows(before, "area_indicators", key), _rows(after, "area_indicators", key)
    pm0 = _rows(before, "per_mu", ("level", "code", "year"))
    pm1 = _rows(after, "per_mu", ("level", "code", "year"))
    untouched = {
        (lv, c) for (lv, c, y), r in pm0.items()
        if y == year and lv in ("district", "platform") and pm1.get((lv, c, y)) == r
    }  # fmt: skip
    assert ("district", district) not in untouched

    def moved(level: str, indicator: str, column: str) -> list[str]:
        return [
            c for lv, c in sorted(untouched) if lv == level
            and ai0[(lv, c, year, indicator)][column] != ai1[(lv, c, year, indicator)][column]
        ]  # fmt: skip

    assert ai1[("district", district, year, "output_per_mu")]["rank"] == 1
    assert moved("district", "output_per_mu", "rank"), "no other district's rank moved"
    assert moved("platform", "platform_output_share", "value"), (
        "no untouched platform's share of the city moved"
    )
    nxt = ("district", district, year + 1, "output_per_mu")
    assert ai0[nxt]["previous"] != ai1[nxt]["previous"]


# a parcel with an enterprise on it whose area is the same to the hundredth after its
# coordinates pass through text with six decimals (as GeoJSON or a CSV of WKT carries them),
# though its exact area is not
REWRITTEN_PARCEL = """
    SELECT p.parcel_no FROM parcels p
    WHERE EXISTS (SELECT 1 FROM links e JOIN enterprise_land el ON el.uscc = e.from_key
                  WHERE e.kind = 'enterprise_parcel' AND e.to_key = p.parcel_no
                    AND el.basis = 'parcels')
      AND ST_Area(ST_GeomFromText(ST_AsText(p.geom, 6), 4549)) <> ST_Area(p.geom)
      AND round(ST_Area(ST_GeomFromText(ST_AsText(p.geom, 6), 4549))::numeric, 2)
          = round(ST_Area(p.geom)::numeric, 2)
    ORDER BY p.parcel_no LIMIT 1"""


def test_a_parcel_rewritten_in_its_last_bits_changes_no_figure(city):
    """The same parcel written again with its coordinates rounded in their last digits (a
    shapefile's doubles against GeoJSON text): its stored area, to the hundredth of a m², is the
    same, so no enterprise's land and no figure is made again."""
    with city.connect() as conn:
        tx = conn.begin()
        try:
            (parcel,) = _pick(conn, REWRITTEN_PARCEL)
            q = text("SELECT area_m2, ST_Area(geom) FROM parcels WHERE parcel_no = :p")
            area, exact = conn.execute(q, {"p": parcel}).one()
            conn.execute(
                text(
                    "UPDATE parcels SET geom = ST_Multi(ST_GeomFromText(ST_AsText(geom, 6), 4549))"
                    " WHERE parcel_no = :p"
                ),
                {"p": parcel},
            )
            area_after, exact_after = conn.execute(q, {"p": parcel}).one()
            ctx = graph.refresh(conn, Changes(parcels={parcel}), AS_OF, trigger="test")
        finally:
            tx.rollback()
    assert exact_after != exact, "the exact area did not move: the case tests nothing"
    assert area_after == area
    assert "per_mu" in ctx.changed, "per_mu was not asked: the case tests nothing"
    assert not ctx.changed["per_mu"], f"figures made again: {ctx.changed}"
