"""Behind a gateway: `landlink serve --root-path /gis --forwarded-allow-ips ...`, links built from
the public URL or trusted forwarded headers (never the Host header), gzip, CORS.

Each server is a real `landlink serve` process on the small OGC city (tests/ogc_helpers.py). A
gateway strips the prefix before forwarding, so the tests ask for paths without it (as the
gateway would) and check that every URL the server writes carries it.
"""

from __future__ import annotations

import gzip
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import shapely
from sqlalchemy import text

from tests.conftest import TEST_URL, _data_tables, serve_process
from tests.factories import uscc
from tests.land_helpers import insert
from tests.ogc_helpers import load_city, parcel_geom

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "https://gis.example.gov.cn/gis"
PORTAL = "https://portal.example.gov.cn"
N_EXTRA_FIRMS = 60  # enough rows that the CSV of enterprises passes the gzip threshold


@pytest.fixture(scope="module")
def city_db(engine):
    """The test database emptied and loaded with the OGC city plus some more enterprises."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_data_tables(conn))} RESTART IDENTITY CASCADE"))
    load_city(engine)
    insert(
        engine,
        "enterprises",
        [
            {
                "uscc": uscc(100 + i),
                "name": f"杭州网关测试{i}有限公司",
                "industry_code": "3311",
                "above_size": False,
                "parcel_nos": [],
                "geom": shapely.Point(parcel_geom(i % 20).centroid),
            }
            for i in range(N_EXTRA_FIRMS)
        ],
    )
    return engine


def _under_gis(proxies: str):
    """`landlink serve` under /gis, believing forwarded headers from ``proxies`` only."""
    return serve_process(TEST_URL, args=("--root-path", "/gis", "--forwarded-allow-ips", proxies))


@pytest.fixture(scope="module")
def trusting(city_db):
    """Trusting this machine (the test client) as its proxy."""
    with _under_gis("127.0.0.1") as base:
        yield base


@pytest.fixture(scope="module")
def untrusting(city_db):
    """Trusting only a proxy that is not the test client."""
    with _under_gis("10.255.255.1") as base:
        yield base


@pytest.fixture(scope="module")
def public(city_db):
    """With a configured public URL (prefix included) and CORS for one portal (JSON list)."""
    with serve_process(
        TEST_URL,
        args=("--public-url", PUBLIC),
        env={"LANDLINK_CORS_ORIGINS": json.dumps([PORTAL, "https://other.example.gov.cn"])},
    ) as base:
        yield base


# --------------------------------------------------------------------- what the server writes
def _urls(obj) -> list[str]:  # type: ignore[no-untyped-def]
    """Every URL in a JSON document: hrefs, TileJSON tiles, style sources, OpenAPI servers,
    paging links."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("href", "url", "tiles", "next", "prev", "glyphs", "sprite"):
                vals = v if isinstance(v, list) else [v]
                out += [x for x in vals if isinstance(x, str)]
            if isinstance(v, dict | list):
                out += _urls(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _urls(v)
    return out


class _Refs(HTMLParser):
    """src and href attributes of an HTML page, and its <base href>."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag, attrs) -> None:  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "base":
            self.base = a.get("href")
        elif a.get("src") or a.get("href"):
            ref = a.get("src") or a.get("href")
            if ref and not ref.startswith(("data:", "#", "javascript:")):
                self.refs.append(ref)


def _refs(page: str) -> _Refs:
    p = _Refs()
    p.feed(page)
    return p


# Documents with links: landing page, collections, one collection, an items page with next and
# prev, one feature, the OGC OpenAPI, TileJSON, the style.
DOCS = (
    "/ogc",
    "/ogc/collections",
    "/ogc/collections/parcels",
    "/ogc/collections/parcels/items?limit=5&offset=5",
    "/ogc/api",
    "/tiles/parcels.json",
    "/tiles/style.json",
)


def _tile(z: int = 14) -> str:
    """``z/x/y`` of the tile holding parcel 0."""
    import math

    from pyproj import Transformer

    c = parcel_geom(0).centroid
    lon, lat = Transformer.from_crs(4549, 4326, always_xy=True).transform(c.x, c.y)
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"{z}/{x}/{y}"


def _documents(base: str, headers: dict | None = None) -> dict[str, dict]:
    out = {}
    with httpx.Client(base_url=base, headers=headers or {}, timeout=60) as c:
        for path in DOCS:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            out[path] = r.json()
        fid = out["/ogc/collections/parcels/items?limit=5&offset=5"]["features"][0]["id"]
        path = f"/ogc/collections/parcels/items/{fid}"
        out[path] = c.get(path).json()
    return out


def _check_all_under(docs: dict[str, dict], prefix: str) -> int:
    n = 0
    for path, doc in docs.items():
        urls = _urls(doc)
        assert urls, f"{path}: no links at all"
        for u in urls:
            assert u == prefix or u.startswith(prefix + "/"), f"{path}: {u} not under {prefix}"
            n += 1
    return n


def test_every_link_carries_the_prefix_and_the_servers_own_address(trusting):
    """No public URL, no forwarded headers: the links are the address the connection came in
    on (127.0.0.1 and the port), plus the root path; and they lead somewhere once the gateway
    strips the prefix again."""
    docs = _documents(trusting)
    n = _check_all_under(docs, trusting + "/gis")
    assert n > 40
    rels = {lk["rel"] for lk in docs["/ogc/collections/parcels/items?limit=5&offset=5"]["links"]}
    assert {"self", "next", "prev", "collection"} <= rels
    # the OGC service-doc is /docs under the prefix; every link answers without the prefix
    landing = {lk["rel"]: lk["href"] for lk in docs["/ogc"]["links"]}
    assert landing["service-doc"] == trusting + "/gis/docs"
    with httpx.Client(timeout=60) as c:
        for doc in docs.values():
            for u in _urls(doc):
                if "{" in u:  # templates: one tile of them
                    u = u.replace("{z}/{x}/{y}", _tile()).replace("{fontstack}/{range}", "x/0-255")
                r = c.get(u.replace(trusting + "/gis", trusting, 1))
                assert r.status_code in (200, 204), (u, r.status_code, r.text[:200])


def test_openapi_docs_and_map_page_under_the_prefix(trusting):
    with httpx.Client(base_url=trusting, timeout=60) as c:
        assert c.get("/openapi.json").json()["servers"] == [{"url": "/gis"}]
        # the page says where it is served; every file it names resolves under the prefix
        page = c.get("/")
        assert page.status_code == 200
        refs = _refs(page.text)
        assert refs.base == "/gis/"
        page_url = "https://gw.example.gov.cn/gis/"  # wherever the gateway serves it
        base = urljoin(page_url, refs.base)
        assert refs.refs
        for ref in refs.refs:
            u = urljoin(base, ref)
            assert u.startswith("https://gw.example.gov.cn/gis/"), ref
            assert c.get(urlsplit(u).path.removeprefix("/gis")).status_code == 200, ref
        for name in ("docs", "redoc"):
            html = c.get(f"/{name}").text
            doc_url = f"https://gw.example.gov.cn/gis/{name}"
            for ref in [
                *_refs(html).refs,
                *re.findall(r"(?:url: |spec-url=)'?\"?([^'\" >]+)", html),
            ]:
                u = urljoin(doc_url, ref)
                assert u.startswith("https://gw.example.gov.cn/gis/"), (name, ref)
                r = c.get(urlsplit(u).path.removeprefix("/gis"))
                assert r.status_code == 200, (name, ref, r.status_code)


def test_the_map_pages_script_names_no_absolute_path():
    """app.js asks for everything relative to where the page is served (its <base href>): a
    path from the root ('/api/...') would miss a gateway's prefix."""
    js = (ROOT / "app" / "static" / "app.js").read_text(encoding="utf-8")
    found = re.findall(r"""[`'"]/(?:api|tiles|static|glyphs|ogc|app-config|style)\b[^`'"]*""", js)
    assert found == []
    assert "window.location.origin" not in js


def test_a_forged_host_is_never_echoed(trusting, untrusting, public):
    """Host: evil.example (and, from a client that is not a trusted proxy, X-Forwarded-Host and
    -Proto) change no link, and no answer contains the name."""
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    for base, prefix in ((trusting, trusting + "/gis"), (public, PUBLIC)):
        docs = _documents(base, {"Host": "evil.example"})
        assert "evil.example" not in json.dumps(docs)
        _check_all_under(docs, prefix)
    docs = _documents(untrusting, {**forged, "X-Forwarded-Proto": "https"})
    assert "evil.example" not in json.dumps(docs)
    _check_all_under(docs, untrusting + "/gis")  # still http://127.0.0.1:port
    with httpx.Client(base_url=untrusting, headers=forged, timeout=60) as c:
        for path in ("/", "/docs", "/redoc", "/openapi.json", "/ogc?f=html"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert "evil.example" not in r.text, path
            assert "evil.example" not in str(r.headers), path
        # nor in a redirect (Starlette's, to the path without the trailing slash)
        r = c.get("/ogc/collections/")
        assert r.status_code == 307
        assert r.headers["location"] == untrusting + "/gis/ogc/collections"


def test_forwarded_headers_of_a_trusted_proxy_make_the_links(trusting):
    fwd = {"X-Forwarded-Host": "gw.example.gov.cn", "X-Forwarded-Proto": "https"}
    _check_all_under(_documents(trusting, fwd), "https://gw.example.gov.cn/gis")
    # a port, given in the host or apart; the scheme's default port is left out
    with httpx.Client(base_url=trusting, timeout=60) as c:

        def self_link(headers: dict) -> str:
            return c.get("/ogc", headers=headers).json()["links"][0]["href"]

        assert (
            self_link({**fwd, "X-Forwarded-Port": "8443"})
            == "https://gw.example.gov.cn:8443/gis/ogc"
        )
        assert (
            self_link({**fwd, "X-Forwarded-Host": "gw.example.gov.cn:443"})
            == "https://gw.example.gov.cn/gis/ogc"
        )
        assert self_link({"X-Forwarded-Host": "10.0.0.7:8080"}) == "http://10.0.0.7:8080/gis/ogc"
        # the first (client-facing) host of a chain of proxies
        assert self_link({"X-Forwarded-Host": "gw.example.gov.cn, inner.local"}).startswith(
            "http://gw.example.gov.cn/gis/"
        )
        # junk is not a host: the server's own address instead
        for junk in ("evil.example/<x>", "a b", "evil.example:99999", "user@evil.example"):
            assert self_link({"X-Forwarded-Host": junk}) == trusting + "/gis/ogc", junk


def test_a_public_url_makes_every_link(public):
    _check_all_under(_documents(public), PUBLIC)
    # trusted or not, forwarded headers do not override the configured URL
    fwd = {"X-Forwarded-Host": "gw.example.gov.cn", "X-Forwarded-Proto": "http"}
    _check_all_under(_documents(public, fwd), PUBLIC)
    # the page's base is the public URL's path
    assert _refs(httpx.get(public + "/", timeout=30).text).base == "/gis/"


# --------------------------------------------------------------------- gzip
def test_gzip_for_json_geojson_csv_not_for_tiles(trusting):
    gz = {"Accept-Encoding": "gzip"}
    with httpx.Client(base_url=trusting, timeout=60) as c:
        for path, media in (
            ("/ogc/collections/parcels/items?limit=20", "application/geo+json"),
            ("/ogc/collections/parcels/items?limit=20&f=json", "application/geo+json"),
            ("/openapi.json", "application/json"),
            ("/api/enterprises?format=csv", "text/csv"),
            ("/", "text/html"),
            ("/static/vendor/swagger-ui-bundle.js", "text/javascript"),
        ):
            r = c.get(path, headers=gz)
            assert r.status_code == 200, (path, r.text[:200])
            assert r.headers["content-type"].startswith(media), (path, r.headers)
            assert r.headers.get("content-encoding") == "gzip", (path, r.headers)
            assert "Accept-Encoding" in r.headers.get("vary", ""), path
            plain = c.get(path, headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers, path
            assert r.content == plain.content, path  # httpx decoded the gzip
            raw = c.build_request("GET", path, headers=gz)
            stream = c.send(raw, stream=True)
            body = b"".join(stream.iter_raw())
            stream.close()
            assert gzip.decompress(body) == plain.content, path
            assert len(body) < len(plain.content), path
        csv = c.get("/api/enterprises?format=csv", headers=gz).text
        assert csv.count("\n") >= N_EXTRA_FIRMS
        # small answers are left alone
        small = c.get("/ogc/collections/nope", headers=gz)
        assert small.status_code == 404 and small.json()["error"]
        assert len(small.content) < 1024 and "content-encoding" not in small.headers
        # vector tiles (served by the tile cache before routing) are not gzipped
        tile = f"/tiles/parcels/{_tile()}.mvt"
        first = c.get(tile, headers=gz)
        again = c.get(tile, headers=gz)
        assert first.status_code == again.status_code == 200, first.text[:200]
        assert again.headers.get("x-tile-cache") == "hit"  # the cache answers under /gis too
        assert "content-encoding" not in again.headers
        assert again.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        assert again.content == first.content and len(again.content) > 100


# --------------------------------------------------------------------- CORS
def test_cors_only_for_configured_origins(public, trusting):
    with httpx.Client(base_url=public, timeout=60) as c:
        r = c.get("/ogc/collections", headers={"Origin": PORTAL})
        assert r.headers.get("access-control-allow-origin") == PORTAL
        assert "ETag" in r.headers.get("access-control-expose-headers", "")
        r = c.get("/ogc/collections", headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        pre = c.options(
            "/api/enterprises",
            headers={
                "Origin": PORTAL,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] == PORTAL
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        bad = c.options(
            "/api/enterprises",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        # an error carries the header too, so a portal can read the message
        err = c.get("/ogc/collections/nope", headers={"Origin": PORTAL})
        assert err.status_code == 404
        assert err.headers.get("access-control-allow-origin") == PORTAL
    # not configured: no CORS headers for anyone
    r = httpx.get(trusting + "/ogc/collections", headers={"Origin": PORTAL}, timeout=30)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_origins_setting_forms(monkeypatch):
    from app.links import cors_origins
    from gis.core.config import get_settings

    for raw, want in (
        ("", []),
        ("https://a.example, https://b.example/", ["https://a.example", "https://b.example"]),
        ('["https://a.example"]', ["https://a.example"]),
        ("*", ["*"]),
    ):
        monkeypatch.setenv("LANDLINK_CORS_ORIGINS", raw)
        get_settings.cache_clear()
        assert cors_origins() == want, raw
    monkeypatch.delenv("LANDLINK_CORS_ORIGINS")
    get_settings.cache_clear()
