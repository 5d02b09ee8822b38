"""Incremental equals from scratch: after random short sequences of one-row changes to the
analysed sample city, each refreshed by the keys it changed, every derived table equals, row by
row, what a full recompute (``graph.refresh(conn, None)``, ``landlink analyse-all --full``) gives.

Each change is written as a writer writes it: an UPDATE of the source row followed by
``graph.refresh(conn, Changes(table={key}))`` with the keys the importer reports (outputs
``USCC:year``, enterprises USCC, parcels DKBH, supplies DZJGH), or a retirement through
``gis.ingest.retire.retire_keys`` (which returns its changed keys). Everything happens in one
transaction that is rolled back, so every example starts from the same analysed city; the full
recompute runs in a savepoint after the incremental one.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check
from gis.core.graph import Changes
from gis.core.recompute_check import IGNORED, LOGS, VIEWS
from tests.conftest import SAMPLE_DIR, database_copy

AS_OF = date.fromisoformat(json.loads((SAMPLE_DIR / "planted.json").read_text())["reference_date"])
FIGURES = ("gross_output", "revenue", "value_added", "tax_paid", "energy_tce", "employees")
DATES = ("agreed_start", "actual_start", "actual_completion", "agreed_completion")


class City:
    """The analysed copy and its keys (a short repr: hypothesis prints it with a failure)."""

    def __init__(self, engine, keys: dict) -> None:  # noqa: ANN001
        self.engine, self.keys = engine, keys

    def __repr__(self) -> str:
        return f"City({self.engine.url.database})"


@pytest.fixture(scope="module")
def city(analysed_sample):
    """A copy of the sample city, analysed from scratch as of the sample's reference date
    (conftest's ``analysed_sample``)."""
    with database_copy(analysed_sample, "incremental") as url:
        eng = create_engine(url)
        with eng.connect() as c:
            keys = {
                "outputs": c.execute(text("SELECT uscc || ':' || year FROM outputs ORDER BY 1"))
                .scalars()
                .all(),
                "enterprises": c.execute(
                    text("SELECT uscc FROM enterprises WHERE geom IS NOT NULL ORDER BY 1")
                )
                .scalars()
                .all(),
                "parcels": c.execute(text("SELECT parcel_no FROM parcels ORDER BY 1"))
                .scalars()
                .all(),
                "supplies": c.execute(text("SELECT supply_no FROM supplies ORDER BY 1"))
                .scalars()
                .all(),
            }
        yield City(eng, keys)
        eng.dispose()


# ------------------------------------------------------------------------------------------
# One-row changes, drawn as plain data (indices into the city's keys), applied by `apply`
# ------------------------------------------------------------------------------------------

pick = st.integers(min_value=0, max_value=10**6)
change = st.one_of(
    st.tuples(st.just("figure"), pick, st.sampled_from(FIGURES), st.sampled_from([0.5, 1.7, 40.0])),
    # a figure the contract lets a CC row leave blank, cleared (SJSJ is required)
    st.tuples(
        st.just("figure"),
        pick,
        st.sampled_from([f for f in FIGURES if f != "tax_paid"]),
        st.just(0.0),
    ),
    st.tuples(st.just("move_to_parcel"), pick, pick),
    st.tuples(st.just("nudge_point"), pick, st.integers(-30, 30), st.integers(-30, 30)),
    st.tuples(
        st.just("parcel_geometry"),
        pick,
        st.integers(-20, 20),
        st.integers(-20, 20),
        st.sampled_from([1.0, 0.8, 1.25]),
    ),
    st.tuples(
        st.just("supply_dates"),
        pick,
        st.sampled_from(DATES),
        st.integers(-1500, 1500),
    ),
    # a date the contract lets a supply record leave blank, cleared (HTKGSJ is required)
    st.tuples(st.just("supply_dates"), pick, st.sampled_from(DATES[1:]), st.none()),
    st.tuples(st.just("retire"), st.sampled_from(["QY", "DK", "GD"]), pick),
)


def _one(keys: list[str], i: int) -> str:
    return keys[i % len(keys)]


def apply(conn, keys: dict, ch: tuple) -> str:  # noqa: ANN001
    """Make one change as a writer makes it and refresh the graph with its keys; returns a
    description for the failure report."""
    kind = ch[0]
    if kind == "figure":
        _, i, column, factor = ch
        key = _one(keys["outputs"], i)
        uscc, year = key.rsplit(":", 1)
        conn.execute(
            text(
                f"UPDATE outputs SET {column} = CASE WHEN :f = 0 THEN NULL "
                f"ELSE coalesce({column}, 10) * :f END WHERE uscc = :u AND year = :y"
            ),
            {"f": factor, "u": uscc, "y": int(year)},
        )
        changes = Changes(outputs={key})
        what = f"outputs {key}: {column} x {factor} (0: cleared)"
    elif kind == "move_to_parcel":
        _, i, j = ch
        uscc, parcel = _one(keys["enterprises"], i), _one(keys["parcels"], j)
        conn.execute(
            text(
                "UPDATE enterprises SET geom = (SELECT ST_PointOnSurface(geom) FROM parcels "
                "WHERE parcel_no = :p) WHERE uscc = :u"
            ),
            {"u": uscc, "p": parcel},
        )
        changes = Changes(enterprises={uscc})
        what = f"enterprise {uscc}: point moved into parcel {parcel}"
    elif kind == "nudge_point":
        _, i, dx, dy = ch
        uscc = _one(keys["enterprises"], i)
        conn.execute(
            text("UPDATE enterprises SET geom = ST_Translate(geom, :dx, :dy) WHERE uscc = :u"),
            {"u": uscc, "dx": dx, "dy": dy},
        )
        changes = Changes(enterprises={uscc})
        what = f"enterprise {uscc}: point moved by ({dx}, {dy}) m"
    elif kind == "parcel_geometry":
        _, i, dx, dy, scale = ch
        no = _one(keys["parcels"], i)
        conn.execute(
            text(
                """
                UPDATE parcels SET geom = ST_Multi(ST_Translate(
                    ST_Translate(ST_Scale(ST_Translate(geom, -ST_X(c), -ST_Y(c)), :s, :s),
                                 ST_X(c), ST_Y(c)), :dx, :dy))
                FROM (SELECT ST_Centroid(geom) AS c FROM parcels WHERE parcel_no = :p) k
                WHERE parcel_no = :p
                """
            ),
            {"p": no, "s": scale, "dx": dx, "dy": dy},
        )
        changes = Changes(parcels={no})
        what = f"parcel {no}: scaled x {scale}, moved by ({dx}, {dy}) m"
    elif kind == "supply_dates":
        _, i, column, days = ch
        no = _one(keys["supplies"], i)
        value = None if days is None else AS_OF + timedelta(days=days)
        conn.execute(
            text(f"UPDATE supplies SET {column} = :v WHERE supply_no = :n"), {"v": value, "n": no}
        )
        changes = Changes(supplies={no})
        what = f"supply {no}: {column} = {value}"
    else:
        from gis.core.layers import layer
        from gis.ingest.retire import retire_keys

        _, code, i = ch
        name = {"QY": "enterprises", "DK": "parcels", "GD": "supplies"}[code]
        key = _one(keys[name], i)
        present = conn.execute(
            text(f"SELECT count(*) FROM {layer(code).table} WHERE {_key_col(code)} = :k"),
            {"k": key},
        ).scalar_one()
        if not present:  # retired earlier in this sequence
            return f"{code} {key}: already retired"
        _, changes = retire_keys(conn, layer(code), [(key,)], "test", "test")
        what = f"retired {code} {key} ({Changes().merge(changes).sizes()})"
    graph.refresh(conn, changes, AS_OF, trigger="test")
    return what


def _key_col(code: str) -> str:
    return {"QY": "uscc", "DK": "parcel_no", "GD": "supply_no"}[code]


# ------------------------------------------------------------------------------------------
# Derived tables as comparable rows
# ------------------------------------------------------------------------------------------


def _round(v):  # noqa: ANN001, ANN202
    if isinstance(v, float):
        return float(f"{v:.9g}") if math.isfinite(v) else v
    if isinstance(v, list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


# A row's comparable form (its JSON without IGNORED, floats to 9 digits, keys sorted) is a
# function of its values, and so of its text as a row of the other columns (each column's text
# gives its value): remembered per table by that text, so that the states compared after a few
# one-row changes, which share nearly every row, read only the row texts (to_jsonb is the costly
# part) and convert only the rows not seen before.
_canon: dict[str, dict[str, str]] = {}
# above this many new rows, one pass over the table converts them all
_BY_KEY_MAX = 200


def _row_text(conn, table: str) -> str:  # noqa: ANN001
    cols = conn.execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ),
        {"t": table},
    ).scalars()
    kept = ", ".join('t."' + c.replace('"', '""') + '"' for c in cols if c not in IGNORED)
    return f"CAST(ROW({kept}) AS text)"


def derived_rows(conn, tables: tuple[str, ...] | None = None) -> dict[str, list[str]]:  # noqa: ANN001
    """Every derived table's (and VIEWS') rows without the columns of IGNORED, floats to 9
    digits, sorted (only ``tables`` when given): a snapshot for tests that look at what a change
    moved. Whether the tables equal a recompute from scratch is ``recompute_check``'s to say."""
    out = {}
    for table in (*graph.describe()["derived"], *VIEWS):
        if table in LOGS or (tables is not None and table not in tables):
            continue
        row = _row_text(conn, table)
        known = _canon.setdefault(table, {})
        keys = conn.execute(text(f"SELECT {row} FROM {table} t")).scalars().all()
        if len(known) > 3 * len(keys) + 1000:
            known.clear()
        new = set(keys).difference(known)
        if new:
            sql = f"SELECT {row}, CAST(to_jsonb(t) - CAST(:drop AS text[]) AS text) FROM {table} t"
            params: dict = {"drop": list(IGNORED)}
            if len(new) <= _BY_KEY_MAX:
                sql += f" WHERE {row} = ANY(:new)"
                params["new"] = list(new)
            for key, raw in conn.execute(text(sql), params):
                if key in new:
                    known[key] = json.dumps(
                        _round(json.loads(raw)), sort_keys=True, ensure_ascii=False
                    )
        out[table] = sorted(known[k] for k in keys)
    return out


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sequence=st.lists(change, min_size=2, max_size=4))
def test_incremental_refresh_equals_a_full_recompute(city, sequence):
    done: list[str] = []
    with city.engine.connect() as conn:
        tx = conn.begin()
        try:
            for ch in sequence:
                try:
                    done.append(apply(conn, city.keys, ch))
                except Exception as e:
                    raise AssertionError(
                        f"after {done or 'no change'}, the refresh of {ch} failed: {e!r}"
                    ) from e
            found = recompute_check.differences(conn, AS_OF)
        finally:
            tx.rollback()
    diff = [line for d in found for line in d.lines()]
    assert not diff, "after " + "; ".join(done) + ":\n" + "\n".join(diff)
