"""Annual targets (MB) and their progress (gis/management/targets.py): hand-worked figures on a
small city imported from files, the row API moving a 盘活 target, a 淘汰 target on the sample
city, restricted actuals withheld from viewers, and MB's validation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
import shapely
from sqlalchemy import create_engine, text

from gis.core import graph, recompute_check, tokens
from gis.core.graph import ALL, CALENDAR, Changes
from gis.core.layers import M2_PER_MU
from gis.ingest import ImportOptions, import_file
from gis.ingest.errors import ImportRejected
from gis.ingest.pipeline import import_rows
from gis.ingest.retire import retire
from gis.lands.detection import run_detection
from gis.management.targets import share_of_year
from tests import factories as fx
from tests.conftest import bearer, database_copy, sample_as_of

MU = 100 * 100 / M2_PER_MU  # a 100 × 100 m box: 15 亩
PROGRESS = ["target_progress", "target_progress_items"]


def _csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return path


def _load(engine, code: str, path: Path) -> dict:
    return import_file(engine, code, path, ImportOptions())


def _city(engine, d: Path) -> None:
    """Two districts (330102 west, 330182 east); platform PT01 over x -100..3000 in 330102.

    Supplies GD-0..2 (boxes at x 0, 1000, 2000, 100 × 100 m = 15 亩 each, agreed start
    2019-09-01): GD-0 started 2019-10-01; GD-1 and GD-2 not started: idle ≥ 2 years.
    Parcel DK-0000 on GD-0 (plot ratio 12,000 / 10,000 = 1.2, the contract's floor), its firm
    uscc(0) (HYDM 3983) with 2024 output GYZCZ 3,000 and SJSJ 150: 亩均产值 200, 亩均税收 10."""
    fx.districts(d)
    _load(engine, "XZQ", d / "XZQ.shp")
    fx.write_shp(
        d / "PT.shp",
        [{"PTDM": "PT01", "PTMC": "测试开发区", "PTJB": "省级", "XZQDM": "330102"}],
        [shapely.box(fx.X0 - 100, fx.Y0 - 100, fx.X0 + 3000, fx.Y0 + 200)],
    )
    _load(engine, "PT", d / "PT.shp")
    fx.supplies(d, 3, SJKGSJ=["2019-10-01", None, None])
    _load(engine, "GD", d / "GD.shp")
    fx.parcels(d, 1)
    _load(engine, "DK", d / "DK.shp")
    _csv(
        d / "QY.csv",
        [{"TYSHXYDM": fx.uscc(0), "QYMC": "杭州测试0有限公司", "HYDM": "3983", "GMYS": 1,
          "DKBH": "DK-0000"}],
    )  # fmt: skip
    _load(engine, "QY", d / "QY.csv")
    _csv(
        d / "CC.csv",
        [{"TYSHXYDM": fx.uscc(0), "ND": 2024, "GYZCZ": 3000.0, "SJSJ": 150.0, "GYZJZ": 900.0}],
    )
    _load(engine, "CC", d / "CC.csv")


def _progress(engine, year: int | None = None) -> dict[tuple, dict]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT * FROM target_progress WHERE CAST(:y AS int) IS NULL OR year = :y "
                "ORDER BY 1, 2, 3, 4"
            ),
            {"y": year},
        ).all()
    return {(r.year, r.level, r.zone_code, r.indicator): dict(r._mapping) for r in rows}


def test_share_of_year_and_the_year_over() -> None:
    assert share_of_year(2024, date(2023, 12, 31)) == 0.0
    assert share_of_year(2024, date(2024, 1, 1)) == pytest.approx(1 / 366)
    assert share_of_year(2024, date(2024, 7, 1)) == pytest.approx(183 / 366)
    assert share_of_year(2024, date(2024, 12, 31)) == 1.0
    assert share_of_year(2024, date(2026, 6, 30)) == 1.0


def test_indicator_targets_met_and_behind_at_an_as_of_date(db, tmp_path: Path) -> None:
    _city(db, tmp_path)
    _csv(
        tmp_path / "MB.csv",
        [
            {"ND": 2024, "JB": "区县", "DM": "330102", "ZB": "亩均产值", "MBZ": 180,
             "ZRDW": "上城区人民政府"},
            {"ND": 2024, "JB": "平台", "DM": "PT01", "ZB": "亩均产值", "MBZ": 250},
            {"ND": 2024, "JB": "平台", "DM": "PT01", "ZB": "亩均税收", "MBZ": 12.5},
            {"ND": 2024, "JB": "区县", "DM": "330182", "ZB": "亩均产值", "MBZ": 100},
        ],
    )  # fmt: skip
    _load(db, "MB", tmp_path / "MB.csv")
    # judged after the year: 200 >= 180 met (111.11 %); 200 / 250 = 80 % behind; 10 / 12.5 = 80 %
    p = _progress(db)
    d = p[(2024, "区县", "330102", "亩均产值")]
    assert d["actual"] == pytest.approx(3000 / MU) and d["state"] == "met"
    assert d["completion"] == pytest.approx(round(200 / 180 * 100, 2))
    pt = p[(2024, "平台", "PT01", "亩均产值")]
    assert pt["actual"] == pytest.approx(200) and pt["completion"] == 80.0
    assert pt["state"] == "behind" and pt["share_of_year"] == 1.0
    assert p[(2024, "平台", "PT01", "亩均税收")]["completion"] == 80.0
    # a district without any output: no figure
    assert p[(2024, "区县", "330182", "亩均产值")]["state"] == "no_data"
    # as of 1 July 2024 (183 of 366 days gone): 80 % >= 50 %: on track; the met one stays met
    with db.begin() as c:
        graph.refresh(c, Changes(calendar={ALL}), as_of=date(2024, 7, 1), trigger="test")
    p = _progress(db)
    assert p[(2024, "平台", "PT01", "亩均产值")]["state"] == "on_track"
    assert p[(2024, "平台", "PT01", "亩均产值")]["share_of_year"] == pytest.approx(183 / 366)
    assert p[(2024, "区县", "330102", "亩均产值")]["state"] == "met"
    # a changed MB row recomputes its target: 250 -> 190 is met
    _csv(tmp_path / "MB2.csv", [{"ND": 2024, "JB": "平台", "DM": "PT01", "ZB": "亩均产值",
                                 "MBZ": 190}])  # fmt: skip
    _load(db, "MB", tmp_path / "MB2.csv")
    assert _progress(db)[(2024, "平台", "PT01", "亩均产值")]["state"] == "met"
    # a change of the output moves the actual (CC -> per_mu -> area_indicators -> targets)
    _csv(
        tmp_path / "CC.csv",
        [{"TYSHXYDM": fx.uscc(0), "ND": 2024, "GYZCZ": 2250.0, "SJSJ": 150.0, "GYZJZ": 900.0}],
    )
    _load(db, "CC", tmp_path / "CC.csv")
    pt = _progress(db)[(2024, "平台", "PT01", "亩均产值")]
    assert pt["actual"] == pytest.approx(150) and pt["completion"] == pytest.approx(78.95)
    assert pt["state"] == "behind"  # judged as of today now: 2024 is over


def test_a_supply_started_through_the_row_api_counts_towards_pan_huo(
    db, server, tmp_path: Path
) -> None:
    _city(db, tmp_path)
    year = date.today().year
    _csv(
        tmp_path / "MB.csv",
        [
            {"ND": year, "JB": "区县", "DM": "330102", "ZB": "PH_GEWY", "MBZ": 20},
            {"ND": year, "JB": "平台", "DM": "PT01", "ZB": "PH_GEWY", "MBZ": 10},
        ],
    )
    _load(db, "MB", tmp_path / "MB.csv")
    key = (year, "区县", "330102", "PH_GEWY")
    assert _progress(db)[key]["state"] == "no_data"  # no baseline yet
    base = run_detection(db, user="test", baseline=True)
    assert base["baseline_year"] == year
    p = _progress(db)[key]
    assert p["baseline_run_id"] == base["id"] and p["actual"] == 0 and p["items"] == 0
    with db.begin() as c:
        editor = tokens.create(c, "editor", "市规划和自然资源局", layers=["gd"])
        viewer = tokens.create(c, "viewer", "公众")
    with db.connect() as c:
        v = c.execute(
            text("SELECT max(version) FROM row_history WHERE layer = 'GD' AND key = :k"),
            {"k": "3301022019B00001"},
        ).scalar_one()
    with httpx.Client(base_url=server, timeout=120) as h:
        r = h.patch(
            "/api/layers/gd/rows/3301022019B00001",
            json={"properties": {"SJKGSJ": f"{year}-01-02"}},
            headers=bearer(editor, **{"If-Match": f'"{v}"'}),
        )
        assert r.status_code == 200, r.text
        # GD-1 (15 亩) has left 闲置: 15 of 20 in the district, 15 of 10 in the platform
        share = share_of_year(year, date.today())
        listed = h.get("/api/targets", params={"year": year}, headers=bearer(viewer)).json()
        by = {(t["JB"], t["DM"]): t for t in listed["items"]}
        d = by[("区县", "330102")]
        assert d["actual"] == pytest.approx(MU) and d["completion"] == pytest.approx(75.0)
        assert d["state"] == ("on_track" if 75.0 >= share * 100 else "behind")
        assert d["labels"]["MBZ"] == "目标值" and d["zone_name"] == "上城区"
        assert by[("平台", "PT01")]["state"] == "met"
        items = h.get(f"/api/targets/{d['id']}/items", headers=bearer(viewer)).json()
        assert [i["item_key"] for i in items["items"]] == ["3301022019B00001"]
        it = items["items"][0]
        assert it["reason"] == "started" and it["mu"] == pytest.approx(MU)
        assert it["change"]["layer"] == "GD" and it["change"]["version"] == v + 1
        assert it["change"]["who"] == "token:市规划和自然资源局"
        assert it["change"]["via"].startswith("request:")
        # an import starts GD-2: 30 亩, met; its item names the import batch
        fx.supplies(tmp_path, 3, SJKGSJ=["2019-10-01", f"{year}-01-02", f"{year}-02-01"])
        rep = _load(db, "GD", tmp_path / "GD.shp")
        d = h.get(f"/api/targets/{d['id']}", headers=bearer(viewer)).json()
        assert d["actual"] == pytest.approx(2 * MU) and d["state"] == "met"
        items = h.get(f"/api/targets/{d['id']}/items").json()["items"]
        assert [i["item_key"] for i in items] == ["3301022019B00001", "3301022019B00002"]
        assert items[1]["change"]["via"] == f"batch:{rep['batch_id']}"
        # kept by the items' keys, the progress equals a recompute from scratch
        with db.connect() as c:
            day = recompute_check.judged_as_of(c)
            assert recompute_check.differences(c, day, tables=PROGRESS) == []
        assert h.get("/api/targets/999999").status_code == 404


def test_mb_validation_names_row_and_field_and_changes_nothing(db, tmp_path: Path) -> None:
    _city(db, tmp_path)
    rows = [
        {"ND": 2025, "JB": "区县", "DM": "PT01", "ZB": "亩均产值", "MBZ": 100},
        {"ND": 2025, "JB": "平台", "DM": "PT01", "ZB": "工业增加值占GDP比重", "MBZ": 30},
        {"ND": 2025, "JB": "平台", "DM": "PT01", "ZB": "亩均税收", "MBZ": -1},
        {"ND": 2025, "JB": "平台", "DM": "PT01", "ZB": "高新技术产业产值占比", "MBZ": 135},
        {"ND": 2025, "JB": "平台", "DM": "PT99", "ZB": "亩均产值", "MBZ": 100},
    ]
    path = _csv(tmp_path / "MB.csv", rows)
    with pytest.raises(ImportRejected) as e:
        _load(db, "MB", path)
    errors = {(x["where"], x["field"]): x["reason"] for x in e.value.report["errors"]}
    assert "not a known district" in errors[("row 2", "DM")]
    assert "district's indicator only" in errors[("row 3", "ZB")]
    assert "≥ 0" in errors[("row 4", "MBZ")]
    assert "percent" in errors[("row 5", "MBZ")]
    assert "not a known platform" in errors[("row 6", "DM")]
    assert e.value.report["file"].endswith("MB.csv")
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM targets")).scalar_one() == 0
    # the row API validates the same way
    with pytest.raises(ImportRejected):
        import_rows(db, "MB", [rows[1]])


@pytest.fixture(scope="module")
def sample_targets(analysed_sample, tmp_path_factory):
    """A served copy of the analysed sample city with an analyst token: (base, engine, token)."""
    from tests.conftest import served_copy

    with served_copy(
        analysed_sample,
        "targets",
        tmp_path_factory.mktemp("targets"),
        {"analyst": ("analyst", "分析员", None)},
    ) as (base, eng, toks):
        yield base, eng, toks["analyst"]


def test_sample_city_targets_met_and_behind_and_tax_withheld_from_viewers(sample_targets):
    base, eng, analyst = sample_targets
    p = _progress(eng)
    assert {y for y, *_ in p} == {2024, 2025}
    states = {v["state"] for k, v in p.items() if v["kind"] == "indicator"}
    assert {"met", "behind"} <= states
    # one worked by hand: the 2025 亩均产值 of a platform, from area_indicators
    with eng.connect() as c:
        code, target, value = c.execute(
            text(
                "SELECT t.zone_code, t.target_value, a.value FROM targets t "
                "JOIN area_indicators a ON a.level = 'platform' AND a.code = t.zone_code "
                "AND a.year = t.year AND a.indicator = 'output_per_mu' "
                "WHERE t.year = 2025 AND t.level = '平台' AND t.indicator = '亩均产值' "
                "ORDER BY t.zone_code LIMIT 1"
            )
        ).one()
    row = p[(2025, "平台", code, "亩均产值")]
    assert row["actual"] == pytest.approx(value)
    assert row["completion"] == pytest.approx(round(value / target * 100, 2))
    assert row["state"] == ("met" if value >= target else "behind")
    # a viewer sees the 亩均税收 target, not its actual; an analyst sees both
    q = {"year": 2025, "level": "平台", "code": code}
    pub = {t["ZB"]: t for t in httpx.get(f"{base}/api/targets", params=q).json()["items"]}
    ana = {
        t["ZB"]: t
        for t in httpx.get(f"{base}/api/targets", params=q, headers=bearer(analyst)).json()["items"]
    }
    assert pub["亩均税收"]["MBZ"] == ana["亩均税收"]["MBZ"] is not None
    assert pub["亩均税收"]["actual"] is None and pub["亩均税收"]["withheld"]
    assert pub["亩均税收"]["state"] is None and pub["亩均税收"]["completion"] is None
    assert ana["亩均税收"]["actual"] is not None and not ana["亩均税收"]["withheld"]
    assert pub["亩均产值"]["actual"] == pytest.approx(value)


def test_a_retired_backward_capacity_enterprise_counts_towards_tt(analysed_sample):
    as_of = sample_as_of()
    with database_copy(analysed_sample, "tt") as url:
        eng = create_engine(url)
        try:
            base = run_detection(eng, as_of, user="test", baseline=True)
            with eng.connect() as c:
                uscc, district, n = c.execute(
                    text(
                        "SELECT uscc, district_code, count(*) OVER (PARTITION BY district_code) "
                        "FROM detection_backward_capacity WHERE run_id = :r "
                        "AND district_code IS NOT NULL ORDER BY uscc LIMIT 1"
                    ),
                    {"r": base["id"]},
                ).one()
            year = as_of.year
            import_rows(eng, "MB", [{"ND": year, "JB": "区县", "DM": district, "ZB": "TT",
                                     "MBZ": 2}])  # fmt: skip
            key = (year, "区县", district, "TT")
            assert _progress(eng)[key]["actual"] == 0
            rep = retire(eng, "QY", [uscc], who="test")
            p = _progress(eng)[key]
            assert p["actual"] == 1 and p["completion"] == 50.0
            with eng.connect() as c:
                item = c.execute(
                    text("SELECT * FROM target_progress_items WHERE indicator = 'TT'")
                ).one()
            assert item.item_key == uscc and item.reason == "enterprise_retired"
            assert item.change["layer"] == "QY" and item.change["op"] == "retire"
            assert item.change["via"] == rep["via"]
            with eng.connect() as c:
                day = recompute_check.judged_as_of(c)
                assert recompute_check.differences(c, day, tables=PROGRESS) == []
            # the same day again (`landlink refresh` twice in a day): nothing to judge again
            with eng.begin() as c:
                ctx = graph.refresh(c, Changes({CALENDAR: {ALL}}), as_of=day)
            assert ctx.counts["target_progress"] != "all"  # no target judged again
            assert not any(ctx.changed["target_progress"].values())
            assert _progress(eng)[key] == p
            # the day moves on: judged again as of the new day, the count stays
            with eng.begin() as c:
                ctx = graph.refresh(c, Changes({CALENDAR: {ALL}}), as_of=date(year, 12, 31))
            assert ctx.counts["target_progress"] == "all"
            assert _progress(eng)[key]["state"] == "behind"
        finally:
            eng.dispose()
