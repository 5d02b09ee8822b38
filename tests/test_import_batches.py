"""The import's bulk path: first loads COPYed straight into an empty table in chunks (row hashes
and multipolygons made chunk by chunk), reference checks on the server, chunk boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS
from sqlalchemy import text

from gis.ingest import ImportOptions, ImportRejected, import_file, pipeline
from gis.ingest.geometry import GCJ02, is_gcj02
from tests.conftest import snapshot
from tests.factories import box, districts, parcels, supplies, write_shp


@pytest.fixture
def small_chunks(monkeypatch):
    """COPY in chunks of 3 rows, so that small files cross chunk boundaries."""
    monkeypatch.setattr(pipeline, "COPY_CHUNK_ROWS", 3)


def _base(db, tmp_path, n=10):
    import_file(db, "xzq", districts(tmp_path))
    import_file(db, "gd", supplies(tmp_path, n))


def test_first_load_in_chunks_then_reimport_changes_nothing(db, tmp_path, small_chunks):
    _base(db, tmp_path)
    p = parcels(tmp_path, 10)
    first = import_file(db, "dk", p)
    assert (first["inserted"], first["updated"], first["unchanged"]) == (10, 0, 0)
    assert set(first["timings_s"]) >= {"read", "validate", "geometry", "checks", "load"}
    with db.connect() as c:
        rows = c.execute(
            text(
                "SELECT parcel_no, batch_id, GeometryType(geom), ST_SRID(geom), area_m2, "
                "floor_area_m2, holder_name FROM parcels ORDER BY parcel_no"
            )
        ).all()
    assert [r[0] for r in rows] == [f"DK-{i:04d}" for i in range(10)]
    assert {(r[1], r[2], r[3]) for r in rows} == {(first["batch_id"], "MULTIPOLYGON", 4549)}
    assert all(r[4] == pytest.approx(10_000) and r[5] == 12000.0 for r in rows)
    assert rows[7][6] == "杭州测试7有限公司"
    # a row hash made in the wrong chunk would show up here as an update
    again = import_file(db, "dk", p)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 10)
    assert "refreshed" not in again
    # the upsert path (table not empty) agrees with the bulk path, row by row
    changed = parcels(tmp_path, 10, name="DK2.shp", JZMJ=[12000.0] * 8 + [1.0, 12000.0])
    rep = import_file(db, "dk", changed)
    assert (rep["inserted"], rep["updated"], rep["unchanged"]) == (0, 1, 9)


def test_bad_row_in_second_chunk_strict_names_it_and_changes_nothing(db, tmp_path, small_chunks):
    _base(db, tmp_path)
    p = parcels(
        tmp_path, 10, DZJGH=[f"3301022019B{i:05d}" if i != 7 else "NOPE" for i in range(10)]
    )
    before = snapshot(db)
    with pytest.raises(ImportRejected) as exc:
        import_file(db, "dk", p)
    assert snapshot(db) == before
    errors = exc.value.report["errors"]
    assert [(e["where"], e["key"], e["field"]) for e in errors] == [
        ("feature 7", "DK-0007", "DZJGH")
    ]
    assert "'NOPE' is not in layer GD" in errors[0]["reason"]


def test_bad_row_in_second_chunk_lenient_loads_the_rest(db, tmp_path, small_chunks):
    _base(db, tmp_path)
    p = parcels(tmp_path, 10, QLRDM=[None] * 4 + ["9133"] + [None] * 5)
    rep = import_file(db, "dk", p, ImportOptions(strict=False))
    assert (rep["inserted"], rep["rejected"]) == (9, 1)
    assert rep["errors"][0]["where"] == "feature 4"
    with db.connect() as c:
        keys = c.execute(text("SELECT parcel_no FROM parcels ORDER BY 1")).scalars().all()
    assert keys == [f"DK-{i:04d}" for i in range(10) if i != 4]
    again = import_file(db, "dk", p, ImportOptions(strict=False))
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 9)


def test_unknown_references_many_values_only_the_missing_reported(db, tmp_path):
    _base(db, tmp_path, 3)
    refs = ["3301022019B00000", "NOPE-1", "3301022019B00002", "NOPE-1", "NOPE-2"]
    p = parcels(tmp_path, 5, DZJGH=refs)
    rep = import_file(db, "dk", p, ImportOptions(strict=False))
    assert [(e["where"], e["field"]) for e in rep["errors"]] == [
        ("feature 1", "DZJGH"),
        ("feature 3", "DZJGH"),
        ("feature 4", "DZJGH"),
    ]
    assert rep["inserted"] == 2


def test_multi_ewkb_matches_st_multi():
    poly = shapely.box(500_000, 3_350_000, 500_100, 3_350_100)
    multi = shapely.MultiPolygon([poly, shapely.box(500_200, 3_350_000, 500_300, 3_350_100)])
    g = shapely.set_srid(np.array([poly, multi, None], dtype=object), 4549)
    hexes = pd.Series(shapely.to_wkb(g, hex=True, include_srid=True))
    out = pipeline.multi_ewkb(hexes)
    want = shapely.to_wkb(
        shapely.set_srid(shapely.multipolygons([poly]), 4549), hex=True, include_srid=True
    )
    assert out[0] == want
    assert out[1] == hexes[1]
    assert out[2] is None or pd.isna(out[2])
    assert shapely.equals(shapely.from_wkb(out[0]), poly)


def test_gcj02_marker_is_not_a_crs():
    assert is_gcj02(GCJ02) and is_gcj02("gcj02")
    assert not is_gcj02(CRS.from_epsg(4549)) and not is_gcj02(None)


def test_first_load_keeps_lists_bools_dates_and_odd_text(db, tmp_path, small_chunks):
    """What the Arrow CSV writer sends: text arrays with quotes and backslashes, booleans,
    dates, empty values as NULL, across chunk boundaries."""
    import_file(db, "xzq", districts(tmp_path))
    odd = 'A "quoted", back\\slash'
    item = 'A "quoted" back\\slash'  # list items split at commas too
    recs = [
        {
            "PTDM": f"PT{i}",
            "PTMC": f"平台{i}" if i != 4 else odd,
            "PTJB": "省级",
            "XZQDM": "330102",
            "TSCY": f"智能制造、{item}" if i == 4 else ("生物医药;新材料" if i % 2 else None),
            "FMQD": "2511;2521" if i % 3 == 0 else None,
        }
        for i in range(7)
    ]
    p = write_shp(tmp_path / "PT.shp", recs, [box(i) for i in range(7)])
    rep = import_file(db, "pt", p)
    assert rep["inserted"] == 7
    with db.connect() as c:
        rows = {
            r[0]: r[1:]
            for r in c.execute(
                text("SELECT code, name, featured_industries, negative_list FROM platforms")
            )
        }
    assert rows["PT4"] == (odd, ["智能制造", item], None)
    assert rows["PT3"] == ("平台3", ["生物医药", "新材料"], ["2511", "2521"])
    assert rows["PT2"] == ("平台2", None, None)
    assert import_file(db, "pt", p)["unchanged"] == 7
    gd = supplies(
        tmp_path, 7, "GD7.shp", SJKGSJ=[None, "2020/01/02", None, "20200103"] + [None] * 3
    )
    assert import_file(db, "gd", gd)["inserted"] == 7
    with db.connect() as c:
        dates = dict(c.execute(text("SELECT supply_no, actual_start::text FROM supplies")).all())
    assert dates["3301022019B00001"] == "2020-01-02" and dates["3301022019B00003"] == "2020-01-03"
    assert dates["3301022019B00000"] is None


def test_copy_csv_falls_back_to_pandas_for_mixed_columns():
    mixed = pd.DataFrame({"a": [1, "x", None], "b": [1.5, None, 2.0]})
    out = pipeline._csv(mixed)
    assert isinstance(out, str) and out.splitlines() == ["1,1.5", "x,", ",2.0"]
    typed = pd.DataFrame({"a": ["x", None], "b": [1.5, float("nan")]})
    assert bytes(pipeline._csv(typed)).decode().splitlines() == ['"x",1.5', ","]
