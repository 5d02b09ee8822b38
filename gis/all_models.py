"""Imports every module that defines tables on ``gis.models.metadata`` (for Alembic)."""

import gis.detection_models  # noqa: F401  (issue 4: three kinds of land)
from gis.models import metadata  # noqa: F401
