"""Every HTTP error is JSON: ``{"error": code, "message": text a person can act on, ...}``.

Never a stack trace: unexpected exceptions are logged server-side and answered with a 500 that
says so.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("landlink")

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

    def __init__(self, status: int, message: str, **extra):
        self.status = status
        self.message = message
        self.extra = extra


def error_body(status: int, message: str, **extra) -> dict:
    return {"error": _CODES.get(status, "error"), "message": message, **extra}


def database_trouble(exc: BaseException) -> str | None:
    """What to tell the caller when ``exc`` says the database is out of reach or too busy
    (answered 503: the request was fine, try again); None for any other error."""
    if isinstance(exc, PoolTimeout):
        return "the server is busy (every database connection in use); try again in a moment"
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    # SQLAlchemy saw the connection die under the statement (whatever the driver raised)
    lost = bool(getattr(exc, "connection_invalidated", False))
    if not lost and not isinstance(orig, psycopg.OperationalError):
        return None
    state = getattr(orig, "sqlstate", None) or ""
    if lost or state.startswith("57P"):  # terminated, crashed, shutting down or starting up
        return (
            "the database closed the connection (restarted, or ended by an administrator); "
            "try again in a moment"
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


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return JSONResponse(error_body(exc.status, exc.message, **exc.extra), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and msg == "Not Found":
            msg = "no such resource; see /docs for the API"
        return JSONResponse(
            error_body(exc.status_code, msg), exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            problems.append(f"{where}: {e.get('msg')}")
        return JSONResponse(
            error_body(422, "invalid request: " + "; ".join(problems), problems=problems), 422
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        trouble = database_trouble(exc)
        if trouble is not None:
            log.warning("database trouble on %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse(error_body(503, trouble), 503, headers={"Retry-After": "5"})
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(
                500,
                "internal error; the server log has the details. "
                "If it persists, report the request you made.",
            ),
            500,
        )
