"""The A/B/C/D evaluation (亩均效益综合评价, "亩均论英雄", DOMAIN_RULES §2), as set-based SQL.

One row in ``evaluations`` per enterprise with output (CC) in a year:

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

import hashlib
import importlib
import json
import threading
import time
from contextlib import nullcontext
from datetime import date

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from gis.core import refresh
from gis.core.rules import EvaluationRules, Rules, get_rules
from gis.economy.linkage import bulk_reload, run_sql

RULE = "§2 亩均论英雄 Σ w·v/mean, rank quotas"  # docs/EVALUATION.md


def _q(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "") + "'" for v in values) + "]::text[]"


def _bench_sql(indicators: list[str]) -> str:
    """Benchmarks of a group and year: the mean of each indicator over the evaluated."""
    return ", ".join(
        f"avg({i}) FILTER (WHERE evaluated AND {i} IS NOT NULL) AS b_{i}" for i in indicators
    )


def _bench_json_sql(group: str, weights: dict[str, float]) -> str:
    """The benchmarks of each year of one group as JSON (one row per year)."""
    js = ", ".join(f"'{i}', round(b_{i}::numeric, 6)" for i in weights)
    return (
        f"SELECT year, '{group}' AS grp, jsonb_build_object({js}) AS bj "
        f"FROM _b0 WHERE grp = '{group}'"
    )


def _group_sql(
    group: str, weights: dict[str, float], mean_missing: list[str], all_inds: list[str]
) -> str:
    """Scores of one group: points (with the missing-figure rule) and score, as numbers; the
    columns are the same for every group (``f_<indicator>``: final points, NULL when the
    indicator is not the group's), so the groups' rows can share one table."""
    inds = list(weights)
    pts = ", ".join(
        f"CASE WHEN evaluated AND {i} IS NOT NULL THEN CASE WHEN b_{i} > 0 "
        f"THEN {float(w)} * {i} / b_{i} ELSE 0 END END AS p_{i}"
        for i, w in weights.items()
    )
    mean_pts = ", ".join(f"avg(p_{i}) FILTER (WHERE evaluated) AS m_{i}" for i in inds)
    bcols = ", ".join(f"b.b_{i}" for i in inds)

    def final(i: str) -> str:
        fallback = f"coalesce(m_{i}, 0)" if i in mean_missing else "0"
        return f"coalesce(p_{i}, {fallback})"

    score = " + ".join(final(i) for i in inds)
    fcols = ", ".join(
        (f"{final(i)} AS f_{i}" if i in weights else f"NULL::float8 AS f_{i}") for i in all_inds
    )
    return f"""
        (WITH b0 AS (SELECT * FROM _b0 WHERE grp = '{group}'),
              q AS (SELECT v.*, {bcols}, {pts}
                    FROM (SELECT * FROM _ev WHERE grp = '{group}') v JOIN b0 b USING (year)),
              m AS (SELECT year, {mean_pts} FROM q GROUP BY year)
        SELECT {", ".join(EV_COLS)}, {", ".join(all_inds)}, {fcols},
               CASE WHEN evaluated THEN {score} END AS score
        FROM q JOIN m USING (year))
    """


EV_COLS = (
    "year", "uscc", "name", "industry_code", "grp", "basis", "area_mu", "land_reason",
    "evaluated", "not_graded",
)  # fmt: skip


def _json_sql(groups: dict[str, dict[str, float]], mean_missing: list[str]) -> dict[str, str]:
    """The per-row JSON of the evaluations row (``v``: a row of _scored), by group."""

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
        "points": by_group(
            lambda inds: (
                "jsonb_build_object("
                + ", ".join(f"'{i}', round(v.f_{i}::numeric, 4)" for i in inds)
                + ")"
            )
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


def evaluate(
    conn: Connection, run_id: int, as_of: date, rules: EvaluationRules, year: int | None = None
) -> dict:
    """Rebuild ``evaluations`` for ``year`` (every year with output when None); returns counts.

    Reads temp tables made earlier in this transaction by ``linkage.link_all`` (``_ep_link``,
    ``_sp_link``) and ``per_mu.compute`` (``_fig``): call it through ``run_chain``.
    """
    c1, c2, c3 = rules.class_cutoffs
    p = {
        "run": run_id,
        "as_of": as_of,
        "rule": RULE,
        "year": year,
        "below_min": rules.below_min_mu,
        "new_years": rules.new_enterprise_years,
        "supply_years": rules.new_supply_years,
        "c1": c1,
        "c2": c2,
        "c3": c3,
    }
    ratio_cols = sorted(set(rules.above_weights) | set(rules.below_weights))
    ratios = ", ".join(f"o.{c}" for c in ratio_cols)
    mm = rules.mean_points_if_missing
    js = _json_sql({"above": rules.above_weights, "below": rules.below_weights}, mm)
    ymatch = "(CAST(:year AS int) IS NULL OR o.year = :year)"
    with bulk_reload(conn, "evaluations") if year is None else nullcontext():
        run_sql(
            conn,
            f"""
            {"SELECT 1" if year is None else "DELETE FROM evaluations WHERE year = :year"};
            CREATE TEMP TABLE _own_supply ON COMMIT DROP AS
            SELECT uscc, supply_no FROM (  -- linkage's enterprise -> parcel <- supply links
                SELECT ep.uscc, sp.supply_no
                FROM _ep_link ep JOIN _sp_link sp ON sp.parcel_no = ep.parcel_no
                UNION ALL
                SELECT grantee_uscc, supply_no FROM supplies WHERE grantee_uscc IS NOT NULL
            ) x GROUP BY 1, 2;
            ANALYZE _own_supply;
            CREATE TEMP TABLE _building ON COMMIT DROP AS
            SELECT v.year, v.uscc, string_agg(DISTINCT r, '; ') AS reason
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
              AND (CAST(:year AS int) IS NULL OR v.year = :year)
            GROUP BY v.year, v.uscc;
            ANALYZE _building;
            CREATE TEMP TABLE _ev ON COMMIT DROP AS
            SELECT o.year, o.uscc, e.name, e.industry_code,
                   CASE WHEN e.above_size THEN 'above' ELSE 'below' END AS grp,
                   o.basis, o.area_mu, o.reason AS land_reason,
                   o.basis <> 'none' AND (e.above_size OR o.area_mu >= :below_min) AS evaluated,
                   {ratios},
                   -- why an evaluated enterprise is not graded ('' = graded, NULL = not evaluated)
                   CASE WHEN o.basis <> 'none' AND (e.above_size OR o.area_mu >= :below_min)
                   THEN concat_ws('; ',
                       CASE WHEN left(e.industry_code, 2) = ANY({_q(rules.utility_prefixes)})
                            THEN 'utility (GB/T 4754 division ' || left(e.industry_code, 2) || ')'
                       END,
                       CASE WHEN fy.first_year > d0.data_from
                             AND o.year - fy.first_year < :new_years
                            THEN 'founded under ' || :new_years || ' years ago (first output year '
                                 || fy.first_year || ')' END,
                       bl.reason) END AS not_graded
            FROM _fig o  -- gis/economy/per_mu.py: land, CC figures and ratios of each
                         -- enterprise-year
            JOIN enterprises e ON e.uscc = o.uscc
            JOIN (SELECT uscc, min(year) AS first_year FROM outputs GROUP BY uscc) fy
                 ON fy.uscc = o.uscc
            CROSS JOIN (SELECT min(year) AS data_from FROM outputs) d0
            LEFT JOIN _building bl ON bl.year = o.year AND bl.uscc = o.uscc
            WHERE {ymatch};
            ANALYZE _ev;
            -- the benchmarks (means) of every year and group, in one pass over _ev
            CREATE TEMP TABLE _b0 ON COMMIT DROP AS
            SELECT year, grp, {_bench_sql(ratio_cols)} FROM _ev GROUP BY year, grp;
            CREATE TEMP TABLE _bench ON COMMIT DROP AS
            {_bench_json_sql("above", rules.above_weights)}
            UNION ALL
            {_bench_json_sql("below", rules.below_weights)};
            CREATE TEMP TABLE _scored ON COMMIT DROP AS
            {_group_sql("above", rules.above_weights, mm, ratio_cols)}
            UNION ALL
            {_group_sql("below", rules.below_weights, mm, ratio_cols)};
            ANALYZE _scored;
            CREATE TEMP TABLE _ranked ON COMMIT DROP AS
            -- scores rounded to 1e-6 as float8: the same order and ties as the numeric
            -- (distinct below 9e9), and far cheaper to sort
            SELECT year, uscc, rank() OVER w AS rnk, count(*) OVER p AS n
            FROM _scored WHERE not_graded = ''
            WINDOW p AS (PARTITION BY year, grp = 'above'),  -- the groups, sorted as booleans
                   w AS (p ORDER BY round(score::numeric, 6)::float8 DESC);
            ANALYZE _ranked;
            ANALYZE _bench;
            INSERT INTO evaluations (year, uscc, name, industry_code, "group", evaluated, graded,
                area_mu, land_basis, score, class, rank, group_size, indicators, benchmarks, points,
                missing, not_evaluated_reason, not_graded_reason, district_code, platform_code,
                corridor_code, rule, run_id, as_of)
            SELECT v.year, v.uscc, v.name, v.industry_code, v.grp, v.evaluated,
                   r.rnk IS NOT NULL, v.area_mu, v.basis, v.score,
                   CASE WHEN r.rnk <= :c1 * r.n + 1e-9 THEN 'A'
                        WHEN r.rnk <= :c2 * r.n + 1e-9 THEN 'B'
                        WHEN r.n - r.rnk + 1 > (1 - :c3) * r.n + 1e-9 THEN 'C'
                        WHEN r.rnk IS NOT NULL THEN 'D' END,
                   r.rnk, r.n, {js["indicators"]},
                   CASE WHEN v.evaluated THEN bj.bj ELSE '{{}}' END,
                   CASE WHEN v.evaluated THEN {js["points"]} ELSE '{{}}' END,
                   CASE WHEN v.evaluated THEN {js["missing"]} ELSE '[]' END,
                   CASE WHEN NOT v.evaluated THEN
                       CASE WHEN v.basis = 'none' THEN v.land_reason
                            ELSE '规下 on ' || round(v.area_mu::numeric, 2) || ' 亩, under the '
                                 || :below_min || ' 亩 threshold' END END,
                   nullif(v.not_graded, ''),
                   ez.district, ez.platform, ez.corridor,
                   :rule, :run, :as_of
            FROM _scored v
            LEFT JOIN _bench bj ON bj.year = v.year AND bj.grp = v.grp
            LEFT JOIN _ranked r ON r.year = v.year AND r.uscc = v.uscc
            LEFT JOIN _ez ez ON ez.uscc = v.uscc;
            DROP TABLE _ev, _own_supply, _building, _b0, _bench, _scored, _ranked
            """,
            p,
        )
    rows = conn.exec_driver_sql(
        """
        SELECT year, "group", count(*) AS n, count(*) FILTER (WHERE evaluated) AS evaluated,
               count(*) FILTER (WHERE graded) AS graded,
               count(*) FILTER (WHERE class = 'A') AS a, count(*) FILTER (WHERE class = 'B') AS b,
               count(*) FILTER (WHERE class = 'C') AS c, count(*) FILTER (WHERE class = 'D') AS d
        FROM evaluations GROUP BY 1, 2 ORDER BY 1, 2
        """
    ).all()
    return {f"{r.year} {r.group}": dict(r._mapping) for r in rows}


# --------------------------------------------------------------------------------------------
# The whole chain: link -> land and per-mu -> evaluation -> §7 indicators, as one recorded run
# --------------------------------------------------------------------------------------------

REFRESH_LAYERS = ("XZQ", "PT", "ZL", "GD", "DK", "QY", "CC", "XM", "TJ")


def config_of(rules: Rules) -> dict:
    return {
        k: getattr(rules, k).model_dump()
        for k in ("linkage", "evaluation", "backward_capacity", "indicators")
    }


TEMP_BUFFERS = "256MB"


def _temp_buffers(conn: Connection) -> None:
    """Give the chain's temp tables (200,000-row copies on a 10× city) room in local buffers.

    With the default 8 MB, every temp table larger than that goes through the kernel's files.
    PostgreSQL allows the change only before the session's first temp table; after one (an
    import's staging table, an earlier run on a pooled connection) the setting stays as it
    is, which only costs time.
    """
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(f"SET LOCAL temp_buffers = '{TEMP_BUFFERS}'")
    except DBAPIError:
        pass


def run_chain(
    conn: Connection,
    year: int | None = None,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
) -> dict:
    """Link, land and per-mu figures, evaluation and §7 indicators inside ``conn``'s transaction.

    Returns the run record: id, as_of, counts per step, notes, seconds (and per-step timings).
    """
    from gis.economy import indicators, linkage, per_mu

    # the §7 step needs pandas: import it on the idle client core while the database works
    threading.Thread(target=importlib.import_module, args=("pandas",), daemon=True).start()
    rules = rules or get_rules()
    as_of = as_of or date.today()
    t0 = time.perf_counter()
    _temp_buffers(conn)
    conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
    # the many ANALYZEs of fresh (temp) tables need rough row counts, not fine histograms
    conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
    # JIT compiling each of the chain's ~60 statements costs more than it saves
    conn.exec_driver_sql("SET LOCAL jit = off")
    cfg = config_of(rules)
    blob = json.dumps(cfg, sort_keys=True, ensure_ascii=False)
    run_id = conn.execute(
        text(
            "INSERT INTO analysis_runs (kind, as_of, config_hash, config, trigger) "
            "VALUES ('evaluate', :as_of, :h, CAST(:cfg AS jsonb), :trigger) RETURNING id"
        ),
        {
            "as_of": as_of,
            "h": hashlib.sha256(blob.encode()).hexdigest()[:16],
            "cfg": blob,
            "trigger": trigger,
        },
    ).scalar_one()
    counts: dict = {}
    timings: dict = {}
    t = time.perf_counter()
    counts["links"] = linkage.link_all(conn, run_id, as_of, rules.linkage)
    timings["link"] = time.perf_counter() - t
    t = time.perf_counter()
    indicators.prepare_flags(conn, rules.indicators)
    counts.update(per_mu.compute(conn, run_id, as_of))
    timings["per_mu"] = time.perf_counter() - t
    t = time.perf_counter()
    counts["evaluations"] = evaluate(conn, run_id, as_of, rules.evaluation, year)
    timings["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    ind = indicators.compute(conn, run_id, as_of, rules.indicators)
    timings["indicators"] = time.perf_counter() - t
    per_mu.drop_temp(conn)
    counts["area_indicators"] = ind["rows"]
    seconds = time.perf_counter() - t0
    counts["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    conn.execute(
        text(
            "UPDATE analysis_runs SET counts = CAST(:c AS jsonb), notes = CAST(:n AS jsonb), "
            "finished_at = now(), seconds = :s WHERE id = :id"
        ),
        {
            "c": json.dumps(counts, default=str),
            "n": json.dumps(ind["notes"], ensure_ascii=False),
            "s": seconds,
            "id": run_id,
        },
    )
    return {
        "id": run_id,
        "as_of": as_of.isoformat(),
        "counts": counts,
        "notes": ind["notes"],
        "seconds": seconds,
    }


def run_all(
    engine: Engine,
    year: int | None = None,
    as_of: date | None = None,
    rules: Rules | None = None,
    trigger: str = "cli",
) -> dict:
    """link + per-mu + evaluate + indicators for every year (or ``year``), in one transaction."""
    with engine.begin() as conn:
        return run_chain(conn, year, as_of, rules, trigger)


def _refresh(conn: Connection, layer_code: str, batch_id: int) -> str:
    """Import hook: recompute what derives from the changed layer before the import returns."""
    r = run_chain(conn, trigger=f"import:{layer_code}:{batch_id}")
    c = r["counts"]
    n = sum(v["n"] for v in c["evaluations"].values())
    return (
        f"linkage/evaluation run {r['id']}: links rebuilt, {n} evaluations, "
        f"{c['area_indicators']} indicator values ({r['seconds']:.1f} s)"
    )


def _bd_refresh(conn: Connection, layer_code: str, batch_id: int) -> str:
    return "不达标 flags and backward-capacity lists read BD live: nothing to recompute"


refresh.register(REFRESH_LAYERS, _refresh)
refresh.register(("BD",), _bd_refresh)


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
