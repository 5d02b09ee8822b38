"""The audit log of restricted reads: who (token name, role) read what (method, path, the
restricted data, rows) and when.

One row per request that served restricted data to a token: tax, energy and emission figures
(and what is derived from them), the backward-capacity list and the BD (不达标) notes. The HTTP
layer decides when a request is such a read (app/deps.py) and writes the row with
:func:`record`, one INSERT per request; admins list them with :func:`entries`
(``GET /api/audit``, ``landlink audit``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from gis.core.models import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("token_id", BigInteger),  # api_tokens.id (tokens are revoked, never deleted)
    Column("token_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=False, server_default=""),
    Column("route", Text),  # the route's template, e.g. /api/enterprises/{uscc}
    Column("what", ARRAY(Text), nullable=False),  # the restricted data served
    Column("rows", Integer),  # rows served, where the route counts them
    Column("status", Integer, nullable=False),
    Index("audit_log_at", "at"),
    Index("audit_log_token_name", "token_name", "at"),
)

MAX_LIMIT = 10_000


def record(
    conn: Connection,
    *,
    token_id: int | None,
    token_name: str,
    role: str,
    method: str,
    path: str,
    query: str,
    route: str | None,
    what: list[str],
    rows: int | None,
    status: int,
) -> None:
    """One audit row (one INSERT)."""
    conn.execute(
        text(
            "INSERT INTO audit_log (token_id, token_name, role, method, path, query, route, what, "
            "rows, status) VALUES (:ti, :tn, :r, :m, :p, :q, :rt, :w, :n, :s)"
        ),
        {
            "ti": token_id,
            "tn": token_name,
            "r": role,
            "m": method,
            "p": path,
            "q": query,
            "rt": route,
            "w": what,
            "n": rows,
            "s": status,
        },
    )


def entries(
    conn: Connection,
    since: datetime | None = None,
    until: datetime | None = None,
    token: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict:
    """Audit rows, newest first: ``since`` <= at < ``until``, of tokens named ``token``;
    ``numberMatched`` counts them all."""
    where = (
        "(CAST(:since AS timestamptz) IS NULL OR at >= :since) "
        "AND (CAST(:until AS timestamptz) IS NULL OR at < :until) "
        "AND (CAST(:tok AS text) IS NULL OR token_name = :tok)"
    )
    p = {"since": since, "until": until, "tok": token}
    total = conn.execute(text(f"SELECT count(*) FROM audit_log WHERE {where}"), p).scalar_one()
    rows = conn.execute(
        text(
            "SELECT id, at, token_id, token_name, role, method, path, query, route, what, rows, "
            f"status FROM audit_log WHERE {where} ORDER BY at DESC, id DESC "
            "LIMIT :limit OFFSET :offset"
        ),
        {**p, "limit": limit, "offset": offset},
    ).all()
    items = [{**r._mapping, "at": r.at.isoformat(), "what": list(r.what)} for r in rows]
    return {"numberMatched": total, "items": items}
