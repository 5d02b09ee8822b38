"""Geometry on the way in: CRS resolution, GCJ-02, make_valid, MultiPolygon, EPSG:4549.

Everything is vectorised with shapely 2 array functions; only features that are invalid are
repaired, and only those whose repair leaves no polygon are rejected.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from gis.core.gcj02 import bd09_to_wgs84, gcj02_to_wgs84
from gis.core.layers import STORAGE_SRID
from gis.ingest.validate import Issues, as_text, parse_numbers

GCJ02 = "gcj02"
BD09 = "bd09"
# the web maps' offset lon/lat (AMap/Tencent GCJ-02, Baidu BD-09), each to WGS84
_OFFSET_TO_WGS84 = {GCJ02: gcj02_to_wgs84, BD09: bd09_to_wgs84}
# ZBXT holds a CRS code (contract): EPSG:4549, 4549, ESRI:102100, gcj02 or bd09
_CRS_CODE = re.compile(r"^(?:[A-Za-z]{2,10}:)?\d{3,6}$")
# distinct ZBXT codes one file may use (each costs a CRS lookup and a transform)
MAX_ZBXT_CODES = 20


def is_gcj02(crs) -> bool:
    """True for the GCJ02 or BD09 marker (offset lon/lat, not a pyproj CRS). Tested by type
    first: ``CRS == "gcj02"`` makes pyproj try to parse "gcj02" as a CRS, ~0.14 s each time."""
    return isinstance(crs, str) and crs in _OFFSET_TO_WGS84


_STORAGE_CRS = CRS.from_epsg(STORAGE_SRID)


def _is_storage(crs) -> bool:
    """True for EPSG:4549; a cheap string test first (a full CRS comparison costs ~60 ms)."""
    if getattr(crs, "srs", None) == f"EPSG:{STORAGE_SRID}":
        return True
    return _as_crs(crs) == _STORAGE_CRS


def _as_crs(crs) -> CRS:
    """A pyproj CRS; one given is used as is (building it again re-parses its WKT, ~0.1 s)."""
    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


# datums PROJ cannot take to CGCS2000 exactly here (no published grid or parameters ship with it)
_OLD_DATUMS = {"Xian 1980": "西安80", "Beijing 1954": "北京54"}


def old_datum(crs) -> str | None:
    """西安80 or 北京54 when ``crs`` (a pyproj CRS) is on that datum, else None."""
    if is_gcj02(crs) or crs is None:
        return None
    datum = _as_crs(crs).datum
    name = datum.name if datum is not None else ""
    return next((label for key, label in _OLD_DATUMS.items() if key in name), None)


def old_datum_message(crs, label: str) -> str:
    """Why a 西安80 / 北京54 CRS is refused, and what to do."""
    return (
        f"{_as_crs(crs).to_string()} is {label}: PROJ has no exact transformation from {label} "
        "to CGCS2000 here, and a guessed one puts parcels metres to tens of metres off; "
        "transform the data to CGCS2000 (e.g. EPSG:4549) with the bureau's 七参数 first, "
        "or, if the coordinates are in fact CGCS2000 and only the label is wrong, say so with "
        "--crs EPSG:4549 (or the right CGCS2000 code)"
    )


def resolve_crs(code: str, file: str):
    """A CRS from a user's code ('EPSG:4549', '4549', a WKT, ...); GCJ02 is returned as is."""
    from gis.ingest.errors import InputError

    c = str(code).strip()
    if c.lower() in _OFFSET_TO_WGS84:
        return c.lower()
    if c.isdigit():
        c = f"EPSG:{c}"
    try:
        return CRS.from_user_input(c)
    except Exception:
        raise InputError(
            file,
            f"unknown CRS {code!r}; use an EPSG code such as EPSG:4549, "
            "EPSG:4490, EPSG:4326, gcj02 or bd09",
            field="crs",
        ) from None


def to_storage(geoms: np.ndarray, crs) -> np.ndarray:
    """Transform shapely geometries from ``crs`` (or GCJ-02 / BD-09 lon/lat) to EPSG:4549
    metres."""
    if is_gcj02(crs):
        to_wgs84 = _OFFSET_TO_WGS84[crs]
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1])))
        crs = CRS.from_epsg(4326)
    if _is_storage(crs):
        return geoms
    t = Transformer.from_crs(crs, STORAGE_SRID, always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def check_lonlat(geoms: np.ndarray, crs, issues: Issues, field_code: str) -> None:
    """Geographic input must be lon/lat within range (catches swapped or projected numbers)."""
    if not is_gcj02(crs) and not _as_crs(crs).is_geographic:
        return
    b = shapely.bounds(geoms)
    bad = ~np.isnan(b[:, 0]) & (
        (b[:, 0] < -180) | (b[:, 2] > 180) | (b[:, 1] < -90) | (b[:, 3] > 90)
    )
    issues.add(bad, field_code, "coordinates out of lon/lat range for a geographic CRS")


def polygons(
    geoms: np.ndarray, issues: Issues, already_rejected: np.ndarray | bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Polygonal geometries from any input; returns (geometries, mask of features repaired).

    Null or empty -> rejected ("empty geometry"); invalid -> make_valid, keeping polygonal parts;
    nothing polygonal left -> rejected. Every feature is exploded to its polygons and rebuilt as
    one MultiPolygon, so collections and mixed input come out alike.
    """
    geoms = np.asarray(geoms, dtype=object)
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    n = len(geoms)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    issues.add(empty & ~already_rejected, "geometry", "empty geometry")
    invalid = ~empty & ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    types = shapely.get_type_id(geoms)
    if np.isin(types[~empty], (3, 6)).all():
        # fast path: already (multi)polygons; the database makes them MultiPolygon (ST_Multi)
        return np.where(empty, None, geoms), invalid
    parts, owner = shapely.get_parts(geoms, return_index=True)
    # collections may hold multipolygons: explode once more, keep polygons only
    parts2, idx2 = shapely.get_parts(parts, return_index=True)
    owner = owner[idx2]
    keep = (shapely.get_type_id(parts2) == 3) & ~shapely.is_empty(parts2)
    result = np.full(n, None, dtype=object)
    if keep.any():
        shapely.multipolygons(parts2[keep], indices=owner[keep], out=result)
    has_poly = np.zeros(n, bool)
    has_poly[owner[keep]] = True
    issues.add(
        ~empty & ~has_poly, "geometry", "not a polygon, and make_valid cannot turn it into one"
    )
    return result, invalid & has_poly


def points_from_table(df: pd.DataFrame, default_crs, issues: Issues, file: str) -> np.ndarray:
    """Point geometries in EPSG:4549 from X, Y and a per-row ZBXT (CRS code or gcj02).

    Rows without X and Y get no geometry (linked by DKBH only). Rows with coordinates but no
    ZBXT use ``default_crs`` (the --crs option or manifest) or are rejected.
    """
    n = len(df)
    out = np.full(n, None, dtype=object)
    if "X" not in df.columns and "Y" not in df.columns:
        return out
    x, badx = parse_numbers(df["X"] if "X" in df.columns else pd.Series([None] * n))
    y, bady = parse_numbers(df["Y"] if "Y" in df.columns else pd.Series([None] * n))
    issues.add(badx, "X", "not a number")
    issues.add(bady, "Y", "not a number")
    has_xy = (x.notna() & y.notna()).to_numpy()
    issues.add(x.notna().to_numpy() ^ y.notna().to_numpy(), "X", "X and Y must be given together")
    zb = as_text(df["ZBXT"]) if "ZBXT" in df.columns else pd.Series([None] * n, dtype=object)
    zb = zb.map(lambda v: v.strip() if isinstance(v, str) else v)
    if default_crs is None:
        issues.add(
            has_xy & zb.isna().to_numpy(),
            "ZBXT",
            "coordinates without a coordinate system: fill ZBXT or give --crs",
        )
    codes = zb.where(zb.notna(), "__default__")
    # rows by code in one pass (a mask per code would be quadratic in a file of many codes)
    group, uniques = pd.factorize(codes.where(pd.Series(has_xy, index=codes.index)))
    for g, code in enumerate(uniques):
        rows = group == g
        if code == "__default__":
            if default_crs is None:
                continue
            crs = default_crs
        elif g >= MAX_ZBXT_CODES:
            issues.add(
                rows,
                "ZBXT",
                f"more than {MAX_ZBXT_CODES} coordinate systems in one file; "
                "give the points in a few",
            )
            continue
        elif not is_gcj02(str(code).lower()) and not _CRS_CODE.match(str(code)):
            # only codes: pyproj searches its whole database for a name (seconds each)
            issues.add(
                rows,
                "ZBXT",
                f"{code!r} is not a CRS code (use e.g. EPSG:4549, 4490, gcj02 or bd09)",
            )
            continue
        else:
            try:
                crs = resolve_crs(code, file)
            except Exception:
                issues.add(rows, "ZBXT", f"unknown coordinate system {code!r}")
                continue
            label = old_datum(crs)
            if label:
                issues.add(rows, "ZBXT", old_datum_message(crs, label))
                continue
        pts = np.full(n, None, dtype=object)
        pts[rows] = shapely.points(x[rows].to_numpy(), y[rows].to_numpy())
        check_lonlat(pts, crs, issues, "X")
        out[rows] = to_storage(pts[rows], crs)
    return out
