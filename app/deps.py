"""Request dependencies: the database engine (pooled) and the caller's role from a token."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy import Engine

from app.errors import ApiError
from gis import tokens
from gis.db import get_engine


def engine_dep() -> Engine:
    return get_engine()


@dataclass(frozen=True)
class Caller:
    role: str  # viewer | analyst | admin
    name: str

    @property
    def analyst(self) -> bool:
        return tokens.allows(self.role, "analyst")


PUBLIC = Caller("viewer", "public")


def caller(request: Request, engine: Engine = Depends(engine_dep)) -> Caller:
    """The caller from ``Authorization: Bearer <token>`` (or ``?token=`` for downloads).

    No token: the public viewer. A token that is not known: 401, so a typo is not silently public.
    """
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    token = token or request.query_params.get("token")
    if not token:
        return PUBLIC
    with engine.connect() as conn:
        found = tokens.lookup(conn, token)
    if not found:
        raise ApiError(
            401,
            "unknown or revoked token; create one with 'landlink token create --role ...'",
        )
    return Caller(*found)


def require(role: str):
    def dep(c: Caller = Depends(caller)) -> Caller:
        if c.role == "viewer" and c is PUBLIC:
            raise ApiError(
                401, f"this needs a token with role {role}: send 'Authorization: Bearer <token>'"
            )
        if not tokens.allows(c.role, role):
            raise ApiError(403, f"your token has role {c.role}; this needs {role}")
        return c

    return dep
