"""低效利用 (low-efficiency use), DOMAIN_RULES §3: every reason that applies to a parcel.

Reasons, each with its figure and threshold:

- ``plot_ratio``: a parcel in use whose plot ratio JZMJ ÷ area is below its supply contract's RJLXX,
  or below ``plot_ratio_floor`` (1.0, Taizhou 2025) where there is none. Not while the parcel is
  still being built (its supply's HTJGSJ after ``as_of`` and no SJJGSJ), nor without JZMJ.
- ``tax_per_mu``: a parcel in use whose 亩均税收 (万元/亩) is below the floor of its platform
  (``tax_per_mu_by_platform``, else ``tax_per_mu_min`` = 5). The parcel's tax is the SJSJ of the
  enterprises on it, each enterprise's tax spread over its parcels in proportion to its land there
  (its share of a parcel: declared YDMJ among the parcel's enterprises, else equal; §Units). Year:
  the latest ND <= year(as_of) - ``tax_year_lag`` with outputs. The figure is the parcel's row
  in ``per_mu`` (gis/economy/per_mu.py, the one 亩均税收 of a parcel: the same §Units split);
  no row (no enterprise, no output): no figure, no reason.
- ``class_d``: an enterprise linked to the parcel is class D in the A/B/C/D evaluation of that
  year (``evaluations``, when it holds graded rows for the year; otherwise the run notes
  that this reason was not checked).
- ``diverted``: SJYT is 挪作他用. ``idle_use``: SJYT is 闲置.

"In use" means any SJYT but 闲置 (工业, 创新型产业, 挪作他用, or not given): land put to another use
is still used, and its plot ratio and tax are judged too, each reason listed on its own. Links
are the one §1 linkage in ``links`` (gis/economy/linkage.py): ``supply_parcel`` (DZJGH, else
largest overlap), ``enterprise_parcel`` (DKBH, else containing point, else nearest within 50 m)
and ``parcel_platform`` (the platform holding the parcel's largest share, for its floor).
Areas in m² (EPSG:4549); 亩 = m² × 0.0015.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from gis.core.db import table_columns
from gis.core.layers import M2_PER_MU
from gis.core.rules import LowEfficiencyRules

IN_USE = "(p.actual_use IS DISTINCT FROM '闲置')"


def tax_year(conn: Connection, as_of: date, rules: LowEfficiencyRules) -> int | None:
    """The output year whose taxes are used: the latest ND <= year(as_of) - lag, or None."""
    return conn.execute(
        text("SELECT max(year) FROM outputs WHERE year <= :y"),
        {"y": as_of.year - rules.tax_year_lag},
    ).scalar_one()


def class_d_source(conn: Connection, year: int | None) -> tuple[str | None, str]:
    """SQL selecting (uscc, year) of class-D enterprises from the evaluation's stored rows
    (``evaluation_ranking``: the class is stored there, the view ``evaluations`` adds scores), or
    None; and a note saying where class D came from or why it was not checked.

    Class D is checked when the year holds a graded row (a class). The note's figures are read
    from ``evaluation_groups`` (one row per year and group, written with the ranking): the
    number graded (``n_graded``, the rows with a class) and the analysis run that last ranked
    the year (its latest ``run_id``); both are a few rows by the primary key, where counting
    the year's rows meant reading some 70,000 of them on every refresh. Rows without their
    group rows (rows written by hand) are counted instead."""
    cols = set(table_columns(conn, "evaluation_ranking"))
    if not ({"uscc", "year", "class"} <= cols):
        return None, "class_d not checked: the A/B/C/D evaluation is not installed"
    if year is None:
        return None, "class_d not checked: no output year to evaluate"
    n, src = conn.execute(
        text("SELECT sum(n_graded), max(run_id) FROM evaluation_groups WHERE year = :y"),
        {"y": year},
    ).one()
    if not n:
        n, src = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE s.class IS NOT NULL), max(r.run_id) "
                "FROM evaluation_ranking s LEFT JOIN evaluation_rows r USING (year, uscc) "
                "WHERE s.year = :y"
            ),
            {"y": year},
        ).one()
    if not n:
        return None, f"class_d not checked: no graded evaluation for {year} (run the evaluation)"
    return (
        "SELECT uscc, year FROM evaluation_ranking WHERE \"class\" = 'D'",
        f"class_d from evaluations {year} ({n} graded enterprises, analysis run {src})",
    )


def notes_for(
    conn: Connection, as_of: date, rules: LowEfficiencyRules
) -> tuple[int | None, list[str]]:
    """The tax year as of ``as_of`` and a note for each reason that cannot be checked (and why)."""
    year = tax_year(conn, as_of, rules)
    notes = []
    if year is None:
        last = as_of.year - rules.tax_year_lag
        notes.append(f"tax_per_mu not checked: no enterprise output (CC) for {last} or earlier")
    notes.append(class_d_source(conn, year)[1])
    if year is not None:
        notes.append(f"tax_per_mu from per_mu's parcel rows, {year}")
    return year, notes


def detect(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: LowEfficiencyRules,
    keys: list[str] | None = None,
    *,
    into: str,
) -> None:
    """Write the ``low_efficiency_results`` rows of ``run_id`` for the parcels ``keys`` (DKBH;
    None: every parcel), with the reasons that apply as of ``as_of``, into the table ``into``
    (of that table's columns; the caller has removed the rows they replace). Zone codes are left
    NULL (the caller sets them from the zone shares)."""
    year = tax_year(conn, as_of, rules)
    class_d, _ = class_d_source(conn, year)
    params = {
        "run": run_id,
        "as_of": as_of,
        "year": year,
        "floor": rules.plot_ratio_floor,
        "tax_min": rules.tax_per_mu_min,
        "mu": 1 / M2_PER_MU,
        "skip_build": rules.skip_under_construction,
        "keys": keys,
    }
    platform_floor = "CAST(:tax_min AS double precision)"
    if rules.tax_per_mu_by_platform:
        cases = " ".join(
            f"WHEN '{code.replace(chr(39), '')}' THEN {float(v)}"
            for code, v in rules.tax_per_mu_by_platform.items()
        )
        platform_floor = (
            f"coalesce((SELECT CASE z.to_key {cases} END FROM links z "
            "WHERE z.kind = 'parcel_platform' AND z.is_primary AND z.from_key = p.parcel_no), "
            "CAST(:tax_min AS double precision))"
        )
    class_d_sql = (
        f"""(SELECT array_agg(DISTINCT ep.from_key ORDER BY ep.from_key) FROM links ep
             JOIN ({class_d}) d ON d.uscc = ep.from_key AND d.year = :year
             WHERE ep.kind = 'enterprise_parcel' AND ep.to_key = p.parcel_no)"""
        if class_d and year is not None
        else "CAST(NULL AS text[])"
    )
    conn.execute(
        text(
            f"""
            INSERT INTO {into} (
                run_id, parcel_id, parcel_no, area_m2, area_mu, actual_use, supply_no, reasons,
                reason_codes, as_of)
            SELECT :run, id, parcel_no, area_m2, area_m2 * :mu, actual_use, supply_no,
                   to_jsonb(reasons), ARRAY(SELECT r ->> 'code' FROM unnest(reasons) r), :as_of
            FROM (
                SELECT p.id, p.parcel_no, p.area_m2, p.actual_use, s.supply_no,
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
                        CASE WHEN {IN_USE} AND t.tax_per_mu IS NOT NULL
                              AND t.tax_per_mu < {platform_floor}
                        THEN jsonb_build_object(
                            'code', 'tax_per_mu',
                            'figure', round(t.tax_per_mu::numeric, 3),
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
                LEFT JOIN links ps ON ps.kind = 'supply_parcel' AND ps.to_key = p.parcel_no
                     AND ps.from_key IS NOT NULL
                LEFT JOIN supplies s ON s.supply_no = ps.from_key
                LEFT JOIN per_mu t ON t.level = 'parcel' AND t.code = p.parcel_no
                     AND t.year = :year
                LEFT JOIN LATERAL (SELECT {class_d_sql} AS d) cd ON true
                {"" if keys is None else "WHERE p.parcel_no = ANY(CAST(:keys AS text[]))"}
            ) x
            WHERE cardinality(reasons) > 0
            """
        ),
        params,
    )
