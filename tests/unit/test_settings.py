"""Settings from GOLDENKEY_* environment variables (DESIGN §2)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from goldenkey.kit import KitSettings


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
