"""The names of platform kinds (§4), block functions and allocation levels (§8).

Apart from gis/core/plan_models.py (which re-exports them) so that the ``landlink`` command line can
offer them as choices without loading the table definitions with GeoAlchemy2 and Shapely at every
start.
"""

from __future__ import annotations

KINDS = (
    "consolidate_host",
    "consolidate_member",
    "to_innovation",
    "retain_upgrade",
    "phase_out",
)
FUNCTIONS = ("keep_industrial", "to_m0", "redevelop", "exit")
ALLOCATION_LEVELS = ("district", "platform", "corridor")
