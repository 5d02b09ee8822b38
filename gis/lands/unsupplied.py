"""批而未供 (approved, not supplied), DOMAIN_RULES §3, computed set-based in PostGIS.

For each approval (PZ) approved on or before ``as_of``: its polygon minus the union of every supply
record (GD) supplied on or before ``as_of`` whose interior meets it (candidates found with ``&&`` on
the GiST index). The remainder is split into parts; a part is a sliver, and dropped, when its area
is under ``sliver_min_m2`` or it is thinner than ``sliver_min_width_m``: thinner means
``ST_Buffer(part, -width / 2)`` is empty, i.e. no disc of that diameter fits inside it. Parts with
area > width / 2 × perimeter always hold such a disc (area <= inradius × perimeter), so only the
others are buffered. All geometry in EPSG:4549; areas in m², 亩 = m² × 0.0015.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from gis.core.layers import M2_PER_MU
from gis.core.rules import UnsuppliedRules

MU_PER_M2 = 1 / M2_PER_MU


def age_band_sql(as_of_param: str, date_col: str, years: list[int]) -> str:
    """SQL CASE giving the band label ('<1', '1-2', ..., '>=5') by calendar years since a date."""
    ys = sorted(years)
    parts = [f"WHEN {as_of_param} < {date_col} + interval '{ys[0]} year' THEN '<{ys[0]}'"]
    for lo, hi in zip(ys, ys[1:], strict=False):
        parts.append(f"WHEN {as_of_param} < {date_col} + interval '{hi} year' THEN '{lo}-{hi}'")
    return "CASE " + " ".join(parts) + f" ELSE '>={ys[-1]}' END"


def years_sql(as_of: str, since: str) -> str:
    """SQL for calendar years from ``since`` to ``as_of``: whole years (as ``age()`` counts them)
    plus the elapsed share of the current year, truncated to 2 decimals, so that it agrees with
    the bands (364 days after 2020-03-15 is 0.99, the anniversary itself is 1.00)."""
    full = f"date_part('year', age({as_of}, {since}))::int"
    anniv = f"CAST({since} + make_interval(years => {full}) AS date)"
    nxt = f"CAST({since} + make_interval(years => {full} + 1) AS date)"
    frac = f"({as_of} - {anniv})::numeric / ({nxt} - {anniv})"
    return f"trunc({full} + {frac}, 2)"


def age_bands(years: list[int]) -> list[str]:
    ys = sorted(years)
    return [f"<{ys[0]}"] + [f"{a}-{b}" for a, b in zip(ys, ys[1:], strict=False)] + [f">={ys[-1]}"]


def detect(
    conn: Connection,
    run_id: int,
    as_of: date,
    rules: UnsuppliedRules,
    keys: list[str] | None = None,
    *,
    into: str,
) -> None:
    """Write the ``unsupplied_results`` rows of ``run_id`` for the approvals ``keys`` (PZWH;
    None: every approval), their status as of ``as_of``, into the table ``into`` (of that
    table's columns; the caller has removed the rows they replace). Zone codes are left NULL
    (the caller sets them from the zone shares)."""
    params = {
        "run": run_id,
        "as_of": as_of,
        "min_m2": rules.sliver_min_m2,
        "half": rules.sliver_min_width_m / 2,
        "mu": MU_PER_M2,
        "keys": keys,
    }
    # 1. remainder of each approval: approval minus the union of the supplies meeting its interior
    conn.execute(
        text(
            f"""
            CREATE TEMP TABLE _u_raw ON COMMIT DROP AS
            SELECT a.id, a.doc_no, a.batch_name, a.approved_on, a.area_m2 AS approved_m2,
                   coalesce(s.nos, '{{}}') AS supply_nos,
                   CASE WHEN s.sup IS NULL THEN a.geom
                        ELSE ST_CollectionExtract(ST_Difference(a.geom, s.sup), 3) END AS raw
            FROM approvals a
            LEFT JOIN LATERAL (
                SELECT ST_Union(g.geom ORDER BY g.supply_no) AS sup,
                       array_agg(g.supply_no ORDER BY g.supply_no) AS nos
                FROM supplies g
                WHERE g.geom && a.geom AND g.supplied_on <= :as_of
                  AND ST_Relate(g.geom, a.geom, 'T********')
            ) s ON true
            WHERE a.approved_on <= :as_of
              {"" if keys is None else "AND a.doc_no = ANY(CAST(:keys AS text[]))"}
            """
        ),
        params,
    )
    # 2. its parts, each kept or dropped as a sliver
    conn.execute(
        text(
            """
            CREATE TEMP TABLE _u_parts ON COMMIT DROP AS
            SELECT id, g, area,
                   area >= :min_m2 AND (
                       area > :half * ST_Perimeter(g)
                       OR NOT ST_IsEmpty(ST_Buffer(g, -:half))
                   ) AS keep
            FROM (
                SELECT id, d.geom AS g, ST_Area(d.geom) AS area
                FROM _u_raw, ST_Dump(raw) d
                WHERE NOT ST_IsEmpty(raw)
            ) p
            """
        ),
        params,
    )
    band = age_band_sql("CAST(:as_of AS date)", "r.approved_on", rules.age_band_years)
    conn.execute(
        text(
            f"""
            INSERT INTO {into} (
                run_id, approval_id, approval_no, batch_name, approved_on, approved_m2,
                supplied_m2, sliver_m2, unsupplied_m2, unsupplied_mu, unsupplied_share,
                years_since_approval, age_band, status, supply_nos, geom, as_of)
            SELECT :run, r.id, r.doc_no, r.batch_name, r.approved_on, r.approved_m2,
                   greatest(r.approved_m2 - coalesce(p.raw_m2, 0), 0),
                   coalesce(p.raw_m2, 0) - coalesce(p.kept_m2, 0),
                   coalesce(p.kept_m2, 0),
                   coalesce(p.kept_m2, 0) * :mu,
                   coalesce(p.kept_m2, 0) / nullif(r.approved_m2, 0),
                   {years_sql("CAST(:as_of AS date)", "r.approved_on")},
                   {band},
                   CASE WHEN coalesce(p.kept_m2, 0) = 0 THEN 'supplied'
                        WHEN cardinality(r.supply_nos) = 0 THEN 'unsupplied'
                        ELSE 'partial' END,
                   r.supply_nos,
                   p.geom, :as_of
            FROM _u_raw r
            LEFT JOIN (
                SELECT id, sum(area) AS raw_m2, sum(area) FILTER (WHERE keep) AS kept_m2,
                       ST_Multi(ST_Collect(g) FILTER (WHERE keep)) AS geom
                FROM _u_parts GROUP BY id
            ) p ON p.id = r.id
            """
        ),
        params,
    )
    conn.execute(text("DROP TABLE _u_raw, _u_parts"))
