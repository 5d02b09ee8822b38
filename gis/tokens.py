"""API tokens: created once, shown once, stored as SHA-256 hashes. Roles: viewer < analyst < admin.

No token at all is the public viewer. Analysts see tax, energy and emission figures; admins may
also import and edit.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Connection, text

ROLES = ("viewer", "analyst", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, role: str, name: str = "") -> str:
    """Store a new token for ``role``; returns the token itself (never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = "ll_" + secrets.token_urlsafe(32)
    conn.execute(
        text("INSERT INTO api_tokens (name, role, token_hash) VALUES (:n, :r, :h)"),
        {"n": name or role, "r": role, "h": _hash(token)},
    )
    return token


def lookup(conn: Connection, token: str) -> tuple[str, str] | None:
    """(role, name) of a live token, or None."""
    row = conn.execute(
        text("SELECT role, name FROM api_tokens WHERE token_hash = :h AND revoked_at IS NULL"),
        {"h": _hash(token)},
    ).first()
    return (row.role, row.name) if row else None


def allows(role: str, needed: str) -> bool:
    return RANK[role] >= RANK[needed]
