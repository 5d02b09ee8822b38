"""What an import must recompute before it returns ("real-time linkage").

``after_import`` is called inside the import's transaction when a batch inserted or updated
rows; it runs the derived computations that depend on the changed layer and returns what it
refreshed. Analyses register themselves in ``DEPENDENTS`` (layer code -> callables).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy import Connection

Refresher = Callable[[Connection, str, int], str]
DEPENDENTS: dict[str, list[Refresher]] = {}
# Modules that register their refreshers when imported (one line per analysis); loaded on the
# first import so that every entry point (CLI, API, tests) refreshes the same things.
PLUGINS: tuple[str, ...] = (
    "gis.serving.tiles",  # zone aggregates of low-zoom tiles, enterprise tile invalidation
    "gis.economy.evaluation",  # linkage, per-mu, evaluation, §7
)
_loaded = False


def register(layers: tuple[str, ...], fn: Refresher) -> Refresher:
    for code in layers:
        DEPENDENTS.setdefault(code, []).append(fn)
    return fn


def load_plugins() -> dict[str, list[Refresher]]:
    """Import every module of ``PLUGINS`` once (each registers itself) and return the registry.

    Call this before replacing or reading ``DEPENDENTS``: a plugin imported later registers into
    whatever dict ``DEPENDENTS`` is at that moment.
    """
    global _loaded
    if not _loaded:
        for module in PLUGINS:
            importlib.import_module(module)
        _loaded = True
    return DEPENDENTS


def disable() -> None:
    """Make ``after_import`` a no-op in this process (bulk loads that recompute once at the end)."""
    global PLUGINS, DEPENDENTS, _loaded
    PLUGINS, DEPENDENTS, _loaded = (), {}, True


def after_import(conn: Connection, layer_code: str, batch_id: int) -> list[str]:
    """Run every refresher that depends on ``layer_code``; returns their descriptions."""
    load_plugins()
    return [fn(conn, layer_code, batch_id) for fn in DEPENDENTS.get(layer_code, [])]
