"""The A/B/C/D classes of the evaluation kept current by score bounds (docs/EVALUATION.md,
"How classes are kept").

A row's class follows from its rank among the graded of its year and group (the quotas of
``evaluation.class_sql``), and its rank from every score of the group-year: a benchmark that
moves rescores every row. Ranking the whole group-year again for every change (about 40,000 rows
on a 98,048-parcel city, ten group-years for one enterprise moved onto a shared parcel) is what
this module avoids. The classes are cut by three order statistics of the scores (the score of
the last A, of the last B, and of the one before the first D), and only rows near them can
change class:

- Each group-year has a base (``evaluation_score_bases``): the coefficients c = weight ÷
  benchmark and the mean points m its rows' ``base_score`` were computed with, and ``spread``,
  an upper bound of Σ |c·v| over its graded rows.
- With the coefficients now c' and mean points m', every row's score lies within
  D = ε·spread + μ of its base score, where ε = max |c'/c − 1| and μ = Σ |m' − m| (score =
  Σ c'·v + the mean points of what is missing), plus a margin for rounding.
- So the j-th highest score lies among the rows whose base score is within 2·D of the j-th
  highest base score (the rows above that band are above it, those below are below): those few
  are scored exactly. And a row keeps its class unless its base score is within D of a cut,
  or it changed itself: those are scored exactly and reclassed.

A group-year without a base, whose coefficients changed sign or which the rules changed, or
whose bound grew past ``REBASE_BAND`` points (or past ``REBASE_SOON``, one at a time), is scored
whole (``rescore``): every class and base score written afresh and its base recorded. Ranks are
not stored: the view ``evaluations`` computes them when read.
"""

from __future__ import annotations

import math

from sqlalchemy import Connection, text

from gis.core.analysis_columns import RATIO_COLUMNS
from gis.core.db import run_sql

# a group-year whose bound D grows past REBASE_BAND score points (scores average 100: Σ of the
# weights) is scored whole again: every row's base score rewritten (about 1 s for 41,000 rows),
# the band back to the rounding margin. One past REBASE_SOON is rescored when it is the most
# drifted of a refresh that rescores nothing else, so that group-years drifting together (the
# years of one enterprise) are rebased one write at a time, not all in one. Tuning, not a rule:
# smaller rescores more often, larger scores more rows exactly (about 300 a point at the cuts
# of the scale-20 city).
REBASE_BAND = 2.0
REBASE_SOON = 0.5
# what rounding may add to the bound: a score rounded to 1e-6 for ranking, and float sums of
# the same terms in another order (relative to the spread)
ROUND_MARGIN = 2e-6
FLOAT_MARGIN = 1e-9

INF = math.inf


def coefficient_sql(i: str, g: str = "g") -> str:
    """Indicator ``i``'s coefficient in group row ``g``: weight ÷ benchmark, 0 when the benchmark
    is not positive (the view's points are then 0), NULL when not the group's indicator."""
    return (
        f"CASE WHEN {g}.w_{i} IS NULL THEN NULL WHEN {g}.b_{i} > 0 "
        f"THEN {g}.w_{i} / {g}.b_{i} ELSE 0 END"
    )


# the coefficients of a group row ``g`` now, as columns c_<indicator>
_COEF_NOW = ", ".join(f"{coefficient_sql(i)} AS c_{i}" for i in RATIO_COLUMNS)


def _base_score_sql(b: str = "b", t: str = "t") -> str:
    """Row ``t``'s score under base ``b``: Σ c·v, a missing value scoring the base's mean points
    (or 0), as the view ``evaluations`` scores it with its group's coefficients."""
    return " + ".join(
        f"coalesce(CASE WHEN {b}.c_{i} IS NOT NULL THEN coalesce({b}.c_{i} * {t}.{i}, "
        f"{b}.m_{i}, 0) END, 0)"
        for i in RATIO_COLUMNS
    )


def _mass_sql(c: dict[str, str], t: str = "t") -> str:
    """Σ |c·v| of row ``t`` under coefficients ``c`` (SQL per indicator)."""
    return " + ".join(f"coalesce(abs(({c[i]}) * {t}.{i}), 0)" for i in RATIO_COLUMNS)


def keep(conn: Connection, scoped: bool, in_groups: str, class_sql, params: dict) -> dict[str, int]:
    """Bring the classes of the group-years of ``in_groups`` (all when not ``scoped``) up to
    date after their rows (the caller's ``_rchg``: year, uscc, gone) and groups changed. The
    rows whose class changed are left in the temp table ``_rk`` (year, uscc).
    ``class_sql(rank, n)`` is the evaluation's quota rule as SQL. Returns how many group-years
    were reclassed by their bounds (``bounded``) and scored whole (``rescored``; -1: all of
    them)."""
    conn.exec_driver_sql("CREATE TEMP TABLE _rk (year int, uscc text) ON COMMIT DROP")
    if not scoped:
        rescore(conn, "true", class_sql, params)
        return {"bounded": 0, "rescored": -1}
    bases = _bounded_scope(conn, in_groups)
    pairs = conn.exec_driver_sql("SELECT year, grp FROM _gscope ORDER BY 1, 2").all()
    whole = [(y, g) for y, g in pairs if (y, g) not in bases]
    again = _bounded(conn, bases, class_sql, params) if bases else set()
    bounded = len(bases) - len(again)
    whole += sorted(again)
    if whole:
        rescore(conn, _pairs_sql(whole), class_sql, params)
    return {"bounded": bounded, "rescored": len(whole)}


def _pairs_sql(pairs, t: str = "") -> str:
    """``(year, "group") IN (...)`` of the group-years ``pairs`` (columns of alias ``t``),
    written out as values."""
    values = ", ".join(f"({int(y)}, '{g.replace(chr(39), '')}')" for y, g in pairs)
    return f'({t}year, {t}"group") IN ({values})'


def _groups_now(conn: Connection, in_groups: str) -> dict[tuple[int, str], object]:
    """The coefficients and mean points of the group-years of ``in_groups`` as they are now."""
    return {
        (r.year, r.group): r
        for r in conn.execute(
            text(
                f'SELECT year, "group", {_COEF_NOW}, '
                f"{', '.join(f'm_{i}' for i in RATIO_COLUMNS)} "
                f"FROM evaluation_groups g WHERE {in_groups}"
            )
        )
    }


def _bounded_scope(conn: Connection, in_groups: str) -> dict[tuple[int, str], float]:
    """The group-years of ``in_groups`` that keep their base, with their bound D (score
    points): their changed rows' base scores written first (the spread grows with them)."""
    now = _groups_now(conn, in_groups)
    base = {
        (r.year, r.group): r
        for r in conn.execute(text(f"SELECT * FROM evaluation_score_bases WHERE {in_groups}"))
    }
    # group-years gone: no rows, no base
    for y, g in set(base) - set(now):
        conn.execute(
            text('DELETE FROM evaluation_score_bases WHERE year = :y AND "group" = :g'),
            {"y": y, "g": g},
        )
    eps = {key: _drift(b, now[key]) for key, b in base.items() if key in now}
    eps = {key: v for key, v in eps.items() if v is not None}
    if not eps:
        return {}
    # the changed rows' base scores under their group-year's base, and their Σ |c·v|
    coef0 = {i: f"b.c_{i}" for i in RATIO_COLUMNS}
    grown = conn.execute(
        text(
            f"""
            WITH u AS (
                UPDATE evaluation_ranking t
                SET base_score = CASE WHEN t.graded THEN {_base_score_sql()} END
                FROM evaluation_score_bases b, _rchg c
                WHERE b.year = t.year AND b."group" = t."group"
                  AND c.year = t.year AND c.uscc = t.uscc AND NOT c.gone
                  AND {_pairs_sql(eps, "t.")}
                RETURNING t.year, t."group", CASE WHEN t.graded THEN {_mass_sql(coef0)} END
                    AS mass
            )
            SELECT year, "group", max(mass) FROM u GROUP BY year, "group"
            """
        )
    ).all()
    spread = {key: base[key].spread for key in eps}
    for y, g, m in grown:
        if m is not None and m > spread[(y, g)]:
            spread[(y, g)] = m
            conn.execute(
                text(
                    'UPDATE evaluation_score_bases SET spread = :m WHERE year = :y AND "group" = :g'
                ),
                {"m": m, "y": y, "g": g},
            )
    out = {}
    for key, (e, mu) in eps.items():
        d = _band(e, mu, spread[key], base[key])
        if d <= REBASE_BAND:
            out[key] = d
    soon = [(d, key) for key, d in out.items() if d > REBASE_SOON]
    if soon and len(out) == len(eps) and len(eps) == len(now):  # nothing else rescored
        del out[max(soon)[1]]
    return out


def _drift(b, n) -> tuple[float, float] | None:
    """How far group row ``n``'s coefficients drifted from base ``b``: (ε, μ), ε the largest
    relative change of a coefficient, μ the sum of the changes of the mean points; None when
    no ratio bounds it (the rules changed the group's indicators, or a coefficient that was 0
    is not)."""
    e, mu = 0.0, 0.0
    for i in RATIO_COLUMNS:
        c0, c1 = getattr(b, f"c_{i}"), getattr(n, f"c_{i}")
        if (c0 is None) != (c1 is None):
            return None
        if c0 is None:
            continue
        if c0 == 0:
            if c1 != 0:
                return None
        else:
            e = max(e, abs(c1 / c0 - 1))
        mu += abs((getattr(n, f"m_{i}") or 0.0) - (getattr(b, f"m_{i}") or 0.0))
    return e, mu


def _band(e: float, mu: float, spread: float, b) -> float:
    """The bound D (score points) on |score now − base score| of every row of a group-year."""
    mass_m = sum(abs(getattr(b, f"m_{i}") or 0.0) for i in RATIO_COLUMNS)
    return e * spread + mu + FLOAT_MARGIN * (spread + mass_m + 1) + ROUND_MARGIN


def bound_violations(conn: Connection) -> list[str]:
    """The group-years where a graded row's score lies further from its base score than the
    bound allows, or has none, and the buckets whose count (``evaluation_score_counts``) is not
    the number of graded rows in them (what the bounded reclassing relies on); empty when all
    hold. For ``landlink verify-derived`` and the property test."""
    now = _groups_now(conn, "true")
    out = []
    for b in conn.execute(text("SELECT * FROM evaluation_score_bases ORDER BY 1, 2")):
        key = (b.year, b.group)
        if key not in now:
            out.append(f"{b.year}:{b.group}: a base without a group")
            continue
        drift = _drift(b, now[key])
        d = None if drift is None else _band(*drift, b.spread, b)
        bad = conn.execute(
            text(
                "SELECT count(*) FROM evaluation_scores v JOIN evaluation_ranking t "
                'USING (year, uscc) WHERE t.year = :y AND t."group" = :g AND t.graded '
                "AND (t.base_score IS NULL OR abs(v.score - t.base_score) > :d)"
            ),
            {"y": b.year, "g": b.group, "d": d if d is not None else math.inf},
        ).scalar_one()
        if bad:
            out.append(f"{b.year}:{b.group}: {bad} graded rows outside the bound {d}")
    # the bucket counts the order statistics walk, against the rows they count
    for y, g, k, kept, rows in conn.execute(
        text(
            """
            SELECT year, "group", bucket, c.n, r.n FROM evaluation_score_counts c
            FULL JOIN (SELECT year, "group", evaluation_score_bucket(base_score) AS bucket,
                              count(*) AS n
                       FROM evaluation_ranking WHERE graded AND base_score IS NOT NULL
                       GROUP BY 1, 2, 3) r USING (year, "group", bucket)
            WHERE c.n IS DISTINCT FROM r.n ORDER BY 1, 2, 3 LIMIT 20
            """
        )
    ):
        out.append(f"{y}:{g}: bucket {k} counts {kept} graded rows, holds {rows or 0}")
    return out


def _unnest(cols: dict[str, str]) -> str:
    """``unnest`` of the bound arrays ``cols`` (name -> SQL type) as a relation ``q``."""
    args = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in cols.items())
    return f"unnest({args}) q({', '.join(cols)})"


# a graded row's score as the ranking orders scores (× 10⁶, rounded), of a row ``v`` of the
# view ``evaluation_scores`` (which computes it as ``evaluations`` does)
_EXACT = "round(v.score * 1e6::float8)"


def _order_statistics(
    conn: Connection, wanted: list[tuple[int, str, int, int, float]]
) -> list[float | None]:
    """For each (year, group, j, n, d): the j-th highest score (× 10⁶, rounded) of the
    group-year's n graded rows, read off the rows whose base score lies within 2·d of the j-th
    highest base score; None where the band does not hold it. One statement: the band's rows
    are scored in the database and only the statistic comes back.

    The j-th highest base score is found from the nearer end: the bucket counts
    (``evaluation_score_counts``) are summed to the bucket that holds it, then that bucket's
    rows are read in the index; the rows above the band are counted the same way. So a
    statistic reads a few hundred bucket counts and rows, not the j rows before it."""
    if not wanted:
        return []
    q = _unnest({"i": "int", "y": "int", "g": "text", "j": "int", "n": "int", "d": "float8"})
    ranked = 'FROM evaluation_ranking WHERE year = q.y AND "group" = q.g AND graded'
    counts = 'FROM evaluation_score_counts c WHERE c.year = q.y AND c."group" = q.g'
    low, high = "evaluation_score_bucket_low(k.v[1])", "evaluation_score_bucket_high(k.v[1])"
    rows = conn.execute(
        text(
            f"""
            SELECT q.i, CASE WHEN a.at >= 0 THEN s.k END
            FROM {q}
            -- from the top (the m-th highest) or the bottom (the m-th lowest), the nearer
            CROSS JOIN LATERAL (
                SELECT q.j <= (q.n + 1) / 2 AS top,
                       CASE WHEN q.j <= (q.n + 1) / 2 THEN q.j ELSE q.n - q.j + 1 END AS m
            ) w
            -- the bucket holding it and the rows in the buckets before it: [bucket, before]
            CROSS JOIN LATERAL (
                SELECT CASE WHEN w.top
                    THEN (SELECT ARRAY[bucket, cum - n] FROM (
                              SELECT bucket, n, sum(n) OVER (ORDER BY bucket DESC) AS cum
                              {counts}) x
                          WHERE cum >= w.m ORDER BY bucket DESC LIMIT 1)
                    ELSE (SELECT ARRAY[bucket, cum - n] FROM (
                              SELECT bucket, n, sum(n) OVER (ORDER BY bucket) AS cum
                              {counts}) x
                          WHERE cum >= w.m ORDER BY bucket LIMIT 1)
                END AS v
                OFFSET 0  -- once per statistic (pulled up, it was looked up at every use)
            ) k
            -- the j-th highest base score, in that bucket
            CROSS JOIN LATERAL (
                SELECT CASE WHEN w.top
                    THEN (SELECT base_score {ranked}
                          AND base_score >= {low} AND base_score < {high}
                          ORDER BY base_score DESC OFFSET w.m - k.v[2] - 1 LIMIT 1)
                    ELSE (SELECT base_score {ranked}
                          AND base_score >= {low} AND base_score < {high}
                          ORDER BY base_score OFFSET w.m - k.v[2] - 1 LIMIT 1)
                END AS b
                OFFSET 0
            ) b
            CROSS JOIN LATERAL (SELECT b.b - 2 * q.d AS lo, b.b + 2 * q.d AS hi) r
            -- the rows above the band: those above the j-th base score (the buckets before
            -- it and that bucket's rows beyond it) less those up to the band's top; the
            -- statistic is the (j - above)-th highest exact score of the band
            CROSS JOIN LATERAL (
                SELECT q.j - 1 - (CASE WHEN w.top
                    THEN k.v[2] + (SELECT count(*) {ranked}
                                   AND base_score > b.b AND base_score < {high})
                    ELSE q.n - k.v[2] - (SELECT count(*) {ranked}
                                         AND base_score >= {low} AND base_score <= b.b)
                    END - (SELECT count(*) {ranked} AND base_score > b.b
                           AND base_score <= r.hi)) AS at
                OFFSET 0
            ) a
            -- the band: a range of the base-score index, scored by the view as it is read
            LEFT JOIN LATERAL (
                SELECT {_EXACT} AS k FROM evaluation_scores v
                WHERE v.year = q.y AND v."group" = q.g AND v.graded
                  AND v.base_score BETWEEN r.lo AND r.hi
                ORDER BY k DESC OFFSET greatest(a.at, 0) LIMIT 1
            ) s ON true
            """
        ),
        {
            "i": list(range(len(wanted))),
            "y": [w[0] for w in wanted],
            "g": [w[1] for w in wanted],
            "j": [w[2] for w in wanted],
            "n": [w[3] for w in wanted],
            "d": [w[4] for w in wanted],
        },
    ).all()
    got = dict(rows)
    return [got.get(i) for i in range(len(wanted))]


# per number graded and quotas: the ranks of the last A, the last B and the first D
_CUTS: dict[tuple, tuple[int | None, int | None, int | None]] = {}


def _cuts(conn: Connection, ns: set[int], class_sql, params: dict) -> dict[int, tuple]:
    """For each number graded n: the ranks of the last A, the last B and the first D under the
    quotas (``class_sql``, the evaluation's rule). The classes run A, B, C, D as the rank grows,
    so each boundary is found by evaluating the rule at every ⌊√n⌋-th rank, then at every rank
    between two that differ (a few hundred evaluations, not n), in one statement; kept per
    process."""
    q = tuple(params[c] for c in ("c1", "c2", "c3"))
    todo = sorted(n for n in ns if n and (n, q) not in _CUTS)
    if todo:
        rows = conn.execute(
            text(
                f"""
                WITH q AS (
                    SELECT n, greatest(1, floor(sqrt(n::numeric))::int) AS step
                    FROM unnest(CAST(:ns AS int[])) n
                ), coarse AS (
                    SELECT q.n, s.r, {class_sql("s.r", "q.n")} AS c
                    FROM q CROSS JOIN LATERAL (
                        SELECT generate_series(1, q.n, q.step) AS r UNION SELECT q.n
                    ) s
                ), pairs AS (
                    SELECT n, r, c, lead(r) OVER w AS r2, lead(c) OVER w AS c2
                    FROM coarse WINDOW w AS (PARTITION BY n ORDER BY r)
                ), every AS (
                    SELECT n, r, c FROM coarse
                    UNION ALL
                    SELECT p.n, f.r, {class_sql("f.r", "p.n")}
                    FROM pairs p CROSS JOIN LATERAL generate_series(p.r + 1, p.r2 - 1) f(r)
                    WHERE p.c IS DISTINCT FROM p.c2
                )
                SELECT n, max(r) FILTER (WHERE c = 'A'), max(r) FILTER (WHERE c IN ('A', 'B')),
                       min(r) FILTER (WHERE c = 'D')
                FROM every GROUP BY n
                """
            ),
            {**params, "ns": todo},
        )
        for n, ka, kb, rd in rows:
            _CUTS[(n, q)] = (ka, kb, rd)
    return {n: _CUTS[(n, q)] for n in ns if n}


def _bounded(
    conn: Connection, ds: dict[tuple[int, str], float], class_sql, params: dict
) -> set[tuple[int, str]]:
    """Reclass the rows of the group-years of ``ds`` (their bound D) that a change may have
    moved (module docstring), all group-years at once; returns those that must be scored whole
    instead (a graded row without a base score, a cut the band does not hold)."""
    pairs = sorted(ds)
    pv = {"py": [y for y, _ in pairs], "pg": [g for _, g in pairs]}
    # the number graded (the group row's) and whether a graded row has no base score
    counts = {
        (y, g): (n, unbased)
        for y, g, n, unbased in conn.execute(
            text(
                'SELECT g.year, g."group", g.n_graded, EXISTS (SELECT 1 FROM evaluation_ranking t '
                'WHERE t.year = g.year AND t."group" = g."group" AND t.graded '
                "AND t.base_score IS NULL) "
                f"FROM {_unnest({'py': 'int', 'pg': 'text'})} JOIN evaluation_groups g "
                'ON g.year = q.py AND g."group" = q.pg'
            ),
            pv,
        )
    }
    whole = {k for k, (_, unbased) in counts.items() if unbased}
    cuts = _cuts(conn, {n for k, (n, _) in counts.items() if k not in whole}, class_sql, params)
    # the cuts, as the ranking orders scores (× 10⁶, rounded): A from ta, B from tb, D below td
    wanted, at = [], {}
    for key in pairs:
        if key in whole or key not in counts:
            continue
        n = counts[key][0]
        if not n:
            continue
        ka, kb, rd = cuts[n]
        for name, j in (("ta", ka), ("tb", kb), ("td", rd - 1 if rd and rd > 1 else None)):
            if j:
                at[(key, name)] = len(wanted)
                wanted.append((key[0], key[1], j, n, ds[key]))
    stats = _order_statistics(conn, wanted)
    th: dict[tuple[int, str], dict[str, float]] = {}
    for key in pairs:
        if key in whole:
            continue
        cut = cuts.get(counts[key][0]) if key in counts else None
        t = {"ta": INF, "tb": INF, "td": -INF}
        if cut and cut[2] == 1:
            t["td"] = INF
        for name in t:
            if (key, name) in at:
                v = stats[at[(key, name)]]
                if v is None:
                    whole.add(key)
                    break
                t[name] = v
        if key not in whole:
            th[key] = t
    if not th:
        return whole
    keys = sorted(th)
    p = {
        "y": [k[0] for k in keys],
        "g": [k[1] for k in keys],
        "ta": [th[k]["ta"] / 1e6 for k in keys],
        "tb": [th[k]["tb"] / 1e6 for k in keys],
        "td": [th[k]["td"] / 1e6 for k in keys],
        "ka": [th[k]["ta"] for k in keys],
        "kb": [th[k]["tb"] for k in keys],
        "kd": [th[k]["td"] for k in keys],
        "d": [ds[k] for k in keys],
    }
    q = _unnest({"y": "int", "g": "text", "ta": "float8", "tb": "float8", "td": "float8",
                 "ka": "float8", "kb": "float8", "kd": "float8", "d": "float8"})  # fmt: skip
    # the rows that may change class: near a cut (each a range of the class index, looked up
    # per group-year through LATERAL: a join planned on the arrays' unknown length scanned the
    # whole table), unclassed, or changed themselves. The ranges are read in the table (class
    # and base score are its columns); only the rows found are scored, through the view: one
    # reference to it (each reference costs the planner about 2 ms, and there were eight)
    near = " UNION ALL ".join(
        "SELECT r.year, r.uscc FROM evaluation_ranking r "
        f'WHERE r.year = q.y AND r."group" = q.g AND r.graded AND {cond}'
        for cond in (
            "r.class IS NULL",
            "r.class = 'A' AND r.base_score < q.ta + q.d",
            "r.class = 'B' AND r.base_score >= q.ta - q.d",
            "r.class = 'B' AND r.base_score < q.tb + q.d",
            "r.class = 'C' AND r.base_score >= q.tb - q.d",
            "r.class = 'C' AND r.base_score < q.td + q.d",
            "r.class = 'D' AND r.base_score >= q.td - q.d",
        )
    )
    # each scored exactly and classed by the cuts of its group-year (A from ka, B from kb, D
    # below kd; not graded: no class): the rows whose class moved
    moved = conn.execute(
        text(
            f"""
            WITH k AS (
                SELECT n.year, n.uscc FROM {q} CROSS JOIN LATERAL ({near}) n
                UNION
                SELECT year, uscc FROM _rchg WHERE NOT gone
            )
            SELECT year, uscc, new FROM (
                SELECT n.year, n.uscc, n.old,
                       CASE WHEN n.k IS NULL THEN NULL WHEN n.k >= n.ka THEN 'A'
                            WHEN n.k >= n.kb THEN 'B' WHEN n.k < n.kd THEN 'D' ELSE 'C' END
                           AS new
                FROM (
                    SELECT v.year, v.uscc, v.class AS old,
                           CASE WHEN v.graded THEN {_EXACT} END AS k, q.ka, q.kb, q.kd
                    FROM k
                    JOIN evaluation_scores v ON v.year = k.year AND v.uscc = k.uscc
                    JOIN {q} ON q.y = v.year AND q.g = v."group"
                ) n
            ) c WHERE new IS DISTINCT FROM old
            """
        ),
        p,
    ).all()
    if moved:
        # (a separate statement: joined to the query above, the planner expected every row
        # of the arrays' group-years and hashed the whole table)
        conn.execute(
            text(
                "WITH u AS (UPDATE evaluation_ranking t SET class = q.c "
                f"FROM {_unnest({'y': 'int', 'u': 'text', 'c': 'text'})} "
                "WHERE t.year = q.y AND t.uscc = q.u RETURNING t.year, t.uscc) "
                "INSERT INTO _rk (year, uscc) SELECT year, uscc FROM u"
            ),
            {"y": [r[0] for r in moved], "u": [r[1] for r in moved], "c": [r[2] for r in moved]},
        )
    return whole


def rescore(conn: Connection, in_groups: str, class_sql, params: dict) -> None:
    """Score the group-years of ``in_groups`` whole: rank every graded row among the graded of
    its year and group, write the classes and base scores that changed into
    ``evaluation_ranking`` (the rows whose class changed are added to ``_rk``) and record each
    group-year's base (``evaluation_score_bases``)."""
    coef = {i: coefficient_sql(i) for i in RATIO_COLUMNS}
    run_sql(
        conn,
        f"""
        CREATE TEMP TABLE _rs ON COMMIT DROP AS
        SELECT v.year, v.uscc, v."group" AS grp, r.class AS old_class,
               r.base_score AS old_base,
               CASE WHEN v.graded THEN {class_sql("rank() OVER w", "g.n_graded")} END AS class,
               CASE WHEN v.graded THEN v.score END AS base_score,
               CASE WHEN v.graded THEN {_mass_sql(coef, "v")} END AS mass
        FROM (SELECT * FROM evaluation_scores WHERE {in_groups}) v
        JOIN (SELECT * FROM evaluation_groups WHERE {in_groups}) g
             ON g.year = v.year AND g."group" = v."group"
        JOIN evaluation_ranking r ON r.year = v.year AND r.uscc = v.uscc
        -- the group compared bytewise: the database's collation (C.UTF-8 and the like)
        -- compares text through strcoll, a third of the sort's time
        WINDOW w AS (PARTITION BY v.year, v."group" COLLATE "C", v.graded
                     ORDER BY round(v.score * 1e6::float8) DESC);
        UPDATE evaluation_ranking t SET class = k.class, base_score = k.base_score
        FROM _rs k WHERE t.year = k.year AND t.uscc = k.uscc
          AND (k.class IS DISTINCT FROM k.old_class OR k.base_score IS DISTINCT FROM k.old_base);
        INSERT INTO _rk (year, uscc)
        SELECT year, uscc FROM _rs WHERE class IS DISTINCT FROM old_class;
        DELETE FROM evaluation_score_bases WHERE {in_groups};
        INSERT INTO evaluation_score_bases (year, "group",
            {", ".join(f"c_{i}" for i in RATIO_COLUMNS)},
            {", ".join(f"m_{i}" for i in RATIO_COLUMNS)}, spread)
        SELECT g.year, g."group", {", ".join(coef[i] for i in RATIO_COLUMNS)},
               {", ".join(f"g.m_{i}" for i in RATIO_COLUMNS)}, coalesce(s.spread, 0)
        FROM (SELECT * FROM evaluation_groups WHERE {in_groups}) g
        LEFT JOIN (SELECT year, grp, max(mass) AS spread FROM _rs GROUP BY year, grp) s
             ON s.year = g.year AND s.grp = g."group";
        DROP TABLE _rs
        """,
        params,
    )


# a band's rows (relation ``t`` of USCCs in year :y) scored one by one through the primary key
# (OFFSET 0: not pulled up into a join of the whole group-year), as relation ``s``
_SCORED = (
    "CROSS JOIN LATERAL (SELECT v.uscc, v.score FROM evaluation_scores v "
    "WHERE v.year = {year} AND v.uscc = t.uscc OFFSET 0) s"
)

# the deepest page a reader ranks by the bounds, and the most rows of one page ranked by them
# in any order (``ranks_of``); past them the view ranks the whole group-year
RANKED_READ_MAX = 5_000
RANKS_OF_MAX = 1_000
# the rows ``ranks_of`` ranks, with their group-year and band, as bound arrays
_MEMBERS = {"i": "int", "y": "int", "g": "text", "s": "float8", "lo": "float8", "hi": "float8"}


def _read_bands(
    conn: Connection, pairs: list[tuple[int, str]]
) -> dict[tuple[int, str], float | None]:
    """The bound D now (see ``_band``) of each group-year of ``pairs``, for readers, in two
    statements whatever their number; None for one without a base or when no ratio bounds its
    drift."""
    in_groups = _pairs_sql(pairs)
    bases = {
        (r.year, r.group): r
        for r in conn.execute(text(f"SELECT * FROM evaluation_score_bases WHERE {in_groups}"))
    }
    now = _groups_now(conn, in_groups) if bases else {}
    out: dict[tuple[int, str], float | None] = {}
    for key in pairs:
        b = bases.get(key)
        drift = _drift(b, now[key]) if b is not None and key in now else None
        out[key] = None if drift is None else _band(*drift, b.spread, b)
    return out


def _read_band(conn: Connection, year: int, group: str) -> float | None:
    """One group-year's bound D now (``_read_bands``)."""
    return _read_bands(conn, [(year, group)])[(year, group)]


def ranked_rows(
    conn: Connection, year: int, group: str, klass: str | None, start: int, stop: int
) -> list[tuple[str, int]] | None:
    """The graded rows of a group-year (of class ``klass`` only, when given) at positions
    ``start`` to ``stop`` (0-based, end excluded) in the order the view ``evaluations`` lists
    them (rank, score highest first, USCC), as (USCC, rank); None when the bounds cannot tell
    (no base, a coefficient that turned from 0, or ``stop`` past ``RANKED_READ_MAX``): the
    caller then reads the view. Reads only.

    The rows above the ``stop``-th lie among those whose base score is within 2·D of the
    ``stop``-th highest base score (the order statistics' band): only those are scored. A row's
    rank is 1 + the graded rows of its group-year with a higher score (rounded to 1e-6); with a
    class, the rows of the better classes are all above it (classes follow the rank)."""
    if stop <= start:
        return []
    if stop > RANKED_READ_MAX:
        return None
    d = _read_band(conn, year, group)
    if d is None:
        return None
    only = "AND class = :k" if klass else ""
    p = {"y": year, "g": group, "k": klass, "o": stop - 1}
    pivot = conn.execute(
        text(
            'SELECT base_score FROM evaluation_ranking WHERE year = :y AND "group" = :g '
            f"AND graded {only} ORDER BY base_score DESC OFFSET :o LIMIT 1"
        ),
        p,
    ).scalar()
    above = 0
    if klass:  # the better classes' rows: all ranked above this class's
        above = conn.execute(
            text(
                'SELECT count(*) FROM evaluation_ranking WHERE year = :y AND "group" = :g '
                "AND graded AND class < :k"
            ),
            p,
        ).scalar_one()
    rows = conn.execute(
        text(
            "SELECT s.uscc, round(s.score * 1e6::float8) AS k, s.score "
            'FROM (SELECT uscc FROM evaluation_ranking WHERE year = :y AND "group" = :g '
            f"AND graded {only} AND base_score >= :lo OFFSET 0) t {_SCORED.format(year=':y')}"
        ),
        {**p, "lo": -INF if pivot is None else pivot - 2 * d - ROUND_MARGIN},
    ).all()
    rows.sort(key=lambda r: (-r.k, -r.score, r.uscc))
    out, higher = [], 0
    for i, r in enumerate(rows[:stop]):
        if i and r.k != rows[i - 1].k:
            higher = i
        if i >= start:
            out.append((r.uscc, above + higher + 1))
    return out


def ranks_of(
    conn: Connection, rows: list[tuple[int, str, str, float]]
) -> dict[tuple[int, str], int] | None:
    """The ranks of graded rows (year, group, USCC, score) as the view ``evaluations`` ranks
    them, through the score bounds, for rows picked by something other than their rank (an
    enterprise list in USCC order, one enterprise's years in its dossier). A row's rank is 1 +
    the rows scoring higher: those whose base score is D or more above its score, counted from
    the bucket counts (``evaluation_score_counts``) and one bucket's index range, and those
    within D, scored. Three statements whatever the number of rows and group-years. None when
    a group-year's bounds cannot tell (the caller then reads the view). Reads only."""
    if len(rows) > RANKS_OF_MAX:
        return None
    if not rows:
        return {}
    by_gy: dict[tuple[int, str], list[tuple[str, float]]] = {}
    for y, g, u, s in rows:
        by_gy.setdefault((y, g), []).append((u, s))
    bands = _read_bands(conn, list(by_gy))
    if any(d is None for d in bands.values()):
        return None
    # every member (year, group, USCC, score) with its band [lo, hi)
    m = [
        (y, g, u, s, s - bands[(y, g)] - ROUND_MARGIN, s + bands[(y, g)] + ROUND_MARGIN)
        for (y, g), members in by_gy.items()
        for u, s in members
    ]
    ranked = 'FROM evaluation_ranking WHERE year = q.y AND "group" = q.g AND graded'
    higher = conn.execute(
        text(
            f"""
            SELECT q.i, a.n + n.n FROM {_unnest(_MEMBERS)}
            -- the rows at or above the band's top, all scoring higher: the bucket counts above
            -- the top's bucket, and that bucket's rows from the top up
            CROSS JOIN LATERAL (
                SELECT (SELECT coalesce(sum(c.n), 0) FROM evaluation_score_counts c
                        WHERE c.year = q.y AND c."group" = q.g
                          AND c.bucket > evaluation_score_bucket(q.hi))
                     + (SELECT count(*) {ranked} AND base_score >= q.hi AND base_score
                               < evaluation_score_bucket_high(evaluation_score_bucket(q.hi)))
                       AS n
            ) a
            -- the rows of the band scoring higher (OFFSET 0: the band a range of the index)
            CROSS JOIN LATERAL (
                SELECT count(*) FILTER (WHERE round(s.score * 1e6::float8)
                                        > round(q.s * 1e6::float8)) AS n
                FROM (SELECT uscc {ranked} AND base_score >= q.lo AND base_score < q.hi
                      OFFSET 0) t {_SCORED.format(year="q.y")}
            ) n
            """
        ),
        {
            "i": list(range(len(m))),
            "y": [x[0] for x in m],
            "g": [x[1] for x in m],
            "s": [x[3] for x in m],
            "lo": [x[4] for x in m],
            "hi": [x[5] for x in m],
        },
    ).all()
    return {(m[i][0], m[i][2]): 1 + int(n) for i, n in higher}
