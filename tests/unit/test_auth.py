"""Bearer tokens stored as SHA-256 hashes, mapped to roles (DESIGN §8.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import HTTPException

from goldenkey.kit.auth import ROLES, TokenRegistry, token_hash

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
