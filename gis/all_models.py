"""Imports every module that defines tables on ``gis.models.metadata`` (for Alembic)."""

from gis.models import metadata  # noqa: F401
