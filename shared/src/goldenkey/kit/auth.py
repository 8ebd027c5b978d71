"""Bearer tokens → roles (DESIGN §8.1). Tokens are configured as SHA-256 hashes, never in clear.

Who is calling is settled first, by the `Authentication` middleware, before anything reads the
request: a request without a valid token gets its 401 whatever its body, headers or path
(docs/security.md). `require(...)` then only checks the role.
"""

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
from starlette.types import ASGIApp, Receive, Scope, Send

from goldenkey.kit.docs import ASYNCAPI_ASSETS, DOCS_ASSETS

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
    bound_to: str | None = None
    """The window (or desk, kiosk) a device's token belongs to; None for a person's token, which
    may act for any. A bound token acts only for its own (docs/access.md)."""


class TokenEntry(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    name: str = Field(default="", max_length=100)
    bound_to: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    """A device's token names what it belongs to: a window token its window id, say."""


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

    @classmethod
    def configured(cls, tokens_file: Path | None, dev_tokens: bool) -> TokenRegistry:
        """The tokens file's tokens; without one the dev tokens if `dev_tokens`, else none at all."""
        if tokens_file is not None:
            return cls.from_file(tokens_file)
        return cls.dev() if dev_tokens else cls([])

    def dev_tokens(self) -> list[str]:
        """The dev tokens (`dev-admin`…) this registry accepts: public, so for dev mode only."""
        return sorted(token for token in DEV_TOKENS if token_hash(token) in self._by_hash)

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
                return Principal(entry.role, entry.name or entry.role, digest, entry.bound_to)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


PUBLIC_PATHS = frozenset({"/metrics", "/docs", "/redoc", "/openapi.json", "/asyncapi", "/asyncapi/view"})
"""What anyone may read without a token: metrics and the API documents (docs/decisions.md, "HTTP")."""
PUBLIC_PREFIXES = ("/health/", f"{DOCS_ASSETS}/", f"{ASYNCAPI_ASSETS}/")
"""Health checks, and the documents' scripts and styles (kit/docs.py)."""


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def principal_of(scope: Scope) -> Principal | None:
    """Who the `Authentication` middleware found is calling; None on a public path."""
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


class Authentication:
    """ASGI middleware: every request but those to a public path (`is_public`) must carry a valid
    bearer token, or gets a 401 before anything else reads it — its body, its `Idempotency-Key`,
    its path parameters. The caller's `Principal` goes into the request's state."""

    def __init__(self, app: ASGIApp, *, tokens: TokenRegistry) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(_route_path(scope)):
            await self.app(scope, receive, send)
            return
        authorization = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
        try:
            principal = self.tokens.authenticate(authorization.decode("latin-1"))
        except HTTPException as refused:
            if scope["type"] == "websocket":  # none is served; refuse the handshake all the same
                await send({"type": "websocket.close", "code": 1008})
                return
            body = json.dumps({"detail": refused.detail}).encode()
            headers = [(k.lower().encode(), v.encode()) for k, v in (refused.headers or {}).items()]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": refused.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path without the root path a proxy serves the app under (as Starlette's routing sees it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller must hold one of `roles` (admin may do everything).

    `Authentication` has found who the caller is; this checks the role (403). The OpenAPI document
    shows the bearer scheme and the roles on every operation that uses it."""
    allowed = {*roles, "admin"}
    bearer = Security(BEARER, scopes=sorted(allowed))

    async def dependency(request: Request, _: HTTPAuthorizationCredentials | None = bearer) -> Principal:
        principal = principal_of(request.scope)
        if principal is None:  # a public path using require(), or an app without the middleware: refuse
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "no authenticated caller", headers={"WWW-Authenticate": "Bearer"}
            )
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role!r} may not do this; needs one of {sorted(allowed)}"
            )
        return principal

    return dependency
