"""/tiles/style.json passes the MapLibre style specification's own validator
(``gl-style-validate`` of @maplibre/maplibre-gl-style-spec, run with node), as the app serves it:
on the analysed sample city (every layer) and on an empty database (the layers it lacks are
left out of the style)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "node_modules/@maplibre/maplibre-gl-style-spec/dist/gl-style-validate.cjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    not (NODE and VALIDATOR.exists()), reason="node or @maplibre/maplibre-gl-style-spec missing"
)


def validate(style: dict, tmp_path: Path) -> list[dict]:
    """The validator's errors (``--json``) for ``style``; [] when it is valid."""
    f = tmp_path / "style.json"
    f.write_text(json.dumps(style, ensure_ascii=False), encoding="utf-8")
    r = subprocess.run(
        [NODE, str(VALIDATOR), "--json", str(f)], capture_output=True, text=True, timeout=60
    )
    errors = json.loads(r.stdout) if r.stdout.strip() else []
    assert (r.returncode == 0) == (not errors), r.stdout + r.stderr
    return errors


def test_the_validator_does_refuse_a_bad_style(tmp_path):
    """Not vacuous: a misspelt layer type and a missing source are errors."""
    errors = validate(
        {"version": 8, "sources": {}, "layers": [{"id": "x", "type": "fil"}]}, tmp_path
    )
    assert len(errors) == 2


def test_style_of_the_sample_city_is_valid(sample_server, tmp_path):
    base, _, token, _ = sample_server
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        r = httpx.get(base + "/tiles/style.json", headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        style = r.json()
        assert len(style["layers"]) > 5 and style["sources"]
        assert validate(style, tmp_path) == []


def test_style_of_an_empty_database_is_valid(http, tmp_path):
    style = http.get("/tiles/style.json").json()
    assert validate(style, tmp_path) == []
