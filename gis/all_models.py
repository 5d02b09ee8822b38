"""Imports every module that defines tables on ``gis.models.metadata`` (for Alembic)."""

import gis.analysis_models  # noqa: F401  (linkage and evaluation)
import gis.audit  # noqa: F401  (the audit log of restricted reads)
import gis.detection_models  # noqa: F401  (three kinds of land)
import gis.plan_models  # noqa: F401  (platform kinds and layout plans)
import gis.tile_models  # noqa: F401  (tile-cache invalidation log)
from gis.models import metadata  # noqa: F401
