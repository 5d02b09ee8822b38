"""The one place the server's own URL comes from: every link it writes (OGC API links, TileJSON
``tiles``, style.json sources, OpenAPI ``servers``, paging links) starts with :func:`public_base`.

The base is, in order:

1. ``LANDLINK_PUBLIC_URL`` (the URL clients reach the server at, prefix included; without a path
   the ``--root-path`` is added);
2. ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` / ``X-Forwarded-Port`` sent by a proxy listed in
   ``LANDLINK_FORWARDED_ALLOW_IPS`` (``landlink serve --forwarded-allow-ips``), plus the root path;
3. the address the connection came in on (the server's socket, which a client cannot choose),
   plus the root path.

Never the ``Host`` header: a client could write any name there and have it echoed into links.
The root path (``landlink serve --root-path /prefix``) is the prefix a gateway strips before
forwarding; the routes answer without it, the links carry it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.requests import Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gis.core.config import get_settings

FORWARDED_HOST = "landlink.forwarded_host"  # scope key: a trusted proxy's X-Forwarded-Host
_HOST = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
_DEFAULT_PORT = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def route_path(scope) -> str:  # type: ignore[no-untyped-def]
    """The request's path without the root path (what the routes match; uvicorn puts
    ``root_path + path`` in ``scope["path"]``)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def _host_port(host: str, port: int | str | None, scheme: str) -> str:
    if port and int(port) != _DEFAULT_PORT.get(scheme):
        return f"{host}:{port}"
    return host


def public_base(request: Request) -> str:
    """``scheme://host[:port]/root-path`` of this server as its clients reach it (no trailing
    slash). See the module's docstring for where each part comes from."""
    return _base(request.scope)


def _base(scope) -> str:  # type: ignore[no-untyped-def]
    root = scope.get("root_path", "").rstrip("/")
    s = get_settings()
    if s.public_url:
        base = s.public_url.rstrip("/")
        return base if urlsplit(base).path else base + root
    scheme = scope.get("scheme", "http")
    host = scope.get(FORWARDED_HOST)
    if not host:
        server = scope.get("server")
        if server and server[1] is not None:
            name = f"[{server[0]}]" if ":" in server[0] else server[0]
            host = _host_port(name, server[1], scheme)
        else:  # a unix socket: what `landlink serve` was told to listen on
            host = _host_port(s.host, s.port, scheme)
    return f"{scheme}://{host}{root}"


def link(request: Request, path: str = "", query: str = "") -> str:
    """``public_base`` + ``path`` (from the routes' root, e.g. ``/ogc/collections``) + query."""
    return public_base(request) + path + (f"?{query}" if query else "")


def request_link(request: Request, **params) -> str:  # type: ignore[no-untyped-def]
    """The link to this request (its path and query, ``params`` replacing query parameters)."""
    url = request.url.include_query_params(**params) if params else request.url
    return link(request, route_path(request.scope), url.query)


def _forwarded_host(headers, scheme: str) -> str | None:  # type: ignore[no-untyped-def]
    """``X-Forwarded-Host`` (its first, client-facing value) with ``X-Forwarded-Port``, if they
    are a plain host name or IP and port; anything else is ignored."""
    host = port = None
    for k, v in headers:
        if k == b"x-forwarded-host" and host is None:
            host = v.decode("latin-1").split(",")[0].strip()
        elif k == b"x-forwarded-port" and port is None:
            port = v.decode("latin-1").split(",")[0].strip()
    m = _HOST.match(host or "")
    if not m:
        return None
    port = m["port"] or port
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    return _host_port(m["host"], port, scheme)


class ForwardedHeaders:
    """Outermost ASGI middleware. For a peer in ``forwarded_allow_ips`` only: its
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` set the client and scheme (uvicorn's
    ProxyHeadersMiddleware does that part), its ``X-Forwarded-Host``/``-Port`` are kept for
    :func:`public_base`. From any other peer these headers change nothing. ``landlink serve``
    turns uvicorn's own proxy-header handling off, so this list is the only one that counts.

    Then, for every request, the ``Host`` header and the scheme are replaced by those of
    :func:`public_base`, so that what Starlette derives from them (``request.url``, the
    ``Location`` of a trailing-slash redirect) cannot carry a host a client made up either."""

    def __init__(self, app, trusted: str = "") -> None:  # type: ignore[no-untyped-def]
        self.app = app
        trusted = trusted.strip()
        self.proxy = ProxyHeadersMiddleware(self._host, trusted_hosts=trusted) if trusted else None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if self.proxy is not None and client and client[0] in self.proxy.trusted_hosts:
            await self.proxy(scope, receive, send)
        else:
            await self._settled(scope, receive, send)

    async def _host(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        """After ProxyHeadersMiddleware, for a trusted peer (the scheme is the forwarded one)."""
        host = _forwarded_host(scope["headers"], scope.get("scheme", "http"))
        if host:
            scope[FORWARDED_HOST] = host
        await self._settled(scope, receive, send)

    async def _settled(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        public = urlsplit(_base(scope))
        scope["scheme"] = public.scheme
        host = (b"host", public.netloc.encode("latin-1"))
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [host]
        await self.app(scope, receive, send)


def cors_origins() -> list[str]:
    """``LANDLINK_CORS_ORIGINS`` as a list: a JSON list or a comma list ("*": any origin)."""
    import json

    raw = (get_settings().cors_origins or "").strip()
    if not raw:
        return []
    if raw.startswith("["):
        return [str(o).strip().rstrip("/") for o in json.loads(raw) if str(o).strip()]
    return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
