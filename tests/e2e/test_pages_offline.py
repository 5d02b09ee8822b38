"""/docs, /redoc and the map page in headless Chromium, as on an offline intranet behind a
gateway: every request a page makes goes to the origin it was served from, none fails, and
the page renders (Swagger UI's operations, ReDoc's, the map).

`landlink serve --root-path /gis` runs behind a small reverse proxy in this process that serves
it under http://127.0.0.1:<port>/gis/ and strips the prefix, as a gateway does; the pages are
also loaded straight from the server, without a prefix. tests/e2e/pages_offline.mjs drives the
browser. Screenshots land in test-artifacts/e2e-offline/ (git-ignored).

Needs ``make web`` (node modules, vendored Swagger UI, ReDoc, MapLibre) and Debian's chromium.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_URL, serve_process, uvicorn_thread
from tests.e2e.test_map_page import CHROMIUM, ROOT, _missing
from tests.ogc_helpers import load_city

SCRIPT = Path(__file__).with_name("pages_offline.mjs")
ARTIFACTS = ROOT / "test-artifacts" / "e2e-offline"
HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"}

pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@contextmanager
def gateway(upstream: str, prefix: str = "/gis"):
    """A reverse proxy on a free port: GET ``prefix/...`` -> ``upstream/...``; anything outside
    the prefix is a 404, as a gateway serving only that prefix would answer."""
    client = httpx.Client(base_url=upstream, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if not (self.path == prefix or self.path.startswith(prefix + "/")):
                self.send_error(404, "outside the gateway's prefix")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
            r = client.get(self.path[len(prefix) :] or "/", headers=headers)
            self.send_response(r.status_code)
            for k, v in r.headers.multi_items():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            body = r.content  # decoded: the proxy answers uncompressed
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}{prefix}"
    finally:
        srv.shutdown()
        client.close()


def _browse(pages: list[dict]) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="landlink-e2e-offline-"))
    cfg, res = tmp / "config.json", tmp / "results.json"
    cfg.write_text(
        json.dumps({"chromium": CHROMIUM, "tmp": str(tmp), "out": str(ARTIFACTS), "pages": pages}),
        encoding="utf-8",
    )
    p = subprocess.run(
        ["node", str(SCRIPT), str(cfg), str(res)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.exists(), f"browser script wrote nothing:\n{p.stdout}\n{p.stderr}"
    assert p.returncode == 0, f"browser script failed:\n{p.stdout}\n{p.stderr}"
    return json.loads(res.read_text(encoding="utf-8"))


SWAGGER_READY = {"selector": ".swagger-ui .opblock", "min": 20}  # one block an operation
REDOC_READY = {"selector": "li[data-item-id]", "min": 20}  # ReDoc's menu, once the spec is read
MAP_READY = {"map": True}


@pytest.fixture(scope="module")
def gis_server(engine):
    from sqlalchemy import text

    from tests.conftest import _data_tables

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_data_tables(conn))} RESTART IDENTITY CASCADE"))
    load_city(engine)
    with serve_process(TEST_URL, args=("--root-path", "/gis")) as base:
        yield base


def test_docs_redoc_and_map_load_nothing_from_outside(gis_server):
    with gateway(gis_server) as gw:
        pages = [
            {"name": "docs", "url": f"{gis_server}/docs", "ready": SWAGGER_READY},
            {"name": "redoc", "url": f"{gis_server}/redoc", "ready": REDOC_READY},
            {"name": "docs-gis", "url": f"{gw}/docs", "ready": SWAGGER_READY},
            {"name": "redoc-gis", "url": f"{gw}/redoc", "ready": REDOC_READY},
            {"name": "map-gis", "url": f"{gw}/", "ready": MAP_READY},
        ]
        results = _browse(pages)
    for p in pages:
        r = results[p["name"]]
        assert r["ok"], (p["name"], r.get("error"), r["failed"], r["console_errors"])
        assert r["requests"], p["name"]
        assert r["outside"] == [], (p["name"], r["outside"])
        assert r["failed"] == [], (p["name"], r["failed"])
        assert all(u.startswith(p["url"].rsplit("/", 1)[0] + "/") for u in r["requests"]), (
            p["name"],
            r["requests"],
        )
    # the pages asked for their files and the OpenAPI document under the prefix
    for name, wanted in (
        ("docs-gis", ("/gis/static/vendor/swagger-ui-bundle.js", "/gis/openapi.json")),
        ("redoc-gis", ("/gis/static/vendor/redoc.standalone.js", "/gis/openapi.json")),
        ("map-gis", ("/gis/static/app.js", "/gis/app-config.json", "/gis/tiles/")),
    ):
        got = " ".join(results[name]["requests"])
        for w in wanted:
            assert w in got, (name, w)


def test_docs_say_what_is_missing_when_not_vendored(tmp_path, monkeypatch):
    """Without app/static/vendor/ (``make web`` not run) /docs and /redoc answer 503 naming the
    fix, not a blank page."""
    from app.main import create_app
    from app.routers import web

    monkeypatch.setattr(web, "STATIC", tmp_path)
    with uvicorn_thread(create_app()) as url, httpx.Client(base_url=url, timeout=60) as c:
        for path in ("/docs", "/redoc", "/"):
            r = c.get(path)
            assert r.status_code == 503, path
            assert "make web" in r.json()["message"], path
