"""BD-09 (Baidu) and GCJ-02 lon/lat on the way in: one chain BD-09 → GCJ-02 → WGS84."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Transformer

from gis.core.gcj02 import bd09_to_gcj02, bd09_to_wgs84, gcj02_to_bd09, wgs84_to_gcj02
from gis.ingest.geometry import resolve_crs, to_storage

# WGS84 points around Hangzhou and elsewhere in China (lon, lat)
POINTS = np.array([[120.1551, 30.2741], [119.95, 30.05], [116.3912, 39.9073], [113.26, 23.13]])


def test_bd09_round_trips_through_gcj02_and_wgs84() -> None:
    lon, lat = POINTS[:, 0], POINTS[:, 1]
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = gcj02_to_bd09(glon, glat)
    # BD-09 lies north-east of GCJ-02 by roughly Baidu's constant shift (0.0065°, 0.006°)
    assert np.all((blon - glon > 0.004) & (blon - glon < 0.009))
    assert np.all((blat - glat > 0.004) & (blat - glat < 0.009))
    g2lon, g2lat = bd09_to_gcj02(blon, blat)
    assert np.abs(g2lon - glon).max() < 1e-5 and np.abs(g2lat - glat).max() < 1e-5
    wlon, wlat = bd09_to_wgs84(blon, blat)
    assert np.abs(wlon - lon).max() < 1e-5 and np.abs(wlat - lat).max() < 1e-5


def test_bd09_points_land_where_their_wgs84_points_do() -> None:
    assert resolve_crs("BD09", "f.csv") == "bd09" and resolve_crs("gcj02", "f.csv") == "gcj02"
    lon, lat = POINTS[:2, 0], POINTS[:2, 1]
    blon, blat = gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))
    got = to_storage(shapely.points(blon, blat), "bd09")
    x, y = Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    # within a metre of the true place; read as WGS84 they would be ~1 km off
    assert np.hypot(shapely.get_x(got) - x, shapely.get_y(got) - y).max() < 1.0
    raw = to_storage(shapely.points(blon, blat), resolve_crs("4326", "f.csv"))
    assert np.hypot(shapely.get_x(raw) - x, shapely.get_y(raw) - y).min() > 500


def test_epsg_4528_input_is_4549_less_the_zone_prefix() -> None:
    p = shapely.points([40_520_000.0], [3_350_000.0])
    got = to_storage(p, resolve_crs("4528", "f.shp"))
    assert abs(shapely.get_x(got)[0] - 520_000.0) < 1e-6
    assert abs(shapely.get_y(got)[0] - 3_350_000.0) < 1e-6
