"""Search for the map page: enterprises (name, USCC), parcels (DKBH), supply records (DZJGH) and
approvals (PZWH), each with a box and a centre to fly to.

Boxes and centres are lon/lat (WGS84, EPSG:4326): [minx, miny, maxx, maxy] and [lon, lat].
An enterprise is placed by its parcels (DKBH list, else the parcel it holds as QLRDM), else by its
own point; an enterprise with neither is still listed, without a box.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

# An 18-character USCC, or a prefix of one (at least 6 characters, upper-case letters/digits).
_USCC_PREFIX = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{6,18}$")

_SQL = """
WITH q AS (SELECT CAST(:q AS text) AS q, CAST(:like AS text) AS pat, CAST(:prefix AS text) AS pre),
ent0 AS (
    SELECT e.*, CASE WHEN e.uscc = (SELECT q FROM q) THEN 0
                     WHEN e.name = (SELECT q FROM q) THEN 1 ELSE 3 END AS score
    FROM enterprises e, q
    WHERE e.name ILIKE q.pat OR e.uscc LIKE q.pre
    ORDER BY score, length(e.name), e.uscc
    LIMIT :limit
),
ent AS (
    SELECT 'enterprise' AS kind, e.uscc AS id, e.name AS label,
           concat_ws(' · ', e.uscc, e.industry_code) AS sub,
           coalesce(
               (SELECT ST_Extent(p.geom)::geometry FROM parcels p
                WHERE p.parcel_no = ANY(e.parcel_nos)),
               (SELECT ST_Extent(p.geom)::geometry FROM parcels p WHERE p.holder_uscc = e.uscc),
               ST_Expand(e.geom, 60)
           ) AS g,
           e.score
    FROM ent0 e
),
-- DKBH and DZJGH by their start in any case: upper(...) LIKE the bound prefix, which the
-- planner sees, so the upper(...) text_pattern_ops indexes serve it (migration 0033)
par AS (
    SELECT 'parcel', p.parcel_no, p.parcel_no,
           concat_ws(' · ', p.actual_use, p.holder_name), p.geom,
           CASE WHEN p.parcel_no = (SELECT q FROM q) THEN 0 ELSE 2 END
    FROM parcels p WHERE upper(p.parcel_no) LIKE upper(CAST(:prefix AS text))
    ORDER BY 6, p.parcel_no LIMIT :limit
),
sup AS (
    SELECT 'supply', s.supply_no, s.supply_no,
           concat_ws(' · ', s.method, s.grantee_name, s.supplied_on::text), s.geom,
           CASE WHEN s.supply_no = (SELECT q FROM q) THEN 0 ELSE 2 END
    FROM supplies s WHERE upper(s.supply_no) LIKE upper(CAST(:prefix AS text))
    ORDER BY 6, s.supply_no LIMIT :limit
),
apr AS (
    SELECT 'approval', a.doc_no, a.doc_no,
           concat_ws(' · ', a.batch_name, a.approved_on::text), a.geom,
           CASE WHEN a.doc_no = (SELECT q FROM q) THEN 0 ELSE 4 END
    FROM approvals a, q WHERE a.doc_no ILIKE q.pat
    ORDER BY 6, a.doc_no LIMIT :limit
),
hits AS (
    SELECT * FROM ent UNION ALL SELECT * FROM par UNION ALL SELECT * FROM sup
    UNION ALL SELECT * FROM apr
)
SELECT kind, id, label, sub, score,
       ST_XMin(b) AS x1, ST_YMin(b) AS y1, ST_XMax(b) AS x2, ST_YMax(b) AS y2,
       ST_X(c) AS cx, ST_Y(c) AS cy
FROM (
    SELECT h.*, ST_Transform(ST_SetSRID(ST_Envelope(h.g), 4549), 4326) AS b,
           ST_Transform(ST_SetSRID(ST_PointOnSurface(ST_Envelope(h.g)), 4549), 4326) AS c
    FROM hits h
) x
ORDER BY score, kind, label
LIMIT :limit
"""


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(engine: Engine, q: str, limit: int = 10) -> list[dict]:
    """Hits for ``q`` (at least 2 characters), best first.

    Enterprise names match anywhere (case-insensitive); USCC, DKBH and DZJGH match from the
    start; approval numbers anywhere. Each hit: kind (enterprise | parcel | supply | approval),
    id, label, sub (a line of context), bbox [minx, miny, maxx, maxy] and center [lon, lat]
    in WGS84, both None when the thing has no geometry.
    """
    q = q.strip()
    if len(q) < 2:
        return []
    esc = _escape_like(q)
    prefix = esc.upper() + "%" if _USCC_PREFIX.match(q.upper()) else esc + "%"
    params = {"q": q, "like": f"%{esc}%", "prefix": prefix, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(text(_SQL), params).mappings().all()
    out = []
    for r in rows:
        has = r["x1"] is not None
        out.append(
            {
                "kind": r["kind"],
                "id": r["id"],
                "label": r["label"],
                "sub": r["sub"],
                "bbox": [r["x1"], r["y1"], r["x2"], r["y2"]] if has else None,
                "center": [r["cx"], r["cy"]] if has else None,
            }
        )
    return out
