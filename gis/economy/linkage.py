"""项目—用地—产出 linkage (DOMAIN_RULES §1), as set-based PostGIS SQL into the ``links`` table.

Links, each with how it was made (``key``, ``contains``, ``nearest``, ``overlap``):

- ``enterprise_parcel``: by DKBH where it names parcels; else the parcel containing the
  enterprise's point (points given in GCJ-02 were converted to WGS84 and then EPSG:4549 at
  import); else the nearest parcel within ``linkage.nearest_max_m`` (50 m), with its distance.
- ``supply_parcel``: per parcel, the supply record its DZJGH names; else the supply record with
  the largest overlap if it covers >= ``supply_min_overlap`` (50 %) of the parcel (``share``).
- ``project_supply`` / ``project_parcel``: by the project's DZJGH / DKBH; else by polygon overlap
  (largest, >= ``project_min_overlap`` of the project's area).
- ``parcel_district`` / ``parcel_platform`` / ``parcel_corridor``: every zone a parcel overlaps,
  with the share of its area there; ``is_primary`` marks the largest share (§1).
- ``enterprise_district`` / ``_platform`` / ``_corridor``: from its parcels (share of its parcel
  area lying in the zone, method ``overlap``), else from its point (``contains``).

A record that cannot be linked gets a row with ``to_key`` NULL and the reason (for supply
records no parcel lies in: ``from_key`` the supply, ``to_key`` NULL; for parcels no supply record
covers: ``from_key`` NULL, ``to_key`` the parcel). Geometry EPSG:4549, distances m, areas m².
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import Connection, text

from gis.core.rules import LinkageRules

ZONES = {"district": "districts", "platform": "platforms", "corridor": "corridors"}
ZONE_NAMES = {"district": "district", "platform": "platform", "corridor": "corridor"}

_COLS = "kind, from_key, to_key, method, distance_m, share, is_primary, reason, rule, run_id, as_of"


class bulk_reload:  # noqa: N801  (a context manager used like a function)
    """Drop a table's indexes and key constraints while it is refilled, rebuild them after.

    Building an index once over the new rows is several times cheaper than maintaining it row
    by row; the table is TRUNCATEd first, so the transaction holds it exclusively anyway.
    """

    def __init__(self, conn: Connection, table: str):
        self.conn, self.table = conn, table

    def __enter__(self) -> None:
        c, t = self.conn, self.table
        self.cons = c.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u')"
            ),
            {"t": t},
        ).all()
        names = [n for n, _ in self.cons]
        self.idx = c.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = :t AND NOT (indexname = ANY(:n))"
            ),
            {"t": t, "n": names},
        ).all()
        c.exec_driver_sql(f"TRUNCATE {t}")
        for n, _ in self.cons:
            c.exec_driver_sql(f'ALTER TABLE {t} DROP CONSTRAINT "{n}"')
        for n, _ in self.idx:
            c.exec_driver_sql(f'DROP INDEX "{n}"')

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return  # the transaction rolls back, indexes included
        c, t = self.conn, self.table
        for n, d in self.cons:
            c.exec_driver_sql(f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}')
        for _, d in self.idx:
            c.exec_driver_sql(d)
        c.exec_driver_sql(f"ANALYZE {t}")


def run_sql(conn: Connection, sql: str, params: dict) -> None:
    """Execute several ``;``-separated statements (psycopg binds one statement at a time)."""
    for stmt in re.split(r";\s*\n", sql):
        if stmt.strip():
            conn.execute(text(stmt), params)


def _ov(a: str, b: str, b_area: str) -> str:
    """Overlap area (m²) of polygon a with polygon b; b's own area when a covers b."""
    return (
        f"CASE WHEN ST_Covers({a}, {b}) THEN {b_area} ELSE ST_Area(ST_Intersection({a}, {b})) END"
    )


def link_all(conn: Connection, run_id: int, as_of: date, rules: LinkageRules) -> dict:
    """Rebuild every link of §1 in ``links``; returns counts per kind and method."""
    p = {
        "run": run_id,
        "as_of": as_of,
        "near": rules.nearest_max_m,
        "sov": rules.supply_min_overlap,
        "pov": rules.project_min_overlap,
    }
    # links is written without its indexes (built once at the end, several times cheaper than
    # maintained row by row); the steps read what they need of earlier steps from temp tables
    # (_ep_link: enterprise -> parcel with method and parcel area; _sp_link: supply -> parcel;
    # _pzone: parcel -> zone shares), kept for gis/economy/per_mu.py and gis/economy/evaluation.py
    # (dropped by per_mu.drop_temp, or at commit)
    conn.exec_driver_sql("DROP TABLE IF EXISTS _ep_link, _sp_link, _pzone")
    with bulk_reload(conn, "links"):
        _enterprise_parcel(conn, p)
        _supply_parcel(conn, p)
        _projects(conn, p)
        for level, table in ZONES.items():
            _parcel_zone(conn, p, level, table)
        conn.exec_driver_sql("ANALYZE _pzone")
        # enterprise -> zone by its parcels' area, every level in one pass
        run_sql(
            conn,
            """
            CREATE TEMP TABLE _ezo ON COMMIT DROP AS
            SELECT level, uscc, code, 'overlap' AS method,
                   round((m2 / total)::numeric, 6) AS share,
                   row_number() OVER (PARTITION BY level, uscc ORDER BY m2 DESC, code) = 1
                       AS is_primary
            FROM (
                WITH tot AS (SELECT uscc, sum(parcel_m2) AS total FROM _ep_link GROUP BY uscc)
                SELECT z.level, ep.uscc, z.code, sum(ep.parcel_m2 * z.share) AS m2,
                       min(tot.total) AS total
                FROM _ep_link ep JOIN tot USING (uscc)
                JOIN _pzone z ON z.parcel_no = ep.parcel_no
                GROUP BY z.level, ep.uscc, z.code
            ) s
            WHERE m2 > 0
            """,
            p,
        )
        for level, table in ZONES.items():
            _enterprise_zone(conn, p, level, table)
        conn.exec_driver_sql("DROP TABLE _ezo")
    rows = conn.execute(
        text(
            "SELECT kind, coalesce(method, 'unlinked') AS m, count(*) FROM links "
            "WHERE is_primary GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ).all()
    out: dict[str, dict[str, int]] = {}
    for kind, m, n in rows:
        out.setdefault(kind, {})[m] = n
    return out


def _enterprise_parcel(conn: Connection, p: dict) -> None:
    rule = f"§1 DKBH > contains > nearest <= {p['near']:g} m"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _keyed ON COMMIT DROP AS
            SELECT DISTINCT e.uscc, pa.parcel_no, pa.area_m2
            FROM enterprises e CROSS JOIN LATERAL unnest(e.parcel_nos) k(no)
            JOIN parcels pa ON pa.parcel_no = k.no;
            CREATE TEMP TABLE _contained ON COMMIT DROP AS
            SELECT DISTINCT ON (e.uscc) e.uscc, pa.parcel_no, pa.area_m2
            FROM enterprises e
            JOIN parcels pa ON pa.geom && e.geom AND ST_Contains(pa.geom, e.geom)
            WHERE NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
            ORDER BY e.uscc, pa.area_m2, pa.parcel_no;
            CREATE TEMP TABLE _nearest ON COMMIT DROP AS
            SELECT e.uscc, n.parcel_no, n.d, n.area_m2
            FROM enterprises e
            CROSS JOIN LATERAL (
                SELECT pa.parcel_no, ST_Distance(pa.geom, e.geom) AS d, pa.area_m2
                FROM parcels pa
                WHERE ST_DWithin(pa.geom, e.geom, :near)
                ORDER BY pa.geom <-> e.geom, pa.parcel_no LIMIT 1
            ) n
            WHERE e.geom IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _contained c WHERE c.uscc = e.uscc);
            INSERT INTO links ({_COLS})
            SELECT 'enterprise_parcel', uscc, parcel_no, 'key', NULL::float8, NULL::float8, true,
                   NULL::text, :rule, :run, :as_of FROM _keyed
            UNION ALL
            SELECT 'enterprise_parcel', uscc, parcel_no, 'contains', 0, NULL, true, NULL,
                   :rule, :run, :as_of FROM _contained
            UNION ALL
            SELECT 'enterprise_parcel', uscc, parcel_no, 'nearest', round(d::numeric, 2), NULL,
                   true, NULL, :rule, :run, :as_of FROM _nearest;
            INSERT INTO links ({_COLS})
            SELECT 'enterprise_parcel', e.uscc, NULL, NULL, NULL, NULL, true,
                   concat_ws('; ',
                       CASE WHEN cardinality(e.parcel_nos) > 0 THEN 'DKBH '
                            || array_to_string(e.parcel_nos, ';') || ' names no parcel' END,
                       CASE WHEN e.geom IS NULL
                            THEN 'no DKBH parcel and no coordinates (X, Y) to match'
                            ELSE 'its point lies in no parcel and no parcel is within '
                                 || :near || ' m'
                                 || coalesce(' (nearest ' || round(f.d) || ' m away)', '')
                       END),
                   :rule, :run, :as_of
            FROM enterprises e
            LEFT JOIN LATERAL (
                SELECT ST_Distance(pa.geom, e.geom) AS d FROM parcels pa
                WHERE e.geom IS NOT NULL ORDER BY pa.geom <-> e.geom LIMIT 1
            ) f ON true
            WHERE NOT EXISTS (SELECT 1 FROM _keyed k WHERE k.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _contained c WHERE c.uscc = e.uscc)
              AND NOT EXISTS (SELECT 1 FROM _nearest n WHERE n.uscc = e.uscc);
            CREATE TEMP TABLE _ep_link ON COMMIT DROP AS
            SELECT uscc, parcel_no, 'key' AS method, area_m2 AS parcel_m2 FROM _keyed UNION ALL
            SELECT uscc, parcel_no, 'contains', area_m2 FROM _contained UNION ALL
            SELECT uscc, parcel_no, 'nearest', area_m2 FROM _nearest;
            ANALYZE _ep_link;
            DROP TABLE _keyed, _contained, _nearest;
            """,
        {**p, "rule": rule},
    )


def _supply_parcel(conn: Connection, p: dict) -> None:
    rule = f"§1 DZJGH > overlap >= {p['sov']:.0%} of parcel"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _sp_link ON COMMIT DROP AS
            SELECT s.supply_no, pa.parcel_no, 'key' AS method, NULL::float8 AS share
            FROM parcels pa JOIN supplies s ON s.supply_no = pa.supply_no;
            CREATE TEMP TABLE _spo ON COMMIT DROP AS
            SELECT DISTINCT ON (pa.parcel_no) pa.parcel_no, s.supply_no,
                   ({_ov("s.geom", "pa.geom", "pa.area_m2")}) / pa.area_m2 AS share
            FROM parcels pa
            JOIN supplies s ON s.geom && pa.geom AND ST_Intersects(s.geom, pa.geom)
            WHERE NOT EXISTS (SELECT 1 FROM supplies x WHERE x.supply_no = pa.supply_no)
            ORDER BY pa.parcel_no, 3 DESC, s.supply_no;
            INSERT INTO _sp_link SELECT supply_no, parcel_no, 'overlap', share FROM _spo
            WHERE share >= :sov;
            INSERT INTO links ({_COLS})
            SELECT 'supply_parcel', supply_no, parcel_no, method, NULL, round(share::numeric, 4),
                   true, NULL, :rule, :run, :as_of FROM _sp_link;
            INSERT INTO links ({_COLS})
            SELECT 'supply_parcel', NULL, pa.parcel_no, NULL, NULL, NULL, true,
                   CASE WHEN pa.supply_no IS NOT NULL
                        THEN 'DZJGH ' || pa.supply_no || ' is not in the supply records (GD)'
                        ELSE 'no DZJGH, and no supply record covers '
                             || round(:sov * 100) || ' % of it'
                             || coalesce(' (largest overlap ' || o.supply_no || ': '
                                || round(o.share::numeric * 100, 1) || ' %)', '')
                   END,
                   :rule, :run, :as_of
            FROM parcels pa LEFT JOIN _spo o ON o.parcel_no = pa.parcel_no
            WHERE NOT EXISTS (SELECT 1 FROM _sp_link x WHERE x.parcel_no = pa.parcel_no);
            INSERT INTO links ({_COLS})
            SELECT 'supply_parcel', s.supply_no, NULL, NULL, NULL, NULL, true,
                   'no parcel names this DZJGH or lies ' || round(:sov * 100)
                   || ' % within it (not yet surveyed?)', :rule, :run, :as_of
            FROM supplies s
            WHERE NOT EXISTS (SELECT 1 FROM _sp_link x WHERE x.supply_no = s.supply_no);
            ANALYZE _sp_link;
            DROP TABLE _spo;
            """,
        {**p, "rule": rule},
    )


def _projects(conn: Connection, p: dict) -> None:
    for kind, table, col, label in (
        ("project_supply", "supplies", "supply_no", "DZJGH"),
        ("project_parcel", "parcels", "parcel_no", "DKBH"),
    ):
        rule = f"§1 {label} > overlap >= {p['pov']:.0%} of project"
        run_sql(
            conn,
            f"""
                CREATE TEMP TABLE _pk ON COMMIT DROP AS
                SELECT x.project_code, t.{col} AS to_key, 'key' AS method,
                       NULL::float8 AS share
                FROM projects x JOIN {table} t ON t.{col} = x.{col};
                CREATE TEMP TABLE _po ON COMMIT DROP AS
                SELECT DISTINCT ON (x.project_code) x.project_code, t.{col} AS to_key,
                       ({_ov("t.geom", "x.geom", "x.area_m2")}) / x.area_m2 AS share
                FROM projects x
                JOIN {table} t ON t.geom && x.geom AND ST_Intersects(t.geom, x.geom)
                WHERE x.geom IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM _pk k WHERE k.project_code = x.project_code)
                ORDER BY x.project_code, 3 DESC, t.{col};
                INSERT INTO links ({_COLS})
                SELECT :kind, project_code, to_key, method, NULL::float8, share, true, NULL::text,
                       :rule, :run, :as_of FROM _pk
                UNION ALL
                SELECT :kind, project_code, to_key, 'overlap', NULL,
                       round(share::numeric, 4), true, NULL, :rule, :run, :as_of
                FROM _po WHERE share >= :pov;
                INSERT INTO links ({_COLS})
                SELECT :kind, x.project_code, NULL, NULL, NULL, NULL, true,
                       concat_ws('; ',
                           CASE WHEN x.{col} IS NOT NULL THEN '{label} ' || x.{col}
                                || ' is not in {table}' END,
                           CASE WHEN x.geom IS NULL THEN 'no {label} and no polygon'
                                WHEN o.share IS NULL THEN 'its polygon overlaps no {table[:-1]}'
                                ELSE 'largest overlap ' || o.to_key || ' covers '
                                     || round(o.share::numeric * 100, 1) || ' % of it, under '
                                     || round(:pov * 100) || ' %' END),
                       :rule, :run, :as_of
                FROM projects x LEFT JOIN _po o ON o.project_code = x.project_code
                WHERE NOT EXISTS (SELECT 1 FROM _pk k WHERE k.project_code = x.project_code)
                  AND NOT (o.share IS NOT NULL AND o.share >= :pov);
                DROP TABLE _pk, _po;
                """,
            {**p, "rule": rule, "kind": kind},
        )


def _parcel_zone(conn: Connection, p: dict, level: str, table: str) -> None:
    rule = "§1 area share, largest primary"
    if level == "district":
        conn.exec_driver_sql(
            "CREATE TEMP TABLE _pzone (level text, parcel_no text, code text, share float8) "
            "ON COMMIT DROP"
        )
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _pz1 ON COMMIT DROP AS
            SELECT parcel_no, code, round(share::numeric, 6) AS share,
                   row_number() OVER (PARTITION BY parcel_no ORDER BY share DESC, code) = 1
                       AS is_primary
            FROM (
                SELECT pa.parcel_no, z.code,
                       ({_ov("z.geom", "pa.geom", "pa.area_m2")}) / pa.area_m2 AS share
                FROM parcels pa
                JOIN {table} z ON z.geom && pa.geom AND ST_Intersects(z.geom, pa.geom)
                OFFSET 0  -- each overlap computed once (not again for the filter and the sort)
            ) s
            WHERE share > 0;
            INSERT INTO links ({_COLS})
            SELECT :kind, parcel_no, code, 'overlap', NULL, share, is_primary,
                   NULL, :rule, :run, :as_of
            FROM _pz1;
            INSERT INTO _pzone SELECT :level, parcel_no, code, share FROM _pz1;
            INSERT INTO links ({_COLS})
            SELECT :kind, pa.parcel_no, NULL, NULL, NULL, NULL, true,
                   'lies outside every {level}', :rule, :run, :as_of
            FROM parcels pa
            WHERE NOT EXISTS (SELECT 1 FROM _pz1 l WHERE l.parcel_no = pa.parcel_no);
            DROP TABLE _pz1;
            """,
        {**p, "rule": rule, "kind": f"parcel_{level}", "level": level},
    )


def _enterprise_zone(conn: Connection, p: dict, level: str, table: str) -> None:
    rule = "§1 parcel area share > point"
    run_sql(
        conn,
        f"""
            CREATE TEMP TABLE _ez1 ON COMMIT DROP AS
            SELECT uscc, code, method, share, is_primary FROM _ezo WHERE level = :level;
            INSERT INTO _ez1
            SELECT DISTINCT ON (e.uscc) e.uscc, z.code, 'contains', 1.0, true
            FROM enterprises e
            JOIN {table} z ON z.geom && e.geom AND ST_Covers(z.geom, e.geom)
            WHERE NOT EXISTS (SELECT 1 FROM _ep_link l WHERE l.uscc = e.uscc)
            ORDER BY e.uscc, z.code;
            INSERT INTO links ({_COLS})
            SELECT :kind, uscc, code, method, NULL, share, is_primary, NULL, :rule, :run, :as_of
            FROM _ez1;
            INSERT INTO links ({_COLS})
            SELECT :kind, e.uscc, NULL, NULL, NULL, NULL, true,
                   CASE WHEN e.geom IS NULL AND NOT EXISTS (
                            SELECT 1 FROM _ep_link l WHERE l.uscc = e.uscc)
                        THEN 'no parcel and no point to place it'
                        ELSE 'its parcels and point lie outside every {level}' END,
                   :rule, :run, :as_of
            FROM enterprises e
            WHERE NOT EXISTS (SELECT 1 FROM _ez1 x WHERE x.uscc = e.uscc);
            DROP TABLE _ez1;
            """,
        {**p, "rule": rule, "kind": f"enterprise_{level}", "level": level},
    )
