"""The map page's 天地图 presets in headless Chromium, against a stub tile server on 127.0.0.1.

`landlink serve` runs with ``LANDLINK_TIANDITU_TK`` and ``LANDLINK_TIANDITU_HOST`` pointing at a
tiny http.server that answers every tile with a PNG and counts the requests per layer; the
browser script (tests/e2e/tianditu.mjs) clicks 影像, and the stub must then have been asked for
img_w and cia_w tiles carrying the key, and the attribution must show the 审图号.
"""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import serve_process
from tests.e2e.test_map_page import ARTIFACTS, CHROMIUM, ROOT, _missing

pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

SCRIPT = Path(__file__).with_name("tianditu.mjs")


def _png(size: int = 256) -> bytes:
    """A grey ``size``×``size`` PNG (8-bit greyscale), written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc0" * size for _ in range(size))
    head = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()
KEY = "browserkey123"


class _Stub(BaseHTTPRequestHandler):
    counts: Counter = Counter()

    def do_GET(self) -> None:  # noqa: N802
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        # counted by the path's layer (vec_w, cia_w, …) and whether the key came along
        _Stub.counts[(u.path.strip("/").split("/")[0], q.get("tk") == [KEY])] += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def test_tianditu_switcher_swaps_base_and_labels(engine, tmp_path) -> None:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{stub.server_address[1]}"
    env = {"LANDLINK_TIANDITU_TK": KEY, "LANDLINK_TIANDITU_HOST": host}
    try:
        url = engine.url.render_as_string(hide_password=False)
        with serve_process(url, tmp_path / "serve.log", env=env) as base:
            cfg, res = tmp_path / "cfg.json", tmp_path / "res.json"
            cfg.write_text(json.dumps({"base": base, "chromium": CHROMIUM, "out": str(ARTIFACTS)}))
            p = subprocess.run(
                ["node", str(SCRIPT), str(cfg), str(res)],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=ROOT,
            )
            assert res.exists(), f"browser script wrote nothing:\n{p.stdout}\n{p.stderr}"
            r = json.loads(res.read_text(encoding="utf-8"))
    finally:
        stub.shutdown()
    assert r.get("ok"), r
    counts = _Stub.counts
    # 矢量 first (the default), then 影像 after the click; every tile carried the key
    for layer in ("vec_w", "cva_w", "img_w", "cia_w"):
        assert counts[(layer, True)] > 0, (layer, counts)
    assert not any(ok is False for _, ok in counts), counts
    assert "矢量" in r["switcher"] and "影像" in r["switcher"]
    assert r["checked"] == "img"
    assert "审图号" in r["attribution_before"] and "审图号" in r["attribution_after"]
    assert r["outside_requests"] == [] and r["errors"] == []
