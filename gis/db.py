"""Database engine: one SQLAlchemy engine per URL, psycopg 3, pooled."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine

from gis.config import get_settings


@lru_cache
def engine_for(url: str) -> Engine:
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, future=True)


def get_engine() -> Engine:
    """The engine for the configured database."""
    return engine_for(get_settings().sqlalchemy_url)
