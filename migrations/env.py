"""Alembic environment. The URL comes from landlink's settings (DATABASE_URL or the local cluster),
or from ``config.attributes["connection"]`` when a caller (tests, ``landlink migrate``) passes one.
"""

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from gis.core.all_models import metadata
from gis.core.config import get_settings

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.attributes.get("url") or get_settings().sqlalchemy_url
        # no pool: a pooled connection outlived the migration, idle on the database until the
        # engine was collected, and kept CREATE DATABASE ... TEMPLATE of it waiting (tests)
        with create_engine(url, poolclass=NullPool).connect() as conn:
            _run(conn)
    else:
        _run(connection)


def _run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        include_object=alembic_helpers.include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    conn.commit()


run_migrations_online()
