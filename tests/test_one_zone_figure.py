"""One definition of every zone figure: on the analysed sample city, each district, platform and
corridor has ONE 亩均税收 (and 亩均产值) per year, wherever the system shows it.

The definition is the zone's ``per_mu`` row (gis/economy/per_mu.py, read by
``per_mu.zone_figures``). Every consumer must show that value (or nothing where the zone has no
row): the §7 indicators (``area_indicators``), the platform kinds (the current kinds the graph
keeps and the live classification), the tile zone statistics (``tile_zone_stats``, what the
zone tiles carry: the latest year) and the pages' API (``/api/indicators``, ``/api/platforms``).
Each consumer is its own test, so a failure names the one that differs.
"""

from __future__ import annotations

import json
import math
from datetime import date

import httpx
import pytest
from sqlalchemy import create_engine, text

from gis.economy.per_mu import ZONE_LEVELS, zone_figures
from tests.conftest import SAMPLE_DIR, database_copy, serve_process

AS_OF = date.fromisoformat(
    json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))["reference_date"]
)
FIGURES = ("tax_per_mu", "output_per_mu")


@pytest.fixture(scope="module")
def city(analysed_sample):
    """An analysed copy of the sample city (every derived table from scratch as of AS_OF:
    conftest's ``analysed_sample``) and a live server on it:
    ``(engine, base_url, analyst headers)``."""
    from gis.core import tokens

    with database_copy(analysed_sample, "onezone") as url:
        eng = create_engine(url)
        with eng.begin() as c:
            token = tokens.create(c, "analyst", "one-zone-figure")
        try:
            with serve_process(url) as base:
                yield eng, base, {"Authorization": f"Bearer {token}"}
        finally:
            eng.dispose()


@pytest.fixture(scope="module")
def truth(city) -> dict[tuple[str, str, int], dict]:
    """(level, code, year) -> the per_mu zone row: the one definition."""
    eng, _, _ = city
    out = {}
    with eng.connect() as conn:
        years = conn.execute(
            text("SELECT DISTINCT year FROM per_mu WHERE level = ANY(:l) ORDER BY 1"),
            {"l": list(ZONE_LEVELS)},
        ).scalars()
        for y in list(years):
            for level in ZONE_LEVELS:
                for code, f in zone_figures(conn, level, y).items():
                    out[(level, code, y)] = f
    return out


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def differences(
    truth: dict, shown: dict[tuple[str, str, int], float | None], figure: str
) -> list[str]:
    """Where ``shown`` (key -> value; a zone it has no value for: None or absent) differs from
    per_mu's zone rows in the levels and years it covers."""
    covered = {(lv, y) for lv, _, y in shown}
    out = []
    zones = {k for k in truth if (k[0], k[2]) in covered} | set(shown)
    for k in sorted(zones, key=str):
        want = truth.get(k, {}).get(figure)
        got = shown.get(k)
        if not same(want, got):
            out.append(f"{k}: per_mu {want!r}, shown {got!r}")
    return out


def test_the_sample_city_has_zone_figures_to_compare(truth):
    levels = {lv for lv, _, _ in truth}
    assert levels == set(ZONE_LEVELS), levels
    taxed = [k for k, f in truth.items() if f["tax_per_mu"]]
    assert len(taxed) >= 10, "too few zones with a 亩均税收 to compare"


@pytest.mark.parametrize("figure", FIGURES)
def test_section_7_indicators(city, truth, figure):
    eng, _, _ = city
    with eng.connect() as conn:
        shown = {
            (r.level, r.code, r.year): r.value
            for r in conn.execute(
                text("SELECT level, code, year, value FROM area_indicators WHERE indicator = :i"),
                {"i": figure},
            )
        }
    assert shown, "no §7 indicators"
    assert differences(truth, shown, figure) == []


def test_platform_kinds_current_and_live(city, truth):
    from gis.platforms.platform_kinds import classify

    eng, _, _ = city
    with eng.connect() as conn:
        run = conn.execute(
            text("SELECT id, tax_year FROM platform_kind_runs WHERE trigger = 'current'")
        ).one()
        current = {
            ("platform", r.platform_code, run.tax_year): r.tax_per_mu
            for r in conn.execute(
                text("SELECT platform_code, tax_per_mu FROM platform_kinds WHERE run_id = :r"),
                {"r": run.id},
            )
        }
        live = classify(conn, AS_OF)
    assert run.tax_year is not None and current
    assert differences(truth, current, "tax_per_mu") == []
    shown = {
        ("platform", it["platform_id"], live["tax_year"]): it["tax_per_mu"] for it in live["items"]
    }
    assert differences(truth, shown, "tax_per_mu") == []
    # and the figure each kind's reason quotes
    for it in live["items"]:
        reason = next((r for r in it["reasons"] if r["test"] == "tax_per_mu"), None)
        if reason is not None and it["tax_per_mu"] is not None:
            assert abs(reason["figure"] - it["tax_per_mu"]) < 1e-4, it["platform_id"]


def test_tile_zone_statistics(city, truth):
    """The zone tiles carry ``tile_zone_stats`` (the latest year of per_mu's zone rows)."""
    eng, _, _ = city
    with eng.connect() as conn:
        latest = conn.execute(
            text("SELECT max(year) FROM per_mu WHERE level = ANY(:l)"), {"l": list(ZONE_LEVELS)}
        ).scalar_one()
        shown = {
            (r.level, r.code, latest): r.tax_per_mu
            for r in conn.execute(text("SELECT level, code, tax_per_mu FROM tile_zone_stats"))
        }
    assert shown, "no tile zone statistics"
    assert differences(truth, shown, "tax_per_mu") == []


@pytest.mark.parametrize("level", ZONE_LEVELS)
def test_the_pages_api_indicators(city, truth, level):
    _, base, analyst = city
    years = sorted({y for lv, _, y in truth if lv == level})
    for year in years:
        r = httpx.get(
            f"{base}/api/indicators", params={"level": level, "year": year}, headers=analyst
        )
        assert r.status_code == 200, r.text
        for figure in FIGURES:
            shown = {
                (level, z["code"], year): (z["indicators"].get(figure) or {}).get("value")
                for z in r.json()["items"]
            }
            assert differences(truth, shown, figure) == [], (year, figure)


def test_the_pages_api_platforms(city, truth):
    _, base, analyst = city
    r = httpx.get(f"{base}/api/platforms", params={"as_of": AS_OF.isoformat()}, headers=analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    shown = {
        ("platform", it["platform_id"], body["tax_year"]): it["tax_per_mu"] for it in body["items"]
    }
    assert differences(truth, shown, "tax_per_mu") == []


def test_the_zone_tiles_properties(city, truth):
    """What the map draws below the parcel zoom: the ``districts`` and ``platforms`` layers of
    the parcels tiles (analyst: with 亩均税收), every tile over the city at z10."""
    import mapbox_vector_tile

    from gis.serving.tiles import tile_for

    eng, base, analyst = city
    with eng.connect() as conn:
        b = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(ST_Transform(geom, 4326)) AS e FROM districts) x"
            )
        ).one()
        latest = conn.execute(
            text("SELECT max(year) FROM per_mu WHERE level = ANY(:l)"), {"l": list(ZONE_LEVELS)}
        ).scalar_one()
    z = 10
    (x0, y0), (x1, y1) = tile_for(b[0], b[3], z), tile_for(b[2], b[1], z)
    shown: dict[tuple[str, str, int], float | None] = {}
    seen: dict[tuple[str, str, int], set] = {}
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            r = httpx.get(f"{base}/tiles/parcels/{z}/{x}/{y}.mvt", headers=analyst, timeout=60)
            assert r.status_code in (200, 204), r.text
            layers = mapbox_vector_tile.decode(r.content) if r.content else {}
            for layer, level in (("districts", "district"), ("platforms", "platform")):
                for f in layers.get(layer, {}).get("features", []):
                    k = (level, f["properties"]["code"], latest)
                    shown[k] = f["properties"].get("tax_per_mu")
                    seen.setdefault(k, set()).add(shown[k])
    assert {lv for lv, _, _ in shown} == {"district", "platform"}
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}  # one figure in every tile
    assert differences(truth, shown, "tax_per_mu") == []
