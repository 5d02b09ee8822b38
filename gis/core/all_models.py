"""Imports every module that defines tables on ``gis.core.models.metadata`` (for Alembic)."""

import gis.core.analysis_models  # noqa: F401  (linkage and evaluation)
import gis.core.audit  # noqa: F401  (the audit log of restricted reads)
import gis.core.detection_models  # noqa: F401  (three kinds of land)
import gis.core.plan_models  # noqa: F401  (platform kinds and layout plans)
import gis.core.publication_models  # noqa: F401  (the yearly publication)
import gis.core.target_models  # noqa: F401  (targets' progress)
import gis.core.tile_models  # noqa: F401  (tile-cache invalidation log)
from gis.core.models import metadata  # noqa: F401
