"""How long one SQL statement may run in the work under way: PostgreSQL's ``statement_timeout``,
chosen per context (the HTTP service sets it per request: app/dblimits.py).

The limit travels in a context variable (threads started with a copied context, as FastAPI's
thread pool does, carry it). A pool ``checkout`` listener applies it to the connection being
handed out, with ``SET statement_timeout`` (committed, so it outlives the transaction), only when
it differs from what that connection already has: most checkouts cost no round trip. Outside any
such context (the CLI's analyses and imports) the limit is None: the connection keeps
PostgreSQL's default for the role, no limit unless a DBA set one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import URL, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

# the limit in ms for the work under way (0: none); None: PostgreSQL's default (not limited)
_LIMIT: ContextVar[int | None] = ContextVar("statement_timeout_ms", default=None)
_APPLIED = "landlink_statement_timeout_ms"  # key in a pooled connection's info: what it has


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


def current() -> int | None:
    """The limit of the work under way (ms, 0: none), None outside a limited context."""
    return _LIMIT.get()


def limited_url(url: URL) -> URL:
    """``url`` with the limit of the work under way as a connection option, for connections
    made outside the SQLAlchemy pools for it (the tile renderers' own connections)."""
    ms = _LIMIT.get()
    if ms is None:
        return url
    # "-cname=value": no space, which a URL would carry as "+" (libpq reads it as a plus)
    opts = f"{url.query.get('options', '')} -cstatement_timeout={int(ms)}".strip()
    return url.update_query_dict({"options": opts})
