"""Every HTTP error is an RFC 9457 problem: ``application/problem+json`` with ``type``,
``title``, ``status`` and ``detail``, plus ``{"error": code, "message": text a person can act on,
...}`` (``detail`` is ``message``; ``type`` is ``about:blank``, so ``title`` is the HTTP reason
phrase).

Never a stack trace: unexpected exceptions are logged server-side and answered with a 500 that
says so. Those answers (and the 503s for database trouble) come from :class:`ContainErrors`,
which does not re-raise, so the server keeps the client's connection open.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.dblimits import WRITE_METHODS

log = logging.getLogger("landlink")

PROBLEM_JSON = "application/problem+json"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raise from a route: status, message, and any extra JSON fields."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **extra):
        self.status = status
        self.message = message
        self.headers = headers  # of the answer (e.g. Allow on a 405)
        self.extra = extra


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, message: str, **extra) -> dict:
    return {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": message,
        "error": _CODES.get(status, "error"),
        "message": message,
        **extra,
    }


def problem(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    """The error response: ``error_body`` served as ``application/problem+json``. A 503 says
    when to try again (``Retry-After: 5`` unless ``headers`` give one)."""
    if status == 503 and not any(k.lower() == "retry-after" for k in headers or {}):
        headers = {**(headers or {}), "Retry-After": "5"}
    return JSONResponse(
        error_body(status, message, **extra), status, headers=headers, media_type=PROBLEM_JSON
    )


def database_trouble(exc: BaseException, write: bool = False) -> str | None:
    """What to tell the caller when ``exc`` says the database is out of reach or too busy
    (answered 503: the request was fine, try again); None for any other error. ``write``: the
    request was a write (its transaction rolled back: nothing was changed)."""
    if isinstance(exc, PoolTimeout):
        return "the server is busy (every database connection in use); try again in a moment"
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    # SQLAlchemy saw the connection die under the statement (whatever the driver raised), or the
    # pool handed out a connection another thread had just found dead (a checkout racing a
    # terminated backend raises "This connection is closed")
    lost = bool(getattr(exc, "connection_invalidated", False)) or (
        isinstance(exc, InvalidRequestError) and "connection is closed" in str(exc)
    )
    if not lost and not isinstance(orig, psycopg.OperationalError):
        return None
    state = getattr(orig, "sqlstate", None) or ""
    if lost or state.startswith("57P"):  # terminated, crashed, shutting down or starting up
        return (
            "the database closed the connection (restarted, or ended by an administrator); "
            "try again in a moment"
        )
    if state == "57014" and write:
        return (
            "the database cancelled the write (statement timeout, "
            "LANDLINK_JOB_STATEMENT_TIMEOUT_MS); nothing was changed. Try again when the "
            "server is less busy, or ask the administrator to raise the limit"
        )
    if state == "57014":
        return (
            "the database cancelled the query (statement timeout); narrow the request "
            "(bbox, filters, a smaller limit) and try again"
        )
    if state.startswith("40"):
        return "the request collided with a concurrent change in the database; try again"
    return (
        "database unreachable; is it running ('landlink db up') and is DATABASE_URL right? "
        "Try again once it is"
    )


_INTERNAL = (
    "internal error; the server log has the details. If it persists, report the request you made."
)


def _nul_in_text(exc: BaseException) -> bool:
    """psycopg refuses a text value holding a NUL byte (PostgreSQL cannot store one): the
    caller sent it, e.g. inside a JSON body."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, (psycopg.DataError, ValueError)) and "NUL (0x00)" in str(orig)


def unexpected(request: Request, exc: BaseException) -> JSONResponse:
    """The answer to an exception no route handled: 503 for database trouble (with
    Retry-After), 400 for a NUL byte that reached the database, else a logged 500."""
    trouble = database_trouble(exc, write=request.method in WRITE_METHODS)
    if trouble is not None:
        log.warning("database trouble on %s %s: %s", request.method, request.url.path, exc)
        return problem(503, trouble, headers={"Retry-After": "5"})
    if _nul_in_text(exc):
        return problem(400, "a text value holds a NUL byte (\\u0000), which no field may hold")
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, _INTERNAL)


class ContainErrors:
    """ASGI middleware around the app: answers any exception that escapes it (see
    :func:`unexpected`) and does not re-raise, so the server keeps the connection open.
    (Starlette's own handler for ``Exception`` re-raises after answering, and uvicorn then
    closes the connection.) An exception after the response has started cannot be answered
    any more and is re-raised."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message) -> None:  # type: ignore[no-untyped-def]
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            await unexpected(Request(scope), exc)(scope, receive, send)


OGC_PREFIX = "/ogc/"


def validation_status(path: str, errors: Sequence[dict]) -> int:
    """The status of a request FastAPI refused while reading its parameters: 400 when every
    problem is in the query, path or headers of an OGC API route (OGC API - Features Part 1,
    /req/core/query-param-invalid: an invalid parameter value is a 400), else 422 (the row API
    promises 422 for a body it cannot read)."""
    in_params = all(e.get("loc", ("body",))[0] in ("query", "path", "header") for e in errors)
    return 400 if path.startswith(OGC_PREFIX) and errors and in_params else 422


def install(app: FastAPI) -> None:
    """The error handlers, and :class:`ContainErrors` and the parameter check
    (:class:`app.params.CheckParams`) as middleware. Call it after adding every other
    middleware that may raise, so that ContainErrors wraps them."""
    from app.params import CheckParams

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return problem(exc.status, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and msg == "Not Found":
            msg = "no such resource; see /docs for the API"
        return problem(exc.status_code, msg, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            problems.append(f"{where}: {e.get('msg')}")
        return problem(
            validation_status(request.url.path, exc.errors()),
            "invalid request: " + "; ".join(problems),
            problems=problems,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # reached only for an exception outside ContainErrors (Starlette then re-raises)
        return unexpected(request, exc)

    app.add_middleware(CheckParams)
    app.add_middleware(ContainErrors)
