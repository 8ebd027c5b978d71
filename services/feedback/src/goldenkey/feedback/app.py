"""Wiring of the feedback service: settings, the kit, its repositories, handlers and routes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from goldenkey.contracts import EVENTS
from goldenkey.feedback import api, handlers
from goldenkey.feedback.domain import Complaint, Invitation, Message, Rating, Rules, RuleSet
from goldenkey.feedback.metrics import FeedbackMetrics
from goldenkey.feedback.service import FeedbackService
from goldenkey.feedback.store import INDEXES, FeedbackStore
from goldenkey.kit import Clock, KitSettings, ServiceKit


class Settings(KitSettings):
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore")

    service: str = "feedback"
    http_port: int = 8004
    watch_s: float = 60.0
    """How often the watchdog looks for complaint stages past their deadline."""
    rules_file: Path | None = None
    """The hall's own complaint rules (JSON like the shipped data/rules.json); loaded when the
    database has none."""


def build_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    kit = ServiceKit(settings, clock=clock)
    rules = (
        Rules.model_validate(json.loads(settings.rules_file.read_text(encoding="utf-8")))
        if settings.rules_file
        else None
    )
    store = FeedbackStore(
        invitations=kit.repository("invitations", Invitation),
        ratings=kit.repository("ratings", Rating, INDEXES),
        complaints=kit.repository("complaints", Complaint),
        messages=kit.repository("messages", Message),
        rule_sets=kit.repository("rule_sets", RuleSet),
        rules=rules,
    )
    metrics = FeedbackMetrics(kit.metrics)
    feedback = FeedbackService(store, kit.clock, kit.calendar, metrics)
    kit.metrics.refresh_with(lambda: metrics.refresh(feedback))
    kit.emits(*(spec.model for spec in EVENTS.values() if spec.producer == kit.service))
    handlers.register(kit, feedback)

    kit.on_start(store.seed)
    kit.every(settings.watch_s, feedback.sweep, what="feedback watchdog")
    app = kit.app(
        [api.router],
        description="Ratings (one per service, five levels), the message book, and complaint cases until closed.",
    )
    app.state.feedback = feedback
    return app
