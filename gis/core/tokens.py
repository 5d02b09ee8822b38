"""API tokens: created once, shown once, stored as SHA-256 hashes. Roles: viewer < analyst < admin,
and editor beside them.

No token at all is the public viewer. Analysts see tax, energy and emission figures (and the
backward-capacity list and the BD notes); admins may also import and edit every layer. An editor is
a department's token (市统计局, 市税务局 …): it reads as a viewer does, and may write, and read the
restricted fields of, only the layers it was made for (``layers``, contract codes).

Every token has an expiry (``DEFAULT_DAYS`` unless told otherwise) and can be revoked; both take
effect on the next request (each request looks its token up, nothing is cached). Only a short
prefix of a token is kept in clear, so that a person can tell their tokens apart in
``landlink token list``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, text

ROLES = ("viewer", "editor", "analyst", "admin")
# what a role may read and which routes it reaches: an editor reads as a viewer (its own
# layers' restricted fields aside, see ``writes``)
RANK = {"viewer": 0, "editor": 0, "analyst": 1, "admin": 2}
DEFAULT_DAYS = 365  # a new token's lifetime unless --expires-in-days / --expires says otherwise
MAX_DAYS = 3660  # about ten years
PREFIX_LEN = 8  # "ll_" and 5 random characters, shown by `token list`
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


class TokenError(ValueError):
    """A token that may not be used (unknown, revoked, expired); the message says what to do."""


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    role: str
    layers: tuple[str, ...] = ()  # an editor's layers (contract codes)


def editor_layers(role: str, layers: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The layers a new token of ``role`` is for, as upper-case contract codes in import order:
    required (and only allowed) for an editor. ValueError says what is wrong."""
    from gis.core.layers import IMPORT_ORDER

    codes = [c.strip().upper() for c in (layers or ()) if c.strip()]
    if role != "editor":
        if codes:
            article = "an" if role[0] in "aeiou" else "a"
            raise ValueError(
                f"--layers is for editor tokens; {article} {role} token "
                + ("writes every layer" if role == "admin" else "writes no layer")
            )
        return ()
    if not codes:
        raise ValueError("an editor token needs --layers, e.g. --layers cc,bd")
    unknown = [c for c in codes if c not in IMPORT_ORDER]
    if unknown:
        raise ValueError(
            f"--layers: no layer {', '.join(unknown)}; the layers are {', '.join(IMPORT_ORDER)}"
        )
    return tuple(c for c in IMPORT_ORDER if c in codes)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expiry(days: int | None = None, until: date | None = None) -> datetime:
    """When a new token stops working: ``days`` from now, or the end of the day ``until``
    (server local time), else ``DEFAULT_DAYS`` from now."""
    now = datetime.now(UTC).astimezone()
    if until is not None:
        end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=now.tzinfo)
        if end <= now:
            raise ValueError(f"--expires {until}: that day is over; give a later date")
        if end - now > timedelta(days=MAX_DAYS):
            raise ValueError(f"--expires {until}: at most {MAX_DAYS} days ahead")
        return end
    days = DEFAULT_DAYS if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--expires-in-days {days}: give 1 to {MAX_DAYS}")
    return now + timedelta(days=days)


def create(
    conn: Connection,
    role: str,
    name: str = "",
    expires_at: datetime | None = None,
    layers: list[str] | tuple[str, ...] | None = None,
) -> str:
    """Store a new token for ``role`` (an editor: for ``layers``, contract codes); returns the
    token itself (never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    codes = editor_layers(role, layers)
    token = "ll_" + secrets.token_urlsafe(32)
    conn.execute(
        text(
            "INSERT INTO api_tokens (name, role, token_hash, prefix, expires_at, layers) "
            "VALUES (:n, :r, :h, :p, :e, :l)"
        ),
        {
            "n": name or role,
            "r": role,
            "h": _hash(token),
            "p": token[:PREFIX_LEN],
            "e": expires_at or expiry(),
            "l": list(codes) or None,
        },
    )
    return token


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def authenticate(conn: Connection, token: str) -> Token:
    """The live token ``token`` names, or :class:`TokenError` saying why it is refused.

    Records when it was last used (at most every ``LAST_USED_EVERY``), so ``conn`` should be in
    a transaction that commits.
    """
    row = conn.execute(
        text(
            "SELECT id, name, role, layers, expires_at, revoked_at, now() AS now, "
            "last_used_at IS NULL OR last_used_at < now() - CAST(:every AS interval) AS touch "
            "FROM api_tokens WHERE token_hash = :h"
        ),
        {"h": _hash(token), "every": f"{int(LAST_USED_EVERY.total_seconds())} seconds"},
    ).first()
    create_hint = "create a new one with 'landlink token create --role ...'"
    if row is None:
        raise TokenError(f"unknown token; {create_hint}")
    if row.revoked_at is not None:
        raise TokenError(
            f"token {row.name!r} was revoked on {_when(row.revoked_at)}; {create_hint}"
        )
    if row.expires_at <= row.now:
        raise TokenError(f"token {row.name!r} expired on {_when(row.expires_at)}; {create_hint}")
    if row.touch:
        conn.execute(
            text("UPDATE api_tokens SET last_used_at = now() WHERE id = :i"), {"i": row.id}
        )
    return Token(row.id, row.name, row.role, tuple(row.layers or ()))


def lookup(conn: Connection, token: str) -> tuple[str, str] | None:
    """(role, name) of a live token, or None."""
    try:
        t = authenticate(conn, token)
    except TokenError:
        return None
    return t.role, t.name


def list_tokens(conn: Connection, include_revoked: bool = True) -> list[dict]:
    """Every token (never the token itself): id, prefix, name, role, layers (an editor's),
    created, expires, revoked, last used, and its state (live, expired, revoked)."""
    rows = conn.execute(
        text(
            """
            SELECT id, prefix, name, role, layers, created_at, expires_at, revoked_at,
                   last_used_at,
                   CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                        WHEN expires_at <= now() THEN 'expired' ELSE 'live' END AS state
            FROM api_tokens
            WHERE CAST(:all AS boolean) OR revoked_at IS NULL
            ORDER BY id
            """
        ),
        {"all": include_revoked},
    ).all()
    return [dict(r._mapping) for r in rows]


def revoke(conn: Connection, name_or_id: str) -> list[dict]:
    """Revoke the token with this id, else every unrevoked token with this name; returns the
    tokens revoked (empty: nothing matched). Takes effect on the next request."""
    by_id = name_or_id.isdigit() and int(name_or_id) < 2**63
    rows = []
    if by_id:
        rows = conn.execute(
            text(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = :i AND revoked_at IS NULL "
                "RETURNING id, name, role"
            ),
            {"i": int(name_or_id)},
        ).all()
    if not rows:
        rows = conn.execute(
            text(
                "UPDATE api_tokens SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL "
                "RETURNING id, name, role"
            ),
            {"n": name_or_id},
        ).all()
    return [dict(r._mapping) for r in sorted(rows)]


def allows(role: str, needed: str) -> bool:
    """Whether ``role`` reaches ``needed`` on the viewer < analyst < admin scale (an editor
    reaches viewer: what it may write is ``writes``)."""
    return RANK[role] >= RANK[needed]


def writes(role: str, layers: tuple[str, ...], code: str) -> bool:
    """Whether a token of ``role`` made for ``layers`` may write layer ``code``: admin every
    layer, an editor its own."""
    return role == "admin" or (role == "editor" and code.upper() in layers)
