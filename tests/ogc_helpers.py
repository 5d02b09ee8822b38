"""A small city written straight into the registry tables, for the OGC API and tile tests.

Around (X0, Y0) in EPSG:4549: two districts side by side (10 km squares), two platforms, one
corridor, two approvals, three supplies, a 5 × 4 grid of 100 m parcels (20) with Chinese text and
three enterprises (points) with outputs. Coordinates are exact so tests can check them.
"""

from __future__ import annotations

from datetime import date

import shapely
from sqlalchemy import Engine, text

from gis.serving import features_sql
from gis.serving.collections import forget_schema
from tests.factories import uscc
from tests.land_helpers import X0, Y0, insert, rect

N_PARCELS = 20


def parcel_geom(i: int) -> shapely.Geometry:
    """Parcel i: 100 m × 100 m squares 200 m apart, 5 per row."""
    return rect(1000 + (i % 5) * 200, 1000 + (i // 5) * 200, 100, 100)


def city_client(http, db):  # type: ignore[no-untyped-def]
    """The small city loaded into ``db`` and the schema and extents caches forgotten: ``http``
    (the body of the ``city`` fixtures)."""
    load_city(db)
    forget_schema()
    features_sql.forget_extents()
    return http


def load_city(engine: Engine) -> None:
    insert(
        engine,
        "districts",
        [
            {
                "code": "330102",
                "name": "上城区",
                "main_urban": True,
                "geom": shapely.box(X0 - 10_000, Y0 - 10_000, X0 + 10_000, Y0 + 10_000),
            },
            {
                "code": "330182",
                "name": "建德市",
                "main_urban": False,
                "geom": shapely.box(X0 + 10_000, Y0 - 10_000, X0 + 30_000, Y0 + 10_000),
            },
        ],
    )
    insert(
        engine,
        "platforms",
        [
            {
                "code": "PT01",
                "name": "钱塘新区工业园",
                "level": "国家级",
                "type": "经济技术开发区",
                "district_code": "330102",
                "featured_industries": ["新能源", "智能制造"],
                "geom": rect(500, 500, 2000, 2000),
            },
            {
                "code": "PT02",
                "name": "建德小微园",
                "level": "市级",
                "type": "小微企业园",
                "district_code": "330182",
                "geom": rect(15_000, 0, 1000, 1000),
            },
        ],
    )
    insert(
        engine,
        "corridors",
        [{"code": "CDZZ", "name": "城东智造大走廊", "geom": rect(0, 0, 3000, 3000)}],
    )
    insert(
        engine,
        "approvals",
        [
            {
                "doc_no": "浙土字〔2019〕1号",
                "batch_name": "2019年第一批",
                "approved_on": date(2019, 5, 1),
                "geom": rect(900, 900, 500, 300),
            },
            {
                "doc_no": "浙土字〔2022〕7号",
                "batch_name": "2022年第七批",
                "approved_on": date(2022, 3, 1),
                "geom": rect(5000, 5000, 400, 400),
            },
        ],
    )
    insert(
        engine,
        "supplies",
        [
            {
                "supply_no": f"3301022019B{i:05d}",
                "method": "出让",
                "land_use_code": "1001",
                "supplied_on": date(2019 + i, 6, 1),
                "agreed_start": date(2020 + i, 1, 1),
                "grantee_name": f"杭州测试{i}有限公司",
                "geom": parcel_geom(i),
            }
            for i in range(3)
        ],
    )
    insert(
        engine,
        "parcels",
        [
            {
                "parcel_no": f"DK-{i:04d}",
                "land_use_code": "1001",
                "actual_use": "工业" if i % 4 else "挪作他用",
                "floor_area_m2": 5000.0 + i * 1000,
                "holder_name": f"杭州测试{i}有限公司",
                "district_code": "330102",
                "supply_no": f"3301022019B{i:05d}" if i < 3 else None,
                "geom": parcel_geom(i),
            }
            for i in range(N_PARCELS)
        ],
    )
    insert(
        engine,
        "enterprises",
        [
            {
                "uscc": uscc(i),
                "name": f"杭州测试{i}有限公司",
                "industry_code": "3311",
                "above_size": i == 0,
                "parcel_nos": [f"DK-{i:04d}"],
                "geom": shapely.Point(parcel_geom(i).centroid),
            }
            for i in range(3)
        ],
    )
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO outputs (uscc, year, tax_paid, energy_tce, emissions_t, "
                    "batch_id, row_hash) VALUES (:u, 2024, :t, 10, 1, 1, 'x')"
                ),
                {"u": uscc(i), "t": 100.0 * (i + 1)},
            )
