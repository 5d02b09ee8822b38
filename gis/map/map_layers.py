"""Data the map page draws besides the vector tiles.

* ``layer_geojson``: a whole collection (gis/serving/collections.py: the same properties as the
  vector tiles and OGC API) as one GeoJSON FeatureCollection in WGS84 — the page's fallback while
  the tiles are not there, and for small layers. Restricted properties only for analysts.
* ``parcel_tax_bands``: 亩均税收 (万元/亩) of every parcel in the latest year with output, and its
  band, for the analyst-only "parcels by 亩均税收" layer (the page colours the tiled parcels by
  feature state, so no tax figure ever goes into a tile). ``per_mu`` table is read when
  it exists; else a parcel's tax is the SJSJ of its enterprises (by DKBH), each enterprise's tax
  spread over its parcels by area and a parcel shared equally.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from gis.core.layers import M2_PER_MU
from gis.serving import collections

# 亩均税收 bands, 万元/亩 (default, ours; 5 is DOMAIN_RULES §3's low-efficiency floor).
TAX_BANDS = (
    (0, 5, "<5"),
    (5, 15, "5-15"),
    (15, 30, "15-30"),
    (30, 60, "30-60"),
    (60, None, ">=60"),
)
MAX_FEATURES = 50_000


class LayerNotFound(LookupError):
    pass


class BadProperty(ValueError):
    pass


def layer_geojson(
    engine: Engine,
    layer_id: str,
    analyst: bool,
    props: list[str] | None = None,
    points: bool = False,
) -> str:
    """GeoJSON text (CRS84, 6 decimals ≈ 0.1 m) of every feature of collection ``layer_id``;
    ``id`` is the contract key. ``props``: only these properties (unknown names are refused).
    ``points``: each feature as one point on its surface (label points: one label each)."""
    with engine.connect() as conn:
        reg = collections.registry(conn)
        c = reg.get(layer_id)
        if c is None:
            raise LayerNotFound(
                f"no layer {layer_id!r}; layers: {', '.join(sorted(reg)) or 'none yet'}"
            )
        visible = c.visible(analyst)
        if props:
            names = {p.name for p in visible}
            bad = [n for n in props if n not in names]
            if bad:
                raise BadProperty(
                    f"layer {layer_id} has no property {', '.join(bad)}; "
                    f"properties: {', '.join(sorted(names))}"
                )
            visible = tuple(p for p in visible if p.name in props)
        props_sql = ", ".join(f"'{p.name}', {p.sql}" for p in visible)
        geom = f"ST_PointOnSurface({c.geom})" if points else c.geom
        sql = f"""
            SELECT json_build_object(
                'type', 'FeatureCollection',
                'features', coalesce(json_agg(json_build_object(
                    'type', 'Feature', 'id', f.id,
                    'geometry', ST_AsGeoJSON(ST_Transform(f.g, 4326), 6)::json,
                    'properties', f.p)), '[]'::json))::text
            FROM (
                SELECT {c.key} AS id, {geom} AS g, json_build_object({props_sql}) AS p
                FROM {c.source} WHERE {c.where} AND {c.geom} IS NOT NULL
                ORDER BY 1 LIMIT {MAX_FEATURES}
            ) f
        """
        return conn.execute(text(sql)).scalar_one()


def _band_sql(col: str) -> str:
    whens = " ".join(
        f"WHEN {col} < {hi} THEN '{label}'" for lo, hi, label in TAX_BANDS if hi is not None
    )
    return f"CASE WHEN {col} IS NULL THEN NULL {whens} ELSE '{TAX_BANDS[-1][2]}' END"


def parcel_tax_bands(engine: Engine) -> dict:
    """{year, bands, source, parcels: {DKBH: [tax_per_mu, band]}} for analysts."""
    with engine.connect() as conn:
        tabs = collections.tables(conn)
        if (
            "per_mu" in tabs
            and conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM per_mu WHERE level = 'parcel')")
            ).scalar_one()
        ):
            source = "per_mu"
            sql = f"""
                WITH y AS (SELECT max(year) AS y FROM per_mu WHERE level = 'parcel'
                           AND tax_per_mu IS NOT NULL)
                SELECT (SELECT y FROM y) AS year,
                       json_object_agg(code, json_build_array(
                           round(tax_per_mu::numeric, 2), {_band_sql("tax_per_mu")}))::text
                FROM per_mu WHERE level = 'parcel' AND year = (SELECT y FROM y)
                  AND tax_per_mu IS NOT NULL
            """
        else:
            source = "outputs"
            sql = f"""
                WITH y AS (SELECT max(year) AS y FROM outputs WHERE tax_paid IS NOT NULL),
                ep AS (
                    SELECT DISTINCT e.uscc, p.id, p.parcel_no, p.area_m2
                    FROM enterprises e, unnest(e.parcel_nos) k JOIN parcels p ON p.parcel_no = k
                ), shared AS (
                    SELECT ep.*, area_m2 / count(*) OVER (PARTITION BY id) AS land_m2 FROM ep
                ), spread AS (
                    SELECT s.parcel_no, s.area_m2,
                           o.tax_paid * s.land_m2 / sum(s.land_m2) OVER (PARTITION BY s.uscc)
                               AS tax
                    FROM shared s JOIN outputs o ON o.uscc = s.uscc
                                  AND o.year = (SELECT y FROM y)
                    WHERE o.tax_paid IS NOT NULL
                ), parcel AS (
                    SELECT parcel_no, sum(tax) / (max(area_m2) / {M2_PER_MU}) AS t
                    FROM spread GROUP BY parcel_no
                )
                SELECT (SELECT y FROM y),
                       json_object_agg(parcel_no, json_build_array(round(t::numeric, 2),
                                       {_band_sql("t")}))::text
                FROM parcel
            """
        year, data = conn.execute(text(sql)).one()
    return {
        "year": year,
        "unit": "万元/亩",
        "bands": [label for *_, label in TAX_BANDS],
        "source": source,
        "parcels": json.loads(data) if data else {},
    }
