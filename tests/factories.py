"""Small hand-made input files, written the way bureau data comes (GBK shapefiles, CSV, XLSX)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from gis.core.uscc import check_character

X0, Y0 = 500_000.0, 3_350_000.0  # EPSG:4549 metres, near Hangzhou (CM 120E)


def uscc(n: int) -> str:
    first = f"91330100MA2A{n:05d}"
    return first + check_character(first)


def write_shp(
    path: Path, records: list[dict], geoms, crs=4549, encoding="GBK", cpg: bool = True
) -> Path:
    gdf = gpd.GeoDataFrame(pd.DataFrame(records), geometry=list(geoms), crs=crs)
    gdf.to_file(path, encoding=encoding, engine="pyogrio")
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
    return path


def box(i: int, w: float = 100, h: float = 100) -> shapely.Geometry:
    return shapely.box(X0 + i * 1000, Y0, X0 + i * 1000 + w, Y0 + h)


def districts(dir: Path) -> Path:
    return write_shp(
        dir / "XZQ.shp",
        [
            {"XZQDM": "330102", "XZQMC": "上城区", "ZCQ": 1},
            {"XZQDM": "330182", "XZQMC": "建德市", "ZCQ": 0},
        ],
        [
            shapely.box(X0 - 5000, Y0 - 5000, X0 + 5000, Y0 + 5000),
            shapely.box(X0 + 5000, Y0 - 5000, X0 + 15000, Y0 + 5000),
        ],
    )


def supplies(dir: Path, n: int = 3, name: str = "GD.shp", **overrides) -> Path:
    recs = []
    for i in range(n):
        r = {
            "DZJGH": f"3301022019B{i:05d}",
            "GDFS": "出让",
            "TDYT": "1001",
            "GDRQ": "2019-03-01",
            "SRR": f"杭州测试{i}有限公司",
            "SRRDM": uscc(i),
            "HTKGSJ": "2019-09-01",
            "RJLXX": 1.2,
            "YDTZ": 5000.0,
        }
        r.update({k: v[i] if isinstance(v, list) else v for k, v in overrides.items()})
        recs.append(r)
    return write_shp(dir / name, recs, [box(i) for i in range(n)])


def parcels(dir: Path, n: int = 3, name: str = "DK.shp", **overrides) -> Path:
    recs = []
    for i in range(n):
        r = {
            "DKBH": f"DK-{i:04d}",
            "DLBM": "1001",
            "SJYT": "工业",
            "JZMJ": 12000.0,
            "JZJDMJ": 5000.0,
            "DZJGH": f"3301022019B{i:05d}",
            "QLR": f"杭州测试{i}有限公司",
            "QLRDM": uscc(i),
            "XZQDM": "330102",
        }
        r.update({k: v[i] if isinstance(v, list) else v for k, v in overrides.items()})
        recs.append(r)
    return write_shp(dir / name, recs, [box(i) for i in range(n)])
