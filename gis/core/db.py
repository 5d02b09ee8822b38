"""Database engine: one SQLAlchemy engine per URL, psycopg 3, pooled."""

from __future__ import annotations

import select

import psycopg
from psycopg.types.numeric import FloatDumper
from sqlalchemy import Connection, Engine, create_engine, event, text
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


def table_columns(conn: Connection, table: str) -> list[str]:
    """The columns of ``table`` in the current schema, in table order (none without it), from
    the catalog: ``information_schema.columns`` is a view over several catalogs (some ms a
    read in a new session), and the ORM models pull in GeoAlchemy2 (0.07 s of a command-line
    write)."""
    return list(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass("
                "quote_ident(current_schema()) || '.' || quote_ident(:t)) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        ).scalars()
    )


def run_sql(conn: Connection, sql: str, params: dict) -> None:
    """Execute several ``;``-separated statements in one round trip, ``:name`` parameters bound
    by psycopg on the client (quoted as literals: the server binds one statement at a time).

    A one-row refresh runs about a hundred of these statements; one at a time, each was a
    round trip and a SQLAlchemy execution of its own. PostgreSQL's ``statement_timeout`` then
    covers the script as a whole (only writes run scripts: 30 minutes over HTTP)."""
    compiled = text(sql).compile(dialect=conn.dialect)
    with psycopg.ClientCursor(conn.connection.driver_connection) as cur:
        for t in (float, "numpy.float64"):
            cur.adapters.register_dumper(t, _Float8Literal)
        cur.execute(str(compiled), {k: params[k] for k in compiled.params})


class _Float8Literal(FloatDumper):
    """A float as a float8 literal, as the server binds one (psycopg quotes ``50.0``: numeric,
    which reads back as ``'50.0'`` and computes in decimal)."""

    def quote(self, obj: float) -> bytes:
        return b"'" + self.dump(obj) + b"'::float8"
