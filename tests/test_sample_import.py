"""The committed sample city imports cleanly, as the contract's bureau data comes."""

from __future__ import annotations

import json

from sqlalchemy import text

from tests.conftest import SAMPLE_DIR, load_directory


def test_sample_city_loads_every_layer_without_rejections(sample_engine):
    reports = {r["layer"]: r for r in sample_engine.sample_reports}
    assert list(reports) == [
        "XZQ", "PT", "ZL", "PZ", "GD", "DK", "QY", "CC", "XM", "BD", "TJ", "MB", "RW",
    ]  # fmt: skip
    assert all(r["rejected"] == 0 and r["status"] == "loaded" for r in reports.values())
    # the way bureau data comes: GBK with .cpg, PT without .cpg (manifest), GCJ-02 XLSX
    assert reports["DK"]["encoding"] == "gbk" and "from .cpg" in reports["DK"]["warnings"][0]
    assert "--encoding option" in reports["PT"]["warnings"][0]
    with sample_engine.connect() as c:
        n = dict(
            c.execute(
                text(
                    "SELECT 'dk', count(*) FROM parcels UNION ALL "
                    "SELECT 'qy', count(*) FROM enterprises UNION ALL "
                    "SELECT 'years', count(DISTINCT year) FROM outputs UNION ALL "
                    "SELECT 'xzq', count(*) FROM districts UNION ALL "
                    "SELECT 'gcj', count(*) FROM enterprises WHERE source_crs = 'gcj02'"
                )
            ).all()
        )
        names = c.execute(text("SELECT name FROM districts ORDER BY code")).scalars().all()
    assert n["dk"] >= 5000 and n["qy"] >= 3000 and n["years"] == 5 and n["xzq"] == 13
    assert n["gcj"] > 0
    assert names[:4] == ["上城区", "拱墅区", "西湖区", "滨江区"]
    planted = json.loads((SAMPLE_DIR / "planted.json").read_text("utf-8"))
    not_ind = planted.get("not_industrial", [])
    assert reports["DK"]["not_industrial"]["count"] == len(not_ind)


def test_reimporting_the_sample_changes_nothing(sample_engine):
    again = load_directory(sample_engine, SAMPLE_DIR)
    assert all(r["inserted"] == 0 and r["updated"] == 0 for r in again)
    assert sum(r["unchanged"] for r in again) == sum(r["rows_read"] for r in again)


def test_the_city_loaded_file_by_file_equals_a_recompute_from_scratch(sample_engine):
    """Each import refreshes what its file changed (a first load: every row of its layer); the
    derived tables after the whole sample city's imports equal a recompute from scratch as of
    the day they were judged (``landlink verify-derived``)."""
    from gis.core import recompute_check

    with sample_engine.connect() as c:
        found = recompute_check.differences(c, recompute_check.judged_as_of(c))
    assert found == [], "\n".join(str(d) for d in found)


def test_a_first_load_of_projects_relinks_no_enterprise_and_recomputes_no_land(sample_engine):
    """XM's first load comes after QY and CC: every project is linked anew (the links change
    whole), but no enterprise's or zone's link is made again, so per_mu, which reads only
    those, recomputes nothing (it recomputed every enterprise while the linkage said ALL for
    every kind; the file-by-file test above shows the result equals a recompute)."""
    with sample_engine.connect() as c:
        counts = c.execute(
            text(
                "SELECT counts FROM analysis_runs WHERE trigger LIKE 'import:XM:%' "
                "ORDER BY id LIMIT 1"
            )
        ).scalar_one()
    linked = counts["producers"]["linkage"]["changed"]
    assert linked["links"] == "all" and linked["parcel_links"] == "all"
    assert not {"land_links", "zone_links", "enterprise_parcel"} & set(linked)
    assert counts["producers"]["per_mu"]["changed"] == {}
