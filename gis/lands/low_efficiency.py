"""低效利用 (low-efficiency use), DOMAIN_RULES §3: every reason that applies to a parcel.

Reasons, each with its figure and threshold:

- ``plot_ratio``: a parcel in use whose plot ratio JZMJ ÷ area is below its supply contract's RJLXX,
  or below ``plot_ratio_floor`` (1.0, Taizhou 2025) where there is none. Not while the parcel is
  still being built (its supply's HTJGSJ after ``as_of`` and no SJJGSJ), nor without JZMJ.
- ``tax_per_mu``: a parcel in use whose 亩均税收 (万元/亩) is below the floor of its platform
  (``tax_per_mu_by_platform``, else ``tax_per_mu_min`` = 5). The parcel's tax is the SJSJ of the
  enterprises on it, each enterprise's tax spread over its parcels in proportion to its land there
  (its share of a parcel: declared YDMJ among the parcel's enterprises, else equal; §Units). Year:
  the latest ND <= year(as_of) - ``tax_year_lag`` with outputs. No enterprise or no output: no
  figure, no reason. When ``per_mu`` holds parcel figures for that year they are used
  instead (the run's notes say which source was used).
- ``class_d``: an enterprise on the parcel is class D in the A/B/C/D evaluation of that year
  (``evaluations``, when it holds graded rows for the year; otherwise the run notes
  that this reason was not checked).
- ``diverted``: SJYT is 挪作他用. ``idle_use``: SJYT is 闲置.

"In use" means any SJYT but 闲置 (工业, 创新型产业, 挪作他用, or not given): land put to another use
is still used, and its plot ratio and tax are judged too, each reason listed on its own. Links
come from temp tables that gis/lands/detection.py builds: ``_parcel_supply`` (DZJGH, else largest
overlap) and ``_enterprise_parcel`` (DKBH, else containing point, else nearest within 50 m).
Areas in m² (EPSG:4549); 亩 = m² × 0.0015.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from gis.core.layers import M2_PER_MU
from gis.core.rules import LowEfficiencyRules

IN_USE = "(p.actual_use IS DISTINCT FROM '闲置')"


def tax_year(conn: Connection, as_of: date, rules: LowEfficiencyRules) -> int | None:
    """The output year whose taxes are used: the latest ND <= year(as_of) - lag, or None."""
    return conn.execute(
        text("SELECT max(year) FROM outputs WHERE year <= :y"),
        {"y": as_of.year - rules.tax_year_lag},
    ).scalar_one()


def _columns(conn: Connection, table: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :t"
            ),
            {"t": table},
        )
    }


def class_d_source(conn: Connection, year: int | None) -> tuple[str | None, str]:
    """SQL selecting (uscc, year) of class-D enterprises from ``evaluations`` table,
    or None; and a note saying where class D came from or why it was not checked."""
    cols = _columns(conn, "evaluations")
    if not ({"uscc", "year", "class"} <= cols):
        return None, "class_d not checked: the A/B/C/D evaluation is not installed"
    if year is None:
        return None, "class_d not checked: no output year to evaluate"
    n = conn.execute(
        text("SELECT count(*) FROM evaluations WHERE year = :y AND class IS NOT NULL"), {"y": year}
    ).scalar_one()
    if not n:
        return None, f"class_d not checked: no graded evaluation for {year} (run the evaluation)"
    src = conn.execute(
        text("SELECT max(run_id) FROM evaluations WHERE year = :y"), {"y": year}
    ).scalar_one()
    return (
        "SELECT uscc, year FROM evaluations WHERE \"class\" = 'D'",
        f"class_d from evaluations {year} ({n} graded enterprises, analysis run {src})",
    )


def per_mu_source(conn: Connection, year: int | None) -> bool:
    """Whether ``per_mu`` table holds parcel 亩均税收 for ``year``."""
    if year is None or not ({"level", "code", "year", "tax_per_mu"} <= _columns(conn, "per_mu")):
        return False
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM per_mu WHERE level = 'parcel' AND year = :y "
                "AND tax_per_mu IS NOT NULL)"
            ),
            {"y": year},
        ).scalar_one()
    )


def detect(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: LowEfficiencyRules,
    notes: list[str],
) -> dict:
    """Write ``low_efficiency_results`` rows for ``run_id``; returns counts per reason.

    ``notes`` receives a line for each reason that could not be checked (and why).
    """
    year = tax_year(conn, as_of, rules)
    if year is None:
        last = as_of.year - rules.tax_year_lag
        notes.append(f"tax_per_mu not checked: no enterprise output (CC) for {last} or earlier")
    class_d, note = class_d_source(conn, year)
    notes.append(note)
    use_per_mu = per_mu_source(conn, year)
    params = {
        "run": run_id,
        "as_of": as_of,
        "year": year,
        "floor": rules.plot_ratio_floor,
        "tax_min": rules.tax_per_mu_min,
        "mu": 1 / M2_PER_MU,
        "skip_build": rules.skip_under_construction,
    }
    # 亩均税收 per parcel (万元/亩), from the enterprises linked to it.
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _parcel_tax (parcel_id bigint PRIMARY KEY, tax double precision,
                                           n_enterprises int) ON COMMIT DROP
            """
        )
    )
    if use_per_mu:
        src = conn.execute(
            text("SELECT max(run_id) FROM per_mu WHERE level = 'parcel' AND year = :y"),
            {"y": year},
        ).scalar_one()
        notes.append(f"tax_per_mu from per_mu (analysis run {src}), parcels, {year}")
        conn.execute(
            text(
                """
                INSERT INTO _parcel_tax
                SELECT p.id, m.tax_per_mu * p.area_m2 * :mu, m.n_enterprises
                FROM per_mu m JOIN parcels p ON p.parcel_no = m.code
                WHERE m.level = 'parcel' AND m.year = :year AND m.tax_per_mu IS NOT NULL
                """
            ),
            params,
        )
    elif year is not None:
        notes.append(f"tax_per_mu computed here from CC {year} (per_mu not available)")
        conn.execute(
            text(
                """
                INSERT INTO _parcel_tax
                WITH w AS (  -- each enterprise's weight on each of its parcels
                    SELECT ep.uscc, ep.parcel_id, p.area_m2, o.tax_paid,
                        CASE WHEN count(*) FILTER (WHERE o.declared_land_m2 > 0)
                                  OVER (PARTITION BY ep.parcel_id) = count(*)
                                  OVER (PARTITION BY ep.parcel_id)
                             THEN o.declared_land_m2 / sum(o.declared_land_m2)
                                  OVER (PARTITION BY ep.parcel_id)
                             ELSE 1.0 / count(*) OVER (PARTITION BY ep.parcel_id) END AS share
                    FROM _enterprise_parcel ep
                    JOIN parcels p ON p.id = ep.parcel_id
                    LEFT JOIN outputs o ON o.uscc = ep.uscc AND o.year = :year
                ), land AS (
                    SELECT w.*, area_m2 * share AS land_m2,
                           sum(area_m2 * share) OVER (PARTITION BY uscc) AS total_land_m2
                    FROM w
                )
                SELECT parcel_id,
                       sum(tax_paid * land_m2 / nullif(total_land_m2, 0)),
                       count(*)
                FROM land
                GROUP BY parcel_id
                HAVING count(tax_paid) > 0
                """
            ),
            params,
        )
    platform_floor = "CAST(:tax_min AS double precision)"
    if rules.tax_per_mu_by_platform:
        cases = " ".join(
            f"WHEN '{code.replace(chr(39), '')}' THEN {float(v)}"
            for code, v in rules.tax_per_mu_by_platform.items()
        )
        platform_floor = (
            f"coalesce((SELECT CASE z.code {cases} END FROM _parcel_platform z "
            "WHERE z.parcel_id = p.id), CAST(:tax_min AS double precision))"
        )
    class_d_sql = (
        f"""(SELECT array_agg(DISTINCT ep.uscc ORDER BY ep.uscc) FROM _enterprise_parcel ep
             JOIN ({class_d}) d ON d.uscc = ep.uscc AND d.year = :year
             WHERE ep.parcel_id = p.id)"""
        if class_d and year is not None
        else "CAST(NULL AS text[])"
    )
    conn.execute(
        text(
            f"""
            INSERT INTO low_efficiency_results (
                run_id, parcel_id, parcel_no, area_m2, area_mu, actual_use, supply_no, reasons,
                reason_codes, district_code, platform_code, corridor_code)
            SELECT :run, id, parcel_no, area_m2, area_m2 * :mu, actual_use, supply_no,
                   to_jsonb(reasons), ARRAY(SELECT r ->> 'code' FROM unnest(reasons) r),
                   district_code, platform_code, corridor_code
            FROM (
                SELECT p.id, p.parcel_no, p.area_m2, p.actual_use, s.supply_no,
                    zc.district_code, zc.platform_code, zc.corridor_code,
                    array_remove(ARRAY[
                        CASE WHEN {IN_USE} AND p.floor_area_m2 IS NOT NULL
                              AND NOT (:skip_build AND coalesce(
                                  s.agreed_completion > :as_of
                                  AND NOT coalesce(s.actual_completion <= :as_of, false),
                                  false))
                              AND p.floor_area_m2 / p.area_m2
                                  < coalesce(s.plot_ratio_min, :floor)
                        THEN jsonb_build_object(
                            'code', 'plot_ratio',
                            'figure', round((p.floor_area_m2 / p.area_m2)::numeric, 3),
                            'threshold', coalesce(s.plot_ratio_min, :floor),
                            'unit', 'JZMJ/m2',
                            'basis', CASE WHEN s.plot_ratio_min IS NOT NULL
                                THEN 'RJLXX of ' || s.supply_no
                                ELSE 'default floor (Taizhou 2025)' END) END,
                        CASE WHEN {IN_USE} AND t.tax IS NOT NULL
                              AND t.tax / (p.area_m2 * :mu) < {platform_floor}
                        THEN jsonb_build_object(
                            'code', 'tax_per_mu',
                            'figure', round((t.tax / (p.area_m2 * :mu))::numeric, 3),
                            'threshold', {platform_floor},
                            'unit', '万元/亩',
                            'basis', 'SJSJ ' || :year || ', ' || t.n_enterprises
                                || ' enterprise(s)') END,
                        CASE WHEN cd.d IS NOT NULL AND cardinality(cd.d) > 0
                        THEN jsonb_build_object(
                            'code', 'class_d', 'figure', 'D', 'threshold', 'A/B/C',
                            'unit', 'class', 'basis', 'evaluation ' || :year || ': '
                                || array_to_string(cd.d, ', ')) END,
                        CASE WHEN p.actual_use = '挪作他用'
                        THEN jsonb_build_object(
                            'code', 'diverted', 'figure', p.actual_use,
                            'threshold', '工业/创新型产业', 'unit', 'SJYT',
                            'basis', 'SJYT of the survey') END,
                        CASE WHEN p.actual_use = '闲置'
                        THEN jsonb_build_object(
                            'code', 'idle_use', 'figure', p.actual_use,
                            'threshold', '工业/创新型产业', 'unit', 'SJYT',
                            'basis', 'SJYT of the survey') END
                    ], NULL) AS reasons
                FROM parcels p
                LEFT JOIN _parcel_supply ps ON ps.parcel_id = p.id
                LEFT JOIN supplies s ON s.id = ps.supply_id
                LEFT JOIN _parcel_tax t ON t.parcel_id = p.id
                LEFT JOIN _zcodes zc ON zc.kind = 'low_efficiency' AND zc.item_id = p.id
                LEFT JOIN LATERAL (SELECT {class_d_sql} AS d) cd ON true
            ) x
            WHERE cardinality(reasons) > 0
            """
        ),
        params,
    )
    rows = conn.execute(
        text(
            "SELECT code, count(*) FROM low_efficiency_results, unnest(reason_codes) code "
            "WHERE run_id = :run GROUP BY code"
        ),
        params,
    ).all()
    counts = {c: 0 for c in ("plot_ratio", "tax_per_mu", "class_d", "diverted", "idle_use")}
    counts.update({c: n for c, n in rows})
    counts["parcels"] = conn.execute(
        text("SELECT count(*) FROM low_efficiency_results WHERE run_id = :run"), params
    ).scalar_one()
    counts["tax_year"] = year
    conn.execute(text("DROP TABLE _parcel_tax"))
    return counts
