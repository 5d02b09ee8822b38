"""The A/B/C/D evaluation (亩均效益综合评价, "亩均论英雄", DOMAIN_RULES §2), as set-based SQL.

One row per enterprise with output (CC) in a year. Stored: what the row is about
(``evaluation_rows``), what ranks it and its class (``evaluation_ranking``, narrow), and one
row per year and group with the weights, benchmarks and mean points (``evaluation_groups``);
read through the view ``evaluations`` (migrations 0020, 0026), which computes score, points,
benchmarks and rank from the three. The classes are kept by score bounds
(gis/economy/evaluation_classes.py):

- group: ``above`` (规上, GMYS = 1) or ``below`` (规下).
- evaluated: every 规上 enterprise with land; 规下 with land >= ``below_min_mu`` (3 亩). Land is
  ``enterprise_land`` (gis/economy/per_mu.py). Otherwise ``not_evaluated_reason`` says why.
- indicators: the group's weighted indicators from ``per_mu`` (规上: 亩均税收, 亩均增加值,
  单位能耗增加值, 单位排放增加值, 全员劳动生产率, R&D 强度; 规下: 亩均税收, 亩均营业收入).
- benchmarks: the mean of each indicator over the enterprises evaluated in the same year and
  group that have it. points = weight × value ÷ benchmark; a missing energy or emission figure
  (ZHNH / PFDL absent or 0) scores the group's mean points for that indicator; any other missing
  figure scores 0 and is listed in ``missing``. score = Σ points.
- graded: evaluated and not a utility (GB/T 4754 44-46), not founded under 2 years ago (first
  year with output, ours), not still building on newly supplied land (ours: a supply record of
  its own, via a linked parcel or SRRDM, supplied within ``new_supply_years`` of the year's end
  and not completed by then, or an XM project 在建 on such a record). Otherwise
  ``not_graded_reason``; such enterprises keep their score but have no rank or class.
- rank: competition rank by score (rounded to 1e-6) among the graded of the year and group:
  ties share the better rank, so the better class. With n graded in the group, class A if
  rank <= 25 % × n, else B if rank <= 70 % × n, else D if the enterprises ranked at or below
  it (n - rank + 1) are at most 5 % × n, else C (``class_cutoffs``). Every quota is a ceiling:
  a group of under 4 has no A and one of under 20 no D; C takes the rounding.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, Engine, text

from gis.core import graph
from gis.core.analysis_columns import RATIO_COLUMNS
from gis.core.db import run_sql
from gis.core.graph import ALL, Changes, Producer
from gis.core.rules import EvaluationRules, Rules
from gis.economy import evaluation_classes

RULE = "§2 亩均论英雄 Σ w·v/mean, rank quotas"  # docs/EVALUATION.md


def class_sql(rank: str, n: str) -> str:
    """The class of the row ranked ``rank`` (SQL) among ``n`` graded (SQL): the quotas of
    ``class_cutoffs`` (bound as :c1, :c2, :c3), each a ceiling, ties sharing the better class
    through the competition rank (module docstring)."""
    return (
        f"CASE WHEN {rank} <= :c1 * {n} + 1e-9 THEN 'A' "
        f"WHEN {rank} <= :c2 * {n} + 1e-9 THEN 'B' "
        f"WHEN {n} - {rank} + 1 > (1 - :c3) * {n} + 1e-9 THEN 'C' "
        f"WHEN {rank} IS NOT NULL THEN 'D' END"
    )


def _q(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "") + "'" for v in values) + "]::text[]"


# what an evaluation row owns: compared and written per row, in ``evaluation_rows`` (what the
# row is about) and ``evaluation_ranking`` (what ranks it); the class is written by step 3, the
# score, points and rank computed by the view ``evaluations``
ROW_COLUMNS = (
    "name", "industry_code", "area_mu", "land_basis", "indicators", "missing",
    "not_evaluated_reason", "not_graded_reason", "building_supply_nos", "district_code",
    "platform_code", "corridor_code",
)  # fmt: skip
RANKING_COLUMNS = ("group", "evaluated", "graded", *RATIO_COLUMNS)


def _json_sql(groups: dict[str, dict[str, float]], mean_missing: list[str]) -> dict[str, str]:
    """The per-row JSON of an evaluation row (``v``: a row of _ev), by group: the group's
    indicator values, and the indicators it misses with how they are scored."""

    def by_group(build) -> str:
        return (
            "CASE v.grp "
            + " ".join(f"WHEN '{g}' THEN {build(list(w))}" for g, w in groups.items())
            + " END"
        )

    return {
        "indicators": by_group(
            lambda inds: "jsonb_build_object(" + ", ".join(f"'{i}', v.{i}" for i in inds) + ")"
        ),
        "missing": by_group(
            lambda inds: (  # most rows miss nothing: skip building their array
                "CASE WHEN "
                + " AND ".join(f"v.{i} IS NOT NULL" for i in inds)
                + " THEN '[]'::jsonb ELSE to_jsonb(array_remove(ARRAY["
                + ", ".join(
                    f"CASE WHEN v.{i} IS NULL THEN "
                    f"jsonb_build_object('indicator', '{i}', 'scored', "
                    + ("'group mean points'" if i in mean_missing else "'0 points'")
                    + ") END"
                    for i in inds
                )
                + "], NULL)) END"
            )
        ),
    }


def _signed(sign: str, src: str = "") -> str:
    """The terms a row adds to its group-year's sums (``sign`` "-": takes away): 1 row, 1 if
    graded, and per indicator its value in numeric and 1 where evaluated with the value."""
    t = [f"{sign}1 AS n_rows", f"{sign}({src}graded)::int AS n_graded"]
    for i in RATIO_COLUMNS:
        has = f"{src}evaluated AND {src}{i} IS NOT NULL"
        t += [f"{sign}(CASE WHEN {has} THEN {src}{i}::numeric END) AS s_{i}",
              f"{sign}({has})::int AS c_{i}"]  # fmt: skip
    return ", ".join(t)


SUM_COLS = ("n_rows", "n_graded", *(f"{x}_{i}" for i in RATIO_COLUMNS for x in ("s", "c")))


def _summed(src: str) -> str:
    """A SELECT of (year, group, SUM_COLS) adding the terms of ``src`` (rows of year, group,
    SUM_COLS) per group-year: exact (numeric), and NULL for an indicator no row has."""
    cols = ["sum(n_rows)::int AS n_rows", "sum(n_graded)::int AS n_graded"]
    for i in RATIO_COLUMNS:
        cols += [f"CASE WHEN sum(c_{i}) > 0 THEN coalesce(sum(s_{i}), 0) END AS s_{i}",
                 f"sum(c_{i})::int AS c_{i}"]  # fmt: skip
    return f'SELECT year, "group", {", ".join(cols)} FROM ({src}) t GROUP BY year, "group"'


def _group_sql(groups: dict[str, dict[str, float]], sums: str, mean_missing: list[str]) -> str:
    """A SELECT of ``evaluation_groups`` rows from ``sums`` (rows of year, group, SUM_COLS):
    the weights, each indicator's benchmark (the mean over the evaluated that have it: their
    exact sum ÷ their number, as ``avg`` of numeric computes it), the number graded, the
    benchmarks as shown (rounded to 1e-6) and the mean points of the ``mean_missing``
    indicators. Those points are w·v/b over the evaluated that have the value, whose mean v is
    b itself: their mean is exactly the weight w (0 when b is not positive, as each one's
    points are), which is what a missing figure scores."""
    cols = []
    for i in RATIO_COLUMNS:
        has = [g for g, w in groups.items() if i in w]
        if not has:
            cols += [f"NULL::float8 AS w_{i}", f"NULL::float8 AS b_{i}", f"NULL::float8 AS m_{i}"]
            continue
        w = " ".join(f"WHEN '{g}' THEN {float(groups[g][i])}" for g in has)
        grp = ", ".join(f"'{g}'" for g in has)
        # only the rows of the groups that have the indicator enter the mean
        b = f'CASE WHEN "group" IN ({grp}) AND c_{i} > 0 THEN (s_{i} / c_{i})::float8 END'
        m = (
            f'CASE WHEN {b} > 0 THEN CASE "group" {w} END ELSE 0 END'
            if i in mean_missing
            else "NULL::float8"
        )
        cols += [f'CASE "group" {w} END AS w_{i}', f"{b} AS b_{i}", f"{m} AS m_{i}"]
    shown = " ".join(
        f"WHEN '{g}' THEN jsonb_build_object("
        + ", ".join(f"'{i}', round(b_{i}::numeric, 6)" for i in w)
        + ")"
        for g, w in groups.items()
    )
    return f"""
        SELECT *, CASE "group" {shown} END AS benchmarks FROM (
            SELECT year, "group", {", ".join(SUM_COLS)}, {", ".join(cols)}
            FROM ({sums}) s WHERE n_rows > 0
        ) g
    """


def _in_groups(conn: Connection) -> str:
    """The condition selecting the year-groups of ``_gscope``, written out as values (with the
    years as an array, so that the planner reads only those years' rows by the primary key
    instead of every row of the table) when there are few of them."""
    pairs = conn.exec_driver_sql("SELECT year, grp FROM _gscope ORDER BY 1, 2").all()
    if not pairs:
        return "false"
    if len(pairs) > 50:
        return '(year, "group") IN (SELECT year, grp FROM _gscope)'
    years = ",".join(sorted({str(int(y)) for y, _ in pairs}))
    values = ", ".join(f"({int(y)}, '{g.replace(chr(39), '')}')" for y, g in pairs)
    return f"year = ANY('{{{years}}}'::int[]) AND (year, \"group\") IN ({values})"


def evaluate(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: EvaluationRules,
    scoped: bool = False,
    full: bool = True,
) -> tuple[set[str], set[str], set[str], set[str], dict[str, int]]:
    """Recompute the evaluation: every row, group and class, or (``scoped``) the rows in this
    function's caller's temp table ``_evrows`` (uscc, year) and the groups and classes of the
    year-groups where one of them changed (its old and its new group). Three steps, each
    writing only what changed:

    1. the rows' own columns (land, group, the indicator values, whether evaluated and graded
       and why not, zones) of the rows in question, in ``evaluation_rows`` and
       ``evaluation_ranking``;
    2. ``evaluation_groups`` of the group-years in question: weights, benchmarks (means), the
       mean points a missing energy or emission figure scores, the number graded;
    3. the classes of those group-years, from the scores the view ``evaluation_scores``
       computes (Σ points of the rows and their group): the rows a change may move between
       classes, found by score bounds (gis/economy/evaluation_classes.py), or every row of a
       group-year whose bounds do not hold.

    Returns the ``USCC:year`` keys of the rows whose own columns or ranking inputs changed,
    appeared or went; of those and the rows whose class changed; of those whose class changed,
    appeared or went; the ``year:group`` keys of the changed groups (whose every score and rank
    moved with them); {ALL} for each on a ``full`` recompute; and how many group-years were
    reclassed by their bounds or scored whole.
    Reads ``enterprise_land`` and ``per_mu`` (gis/economy/per_mu.py), ``links``, ``outputs``,
    ``enterprises``, ``supplies``, ``projects``.
    """
    c1, c2, c3 = rules.class_cutoffs
    p = {
        "run": run_id,
        "as_of": as_of,
        "rule": RULE,
        "below_min": rules.below_min_mu,
        "new_years": rules.new_enterprise_years,
        "supply_years": rules.new_supply_years,
        "c1": c1,
        "c2": c2,
        "c3": c3,
    }
    groups = {"above": rules.above_weights, "below": rules.below_weights}
    ratios = ", ".join(f"o.{c}" for c in RATIO_COLUMNS)
    mm = rules.mean_points_if_missing
    js = _json_sql(groups, mm)
    rows = "(o.uscc, o.year) IN (SELECT uscc, year FROM _evrows)" if scoped else "true"
    vrows = "(v.uscc, v.year) IN (SELECT uscc, year FROM _evrows)" if scoped else "true"
    # who is evaluated (§2): every 规上 enterprise, a 规下 one on at least ``below_min`` 亩; the
    # group is ``_fig.grp`` (GMYS = 1 is 规上, anything else, blank included, 规下), so an
    # unfilled GMYS is never NULL here
    evaluated = (
        "(o.basis <> 'none' AND coalesce(o.grp = 'above' OR o.area_mu >= :below_min, false))"
    )
    conn.exec_driver_sql(
        "DROP TABLE IF EXISTS _fig, _ez, _own_supply, _building, _ev, _row_new, _rchg, _gscope, "
        "_g_old, "
        "_g_new, _rk, _rs"
    )
    run_sql(
        conn,
        f"""
        -- each enterprise-year's land, group and per-mu ratios (gis/economy/per_mu.py)
        CREATE TEMP TABLE _fig ON COMMIT DROP AS
        SELECT * FROM (
            SELECT el.year, el.uscc, el.basis, el.area_mu, el.reason,
                   CASE WHEN e.above_size THEN 'above' ELSE 'below' END AS grp, {
            ", ".join(f"pm.{c}" for c in RATIO_COLUMNS)
        }
            FROM enterprise_land el JOIN enterprises e ON e.uscc = el.uscc
            LEFT JOIN per_mu pm ON pm.level = 'enterprise' AND pm.code = el.uscc
                 AND pm.year = el.year
        ) o WHERE {rows};
        ANALYZE _fig;
        CREATE TEMP TABLE _ez ON COMMIT DROP AS
        SELECT from_key AS uscc,
               max(to_key) FILTER (WHERE kind = 'enterprise_district') AS district,
               max(to_key) FILTER (WHERE kind = 'enterprise_platform') AS platform,
               max(to_key) FILTER (WHERE kind = 'enterprise_corridor') AS corridor
        FROM links
        WHERE kind IN ('enterprise_district', 'enterprise_platform', 'enterprise_corridor')
          AND is_primary AND to_key IS NOT NULL
          {"AND from_key IN (SELECT uscc FROM _fig)" if scoped else ""}
        GROUP BY from_key;
        CREATE TEMP TABLE _own_supply ON COMMIT DROP AS
        SELECT uscc, supply_no FROM (  -- linkage's enterprise -> parcel <- supply links
            SELECT ep.from_key AS uscc, sp.from_key AS supply_no
            FROM links ep JOIN links sp ON sp.kind = 'supply_parcel'
                 AND sp.to_key = ep.to_key AND sp.from_key IS NOT NULL
            WHERE ep.kind = 'enterprise_parcel' AND ep.to_key IS NOT NULL
              {"AND ep.from_key IN (SELECT uscc FROM _fig)" if scoped else ""}
            UNION ALL
            SELECT grantee_uscc, supply_no FROM supplies WHERE grantee_uscc IS NOT NULL
              {"AND grantee_uscc IN (SELECT uscc FROM _fig)" if scoped else ""}
        ) x GROUP BY 1, 2;
        ANALYZE _own_supply;
        CREATE TEMP TABLE _building ON COMMIT DROP AS
        SELECT v.year, v.uscc, string_agg(DISTINCT r, '; ') AS reason,
               array_agg(DISTINCT s.supply_no ORDER BY s.supply_no) AS supply_nos
        FROM outputs v
        JOIN _own_supply os ON os.uscc = v.uscc
        JOIN supplies s ON s.supply_no = os.supply_no
        CROSS JOIN LATERAL (SELECT make_date(v.year, 12, 31) AS ye) d
        LEFT JOIN LATERAL (
            SELECT string_agg(x.project_code, ', ' ORDER BY x.project_code) AS codes
            FROM links ps JOIN projects x ON x.project_code = ps.from_key
            WHERE ps.kind = 'project_supply' AND ps.to_key = s.supply_no
              AND x.status = '在建' AND (x.started_on IS NULL OR x.started_on <= d.ye)
        ) pr ON true
        CROSS JOIN LATERAL (SELECT
            'still building on newly supplied land: ' || s.supply_no || ' supplied '
            || s.supplied_on || CASE WHEN pr.codes IS NOT NULL
                                     THEN ', project ' || pr.codes || ' 在建'
                                     ELSE ', not completed by ' || d.ye END AS r) t
        WHERE s.supplied_on <= d.ye
          AND s.supplied_on > d.ye - make_interval(years => :supply_years)
          AND (pr.codes IS NOT NULL OR s.actual_completion IS NULL
               OR s.actual_completion > d.ye)
          AND {vrows}
        GROUP BY v.year, v.uscc;
        ANALYZE _building;
        CREATE TEMP TABLE _ev ON COMMIT DROP AS
        SELECT o.year, o.uscc, e.name, e.industry_code, o.grp,
               o.basis, o.area_mu, o.reason AS land_reason,
               {evaluated} AS evaluated,
               {ratios},
               -- why an evaluated enterprise is not graded ('' = graded, NULL = not evaluated)
               CASE WHEN {evaluated}
               THEN concat_ws('; ',
                   CASE WHEN left(e.industry_code, 2) = ANY({_q(rules.utility_prefixes)})
                        THEN 'utility (GB/T 4754 division ' || left(e.industry_code, 2) || ')'
                   END,
                   CASE WHEN fy.first_year > d0.data_from
                         AND o.year - fy.first_year < :new_years
                        THEN 'founded under ' || :new_years || ' years ago (first output year '
                             || fy.first_year || ')' END,
                   bl.reason) END AS not_graded,
               bl.supply_nos AS building_supply_nos
        FROM _fig o  -- gis/economy/per_mu.py: land, CC figures and ratios of each
                     -- enterprise-year
        JOIN enterprises e ON e.uscc = o.uscc
        JOIN (SELECT uscc, min(year) AS first_year FROM outputs
              {"WHERE uscc IN (SELECT uscc FROM _fig)" if scoped else ""}
              GROUP BY uscc) fy ON fy.uscc = o.uscc
        CROSS JOIN (SELECT min(year) AS data_from FROM outputs) d0
        LEFT JOIN _building bl ON bl.year = o.year AND bl.uscc = o.uscc;
        CREATE TEMP TABLE _row_new ON COMMIT DROP AS
        SELECT v.year, v.uscc, v.name, v.industry_code, v.grp AS "group", v.evaluated,
               coalesce(v.not_graded = '', false) AS graded, v.area_mu,
               v.basis AS land_basis, {js["indicators"]} AS indicators,
               CASE WHEN v.evaluated THEN {js["missing"]} ELSE '[]' END AS missing,
               CASE WHEN NOT v.evaluated THEN
                   CASE WHEN v.basis = 'none' THEN v.land_reason
                        ELSE '规下 on ' || round(v.area_mu::numeric, 2) || ' 亩, under the '
                             || :below_min || ' 亩 threshold' END END
                   AS not_evaluated_reason,
               nullif(v.not_graded, '') AS not_graded_reason,
               CASE WHEN v.evaluated THEN coalesce(v.building_supply_nos, '{{}}')
                    ELSE '{{}}' END AS building_supply_nos,
               ez.district AS district_code, ez.platform AS platform_code,
               ez.corridor AS corridor_code, {", ".join(f"v.{c}" for c in RATIO_COLUMNS)}
        FROM _ev v LEFT JOIN _ez ez ON ez.uscc = v.uscc;
        DROP TABLE _ev, _own_supply, _building, _fig, _ez
        """,
        p,
    )
    rc = ", ".join(f'"{c}"' for c in ROW_COLUMNS)
    kc = ", ".join(f'"{c}"' for c in RANKING_COLUMNS)
    both = ", ".join([*(f'r."{c}"' for c in ROW_COLUMNS), *(f's."{c}"' for c in RANKING_COLUMNS)])
    in_rows = "(uscc, year) IN (SELECT uscc, year FROM _evrows)" if scoped else "true"
    # 1. the rows' own columns: changed rows updated in place (their class stays until step 3),
    #    new rows inserted, rows no longer there deleted
    run_sql(
        conn,
        f"""
        CREATE TEMP TABLE _rchg ON COMMIT DROP AS
        SELECT year, uscc, o.r IS NULL AS added, n.r IS NULL AS gone, o.grp AS old_grp,
               n.grp AS new_grp
        FROM (SELECT year, uscc, s."group" AS grp, ROW({both}) AS r
              FROM evaluation_rows r JOIN evaluation_ranking s USING (year, uscc)
              WHERE {in_rows}) o
        FULL JOIN (SELECT year, uscc, "group" AS grp, ROW({rc}, {kc}) AS r FROM _row_new) n
             USING (year, uscc)
        WHERE o.r IS DISTINCT FROM n.r;
        ANALYZE _rchg;
        -- the group-years whose benchmarks and ranks the changed rows move (old groups too)
        CREATE TEMP TABLE _gscope ON COMMIT DROP AS
        SELECT year, old_grp AS grp FROM _rchg WHERE old_grp IS NOT NULL
        UNION SELECT year, new_grp FROM _rchg WHERE new_grp IS NOT NULL;
        -- what the changed rows added to their group-years' sums, before they change
        CREATE TEMP TABLE _rold ON COMMIT DROP AS
        SELECT t.year, t."group", {_signed("-", "t.")}
        FROM evaluation_ranking t JOIN _rchg c USING (year, uscc)
        WHERE NOT c.added AND {"true" if scoped else "false"};
        DELETE FROM evaluation_rows t USING _rchg c
        WHERE c.gone AND t.year = c.year AND t.uscc = c.uscc;
        DELETE FROM evaluation_ranking t USING _rchg c
        WHERE c.gone AND t.year = c.year AND t.uscc = c.uscc;
        UPDATE evaluation_rows t SET ({rc}, rule, run_id, as_of) =
            ({", ".join(f'n."{c}"' for c in ROW_COLUMNS)}, :rule, :run, :as_of)
        FROM _rchg c JOIN _row_new n USING (year, uscc)
        WHERE NOT c.added AND t.year = c.year AND t.uscc = c.uscc
          AND ROW({", ".join(f't."{c}"' for c in ROW_COLUMNS)})
              IS DISTINCT FROM ROW({", ".join(f'n."{c}"' for c in ROW_COLUMNS)});
        UPDATE evaluation_ranking t SET ({kc}) =
            ({", ".join(f'n."{c}"' for c in RANKING_COLUMNS)})
        FROM _rchg c JOIN _row_new n USING (year, uscc)
        WHERE NOT c.added AND t.year = c.year AND t.uscc = c.uscc
          AND ROW({", ".join(f't."{c}"' for c in RANKING_COLUMNS)})
              IS DISTINCT FROM ROW({", ".join(f'n."{c}"' for c in RANKING_COLUMNS)});
        INSERT INTO evaluation_rows (year, uscc, {rc}, rule, run_id, as_of)
        SELECT n.year, n.uscc, {", ".join(f'n."{c}"' for c in ROW_COLUMNS)}, :rule, :run, :as_of
        FROM _row_new n JOIN _rchg c USING (year, uscc) WHERE c.added;
        -- laid out by group-year: re-ranking one reads its own pages, not every page
        INSERT INTO evaluation_ranking (year, uscc, {kc})
        SELECT n.year, n.uscc, {", ".join(f'n."{c}"' for c in RANKING_COLUMNS)}
        FROM _row_new n JOIN _rchg c USING (year, uscc) WHERE c.added
        ORDER BY n.year, n."group" COLLATE "C", n.uscc;
        DROP TABLE _row_new
        """,
        p,
    )
    in_groups = _in_groups(conn) if scoped else "true"
    # 2. the groups: sums kept by differences (the stored ones, plus the changed rows as they
    #    are now, less them as they were: numeric, so exactly the sums made afresh), and from
    #    them weights, benchmarks and mean points
    sums = (
        _summed(
            f"""SELECT year, "group", {", ".join(SUM_COLS)} FROM evaluation_groups
                WHERE {in_groups}
                UNION ALL SELECT t.year, t."group", {_signed("", "t.")}
                FROM evaluation_ranking t JOIN _rchg c USING (year, uscc) WHERE NOT c.gone
                UNION ALL SELECT * FROM _rold"""
        )
        if scoped
        else _summed(f'SELECT year, "group", {_signed("")} FROM evaluation_ranking')
    )
    gcols = ", ".join(
        ["n_graded", "benchmarks"] + [f"{x}_{i}" for i in RATIO_COLUMNS for x in ("w", "b", "m")]
    )
    allcols = ", ".join(
        ["n_graded", "benchmarks", *SUM_COLS[:1], *SUM_COLS[2:]]
        + [f"{x}_{i}" for i in RATIO_COLUMNS for x in ("w", "b", "m")]
    )
    run_sql(
        conn,
        f"""
        CREATE TEMP TABLE _g_new ON COMMIT DROP AS {_group_sql(groups, sums, mm)};
        CREATE TEMP TABLE _g_old ON COMMIT DROP AS
        SELECT * FROM evaluation_groups WHERE {in_groups};
        DELETE FROM evaluation_groups WHERE {in_groups};
        INSERT INTO evaluation_groups (year, "group", {allcols}, rule, run_id, as_of)
        SELECT year, "group", {allcols}, :rule, :run, :as_of FROM _g_new;
        DROP TABLE _g_new, _rold
        """,
        p,
    )
    # 3. the classes of those group-years (gis/economy/evaluation_classes.py): the rows a
    #    change may move between classes, found by score bounds, scored and reclassed; a
    #    group-year scored whole where the bounds do not hold. Ranks are computed when read.
    kept = evaluation_classes.keep(conn, scoped, in_groups, class_sql, p)
    if not scoped and full:
        conn.exec_driver_sql("DROP TABLE _rchg, _gscope, _g_old, _rk")
        return {ALL}, {ALL}, {ALL}, {ALL}, kept
    own = set(conn.exec_driver_sql("SELECT uscc || ':' || year FROM _rchg").scalars())
    changed = set(
        conn.exec_driver_sql(
            "SELECT uscc || ':' || year FROM _rchg UNION SELECT uscc || ':' || year FROM _rk"
        ).scalars()
    )
    classes = set(
        conn.exec_driver_sql(
            "SELECT uscc || ':' || year FROM _rchg WHERE added OR gone "
            "UNION SELECT uscc || ':' || year FROM _rk"
        ).scalars()
    )
    groups_changed = set(
        conn.exec_driver_sql(
            f"""
            SELECT coalesce(n.year, o.year) || ':' || coalesce(n."group", o."group")
            FROM (SELECT year, "group", ROW({gcols}) AS r FROM _g_old) o
            FULL JOIN (SELECT year, "group", ROW({gcols}) AS r FROM evaluation_groups
                       WHERE {in_groups}) n USING (year, "group")
            WHERE o.r IS DISTINCT FROM n.r
            """
        ).scalars()
    )
    conn.exec_driver_sql("DROP TABLE _rchg, _gscope, _g_old, _rk")
    return own, changed, classes, groups_changed, kept


def class_changes(changes: Changes) -> Changes:
    """``changes`` as readers of the class alone see them: ``evaluation_ranking`` narrowed to
    the rows whose class changed, appeared or went away (``evaluation_classes``, which the
    evaluation producer returns beside ``evaluation_ranking``); unchanged when the producer did
    not run."""
    if "evaluation_classes" not in changes:
        return changes
    out = Changes().merge(changes)
    out["evaluation_ranking"] = set(changes["evaluation_classes"])
    return out


def counts_of(conn: Connection) -> dict:
    """Evaluations by year and group: rows, evaluated, graded and each class."""
    rows = conn.exec_driver_sql(
        """
        SELECT year, "group", count(*) AS n, count(*) FILTER (WHERE evaluated) AS evaluated,
               count(*) FILTER (WHERE graded) AS graded,
               count(*) FILTER (WHERE class = 'A') AS a, count(*) FILTER (WHERE class = 'B') AS b,
               count(*) FILTER (WHERE class = 'C') AS c, count(*) FILTER (WHERE class = 'D') AS d
        FROM evaluation_ranking GROUP BY 1, 2 ORDER BY 1, 2
        """
    ).all()
    return {f"{r.year} {r.group}": dict(r._mapping) for r in rows}


def _supply_enterprises(conn: Connection, changes: Changes) -> set[str]:
    """The enterprises whose still-building rule may read a changed supply record, project or
    supply link: those on the parcels of the supply records in question (changed ones, those of
    changed projects, those named by changed links), their grantees, those graded "still
    building" on one of them before, and those on parcels whose supply link changed."""
    supplies = sorted(set(changes.get("supplies", ())) | set(changes.get("links", ())))
    projects = sorted(set(changes.get("projects", ())) | set(changes.get("links", ())))
    parcels = sorted(changes.get("parcel_links", ()))
    if not (supplies or projects or parcels):
        return set()
    return set(
        conn.execute(
            text(
                """
                WITH s AS (
                    SELECT supply_no FROM supplies WHERE supply_no = ANY(CAST(:s AS text[]))
                    UNION SELECT to_key FROM links WHERE kind = 'project_supply'
                          AND from_key = ANY(CAST(:j AS text[])) AND to_key IS NOT NULL
                    UNION SELECT unnest(CAST(:changed AS text[]))  -- retired ones too
                )
                SELECT ep.from_key FROM links sp
                JOIN links ep ON ep.kind = 'enterprise_parcel' AND ep.to_key = sp.to_key
                WHERE sp.kind = 'supply_parcel' AND sp.from_key IN (SELECT supply_no FROM s)
                UNION SELECT grantee_uscc FROM supplies
                      WHERE supply_no IN (SELECT supply_no FROM s) AND grantee_uscc IS NOT NULL
                UNION SELECT uscc FROM evaluation_rows  -- (GIN index)
                      WHERE building_supply_nos && ARRAY(SELECT supply_no FROM s)
                UNION SELECT from_key FROM links WHERE kind = 'enterprise_parcel'
                      AND to_key = ANY(CAST(:p AS text[]))
                """
            ),
            {"s": supplies, "j": projects, "changed": sorted(changes.get("supplies", ())),
             "p": parcels},
        ).scalars()
    ) - {None}  # fmt: skip


def run(conn: Connection, ctx, changes: Changes | None) -> Changes:
    """Producer ``evaluation``: the rows of the enterprise-years whose land, figures, group or
    grading may have changed (among them those a changed supply record or project may hold
    "still building", ``_supply_enterprises``), then the groups (benchmarks) and classes of their
    years and groups; everything when ``changes`` is None or names every key.

    Returns ``Changes(evaluation_rows={"USCC:year"})``: rows whose own columns or ranking
    inputs changed, appeared or went away; ``evaluation_ranking``: those and the rows whose
    class changed; ``evaluation_groups={"year:group"}``: groups
    whose benchmarks, weights, mean points or size changed (every score of the group-year moves
    with them: the view ``evaluations`` computes scores from both); and ``evaluation_classes``
    (a pseudo-table, as linkage's ``parcel_links``): the rows whose class changed, appeared or
    went away, for readers of the class alone (the three lands' class D, the tiles' A/B/C/D;
    see ``class_changes``). ``ALL`` for each only when ``changes`` is None.
    docs/EVALUATION.md "How a change propagates" spells the scope out."""
    rules = ctx.rules.evaluation
    full = changes is None or any(
        changes.everything(t)
        for t in ("enterprise_land", "per_mu", "outputs", "enterprises", "links", "supplies",
                  "projects", "parcel_links")
    )  # fmt: skip
    if not full:
        pairs = set()
        for k in set(changes.get("enterprise_land", ())) | set(changes.get("outputs", ())):
            u, _, y = k.rpartition(":")
            if y.isdigit():
                pairs.add((u, int(y)))
        for k in changes.get("per_mu", ()):
            level, _, rest = k.partition(":")
            u, _, y = rest.rpartition(":")
            if level == "enterprise" and y.isdigit():
                pairs.add((u, int(y)))
        whole = set(changes.get("enterprises", ())) | set(changes.get("links", ()))
        whole |= _supply_enterprises(conn, changes)
        run_sql(
            conn,
            """
            DROP TABLE IF EXISTS _evrows;
            CREATE TEMP TABLE _evrows ON COMMIT DROP AS
            SELECT unnest(CAST(:us AS text[])) AS uscc, unnest(CAST(:ys AS int[])) AS year
            UNION SELECT uscc, year FROM outputs WHERE uscc = ANY(CAST(:whole AS text[]))
            UNION SELECT uscc, year FROM evaluation_rows
                  WHERE uscc = ANY(CAST(:whole AS text[]))
            -- an output year added or removed moves the enterprise's first year: all of them
            UNION SELECT o.uscc, o.year FROM outputs o
            WHERE o.uscc = ANY(CAST(:us AS text[])) AND (
                SELECT min(year) FROM outputs x WHERE x.uscc = o.uscc) IS DISTINCT FROM (
                SELECT min(year) FROM evaluation_rows x WHERE x.uscc = o.uscc);
            ANALYZE _evrows;
            """,
            {
                "us": [u for u, _ in sorted(pairs)],
                "ys": [y for _, y in sorted(pairs)],
                "whole": sorted(whole),
            },
        )
        data_from = conn.exec_driver_sql(
            "SELECT (SELECT min(year) FROM outputs) IS DISTINCT FROM "
            "(SELECT min(year) FROM evaluation_rows)"
        ).scalar()
        if data_from:
            full = True
        elif not conn.exec_driver_sql("SELECT EXISTS (SELECT 1 FROM _evrows)").scalar():
            return Changes()
    rows, changed, classes, groups, kept = evaluate(
        conn, ctx.run_id or 0, ctx.as_of, rules, scoped=not full, full=changes is None
    )
    conn.exec_driver_sql("DROP TABLE IF EXISTS _evrows")
    ctx.counts["evaluations"] = "all" if ALL in changed else len(changed)
    ctx.counts["evaluation_group_years"] = kept
    return Changes(
        evaluation_rows=rows,
        evaluation_ranking=changed,
        evaluation_groups=groups,
        evaluation_classes=classes,
    )


PRODUCERS = (
    Producer(
        name="evaluation",
        reads=(
            "enterprise_land", "per_mu", "outputs", "enterprises", "links", "supplies",
            "projects",
        ),
        writes=(
            "evaluation_rows", "evaluation_ranking", "evaluation_groups",
            "evaluation_score_bases", "evaluation_score_counts",
        ),
        run=run,
        doc="the A/B/C/D evaluation (亩均论英雄, §2) of every enterprise-year with output",
    ),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# ``landlink evaluate``: the graph from scratch and the evaluation's summary
# --------------------------------------------------------------------------------------------


def run_chain(
    conn: Connection,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
) -> dict:
    """Every derived table recomputed from scratch by the derivation graph (``graph.refresh``
    with no changes: links, land and per-mu figures, the evaluation, §7 indicators and what is
    made from them, so nothing downstream is left on older links or rules) inside ``conn``'s
    transaction, recorded as one ``analysis_runs`` row (kind ``full``).

    Returns the run record for the evaluation's summary: id, as_of, counts (links by kind and
    method, enterprise land by basis, per-mu rows by level, evaluations by year group, §7
    values, per-producer seconds), notes, seconds.
    """
    from gis.economy import linkage

    ctx = graph.refresh(conn, None, as_of, rules, trigger)
    # the linkage producer's counts; read here when the graph ran without it
    counts: dict = {"links": ctx.counts.get("links") or linkage.counts(conn)}
    counts["enterprise_land"] = dict(
        conn.exec_driver_sql(
            "SELECT basis, count(*) FROM enterprise_land GROUP BY 1 ORDER BY 1"
        ).all()
    )
    counts["per_mu"] = dict(
        conn.exec_driver_sql("SELECT level, count(*) FROM per_mu GROUP BY 1 ORDER BY 1").all()
    )
    counts["evaluations"] = counts_of(conn)
    counts["area_indicators"] = conn.exec_driver_sql(
        "SELECT count(*) FROM area_indicators"
    ).scalar()
    counts["timings_s"] = ctx.timings
    return {
        "id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "counts": counts,
        "notes": ctx.notes,
        "seconds": ctx.seconds,
    }


def run_all(
    engine: Engine,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
) -> dict:
    """``run_chain`` in a transaction of its own."""
    with engine.begin() as conn:
        return run_chain(conn, as_of, rules, trigger)


def summary_lines(run: dict) -> list[str]:
    """A one-screen summary of a run for the CLI."""
    c = run["counts"]
    lines = [f"evaluation run {run['id']} as of {run['as_of']} in {run['seconds']:.1f} s"]
    for kind, methods in c["links"].items():
        lines.append(f"  {kind:22} " + "  ".join(f"{m} {n}" for m, n in sorted(methods.items())))
    land = c.get("enterprise_land", {})
    lines.append(
        "  land basis (enterprise-years): " + "  ".join(f"{k} {v}" for k, v in land.items())
    )
    lines.append(
        f"  {'year group':12}{'rows':>7}{'eval':>7}{'graded':>7}{'A':>6}{'B':>6}{'C':>6}{'D':>6}"
    )
    for key, e in c["evaluations"].items():
        lines.append(
            f"  {key:12}{e['n']:>7}{e['evaluated']:>7}{e['graded']:>7}"
            f"{e['a']:>6}{e['b']:>6}{e['c']:>6}{e['d']:>6}"
        )
    lines.append(f"  §7 indicator values: {c['area_indicators']}")
    lines.append("  timings: " + "  ".join(f"{k} {v:.2f} s" for k, v in c["timings_s"].items()))
    for n in run["notes"]:
        lines.append(f"  note: {n}")
    return lines


def run_all_line(engine: Engine) -> str:
    """For ``landlink analyse-all``: run the chain for every year, one line of counts."""
    r = run_all(engine, trigger="analyse-all")
    ev = r["counts"]["evaluations"]
    graded = sum(v["graded"] for v in ev.values())
    d = sum(v["d"] for v in ev.values())
    return (
        f"run {r['id']}: {sum(v['n'] for v in ev.values())} enterprise-years, {graded} graded "
        f"({d} D), {r['counts']['area_indicators']} §7 values"
    )


def unlinked_summary(engine: Engine, limit: int = 12) -> list[str]:
    """The commonest reasons records are unlinked (numbers elided so reasons group)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT kind, regexp_replace(reason, '[0-9][0-9.]*', 'n', 'g') AS why, count(*)
                FROM links WHERE to_key IS NULL OR from_key IS NULL
                GROUP BY 1, 2 ORDER BY 3 DESC LIMIT :n
                """
            ),
            {"n": limit},
        ).all()
    return ["  unlinked (commonest reasons):"] + [
        f"    {n:>6}  {kind}: {why[:90]}" for kind, why, n in rows
    ]
