"""The map page end to end, in headless Chromium, against the sample city.

The app runs as `landlink serve` (conftest's ``sample_server``) on an analysed copy of the sample
city (sample_shapefiles/, imported and analysed as `make demo` does, as of the sample's reference
date) and its planted cases. tests/e2e/map_page.mjs drives Debian's /usr/bin/chromium
with playwright-core (npm, no browser download) and records each step; the tests below assert on
those records. Screenshots and exported files land in test-artifacts/e2e/ (git-ignored).

Needs ``make web`` (node modules and the vendored MapLibre / ECharts) and Debian's ``chromium``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pyogrio
import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from tests.conftest import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("map_page.mjs")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("LANDLINK_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing: apt-get install chromium (make test installs it)"
    if not shutil.which("node"):
        return "node missing: apt-get install nodejs npm (make test installs them)"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "node_modules/playwright-core missing: run 'make web'"
    if not (ROOT / "app" / "static" / "vendor" / "maplibre-gl.js").exists():
        return "app/static/vendor/ not populated: run 'make web'"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def city(sample_server) -> dict:
    """planted.json of the sample city that ``sample_server`` serves (imported and analysed as
    `make demo` does, as of the sample's reference date), with its analyst token."""
    planted = json.loads((SAMPLE_DIR / "planted.json").read_text(encoding="utf-8"))
    planted["_token"] = sample_server[2]
    return planted


@pytest.fixture(scope="module")
def served_db(sample_server):
    """The served copy's database."""
    return sample_server[1]


@pytest.fixture(scope="module")
def warm(sample_server, city) -> str:
    """One low-zoom parcel tile before the browser asks for forty at once."""
    import httpx

    server = sample_server[0]
    r = httpx.get(f"{server}/tiles/parcels/8/213/105.mvt", timeout=120)
    assert r.status_code in (200, 204, 404), r.text
    return server


def _bbox_center(engine, table: str, key: str, value: str) -> tuple[list[float], list[float]]:
    with engine.connect() as conn:
        r = conn.execute(
            text(
                f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b), ST_X(c), ST_Y(c) FROM "
                f"(SELECT ST_Transform(ST_Envelope(geom), 4326) AS b, "
                f"ST_Transform(ST_PointOnSurface(geom), 4326) AS c FROM {table} "
                f"WHERE {key} = :v) x"
            ),
            {"v": value},
        ).one()
    return list(r[:4]), list(r[4:])


@pytest.fixture(scope="module")
def cases(city, served_db) -> dict:
    """The planted cases the page is checked against, with what the page needs to find them."""
    engine = served_db
    with engine.connect() as conn:
        # a planted top-class firm with a parcel, by name
        uscc, name = conn.execute(
            text(
                "SELECT uscc, name FROM enterprises WHERE uscc = ANY(:u) "
                "AND cardinality(parcel_nos) > 0 ORDER BY uscc LIMIT 1"
            ),
            {"u": city["evaluation"]["A"]},
        ).one()
        # a parcel on a supply record planted as idle (闲置, 1-2 years)
        idle_parcel, idle_supply = conn.execute(
            text(
                "SELECT parcel_no, supply_no FROM parcels WHERE supply_no = ANY(:s) "
                "ORDER BY parcel_no LIMIT 1"
            ),
            {"s": city["idle"]["idle"]},
        ).one()
        tax_parcel = conn.execute(
            text(
                "SELECT p.parcel_no FROM parcels p WHERE p.parcel_no = ANY(:d) "
                "AND EXISTS (SELECT 1 FROM enterprises e WHERE p.parcel_no = ANY(e.parcel_nos)) "
                "ORDER BY p.parcel_no LIMIT 1"
            ),
            {"d": city["low_efficiency"]["tax_per_mu"]},
        ).scalar_one()
        city_box = conn.execute(
            text(
                "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
                "(SELECT ST_Transform(ST_SetSRID(ST_Extent(geom), 4549), 4326) b FROM districts) x"
            )
        ).one()
    bbox, center = _bbox_center(engine, "parcels", "parcel_no", idle_parcel)
    return {
        "enterprise": {"uscc": uscc, "name": name},
        "idle_parcel": {
            "parcel_no": idle_parcel,
            "supply_no": idle_supply,
            "bbox": bbox,
            "center": center,
        },
        "idle_supplies": city["idle"]["idle"],
        "tax_parcel": {"parcel_no": tax_parcel},
        "city_bbox": list(city_box),
    }


@pytest.fixture(scope="module")
def run(warm, city, cases, report_measured):
    """Run the browser script once; every test reads its records. The run works in a private
    folder (not pytest's temp, which a concurrent pytest run may prune); its screenshots and
    exports are then copied to test-artifacts/e2e/."""
    server = warm
    tmp = Path(tempfile.mkdtemp(prefix="landlink-e2e-"))
    out = tmp / "artifacts"
    config = {
        "base": server,
        "token": city["_token"],
        "out": str(out),
        "tmp": str(tmp),
        "chromium": CHROMIUM,
        "cases": cases,
    }
    cfg, res = tmp / "config.json", tmp / "results.json"
    cfg.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    p = subprocess.run(
        ["node", str(SCRIPT), str(cfg), str(res)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.exists(), f"browser script wrote nothing:\n{p.stdout}\n{p.stderr}"
    results = json.loads(res.read_text(encoding="utf-8"))
    shutil.copy(res, out / "results.json")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    shutil.copytree(out, ARTIFACTS)
    for f in results["steps"].get("export", {}).get("files", {}).values():
        f["file"] = str(ARTIFACTS / Path(f["file"]).name)
    assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
    load = results["steps"].get("load", {})
    timings = load.get("timings", {})
    # measured, printed, not asserted (DOD: first map render under 2 s on this machine)
    report_measured(
        f"[e2e] first map render {timings.get('firstRender')} ms after navigation "
        f"(map load {timings.get('load')} ms; goto to ready {load.get('wall_ms')} ms; "
        f"sources {load.get('mode')}); second visit "
        f"{results['steps'].get('reload', {}).get('timings', {}).get('firstRender')} ms; "
        f"{results['requests']} requests; "
        f"screenshots in {ARTIFACTS}"
    )
    yield results
    shutil.rmtree(tmp, ignore_errors=True)


def _step(run: dict, name: str) -> dict:
    s = run["steps"].get(name)
    assert s is not None, f"step {name} did not run"
    assert s["ok"], f"step {name} failed: {s.get('error')}"
    return s


def test_page_loads_without_console_errors_or_outside_requests(run) -> None:
    load = _step(run, "load")
    assert load["timings"]["firstRender"] > 0
    assert not load["errors"], load["errors"]
    assert run["console_errors"] == []
    assert run["outside_requests"] == []


def test_map_draws_the_city_and_its_parcels(run) -> None:
    s = _step(run, "tiles_render")
    # a blank canvas (no WebGL) or a failed source leaves only the background colour
    assert s["city"]["share"] > 0.2, s
    assert s["parcels"]["share"] > 0.2, s
    assert s["parcels"]["colours"] > 3, s


def test_print_button_opens_the_view_as_a_pdf(run, cases) -> None:
    """打印 opens /api/print with the view's bbox, the visible layers and the chosen paper."""
    from urllib.parse import parse_qs, urlsplit

    s = _step(run, "print")
    url = urlsplit(s["url"])
    assert url.path.endswith("/api/print")
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    bbox = [float(v) for v in q["bbox"].split(",")]
    assert all(abs(a - b) < 1e-5 for a, b in zip(bbox, s["view"], strict=True)), (bbox, s["view"])
    # the page's default visible layers, in the page's order
    assert q["layers"] == "districts,corridors,platforms,parcels"
    assert q["size"] == "A3" and q["orientation"] == "landscape" and q["title"] == "全市工业用地"
    assert q["parcel_colour"] == "use"
    assert s["opened"]
    assert s["pdf"]["status"] == 200 and s["pdf"]["type"] == "application/pdf"
    assert s["pdf"]["head"] == "%PDF-"


def test_search_finds_a_planted_enterprise(run, cases) -> None:
    s = _step(run, "search_enterprise")
    assert s["hit"]["kind"] == "enterprise"
    assert s["hit"]["id"] == cases["enterprise"]["uscc"]
    assert s["by_uscc"] == cases["enterprise"]["uscc"]
    x1, y1, x2, y2 = s["hit"]["bbox"]
    lon, lat = s["center"]  # the map flew there
    assert x1 - 0.01 <= lon <= x2 + 0.01 and y1 - 0.01 <= lat <= y2 + 0.01


def test_clicking_a_planted_idle_parcel_opens_its_dossier(run, cases) -> None:
    s = _step(run, "click_idle_parcel")
    assert s["parcel"] == cases["idle_parcel"]["parcel_no"]
    assert s["idle_status"] == "idle"
    assert s["chain"] == "unused" and s["here"] == "供而未用"
    assert cases["idle_parcel"]["supply_no"] in s["text"]
    assert "亩" in s["text"]


def test_filter_returns_the_planted_idle_records(run, cases) -> None:
    s = _step(run, "reserve_filter")
    assert s["total"] == len(cases["idle_supplies"])
    assert sorted(s["keys"]) == sorted(cases["idle_supplies"])
    assert s["rows"] == len(cases["idle_supplies"])  # the list and the map hold the same rows


def test_a_drawn_rectangle_filters(run, cases) -> None:
    s = _step(run, "reserve_rectangle")
    assert cases["idle_parcel"]["supply_no"] in s["keys"]
    assert s["selected"] == cases["idle_parcel"]["supply_no"]  # clicked on the map
    assert 1 <= s["total"] < len(cases["idle_supplies"])


def test_a_drawn_polygon_filters(run, cases) -> None:
    s = _step(run, "reserve_polygon")
    assert cases["idle_parcel"]["supply_no"] in s["keys"]
    assert 1 <= s["total"] < len(cases["idle_supplies"])


def test_export_downloads_files_that_open(run, cases) -> None:
    files = _step(run, "export")["files"]
    expected = sorted(cases["idle_supplies"])
    wb = load_workbook(files["xlsx"]["file"], read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    header = [str(h) for h in rows[3]]  # heading, 制表日期, Chinese headers, then the codes
    col = header.index("supply_id")
    assert sorted(str(r[col]) for r in rows[4:-1] if r[col]) == expected
    gpkg = pyogrio.read_dataframe(files["gpkg"]["file"])
    assert len(gpkg) == len(expected) and gpkg.geometry.notna().all()
    assert files["shp"]["bytes"] > 0 and files["shp"]["name"].endswith(".zip")
    shp = pyogrio.read_dataframe(f"/vsizip/{files['shp']['file']}")
    assert len(shp) == len(expected)


def test_signed_in_export_sends_the_token_as_a_header(run) -> None:
    s = _step(run, "analyst_export")
    assert s["head"] == "PK" and s["name"].endswith(".xlsx"), s
    assert s["requests"] >= 1 and not s["token_in_url"]


def test_public_view_shows_no_tax_figure(run) -> None:
    s = _step(run, "public_no_tax")
    assert s["chart"] == 0 and s["locked"] == 1
    assert s["tax_radio_disabled"]
    assert s["leaks"] == [], f"tax figures sent to a public caller by {s['leaks']}"
    assert "万元/亩" not in s["text"]


def test_public_page_received_no_restricted_figure(run) -> None:
    s = _step(run, "public_leaks")
    assert any("/api/indicators" in u or "/api/land/summary" in u for u in s["checked"])
    assert s["leaks"] == [], f"restricted figures sent to a public caller by {s['leaks']}"


def test_analyst_sees_tax_by_year(run) -> None:
    s = _step(run, "analyst_tax")
    assert s["token_in_session"]
    assert "亩均税收" in s["text"]
    public = run["steps"]["public_no_tax"]["text"]
    assert public != s["text"]
    assert s["painted"]["share"] > 0.2


def test_dashboard_draws_charts(run) -> None:
    s = _step(run, "dashboard")
    assert s["charts"] >= 2


def test_plan_tab_lists_targets_items_and_overdue_tasks(run) -> None:
    """The 目标与任务 tab: the sample's targets of the latest year with their states (both met
    and behind, tax actuals withheld from the public page), what counts towards a 盘活 target,
    and the overdue tasks of the plan's table."""
    s = _step(run, "plan")
    assert s["rows"] > 0
    assert "已完成" in s["table"] and "进度滞后" in s["table"], s["table"][:400]
    assert "亩均税收" in s["table"] and "—" in s["table"]
    assert "计入" in s["items"], s["items"][:300]
    # all tasks, then the overdue ones only: as many rows as the first summary counted overdue
    overdue = int(s["all_tasks"].split("逾期未完成")[1].split("项")[0])
    assert overdue > 0 and s["task_rows"] == overdue + 1, (s["all_tasks"], s["tasks"])
    assert "逾期未完成" in s["task_table"]


def test_dashboard_shows_the_survey(run, sample_server) -> None:
    import httpx

    s = _step(run, "dashboard")["survey"]
    api = httpx.get(f"{sample_server[0]}/api/survey", params={"level": "district"}, timeout=120)
    body = api.json()
    assert s["state"]["level"] == "district" and s["state"]["rows"] == len(body["rows"])
    assert s["state"]["lists"] == {n: x["count"] for n, x in body["lists"].items()}
    assert s["heads"][1:3] == ["批而未供", "供而未用"] and "达标" in s["heads"]
    assert s["cities"][0] == "全市"
    for href in s["downloads"]:  # the whole workbook and each list, as XLSX
        r = httpx.get(href, timeout=120)
        assert r.status_code == 200 and r.content[:2] == b"PK", href
