"""The one vocabulary (gis/core/vocabulary.py): no other copy of its labels or colours in the code,
its codes are the codes the system stores, the tile style draws with its colours, the API serves
it with an ETag, and the consumers show its labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gis.core import plan_names, vocabulary
from gis.core.detection_models import IDLE_STATUSES, REASON_CODES, UNSUPPLIED_STATUSES
from gis.core.layers import ACTUAL_USES, TASK_STATUSES
from gis.lands import chain, idle_land
from gis.map import map_layers, parcel_dossier
from gis.platforms import plan_report, platform_kinds

ROOT = Path(__file__).resolve().parent.parent
STATUS_VOCABULARIES = (
    "land_kind",
    "unsupplied_status",
    "idle_status",
    "low_efficiency_reason",
    "chain_stage",
    "eval_class",
    "platform_kind",
    "block_function",
    "tax_band",
    "task_status",
    "task_deadline",
)
HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")


def _scanned() -> list[Path]:
    """The page's scripts and markup, every Python module of gis/ and app/ but the vocabulary."""
    files = sorted((ROOT / "app" / "static").glob("*.js"))
    files += sorted((ROOT / "app" / "static").glob("*.html"))
    files += sorted((ROOT / "gis").rglob("*.py")) + sorted((ROOT / "app").rglob("*.py"))
    return [f for f in files if f != ROOT / "gis" / "core" / "vocabulary.py"]


def _quoted(label: str) -> re.Pattern:
    q = re.escape(label)
    return re.compile(rf"'{q}'|\"{q}\"|`{q}`|>\s*{q}\s*<")


def test_no_copy_of_a_label_or_colour_outside_the_vocabulary():
    colours = {t.colour.lower() for v in vocabulary.VOCABULARIES for t in v.terms if t.colour} | {
        v.other_colour.lower() for v in vocabulary.VOCABULARIES if v.other_colour
    }
    # the labels of statuses, reasons, classes, kinds and bands; not the SJYT values (data, used
    # in SQL) nor common words that other vocabularies share with field names (地块, 亩均税收)
    data_values = set(ACTUAL_USES)
    labels = {
        t.label
        for name in STATUS_VOCABULARIES
        for t in vocabulary.vocabulary(name).terms
        if re.search(r"[\u4e00-\u9fff]", t.label) and t.label not in data_values
    }
    found = []
    for f in _scanned():
        text = f.read_text(encoding="utf-8")
        rel = f.relative_to(ROOT)
        found += [f"{rel}: colour {c}" for c in HEX.findall(text) if c.lower() in colours]
        found += [f"{rel}: label {lb}" for lb in sorted(labels) if _quoted(lb).search(text)]
    assert not found, "copies of the vocabulary:\n" + "\n".join(found)


def test_scan_sees_a_copy():
    """The scan above finds a label or a colour where one is written (it can fail)."""
    sample = "const X = { idle: ['闲置(满一年)', '#ed8936'] };"
    assert _quoted("闲置(满一年)").search(sample)
    assert "#ed8936" in HEX.findall(sample)


def test_codes_are_the_codes_the_system_stores():
    codes = {v.name: [t.code for t in v.terms] for v in vocabulary.VOCABULARIES}
    assert set(codes["idle_status"]) == set(IDLE_STATUSES)
    assert set(codes["unsupplied_status"]) == set(UNSUPPLIED_STATUSES)
    assert set(codes["low_efficiency_reason"]) == set(REASON_CODES)
    assert codes["platform_kind"] == list(plan_names.KINDS)
    assert codes["task_status"] == list(TASK_STATUSES)
    assert codes["block_function"] == list(plan_names.FUNCTIONS)
    assert codes["actual_use"] == list(ACTUAL_USES)
    assert codes["tax_band"] == [b[2] for b in map_layers.TAX_BANDS]
    assert codes["eval_class"] == ["A", "B", "C", "D"]
    flagged = [t.code for t in vocabulary.vocabulary("idle_status").terms if t.flagged]
    assert flagged == list(idle_land.FLAGGED)
    for v in vocabulary.VOCABULARIES:
        assert len(set(codes[v.name])) == len(codes[v.name]), v.name
        for t in v.terms:
            assert t.colour is None or HEX.fullmatch(t.colour), (v.name, t.code)


def test_consumers_show_the_vocabulary():
    assert platform_kinds.KIND_LABELS == vocabulary.labels("platform_kind")
    assert plan_report.KIND_COLORS == vocabulary.colours("platform_kind")
    assert plan_report.FUNCTION_COLORS == vocabulary.colours("block_function")
    assert parcel_dossier.IDLE_LABELS["idle_reclaimable"] == "闲置(满两年,可收回)"
    assert [c for c, *_ in chain.CHAIN] == [
        t.code for t in vocabulary.vocabulary("chain_stage").terms
    ]


def _colours_in(obj) -> set[str]:
    if isinstance(obj, str):
        return {obj.lower()} if HEX.fullmatch(obj) else set()
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list):
        return set().union(*(_colours_in(x) for x in obj)) if obj else set()
    return set()


def test_tile_style_takes_its_colours_from_the_vocabulary(http):
    style = http.get("/tiles/style.json").json()
    paint = {lyr["id"]: lyr.get("paint", {}) for lyr in style["layers"]}
    assert paint["parcels-use"]["fill-color"] == vocabulary.match_expression(
        "actual_use", "actual_use"
    )
    assert paint["parcels-eval-class"]["fill-color"] == vocabulary.match_expression(
        "eval_class", "eval_class"
    )
    assert paint["zone-aggregates"]["fill-color"] == vocabulary.match_expression(
        "eval_class", "tax_class"
    )
    assert paint["platforms-fill"]["fill-color"] == vocabulary.match_expression(
        "platform_kind", "kind"
    )
    assert paint["parcels-land-status"]["fill-color"][:2] == [
        "match",
        ["coalesce", ["get", "land_status"], ""],
    ]
    assert paint["parcels-land-status"]["fill-color"] == vocabulary.match_expression(
        "land_kind", "land_status"
    )
    every = {
        c.lower() for v in vocabulary.VOCABULARIES for c in vocabulary.colours(v.name).values()
    }
    every |= {v.other_colour.lower() for v in vocabulary.VOCABULARIES if v.other_colour}
    assert _colours_in(style["layers"]) <= every


def test_api_serves_the_vocabulary_with_an_etag(http):
    r = http.get("/api/vocabulary")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"].startswith("public")
    body = r.json()
    assert body == json.loads(json.dumps(vocabulary.as_json()))
    idle = body["vocabularies"]["idle_status"]
    reclaim = next(t for t in idle["terms"] if t["code"] == "idle_reclaimable")
    assert reclaim["label"] == "闲置(满两年,可收回)" and reclaim["colour"].startswith("#")
    assert [t["order"] for t in idle["terms"]] == list(range(len(idle["terms"])))
    again = http.get("/api/vocabulary", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    stale = http.get("/api/vocabulary", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200
    # public: a bad token is refused, no token is enough
    assert http.get("/api/vocabulary", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_page_script_reads_the_vocabulary():
    js = (ROOT / "app" / "static" / "app.js").read_text(encoding="utf-8")
    assert "api/vocabulary" in js
    assert not HEX.search(js), "app.js writes a colour of its own"
