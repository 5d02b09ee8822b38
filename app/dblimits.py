"""How long one SQL statement may run, per HTTP request: PostgreSQL's ``statement_timeout``.

Every request of the HTTP service runs under ``settings.statement_timeout_ms`` (a statement cut
short is SQLSTATE 57014, answered 503 by app/errors.py); the jobs a caller starts over HTTP
(:data:`JOB_ROUTES`: imports, detections, plans) run under ``settings.job_statement_timeout_ms``.
Anything outside a request (the CLI's analyses and imports, code in threads a request did not
start) is not limited: the connection keeps PostgreSQL's default for the role.

The limit travels in a context variable (set by :class:`StatementLimits`, which wraps the app;
FastAPI's thread pool copies it). A pool ``checkout`` listener applies it to the connection
being handed out, with ``SET statement_timeout`` (committed, so it outlives the transaction), only
when it differs from what that connection already has: most checkouts cost no round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

from gis.config import get_settings

# the limit in ms for the work under way (0: none); None: PostgreSQL's default (not limited)
_LIMIT: ContextVar[int | None] = ContextVar("statement_timeout_ms", default=None)
_APPLIED = "landlink_statement_timeout_ms"  # key in a pooled connection's info: what it has

# (method, path) of the routes that start long work: the job limit instead of the request one
JOB_ROUTES = {
    ("POST", "/api/imports"),
    ("POST", "/api/detections"),
    ("POST", "/api/plans"),
}


@contextmanager
def statement_timeout(ms: int | None) -> Iterator[None]:
    """Statements run in this context (and threads it hands work to) stop after ``ms``
    milliseconds (0: never; None: PostgreSQL's default)."""
    token = _LIMIT.set(ms)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    want = _LIMIT.get()
    if record.info.get(_APPLIED) == want:
        return
    try:
        with dbapi_connection.cursor() as cur:
            if want is None:
                cur.execute("RESET statement_timeout")
            else:
                cur.execute(f"SET statement_timeout = {int(want)}")
        dbapi_connection.commit()
    except Exception as e:  # only a broken connection fails here: the pool takes a new one
        raise DisconnectionError(f"connection unusable: {e}") from e
    record.info[_APPLIED] = want


if not event.contains(Pool, "checkout", _on_checkout):
    event.listen(Pool, "checkout", _on_checkout)


class StatementLimits:
    """ASGI middleware: the request's statement limit (see the module), ``request_ms`` or, on
    :data:`JOB_ROUTES`, ``job_ms``."""

    def __init__(self, app, request_ms: int, job_ms: int) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.request_ms = request_ms
        self.job_ms = job_ms

    def limit_for(self, scope) -> int:  # type: ignore[no-untyped-def]
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        if (scope["method"], path.rstrip("/") or "/") in JOB_ROUTES:
            return self.job_ms
        return self.request_ms

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with statement_timeout(self.limit_for(scope)):
            await self.app(scope, receive, send)


def install(app) -> None:  # type: ignore[no-untyped-def]
    """Add :class:`StatementLimits` with the limits configured now. Call it after adding every
    other middleware, so that it is outermost and covers their database work too."""
    s = get_settings()
    app.add_middleware(
        StatementLimits, request_ms=s.statement_timeout_ms, job_ms=s.job_statement_timeout_ms
    )
