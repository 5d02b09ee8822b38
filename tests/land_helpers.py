"""Hand-made land records written straight into the registry tables (issue 4 tests).

Geometry is shapely in EPSG:4549 metres around (X0, Y0); each row gets a batch id and row hash as
an import would. Areas are worked out by hand in the tests.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import shapely
from sqlalchemy import Engine, text

from gis.detection import run_detection

X0, Y0 = 500_000.0, 3_350_000.0


def rect(x: float, y: float, w: float, h: float) -> shapely.Geometry:
    """An axis-aligned rectangle, (x, y) metres from (X0, Y0), w × h metres."""
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def insert(engine: Engine, table: str, rows: list[dict], batch_id: int = 1) -> None:
    """Insert rows (column -> value; ``geom`` a shapely geometry) into a registry table."""
    with engine.begin() as conn:
        for r in rows:
            r = dict(r)
            geom = r.pop("geom", None)
            cols = list(r) + ["batch_id", "row_hash"]
            vals = [f":{c}" for c in r] + [":batch_id", ":row_hash"]
            params = {
                **r,
                "batch_id": batch_id,
                "row_hash": hashlib.md5(json.dumps(r, default=str).encode()).hexdigest(),
            }
            if geom is not None:
                cols.append("geom")
                if geom.geom_type == "Point":
                    vals.append("ST_GeomFromText(:wkt, 4549)")
                else:
                    vals.append("ST_Multi(ST_GeomFromText(:wkt, 4549))")
                params["wkt"] = geom.wkt
            conn.execute(
                text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(vals)})"),
                params,
            )


def approval(doc_no: str, geom, approved_on: date = date(2020, 1, 1), **kw) -> dict:
    return {"doc_no": doc_no, "approved_on": approved_on, "geom": geom, **kw}


def supply(supply_no: str, geom, agreed_start: date = date(2021, 1, 1), **kw) -> dict:
    return {
        "supply_no": supply_no,
        "method": "出让",
        "land_use_code": "1001",
        "supplied_on": date(2020, 6, 1),
        "agreed_start": agreed_start,
        "geom": geom,
        **kw,
    }


def parcel(parcel_no: str, geom, **kw) -> dict:
    return {"parcel_no": parcel_no, "land_use_code": "1001", "geom": geom, **kw}


def detect(engine: Engine, as_of: date) -> dict:
    return run_detection(engine, as_of, user="test")


def rows(engine: Engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]
