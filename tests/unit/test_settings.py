"""Settings from GOLDENKEY_* environment variables (DESIGN §2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from goldenkey.kit import KitSettings, ServiceKit
from goldenkey.kit.auth import token_hash
from goldenkey.kit.settings import DEV_PII_KEY, DevSecretsOutsideDevMode


def test_settings_come_from_goldenkey_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENKEY_SERVICE", "queue")
    monkeypatch.setenv("GOLDENKEY_KAFKA_BOOTSTRAP", "kafka:19092")
    monkeypatch.setenv("GOLDENKEY_BUSINESS_HOURS", "Mon-Sun 00:00-24:00")
    settings = KitSettings()
    assert settings.kafka_bootstrap == "kafka:19092"
    assert settings.database == "goldenkey_queue"
    assert settings.timezone == "Asia/Shanghai"
    assert str(settings.business_hours) == "Mon-Sun 00:00-24:00"


def test_bad_business_hours_stop_the_service_at_start_with_the_expected_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENKEY_BUSINESS_HOURS", "weekdays")
    with pytest.raises(ValidationError, match="Mon-Fri 09:00-17:00"):
        KitSettings()


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENKEY_MONGODB_URL", "mongodb://gk:hunter2@db:27017/")
    monkeypatch.setenv("GOLDENKEY_PII_KEY", "the-real-key")
    shown = repr(KitSettings())
    assert "hunter2" not in shown
    assert "the-real-key" not in shown


# --- dev mode: the public development secrets, and only there ----------------------------------------

REPO = Path(__file__).resolve().parents[2]
REAL_KEY = "a-key-of-this-deployment-only"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No GOLDENKEY_* variable from the caller; a tokens file of this deployment's own tokens."""
    for name in [name for name in os.environ if name.startswith("GOLDENKEY_")]:
        monkeypatch.delenv(name)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"sha256": token_hash("s3cret-kiosk"), "role": "kiosk", "name": "kiosk 1"}]))
    return tokens


def test_outside_dev_mode_a_service_refuses_the_development_pii_key(production: Path) -> None:
    with pytest.raises(DevSecretsOutsideDevMode, match="GOLDENKEY_PII_KEY is the public development key") as refused:
        ServiceKit(KitSettings(service="queue", tokens_file=production))
    assert "GOLDENKEY_DEV_MODE=true" in str(refused.value), "it says how a developer's machine runs"
    assert DEV_PII_KEY not in str(refused.value)


def test_outside_dev_mode_a_service_refuses_the_dev_tokens(production: Path) -> None:
    with pytest.raises(DevSecretsOutsideDevMode, match="GOLDENKEY_DEV_TOKENS is on"):
        ServiceKit(KitSettings(pii_key=REAL_KEY, dev_tokens=True))
    dev_tokens_file = REPO / "deploy" / "dev-tokens.json"
    with pytest.raises(
        DevSecretsOutsideDevMode, match=r"GOLDENKEY_TOKENS_FILE .* accepts the public dev tokens dev-admin"
    ):
        ServiceKit(KitSettings(pii_key=REAL_KEY, tokens_file=dev_tokens_file))


def test_a_service_with_its_own_key_and_tokens_starts_outside_dev_mode(production: Path) -> None:
    kit = ServiceKit(KitSettings(pii_key=REAL_KEY, tokens_file=production))
    assert kit.tokens.authenticate("Bearer s3cret-kiosk").role == "kiosk"
    assert kit.tokens.dev_tokens() == []


def test_in_dev_mode_the_development_secrets_are_allowed(production: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDENKEY_DEV_MODE", "true")
    monkeypatch.setenv("GOLDENKEY_DEV_TOKENS", "true")
    kit = ServiceKit(KitSettings())
    assert kit.settings.dev_mode
    assert kit.tokens.authenticate("Bearer dev-admin").role == "admin"


def test_python_m_a_service_outside_dev_mode_exits_at_once_naming_the_setting(production: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GOLDENKEY_")}
    env["GOLDENKEY_TOKENS_FILE"] = str(production)
    ran = subprocess.run(
        [sys.executable, "-m", "goldenkey.parking"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode != 0
    assert "DevSecretsOutsideDevMode" in ran.stderr
    assert "GOLDENKEY_PII_KEY" in ran.stderr
