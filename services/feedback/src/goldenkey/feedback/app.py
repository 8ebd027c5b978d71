"""Wiring of the feedback service: settings, the kit, its repositories, handlers and routes."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from goldenkey.contracts import EVENTS
from goldenkey.kit import KitSettings, ServiceKit


class Settings(KitSettings):
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore")

    service: str = "feedback"
    http_port: int = 8004


def build_app(settings: Settings | None = None) -> FastAPI:
    kit = ServiceKit(settings or Settings())
    kit.emits(*(spec.model for spec in EVENTS.values() if spec.producer == kit.service))
    return kit.app()
