"""Small hand-made worlds for the tests of platform kinds, admission and layout plans.

Rows go straight into the registry tables with a batch id and a row hash, as an import would.
Geometry: shapely in EPSG:4549 metres, (x, y) offsets from (X0, Y0). A 100 m × 100 m parcel is
10,000 m² = 15 亩, so a tax of 15 × t 万元 on it is t 万元/亩.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import shapely
from sqlalchemy import Engine, text

from gis.core import tokens
from tests.factories import uscc

X0, Y0 = 500_000.0, 3_350_000.0
AS_OF = date(2026, 6, 30)  # outputs of 2025 are used (tax_year_lag 1)
TAX_YEAR = 2025
MAIN, OTHER = "330102", "330182"  # 上城区 (ZCQ 1) west of X0, 建德市 (ZCQ 0) east of X0


def rect(x: float, y: float, w: float, h: float) -> shapely.Geometry:
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def insert(engine: Engine, table: str, rows: list[dict]) -> None:
    with engine.begin() as conn:
        for r in rows:
            r = dict(r)
            geom = r.pop("geom", None)
            cols = list(r) + ["batch_id", "row_hash"]
            vals = [f":{c}" for c in r] + [":batch_id", ":row_hash"]
            params = {
                **r,
                "batch_id": 1,
                "row_hash": hashlib.md5(json.dumps(r, default=str).encode()).hexdigest(),
            }
            if geom is not None:
                cols.append("geom")
                fn = "ST_GeomFromText" if geom.geom_type == "Point" else "ST_Multi(ST_GeomFromText"
                vals.append(f"{fn}(:wkt, 4549)" + ("" if geom.geom_type == "Point" else ")"))
                params["wkt"] = geom.wkt
            conn.execute(
                text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(vals)})"),
                params,
            )


def districts(engine: Engine) -> None:
    insert(
        engine,
        "districts",
        [
            {
                "code": MAIN,
                "name": "上城区",
                "main_urban": True,
                "geom": rect(-60000, -60000, 60000, 120000),
            },
            {
                "code": OTHER,
                "name": "建德市",
                "main_urban": False,
                "geom": rect(0, -60000, 60000, 120000),
            },
        ],
    )


def platform(
    code: str,
    geom,
    level: str = "市级",
    ptype: str = "工业园区",
    district: str | None = OTHER,
    tscy: list[str] | None = None,
    fmqd: list[str] | None = None,
) -> dict:
    return {
        "code": code,
        "name": f"平台{code}",
        "level": level,
        "type": ptype,
        "district_code": district,
        "featured_industries": tscy,
        "negative_list": fmqd,
        "geom": geom,
    }


_n = [0]


def parcel_with_tax(
    engine: Engine,
    parcel_no: str,
    geom,
    tax: float | None,
    land_use_code: str = "1001",
    actual_use: str | None = "工业",
    district: str | None = None,
) -> None:
    """A parcel and (when ``tax`` is given) one enterprise on it paying ``tax`` 万元 in 2025."""
    insert(
        engine,
        "parcels",
        [
            {
                "parcel_no": parcel_no,
                "land_use_code": land_use_code,
                "actual_use": actual_use,
                "district_code": district,
                "geom": geom,
            }
        ],
    )
    if tax is None:
        return
    _n[0] += 1
    code = uscc(70000 + _n[0])
    insert(
        engine,
        "enterprises",
        [
            {
                "uscc": code,
                "name": f"企业{parcel_no}",
                "industry_code": "3484",
                "parcel_nos": [parcel_no],
            }
        ],
    )
    insert(engine, "outputs", [{"uscc": code, "year": TAX_YEAR, "tax_paid": tax}])


def corridor(engine: Engine, code: str, geom) -> None:
    insert(
        engine,
        "corridors",
        [
            {
                "code": code,
                "name": {"CXKC": "城西科创大走廊", "CDZZ": "城东智造大走廊"}.get(code, code),
                "geom": geom,
            }
        ],
    )


def token(engine: Engine, role: str) -> dict:
    with engine.begin() as conn:
        t = tokens.create(conn, role, f"test-{role}")
    return {"Authorization": f"Bearer {t}"}


def rows(engine: Engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def analyse(engine: Engine, as_of: date = AS_OF) -> None:
    """Every derived table from scratch (links, per_mu, ..., the current platform kinds), as
    ``landlink analyse-all --full`` makes them."""
    from gis.core import graph

    with engine.begin() as conn:
        graph.refresh(conn, None, as_of, trigger="test")
