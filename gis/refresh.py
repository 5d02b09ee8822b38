"""What an import must recompute before it returns ("real-time linkage").

``after_import`` is called inside the import's transaction when a batch inserted or updated
rows; it runs the derived computations that depend on the changed layer and returns what it
refreshed. Analyses register themselves in ``DEPENDENTS`` (layer code -> callables).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

Refresher = Callable[[Connection, str, int], str]
DEPENDENTS: dict[str, list[Refresher]] = {}


def register(layers: tuple[str, ...], fn: Refresher) -> Refresher:
    for code in layers:
        DEPENDENTS.setdefault(code, []).append(fn)
    return fn


def after_import(conn: Connection, layer_code: str, batch_id: int) -> list[str]:
    """Run every refresher that depends on ``layer_code``; returns their descriptions."""
    return [fn(conn, layer_code, batch_id) for fn in DEPENDENTS.get(layer_code, [])]
