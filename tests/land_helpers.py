"""Hand-made land records written straight into the registry tables .

Geometry is shapely in EPSG:4549 metres around (X0, Y0); each row gets a batch id and row hash as
an import would. Areas are worked out by hand in the tests.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import shapely
from sqlalchemy import Engine, text

from gis.lands.detection import run_detection
from tests.factories import uscc

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
    """A detection run as of ``as_of`` over rows inserted directly: the §1 links made first, and
    the per-mu figures when the test did not write its own (the three lands read both)."""
    from gis.core import graph

    with engine.begin() as conn:
        written = conn.execute(text("SELECT EXISTS (SELECT 1 FROM per_mu)")).scalar_one()
        graph.refresh(
            conn, None, as_of, trigger="test", targets=("links",) if written else ("per_mu",)
        )
    return run_detection(engine, as_of, user="test")


def rows(engine: Engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def city(db) -> None:
    """Two districts split at x = 5,000; a platform over the west, a corridor over the east.

    Approvals (each 200 × 100 = 20,000 m² = 30 亩):
      PZ-W1 at x 0: supply inside 120 × 100 -> 8,000 m² = 12 亩 unsupplied (district 330102)
      PZ-W2 at x 1000: none supplied -> 30 亩 (330102)
      PZ-E1 at x 6000: supply over all -> supplied (330182)
      PZ-E2 at x 7000: 50 × 100 supplied -> 150 × 100 = 22.5 亩 (330182)
    Supplies: agreed start 2023-01-01: not started -> idle_reclaimable as of 2025-06-30 (GD-W1),
    GD-E1 started, GD-E2 agreed start 2025-01-01 -> overdue.
    Parcels: DK-W (x 0, 100 × 100, plot ratio 0.5, tax 60 万元 / 15 亩 = 4.0), DK-E diverted.
    """
    insert(
        db,
        "districts",
        [
            {"code": "330102", "name": "上城区", "geom": rect(-5000, -5000, 10000, 10000)},
            {"code": "330182", "name": "建德市", "geom": rect(5000, -5000, 10000, 10000)},
        ],
    )
    insert(
        db,
        "platforms",
        [{"code": "PT1", "name": "测试平台", "level": "省级", "geom": rect(-100, -100, 1500, 500)}],
    )
    insert(
        db,
        "corridors",
        [{"code": "CDZZ", "name": "城东智造大走廊", "geom": rect(5500, -1000, 3000, 2000)}],
    )
    insert(
        db,
        "approvals",
        [
            approval("PZ-W1", rect(0, 0, 200, 100), batch_name="杭州市2019年第1批次"),
            approval("PZ-W2", rect(1000, 0, 200, 100), date(2024, 12, 1)),
            approval("PZ-E1", rect(6000, 0, 200, 100)),
            approval("PZ-E2", rect(7000, 0, 200, 100)),
        ],
    )
    insert(
        db,
        "supplies",
        [
            supply("GD-W1", rect(0, 0, 120, 100), agreed_start=date(2023, 1, 1)),
            supply(
                "GD-E1",
                rect(6000, 0, 200, 100),
                agreed_start=date(2023, 1, 1),
                actual_start=date(2023, 2, 1),
            ),
            supply("GD-E2", rect(7000, 0, 50, 100), agreed_start=date(2025, 1, 1)),
        ],
    )
    insert(
        db,
        "parcels",
        [
            parcel("DK-W", rect(0, 0, 100, 100), floor_area_m2=5_000.0, holder_name="杭州甲公司"),
            parcel("DK-E", rect(6000, 0, 100, 100), actual_use="挪作他用"),
        ],
    )
    insert(
        db,
        "enterprises",
        [{"uscc": uscc(1), "name": "杭州甲公司", "industry_code": "2611", "parcel_nos": ["DK-W"]}],
    )
    insert(db, "outputs", [{"uscc": uscc(1), "year": 2024, "tax_paid": 60.0}])
