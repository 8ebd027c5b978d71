"""Bearer tokens → roles (DESIGN §8.1). Tokens are configured as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, TypeAdapter

Role = Literal["kiosk", "window", "concierge", "guard", "ops", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
DEV_TOKENS = {f"dev-{role}": role for role in ROLES}
"""The local dev stack's tokens (deploy/dev-tokens.json holds their hashes)."""
BEARER = HTTPBearer(
    auto_error=False,
    description="A hall token. Each operation lists the roles that may call it as the scopes of its "
    "security requirement (OpenAPI 3.1 allows role names there).",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and a name for the logs; the token hash identifies them."""

    role: str
    name: str
    token_hash: str


class TokenEntry(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    name: str = Field(default="", max_length=100)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRegistry:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._by_hash = {e.sha256: e for e in entries}

    @classmethod
    def from_file(cls, path: Path) -> TokenRegistry:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RuntimeError(f"tokens file {path} is unreadable: {error}") from error
        return cls(TypeAdapter(list[TokenEntry]).validate_python(raw))

    @classmethod
    def dev(cls) -> TokenRegistry:
        return cls([TokenEntry(sha256=token_hash(t), role=r, name=t) for t, r in DEV_TOKENS.items()])  # type: ignore[arg-type]

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = token_hash(token.strip())
        for known, entry in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return Principal(entry.role, entry.name or entry.role, digest)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller must hold one of `roles` (admin may do everything).

    The OpenAPI document shows the bearer scheme and the roles on every operation that uses it."""
    allowed = {*roles, "admin"}
    bearer = Security(BEARER, scopes=sorted(allowed))

    async def dependency(request: Request, _: HTTPAuthorizationCredentials | None = bearer) -> Principal:
        registry: TokenRegistry = request.app.state.tokens
        principal = registry.authenticate(request.headers.get("authorization"))
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role!r} may not do this; needs one of {sorted(allowed)}"
            )
        request.state.principal = principal
        return principal

    return dependency
