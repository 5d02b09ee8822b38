"""Small hand-made cities for the linkage / evaluation / indicator tests.

Everything goes through the importer (GBK shapefiles and CSV, as a bureau sends them), so the
import refresh hook computes links, land, per-mu figures, evaluations and indicators before each
import returns. Geometry: EPSG:4549 metres around (X0, Y0); a 100 m × 100 m parcel is 10,000 m²
= 15 亩.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import shapely
from pyproj import Transformer

from gis.core.gcj02 import wgs84_to_gcj02
from gis.ingest import import_file
from tests.factories import X0, Y0, uscc, write_shp

TO_WGS = Transformer.from_crs(4549, 4326, always_xy=True)
FROM_WGS = Transformer.from_crs(4326, 4549, always_xy=True)


def rect(x: float, y: float, w: float, h: float) -> shapely.Geometry:
    """w × h metres with its lower-left corner (x, y) metres from (X0, Y0)."""
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def gcj02_of(x: float, y: float) -> tuple[float, float]:
    """GCJ-02 lon/lat of the point (x, y) metres from (X0, Y0)."""
    lon, lat = TO_WGS.transform(X0 + x, Y0 + y)
    glon, glat = wgs84_to_gcj02(lon, lat)
    return float(glon), float(glat)


def districts(tmp: Path) -> Path:
    """330102 west of x = 5000 m, 330182 east of it (both 10 km × 10 km)."""
    return write_shp(
        tmp / "XZQ.shp",
        [
            {"XZQDM": "330102", "XZQMC": "上城区", "ZCQ": 1},
            {"XZQDM": "330182", "XZQMC": "建德市", "ZCQ": 0},
        ],
        [rect(-5000, -5000, 10000, 10000), rect(5000, -5000, 10000, 10000)],
    )


def parcels(tmp: Path, rows: list[tuple[str, shapely.Geometry, dict]]) -> Path:
    recs = []
    for no, _, extra in rows:
        recs.append({"DKBH": no, "DLBM": "1001", "SJYT": "工业", "XZQDM": "330102", **extra})
    return write_shp(tmp / "DK.shp", recs, [g for _, g, _ in rows])


def supplies(tmp: Path, rows: list[tuple[str, shapely.Geometry, dict]]) -> Path:
    recs = []
    for no, _, extra in rows:
        recs.append(
            {
                "DZJGH": no,
                "GDFS": "出让",
                "TDYT": "1001",
                "GDRQ": "2015-03-01",
                "HTKGSJ": "2015-09-01",
                "SJJGSJ": "2016-09-01",
                **extra,
            }
        )
    return write_shp(tmp / "GD.shp", recs, [g for _, g, _ in rows])


def enterprises(tmp: Path, rows: list[dict]) -> Path:
    """rows: TYSHXYDM, QYMC, HYDM, GMYS, DKBH, X, Y, ZBXT (missing keys left empty)."""
    cols = ["TYSHXYDM", "QYMC", "HYDM", "GMYS", "DKBH", "X", "Y", "ZBXT"]
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    df["GMYS"] = df["GMYS"].astype("Int64")  # 1 / 0 / empty, not 1.0 beside an empty cell
    p = tmp / "QY.csv"
    df.to_csv(p, index=False, encoding="utf-8-sig")
    return p


def outputs(tmp: Path, rows: list[dict], name: str = "CC.csv") -> Path:
    cols = ["TYSHXYDM", "ND", "GYZCZ", "YYSR", "GYZJZ", "SJSJ", "ZHNH", "PFDL", "YFFY", "CYRS",
            "YDMJ"]  # fmt: skip
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    p = tmp / name
    df.to_csv(p, index=False, encoding="utf-8-sig")
    return p


def table(tmp: Path, name: str, rows: list[dict]) -> Path:
    p = tmp / name
    pd.DataFrame(rows).to_csv(p, index=False, encoding="utf-8-sig")
    return p


def load(engine, tmp: Path, **layers) -> dict:
    """Import the given layers (code -> path) in dependency order; returns the reports."""
    order = ("xzq", "pt", "zl", "gd", "dk", "qy", "cc", "xm", "bd", "tj")
    return {k: import_file(engine, k, layers[k]) for k in order if k in layers}


__all__ = ["X0", "Y0", "uscc", "rect", "gcj02_of", "load"]
