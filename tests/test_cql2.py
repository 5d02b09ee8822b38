"""CQL2 text -> AST -> SQL with bound parameters: grammar, errors, and a fuzz proving that no
client text reaches SQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.core.config import get_settings
from gis.serving import cql2
from gis.serving import features_sql as fs
from gis.serving.collections import _build

TABS = {
    t: {"id"}
    for t in (
        "districts",
        "platforms",
        "corridors",
        "approvals",
        "supplies",
        "parcels",
        "enterprises",
        "outputs",
    )
}
COLLS = _build(TABS)
PARCELS = COLLS["parcels"]
ENTERPRISES = COLLS["enterprises"]


def sql(f: str, coll=PARCELS, analyst: bool = False):
    return cql2.to_sql(cql2.parse(f), coll, analyst)


def test_comparisons_and_logic():
    s, p = sql("actual_use = '工业' AND (area_m2 > 5000 OR NOT floor_area_m2 <= 10.5)")
    assert s == (
        "(((t.actual_use) = :f0) AND (((t.area_m2) > :f1) OR (NOT ((t.floor_area_m2) <= :f2))))"
    )
    assert p == {"f0": "工业", "f1": 5000, "f2": 10.5}


def test_like_in_between_null():
    s, p = sql(
        "holder_name LIKE '杭州%' AND parcel_no IN ('A', 'B''s') AND area_m2 BETWEEN 1 AND 2 "
        "AND supply_no IS NOT NULL AND parcel_no NOT LIKE 'X_'"
    )
    assert "LIKE :f0" in s and "IN (:f1, :f2)" in s and "BETWEEN :f3 AND :f4" in s
    assert "IS NOT NULL" in s and "NOT LIKE :f5" in s
    assert p["f2"] == "B's"


def test_dates_are_typed():
    s, p = cql2.to_sql(
        cql2.parse("approved_on >= DATE('2020-01-01') AND approved_on < '2021-06-30'"),
        COLLS["approvals"],
        False,
    )
    assert p == {"f0": date(2020, 1, 1), "f1": date(2021, 6, 30)}


def test_s_intersects_wkt_and_bbox():
    s, p = sql("S_INTERSECTS(geometry, POLYGON((120 30, 120.1 30, 120.1 30.1, 120 30)))")
    assert s.startswith(
        "ST_Intersects(t.geom, ST_Transform(ST_ClipByBox2D(ST_GeomFromText(:f0, 4326), "
        "ST_MakeEnvelope(90.0, -80.0, 150.0, 80.0, 4326)), 4549))"
    )
    assert p["f0"].startswith("POLYGON((120.0 30.0, 120.1 30.0")
    s, p = sql("S_INTERSECTS(geometry, BBOX(120, 30, 120.1, 30.1))")
    assert p["f0"].startswith("POLYGON((")
    s, p = cql2.to_sql(
        cql2.parse("S_INTERSECTS(geometry, POINT(3351050 501050))"),
        PARCELS,
        False,
        fs.parse_crs("EPSG:4549"),
    )
    assert "ST_FlipCoordinates(ST_GeomFromText(:f0, 4549))" in s
    assert "ST_Transform" not in s
    s, p = cql2.to_sql(
        cql2.parse("S_INTERSECTS(geometry, POINT(13358338 3503549))"),
        PARCELS,
        False,
        fs.parse_crs("EPSG:3857"),
    )
    assert "ST_Transform(ST_GeomFromText(:f0, 3857), 4326)" in s


@pytest.mark.parametrize(
    "f, crs",
    [
        ("S_INTERSECTS(geometry, POINT(200 30))", "CRS84"),
        ("S_INTERSECTS(geometry, POINT(120 -91))", "CRS84"),
        ("S_INTERSECTS(geometry, BBOX(100, 30, 190, 40))", "CRS84"),
        ("S_INTERSECTS(geometry, POINT(120 30))", "EPSG:4326"),  # lat 120: lat,lon order
        ("S_INTERSECTS(geometry, POINT(30000000 0))", "EPSG:3857"),
    ],
)
def test_positions_outside_the_filter_crs_are_refused(f, crs):
    with pytest.raises(cql2.CQL2Error, match="outside the range"):
        cql2.to_sql(cql2.parse(f), PARCELS, False, fs.parse_crs(crs))


@pytest.mark.parametrize(
    "bad, says",
    [
        ("area_m2 >", "position 10: expected a property or a value, found the end"),
        ("nope = 1", "unknown property 'nope'"),
        ("area_m2 = 'x'", "not a number"),
        ("actual_use = 3", "not text"),
        ("(area_m2 > 1", "expected ')'"),
        ("area_m2 > 1 AND", "expected a property"),
        ("area_m2 ~ 1", "position 9: expected a comparison"),
        ("1 = 1", "needs a property"),
        ("area_m2 LIKE 'x'", "text property"),
        ("S_INTERSECTS(geometry, POLYGON((1 2, 3 4)))", "at least 4 positions"),
        ("S_INTERSECTS(area_m2, POINT(1 2))", "geometry property"),
        ("geometry = 1", "only be used in S_INTERSECTS"),
        ("supplied_on = DATE('2020-13-01')", "not a valid date"),
        ("'unterminated", "position 1: expected a property or a value"),
        ("", "empty filter"),
        ("area_m2 > 1; DROP TABLE parcels", "position 12: expected a comparison"),
    ],
)
def test_errors_name_the_problem(bad, says):
    with pytest.raises(cql2.CQL2Error, match=re.escape(says)):
        sql(bad)


def test_restricted_properties_need_an_analyst():
    with pytest.raises(cql2.CQL2Error, match="analyst"):
        sql("tax_paid > 1", ENTERPRISES)
    s, _ = sql("tax_paid > 1", ENTERPRISES, analyst=True)
    assert "outputs" in s


def test_deep_nesting_is_refused():
    with pytest.raises(cql2.CQL2Error, match="nested deeper than 20 levels"):
        sql("(" * 200 + "area_m2 > 1" + ")" * 200)


LIMITS = cql2.Limits(chars=1_000_000, terms=200, depth=20)


@pytest.mark.parametrize(
    "f, says",
    [
        ("NOT " * 10_000 + "area_m2 > 1", "nested deeper than 20 levels"),
        ("(NOT " * 10_000 + "area_m2 > 1" + ")" * 10_000, "nested deeper than 20 levels"),
        ("(" * 10_000 + "area_m2 > 1" + ")" * 10_000, "nested deeper than 20 levels"),
        (
            "S_INTERSECTS(geometry, POINT" + "(" * 10_000 + "1 2" + ")" * 10_000 + ")",
            "coordinates nested deeper than 4 levels",
        ),
        (" AND ".join(["area_m2 > 1"] * 201), "more than 200 terms"),
        (" OR ".join(["area_m2 > 1"] * 1_241), "more than 200 terms"),
        ("area_m2 > 1e999", "out of range"),
        ("area_m2 > " + "9" * 5_000, "out of range"),
        ("S_INTERSECTS(geometry, POINT(1e999 1))", "cannot parse the filter at position 36"),
    ],
)
def test_limits_refuse_early(f, says):
    """Deep or long filters are refused while parsing, before recursion or SQL: a CQL2Error
    naming the limit, never a RecursionError."""
    with pytest.raises(cql2.CQL2Error, match=re.escape(says)):
        cql2.parse(f, LIMITS)


def test_filters_at_the_limits_parse():
    assert len(cql2.parse(" AND ".join(["area_m2 > 1"] * 200), LIMITS).items) == 200
    node = cql2.parse("NOT " * 10 + "(" * 10 + "area_m2 > 1" + ")" * 10, LIMITS)
    assert isinstance(node, cql2.Not)
    with pytest.raises(cql2.CQL2Error, match="longer than 10 characters"):
        cql2.parse("area_m2 > 1", cql2.Limits(chars=10, terms=200, depth=20))


def test_configured_limits():
    t = get_settings().tiles
    assert cql2.Limits.configured() == cql2.Limits(
        t.filter_max_chars, t.filter_max_terms, t.filter_max_depth
    )


# ---- fuzz: whatever the client writes, SQL holds only our expressions and placeholders -------

_OURS = sorted({p.sql for p in PARCELS.props} | {PARCELS.geom}, key=len, reverse=True)
_SAFE = re.compile(
    r"^(?:\s|\(|\)|,|:f\d+|=|<>|<=|>=|<|>|AND|OR|NOT|LIKE|IN|BETWEEN|IS|NULL|TRUE|FALSE"
    r"|ST_Intersects|ST_Transform|ST_GeomFromText|ST_FlipCoordinates|ST_ClipByBox2D"
    r"|ST_MakeEnvelope|-?\d+(?:\.\d+)?)*$"
)


def _assert_safe(s: str) -> None:
    for expr in _OURS:
        s = s.replace(expr, " ")
    assert _SAFE.match(s), f"unexpected SQL text: {s!r}"


ATOMS = st.sampled_from(
    [
        "area_m2",
        "actual_use",
        "parcel_no",
        '"holder_name"',
        "supply_no",
        "'x'' OR 1=1 --'",
        "'; DROP TABLE parcels; --'",
        "1e309",
        "-5",
        "DATE('2020-01-01')",
        "TRUE",
        "geometry",
        "POINT(1 2)",
        "BBOX(1,2,3,4)",
        "pg_sleep(10)",
        '"parcels; DROP"',
        "'%'",
        "NULL",
    ]
)
OPS = st.sampled_from(
    [
        "=",
        "<>",
        "<",
        ">=",
        "LIKE",
        "NOT LIKE",
        "IN (",
        "BETWEEN",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        ",",
        "IS NULL",
        "IS NOT NULL",
        "S_INTERSECTS(",
        ";",
        "--",
        "/*",
        "$1",
        "::text",
    ]
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(ATOMS, OPS), min_size=1, max_size=12))
def test_fuzz_tokens_never_reach_sql(parts):
    f = " ".join(parts)
    try:
        s, params = sql(f)
    except cql2.CQL2Error:
        return
    _assert_safe(s)
    for v in params.values():
        assert v is None or isinstance(v, str | int | float | bool | date)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_any_text(f):
    try:
        s, _ = sql(f)
    except cql2.CQL2Error:
        return
    _assert_safe(s)
