"""Database engine: one SQLAlchemy engine per URL, psycopg 3, pooled."""

from __future__ import annotations

import select

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

from gis.core.config import get_settings


def closed_by_server(dbapi_connection) -> bool:  # type: ignore[no-untyped-def]
    """Whether an idle pooled connection is dead, without a round trip: the server writes
    nothing to an idle connection unless it is ending it (a terminated backend, a shutdown or
    restart send an error, then close), so anything to read, or a closed socket, means dead."""
    if dbapi_connection.closed:
        return True
    try:
        fd = dbapi_connection.pgconn.socket
    except Exception:  # psycopg: no socket any more
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poll.poll(0))


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine (and pool) per database URL in this process."""
    if url in _ENGINES:
        return _ENGINES[url]
    engine = _ENGINES[url] = create_engine(url, pool_size=8, max_overflow=8, future=True)

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection, record, proxy) -> None:  # type: ignore[no-untyped-def]
        # instead of pool_pre_ping (a SELECT 1 round trip on every checkout): the pool
        # replaces a connection the server has closed (up to three tries)
        if closed_by_server(dbapi_connection):
            raise DisconnectionError("the database closed this connection while it was idle")

    return engine


def dispose_engines() -> None:
    """Close the pooled connections of every engine this process made (before it exits)."""
    for engine in _ENGINES.values():
        engine.dispose()


def get_engine() -> Engine:
    """The engine for the configured database."""
    return engine_for(get_settings().sqlalchemy_url)
