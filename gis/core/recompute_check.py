"""Whether the derived tables as they stand equal a recompute from scratch.

Every write refreshes the derived tables by the keys it changed (gis/core/graph.py). This module
checks the result: inside a savepoint it copies each derived table's rows, recomputes the whole
graph from scratch (``graph.refresh(conn, None, as_of)``), compares the two row by row and rolls
the savepoint back, so nothing is changed. Used by the property test
(tests/test_incremental_property.py), ``bench/realtime`` after its concurrent edits, and an
operator's ``landlink verify-derived``.

Compared: every table a producer writes, except the logs of what happened (``LOGS``: which tiles
were invalidated, which derived values the feed published), and the views readers use over them
(``VIEWS``: the evaluation's scores and points are computed when read). Ignored: the columns that
say which run wrote a row, surrogate ids and timestamps (``IGNORED``). Numbers (float and numeric
columns, arrays, numbers inside JSON) are compared to 9 significant digits: a sum kept by
differences and the same sum added up afresh may differ in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, text

from gis.core import graph

LOGS = ("tile_invalidations", "derived_changes")
# what the evaluation keeps to find the rows a change may reclass (the base each group-year's
# base scores were computed with, and those scores counted by bucket): it depends on the order
# of the changes, not only on the data, so it is checked by the bound it promises and the counts
# against the rows (``evaluation_classes.bound_violations``) instead
BOUNDS = ("evaluation_score_bases", "evaluation_score_counts")
VIEWS = ("evaluations",)
IGNORED = ("run_id", "as_of", "id", "updated_at", "at", "base_score")
SIGNIFICANT_DIGITS = 9

# A number rounded as the comparison rounds it: first to the 15 significant digits PostgreSQL
# keeps when a float becomes numeric (as in JSON), then to SIGNIFICANT_DIGITS. Rounding once from
# the full float would tell apart two sums equal to 15 digits that straddle a rounding boundary.
_ROUND = f"""
CREATE FUNCTION pg_temp.landlink_round(n numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN n IS NULL OR n = 0 OR n = 'NaN' OR n IN ('Infinity', '-Infinity') THEN n
              ELSE round(n, {SIGNIFICANT_DIGITS - 1}
                            - CAST(floor(log(abs(CAST(n AS float8)))) AS int)) END
$$
"""

# numbers inside JSON rounded likewise (a PL/pgSQL walk of the value; temporary)
_ROUND_JSON = """
CREATE FUNCTION pg_temp.landlink_round_json(j jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  CASE jsonb_typeof(j)
    WHEN 'number' THEN
      RETURN to_jsonb(pg_temp.landlink_round(CAST(j AS numeric)));
    WHEN 'array' THEN
      RETURN (SELECT coalesce(jsonb_agg(pg_temp.landlink_round_json(e) ORDER BY i), '[]')
              FROM jsonb_array_elements(j) WITH ORDINALITY AS a(e, i));
    WHEN 'object' THEN
      RETURN (SELECT coalesce(jsonb_object_agg(k, pg_temp.landlink_round_json(v)), '{}')
              FROM jsonb_each(j) AS o(k, v));
    ELSE
      RETURN j;
  END CASE;
END $$
"""


@dataclass
class TableDifference:
    """A derived table whose rows differ: how many rows each side has, how many are only on
    one side, and a few of them as text (the compared columns, in table order)."""

    table: str
    rows_now: int
    rows_full: int
    only_now: int
    only_full: int
    examples_now: list[str] = field(default_factory=list)
    examples_full: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (
            f"{self.table}: {self.rows_now} rows as they stand, {self.rows_full} from scratch; "
            f"{self.only_now} only as they stand, {self.only_full} only from scratch"
        )
        return [
            head,
            *(f"  as they stand: {r[:600]}" for r in self.examples_now),
            *(f"  from scratch : {r[:600]}" for r in self.examples_full),
        ]


def judged_as_of(conn: Connection) -> date:
    """The day the derived state was last judged as of: the live three-lands run's (every write
    judges as of its own day; ``landlink refresh`` re-judges the rest), else today."""
    day = conn.execute(text("SELECT max(as_of) FROM detection_runs WHERE live")).scalar()
    return day or date.today()


def compared_tables() -> list[str]:
    """The derived tables and views compared, in the graph's order."""
    return [t for t in graph.describe()["derived"] if t not in LOGS + BOUNDS] + list(VIEWS)


def _columns(conn: Connection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the columns of ``table`` compared (not in IGNORED), in table order."""
    cols = conn.execute(
        text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum"
        ),
        {"t": table},
    ).all()
    return [(name, kind) for name, kind in cols if name not in IGNORED]


def _row_text(cols: list[tuple[str, str]], rounded: bool) -> str:
    """SQL text of one row (alias ``t``) as text: the compared columns, exactly or with every
    number rounded to SIGNIFICANT_DIGITS."""
    parts = []
    for name, kind in cols:
        col = 't."' + name.replace('"', '""') + '"'
        if not rounded:
            pass
        elif kind == "jsonb":
            col = f"pg_temp.landlink_round_json({col})"
        elif kind in ("double precision", "real") or kind.startswith("numeric"):
            col = f"pg_temp.landlink_round(CAST({col} AS numeric))"
        elif kind in ("double precision[]", "real[]", "numeric[]"):
            col = (
                f"ARRAY(SELECT pg_temp.landlink_round(CAST(x AS numeric)) "
                f"FROM unnest({col}) WITH ORDINALITY AS u(x, i) ORDER BY i)"
            )
        parts.append(col)
    return f"CAST(ROW({', '.join(parts)}) AS text)"


def differences(
    conn: Connection, as_of: date, shown: int = 3, tables: list[str] | None = None
) -> list[TableDifference]:
    """The derived tables (``tables``, default ``compared_tables()``) whose rows differ from a
    recompute from scratch as of ``as_of``; empty when they all agree. Runs inside a savepoint
    of the caller's transaction, rolled back: nothing is changed, whatever happens.

    Each side's rows are kept as their exact text and as the row itself; rows whose exact text
    is on both sides agree, and only the others are compared again with numbers rounded (the
    rounding is the costly part)."""
    wanted = tables if tables is not None else compared_tables()
    found: list[TableDifference] = []
    with conn.begin_nested() as savepoint:
        try:
            conn.execute(text(_ROUND))
            conn.execute(text(_ROUND_JSON))
            cols = {t: _columns(conn, t) for t in wanted}

            def copy(name: str, t: str) -> None:
                conn.execute(
                    text(
                        f"CREATE TEMP TABLE {name} AS "
                        f"SELECT {_row_text(cols[t], False)} AS r, t AS rec FROM {t} t"
                    )
                )

            for i, t in enumerate(wanted):
                copy(f"_now_{i}", t)
            if tables is None:
                from gis.economy.evaluation_classes import bound_violations

                bad = bound_violations(conn)
                if bad:
                    found.append(
                        TableDifference(", ".join(BOUNDS), len(bad), 0, len(bad), 0, bad[:shown])
                    )
            graph.refresh(conn, None, as_of, trigger="verify-derived")
            for i, t in enumerate(wanted):
                copy(f"_full_{i}", t)
                now, full = f"_now_{i}", f"_full_{i}"
                rounded = _row_text(cols[t], True)
                for side, a, b in (("now", now, full), ("full", full, now)):
                    # the rows of a whose exact text b lacks, rounded
                    conn.execute(
                        text(
                            f"CREATE TEMP TABLE _d{side}_{i} AS SELECT {rounded} AS r FROM "
                            f"(SELECT (x.rec).* FROM {a} x WHERE x.r IN "
                            f"(SELECT r FROM {a} EXCEPT ALL SELECT r FROM {b})) t"
                        )
                    )
                only = f"SELECT r FROM _d{{}}_{i} EXCEPT ALL SELECT r FROM _d{{}}_{i}"
                counts = conn.execute(
                    text(
                        f"SELECT (SELECT count(*) FROM {now}), (SELECT count(*) FROM {full}), "
                        f"(SELECT count(*) FROM ({only.format('now', 'full')}) x), "
                        f"(SELECT count(*) FROM ({only.format('full', 'now')}) x)"
                    )
                ).one()
                if counts[2] == 0 and counts[3] == 0:
                    continue

                def examples(sql: str) -> list[str]:
                    return list(
                        conn.execute(
                            text(f"SELECT r FROM ({sql}) x ORDER BY r LIMIT :n"), {"n": shown}
                        ).scalars()
                    )

                found.append(
                    TableDifference(
                        t,
                        *counts,
                        examples(only.format("now", "full")),
                        examples(only.format("full", "now")),
                    )
                )
        finally:
            savepoint.rollback()
    return found
