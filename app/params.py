"""What a caller may send, checked before any route sees it.

- :class:`CheckParams` (middleware): every query parameter (name and value) and every path
  segment must be valid UTF-8 once percent-decoded and hold no NUL byte (PostgreSQL cannot store
  one); otherwise 400 naming the parameter.
- Shared annotated types for numbers, so that every number a route takes fits the database
  (bigint) and is finite: ``Offset``, ``DbInt``, ``Year``, ``Mu``, ``Wan``,
  ``AsOf``. Use them for every integer or
  float parameter (tests/test_no_server_errors.py checks the OpenAPI for bounds).
- :func:`instant`: a date or time parameter (ISO 8601) as an aware datetime, 400 otherwise.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from urllib.parse import unquote_to_bytes

import annotated_types as at
from fastapi import Query

from app.errors import ApiError, problem
from gis.core.layers import NUMBER_MAX
from gis.platforms.layout_plan import MAX_MU

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint

# an integer the database can hold (ids, run numbers: bigint)
DbInt = Annotated[int, at.Ge(-BIGINT_MAX - 1), at.Le(BIGINT_MAX)]
# rows to skip in a list
Offset = Annotated[int, Query(ge=0, le=2**62, description="rows to skip")]
# a calendar year (ND)
Year = Annotated[int, at.Ge(1900), at.Le(2200)]
# an area in 亩, finite
Mu = Annotated[float, at.Ge(0), at.Le(MAX_MU)]
# an amount in 万元, finite
Wan = Annotated[float, at.Ge(0), at.Le(NUMBER_MAX)]
# a date to judge by (date arithmetic stays inside Python's and PostgreSQL's range)
AsOf = Annotated[date, at.Ge(date(1900, 1, 1)), at.Le(date(2200, 12, 31))]


def instant(value: str | None, what: str, end_of_day: bool = False) -> datetime | None:
    """A query parameter holding a date or an ISO 8601 time, as an aware datetime (without an
    offset: the server's local time). A date alone is its first instant, or with ``end_of_day``
    its last (23:59:59.999999). 400 naming the accepted forms; years 1900-2200."""
    if value is None:
        return None
    v = value.strip()
    try:
        try:
            t = datetime.combine(date.fromisoformat(v), time.max if end_of_day else time.min)
        except ValueError:
            t = datetime.fromisoformat(v)
    except ValueError:
        raise ApiError(
            400,
            f"{what} {value[:40]!r}: expected a date or time (YYYY-MM-DD[THH:MM[:SS][+08:00]])",
        ) from None
    if not 1900 <= t.year <= 2200:
        raise ApiError(400, f"{what} {value[:40]!r}: year out of range")
    return t if t.tzinfo else t.astimezone()  # no offset: the server's local time


def _problem(raw: bytes) -> str | None:
    """Why a percent-encoded URL part is refused, or None."""
    data = unquote_to_bytes(raw)
    if b"\x00" in data:
        return "holds a NUL byte (%00), which no parameter may hold"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 once percent-decoded"
    return None


def _shown(raw: bytes) -> str:
    return unquote_to_bytes(raw).decode("utf-8", "replace")[:60]  # repr shows a NUL as \x00


def refusal(path: bytes, query: bytes) -> str | None:
    """The message for a URL whose path segments or query parameters ``CheckParams`` refuses."""
    for seg in path.split(b"/"):
        why = _problem(seg)
        if why:
            return f"path segment {_shown(seg)!r} {why}"
    for part in query.split(b"&"):
        name, _, value = part.replace(b"+", b" ").partition(b"=")
        why = _problem(name)
        if why:
            return f"a query parameter name {why}"
        why = _problem(value)
        if why:
            return f"query parameter {_shown(name)!r} {why}"
    return None


class CheckParams:
    """ASGI middleware: 400 for a URL with a NUL byte or invalid UTF-8 in a path segment or
    a query parameter (see :func:`refusal`), before routing."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            why = refusal(path.partition(b"?")[0], scope.get("query_string", b""))
            if why:
                await problem(400, why)(scope, receive, send)
                return
        await self.app(scope, receive, send)
