"""Bearer tokens stored as SHA-256 hashes, mapped to roles (DESIGN §8.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

from goldenkey.kit.auth import (
    DEV_TOKENS,
    ROLES,
    Authentication,
    Principal,
    TokenRegistry,
    is_public,
    require,
    token_hash,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_dev_tokens_file_holds_a_hash_for_every_role_and_no_token_in_clear() -> None:
    path = REPO / "deploy" / "dev-tokens.json"
    registry = TokenRegistry.from_file(path)
    for role in ROLES:
        assert registry.authenticate(f"Bearer dev-{role}").role == role
    assert 'dev-ops"' not in path.read_text().replace('"name": "dev-ops"', "")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dev-ops", "dev-ops"])
def test_a_missing_or_malformed_authorization_header_is_401(header: str | None) -> None:
    with pytest.raises(HTTPException) as refused:
        TokenRegistry.dev().authenticate(header)
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_an_unknown_token_is_401_and_says_so() -> None:
    with pytest.raises(HTTPException) as refused:
        TokenRegistry.dev().authenticate("Bearer dev-mayor")
    assert refused.value.status_code == 401
    assert "unknown" in str(refused.value.detail)


def test_tokens_come_from_a_file_of_hashes(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"sha256": token_hash("s3cret"), "role": "guard", "name": "gate 2"}]))
    principal = TokenRegistry.from_file(tokens).authenticate("bearer s3cret")
    assert (principal.role, principal.name) == ("guard", "gate 2")
    with pytest.raises(HTTPException):
        TokenRegistry.from_file(tokens).authenticate("Bearer dev-guard")


def test_a_tokens_file_with_a_bad_entry_is_refused_at_start(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"sha256": "not-a-hash", "role": "guard"}]))
    with pytest.raises(ValueError, match="sha256"):
        TokenRegistry.from_file(tokens)
    tokens.write_text(json.dumps([{"sha256": token_hash("x"), "role": "mayor"}]))
    with pytest.raises(ValueError, match="role"):
        TokenRegistry.from_file(tokens)


# --- who is calling is settled first -----------------------------------------------------------------


class Body(BaseModel):
    colour: Literal["red", "green"]


def guarded_app(*, with_middleware: bool = True) -> tuple[FastAPI, list[str]]:
    """An app with one kiosk route and a health route; `reached` lists the requests its routes saw."""
    app = FastAPI()
    reached: list[str] = []

    @app.post("/widgets")
    async def make(body: Body, principal: Annotated[Principal, Depends(require("kiosk"))]) -> dict[str, str]:
        reached.append("widgets")
        return {"by": principal.name}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        reached.append("health")
        return {"status": "ok"}

    if with_middleware:
        app.add_middleware(Authentication, tokens=TokenRegistry.dev())
    return app, reached


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hall")


async def test_without_a_token_a_request_is_401_before_its_body_is_read() -> None:
    app, reached = guarded_app()
    async with client_of(app) as client:
        bad_body = await client.post("/widgets", json={"colour": "purple"})
        unknown = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-mayor"})
        nowhere = await client.get("/no-such-path")
    assert (bad_body.status_code, unknown.status_code, nowhere.status_code) == (401, 401, 401)
    assert bad_body.headers["www-authenticate"] == "Bearer"
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert bad_body.json() == {"detail": "missing bearer token: send 'Authorization: Bearer <token>'"}
    assert reached == []


async def test_with_a_token_the_route_checks_the_role_and_the_body() -> None:
    app, reached = guarded_app()
    async with client_of(app) as client:
        made = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "bearer dev-kiosk"})
        bad_body = await client.post(
            "/widgets", json={"colour": "purple"}, headers={"Authorization": "Bearer dev-kiosk"}
        )
        wrong_role = await client.post(
            "/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-guard"}
        )
        admin = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-admin"})
    assert (made.status_code, made.json()) == (200, {"by": "dev-kiosk"})
    assert bad_body.status_code == 422
    assert wrong_role.status_code == 403
    assert "kiosk" in wrong_role.json()["detail"]
    assert admin.status_code == 200
    assert reached == ["widgets", "widgets"]


async def test_health_needs_no_token() -> None:
    app, reached = guarded_app()
    async with client_of(app) as client:
        assert (await client.get("/health/live")).status_code == 200
    assert reached == ["health"]


async def test_a_route_that_requires_a_role_refuses_when_nobody_authenticated_the_caller() -> None:
    app, reached = guarded_app(with_middleware=False)
    async with client_of(app) as client:
        response = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-kiosk"})
    assert response.status_code == 401, "no middleware, no principal: fail closed"
    assert reached == []


@pytest.mark.parametrize(
    "path",
    [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/asyncapi",
        "/asyncapi/view",
        "/docs/assets/swagger-ui.css",
        "/asyncapi/assets/asyncapi-viewer.js",
    ],
)
def test_health_metrics_and_the_documents_are_public(path: str) -> None:
    assert is_public(path)


@pytest.mark.parametrize(
    "path",
    ["/", "/tickets", "/health", "/healthz", "/metrics/", "/docsx", "/docs/other", "/asyncapi/other", "//metrics"],
)
def test_every_other_path_needs_a_token(path: str) -> None:
    assert not is_public(path)


def test_a_registry_names_the_dev_tokens_it_accepts(tmp_path: Path) -> None:
    assert TokenRegistry.dev().dev_tokens() == sorted(f"dev-{role}" for role in ROLES)
    assert TokenRegistry.from_file(REPO / "deploy" / "dev-tokens.json").dev_tokens() == sorted(DEV_TOKENS)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"sha256": token_hash("s3cret"), "role": "guard"}]))
    assert TokenRegistry.from_file(tokens).dev_tokens() == []
    tokens.write_text(
        json.dumps(
            [{"sha256": token_hash("s3cret"), "role": "guard"}, {"sha256": token_hash("dev-ops"), "role": "ops"}]
        )
    )
    assert TokenRegistry.from_file(tokens).dev_tokens() == ["dev-ops"]
    assert TokenRegistry.configured(None, dev_tokens=False).dev_tokens() == []
