"""How long one SQL statement may run, per HTTP request: PostgreSQL's ``statement_timeout``.

Every read of the HTTP service runs under ``settings.statement_timeout_ms`` (a statement cut
short is SQLSTATE 57014, answered 503 by app/errors.py); every write (a POST, PUT, PATCH or
DELETE: imports, retirements, detections, plans, a platform's kind; each keeps the derived
results current before it answers, which on a province takes longer than a read may) runs under
``settings.job_statement_timeout_ms``, except the POSTs that only read (:data:`READ_POSTS`).
Anything outside a request (the CLI's analyses and imports, code in threads a request did not
start) is not limited: the connection keeps PostgreSQL's default for the role.

:class:`StatementLimits` wraps the app and sets the limit of each request with
:func:`gis.core.dblimits.statement_timeout`, which the connection pools apply
(gis/core/dblimits.py).
"""

from __future__ import annotations

from gis.core.config import get_settings
from gis.core.dblimits import statement_timeout

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that only read (a body too large for a query string): the request limit
READ_POSTS = frozenset({"/api/admission/check"})


def is_write(method: str, path: str) -> bool:
    """Whether a request of ``method`` on ``path`` (without the root path) writes."""
    return method in WRITE_METHODS and not (method == "POST" and path in READ_POSTS)


class StatementLimits:
    """ASGI middleware: the request's statement limit (see the module), ``request_ms`` or, for
    a write, ``job_ms``."""

    def __init__(self, app, request_ms: int, job_ms: int) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.request_ms = request_ms
        self.job_ms = job_ms

    def limit_for(self, scope) -> int:  # type: ignore[no-untyped-def]
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        if is_write(scope["method"], path.rstrip("/") or "/"):
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
