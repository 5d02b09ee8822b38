"""Request dependencies: the database engine (pooled), the caller's role from a token, and the
audit of restricted reads.

Tokens travel only as ``Authorization: Bearer <token>``. :class:`TokenGate` (middleware, before
anything else sees the request) refuses a token in the query string (400) and any other
Authorization scheme (401), and looks a Bearer token up on every request, whatever the route (no
cache: an unknown, revoked or expired token is refused at once with 401); the :func:`caller`
dependency hands routes what it found.

Audit: a request served to a token is a *restricted read* when the route asks whether the caller
may see restricted data (:attr:`Caller.analyst` answering yes, or :meth:`Caller.reads`), or when
the route requires an analyst or admin token (:func:`require`). :class:`TokenGate` then writes
one ``audit_log`` row (gis/core/audit.py) before the response starts; if that write fails the client
gets a 503 instead of the data. Public callers and viewer tokens are never recorded (they get no
restricted data).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from app.errors import ApiError, problem
from gis.core import audit, tokens
from gis.core.db import get_engine

log = logging.getLogger("landlink")

RESTRICTED_FIGURES = "tax/energy/emission figures"
ANALYST_ROUTE = "analyst route"
AUDIT_KEY = "landlink.audit"  # the request's Ledger in the ASGI scope
BEARER_HINT = "send it as 'Authorization: Bearer <token>'"
URL_TOKEN_NAMES = {"token", "access_token"}
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="landlink"'}


def engine_dep() -> Engine:
    return get_engine()


@dataclass
class Ledger:
    """What one request served to its token (filled by Caller, written by TokenGate)."""

    caller: Caller | None = None
    what: list[str] = field(default_factory=list)
    rows: int | None = None

    def mark(self, what: str, rows: int | None = None) -> None:
        if what != ANALYST_ROUTE and ANALYST_ROUTE in self.what:
            self.what.remove(ANALYST_ROUTE)  # the route said what it serves
        if what not in self.what and not (what == ANALYST_ROUTE and self.what):
            self.what.append(what)
        if rows is not None:
            self.rows = rows if self.rows is None else self.rows + rows


@dataclass(frozen=True)
class Caller:
    role: str  # viewer | editor | analyst | admin
    name: str
    token_id: int | None = None
    ledger: Ledger | None = field(default=None, compare=False, repr=False)
    layers: tuple[str, ...] = ()  # an editor's layers (contract codes)

    def may_write(self, code: str) -> bool:
        """Whether this caller may write layer ``code`` (admin: every layer; an editor: its
        own)."""
        return self.token_id is not None and tokens.writes(self.role, self.layers, code)

    def sees_layer(self, code: str) -> bool:
        """Whether the restricted fields of layer ``code`` may be served: to an analyst or an
        admin, and to an editor of that layer (a yes is recorded in the audit log)."""
        if self.role == "editor" and self.may_write(code):
            self.reads(RESTRICTED_FIGURES)
            return True
        return self.analyst

    def has_role(self, role: str) -> bool:
        """Whether the caller's role reaches ``role`` (records nothing: for describing the
        caller, never for deciding what data to serve)."""
        return tokens.allows(self.role, role)

    @property
    def analyst(self) -> bool:
        """Whether restricted figures (tax, energy, emissions) may be served. Every route asks
        this before it includes them; a yes is recorded in the audit log."""
        if not self.has_role("analyst"):
            return False
        self.reads(RESTRICTED_FIGURES)
        return True

    def sees(self, restricted: bool) -> bool:
        """:attr:`analyst` for a resource that holds restricted figures (a yes is recorded);
        False, recording nothing, for one that holds none (nothing to withhold or audit)."""
        return self.analyst if restricted else False

    def reads(self, what: str, rows: int | None = None) -> None:
        """Record that this request serves restricted data ``what`` (``rows`` of it)."""
        if self.ledger is None:
            if self.token_id is None:
                return
            # a token's restricted read that no TokenGate will record: refuse to serve it
            raise RuntimeError("restricted read outside TokenGate: nothing would record it")
        self.ledger.mark(what, rows)


PUBLIC = Caller("viewer", "public")
_PUBLIC_LEDGER = Ledger()  # shared by requests without a token: PUBLIC never marks it


def bearer_token(auth: str) -> str | None:
    """The token of an ``Authorization`` header value; None if it is not ``Bearer <token>``."""
    scheme, _, cred = auth.strip().partition(" ")
    cred = cred.strip()
    return cred if scheme.lower() == "bearer" and cred and " " not in cred else None


def caller(request: Request, engine: Engine = Depends(engine_dep)) -> Caller:
    """The caller from ``Authorization: Bearer <token>``.

    No token: the public viewer. A token that is unknown, revoked or expired: 401, so a typo is
    not silently public.
    """
    ledger = request.scope.get(AUDIT_KEY)
    if ledger is not None:  # TokenGate has checked the token already
        return ledger.caller or PUBLIC
    auth = request.headers.get("authorization")
    if auth is None:
        return PUBLIC
    token = bearer_token(auth)
    if token is None:
        raise ApiError(401, f"Authorization must be 'Bearer <token>'; {BEARER_HINT}")
    try:
        return _authenticate(engine, token, None)
    except tokens.TokenError as e:
        raise ApiError(401, str(e)) from None


def _authenticate(engine: Engine, token: str, ledger: Ledger | None) -> Caller:
    with engine.begin() as conn:
        t = tokens.authenticate(conn, token)
    return Caller(t.role, t.name, t.id, ledger, t.layers)


def require(role: str):
    def dep(c: Caller = Depends(caller)) -> Caller:
        if c is PUBLIC:
            raise ApiError(
                401, f"this needs a token with role {role}: send 'Authorization: Bearer <token>'"
            )
        if not tokens.allows(c.role, role):
            raise ApiError(403, f"your token has role {c.role}; this needs {role}")
        if tokens.allows(role, "analyst"):
            c.reads(ANALYST_ROUTE)  # such routes serve unredacted data
        return c

    return dep


def writer_of(c: Caller, code: str) -> Caller:
    """``c`` if it may write layer ``code`` (an admin, or an editor of it), else 401 without a
    token and 403 saying which layers the token may write."""
    if c is PUBLIC:
        raise ApiError(
            401,
            f"writing layer {code} needs an admin token or an editor token for {code}: "
            f"{BEARER_HINT}",
        )
    if not c.may_write(code):
        mine = (
            f"it may write {', '.join(c.layers)} only"
            if c.role == "editor"
            else "it writes no layer"
        )
        raise ApiError(
            403,
            f"your token ({c.role} {c.name!r}) may not write layer {code}: {mine}. Ask for an "
            f"editor token for {code} ('landlink token create --role editor --layers "
            f"{code.lower()}')",
            layer=code,
        )
    c.reads(ANALYST_ROUTE)  # a write's report quotes the values it was sent
    return c


def _url_token(query: bytes) -> str | None:
    if b"oken" not in query.lower() and b"%" not in query:
        return None  # the common case, without splitting
    for part in query.split(b"&"):
        name = part.partition(b"=")[0]
        if name and unquote_plus(name.decode("latin-1")).strip().lower() in URL_TOKEN_NAMES:
            return unquote_plus(name.decode("latin-1")).strip()
    return None


def token_refusal(scope) -> tuple[int, str] | None:  # type: ignore[no-untyped-def]
    """(status, message) for a request that carries a token the wrong way, else None: a token
    in the query string (400) or an Authorization header that is not ``Bearer <token>`` (401)."""
    name = _url_token(scope.get("query_string", b""))
    if name:
        return (
            400,
            f"a token in the URL ('{name}=') is refused: URLs end up in logs, browser history "
            f"and Referer headers. Remove it and {BEARER_HINT}",
        )
    auths = [v for k, v in scope["headers"] if k == b"authorization"]
    if len(auths) > 1:
        return 401, f"more than one Authorization header; {BEARER_HINT}"
    if auths:
        value = auths[0].decode("latin-1")
        if bearer_token(value) is None:
            scheme = value.strip().partition(" ")[0][:20]
            if scheme.lower() == "bearer":
                return 401, f"Authorization: Bearer without a token; {BEARER_HINT}"
            return (
                401,
                f"Authorization scheme {scheme!r} is not accepted; only Bearer tokens are: "
                f"{BEARER_HINT} (create one with 'landlink token create --role ...')",
            )
    return None


def _record(ledger: Ledger, scope, status: int) -> None:  # type: ignore[no-untyped-def]
    c = ledger.caller
    assert c is not None
    route = scope.get("route")
    with get_engine().begin() as conn:
        audit.record(
            conn,
            token_id=c.token_id,
            token_name=c.name,
            role=c.role,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            route=getattr(route, "path", None),
            what=ledger.what,
            rows=ledger.rows,
            status=status,
        )


class TokenGate:
    """ASGI middleware, outside every route and the tile cache: refuses tokens sent any way but
    ``Authorization: Bearer`` (see :func:`token_refusal`; 401s carry ``WWW-Authenticate``), and
    writes the audit row of a restricted read before its response starts."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = token_refusal(scope)
        if refused:
            status, msg = refused
            headers = WWW_AUTHENTICATE if status == 401 else None
            await problem(status, msg, headers=headers)(scope, receive, send)
            return
        auth = [v for k, v in scope["headers"] if k == b"authorization"]
        if not auth:  # public: nothing to record, no wrapper on the hot path (cached tiles)
            scope[AUDIT_KEY] = _PUBLIC_LEDGER
            await self.app(scope, receive, send)
            return
        # a Bearer token (token_refusal let it through): known and live, whatever the route
        ledger = Ledger()
        try:
            token = bearer_token(auth[0].decode("latin-1"))
            ledger.caller = await run_in_threadpool(_authenticate, get_engine(), token, ledger)
        except tokens.TokenError as e:
            await problem(401, str(e), headers=WWW_AUTHENTICATE)(scope, receive, send)
            return
        scope[AUDIT_KEY] = ledger
        blocked = False

        async def sending(message) -> None:  # type: ignore[no-untyped-def]
            nonlocal blocked
            if blocked:
                return
            if (
                message["type"] == "http.response.start"
                and ledger.what
                and ledger.caller is not None
                and message["status"] < 400
            ):
                try:
                    await run_in_threadpool(_record, ledger, scope, message["status"])
                except Exception:
                    log.exception("audit log write failed on %s %s", scope["method"], scope["path"])
                    blocked = True
                    await problem(
                        503,
                        "the audit log could not be written, so restricted data is not served; "
                        "try again shortly",
                        headers={"Retry-After": "5"},
                    )(scope, receive, send)
                    return
            await send(message)

        await self.app(scope, receive, sending)


_URL_TOKEN = re.compile(r"(?i)([?&](?:access_)?token=)[^&\s\"]*")


def redact(s: str) -> str:
    """``s`` with the value of any ``token=`` / ``access_token=`` URL parameter replaced."""
    return _URL_TOKEN.sub(r"\1[redacted]", s) if "oken=" in s.lower() else s


class RedactTokens(logging.Filter):
    """A logging filter that removes token values from URLs in a record (uvicorn's access log
    prints the query string; a token there is refused, and it is not written down either)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict:
    """uvicorn's logging configuration with :class:`RedactTokens` on its handlers (for
    ``uvicorn.run(log_config=...)``, so that every worker process installs it)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["redact_tokens"] = {"()": "app.deps.RedactTokens"}
    for h in cfg["handlers"].values():
        h.setdefault("filters", []).append("redact_tokens")
    return cfg
