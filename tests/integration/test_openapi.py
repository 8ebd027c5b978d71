"""Each service's HTTP API keeps the promises of its OpenAPI document, whatever it is sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from goldenkey.concierge import app as concierge
from goldenkey.feedback import app as feedback
from goldenkey.kit.auth import ROLES
from goldenkey.parking import app as parking
from goldenkey.queue import app as queue
from tests.integration.openapi_fuzz import fuzz_openapi
from tests.support import RunningApp, unique

pytestmark = pytest.mark.integration
TOKENS = {role: f"dev-{role}" for role in ROLES}
"""Least privileged first: each operation is called as the first role it lists."""


@dataclass(frozen=True)
class Service:
    name: str
    settings: type[Any]
    build: Callable[[Any], FastAPI]
    declared: set[str]
    """Operations its document must have."""
    succeeded: list[tuple[str, int]]
    """(operation, status) the fuzzing must have met: valid input was carried out, not only refused."""


SERVICES = [
    Service(
        "queue",
        queue.Settings,
        queue.build_app,
        {"POST /tickets", "POST /windows/{window_id}/call-next", "PUT /catalog/{code}"},
        [("POST /tickets", 201), ("POST /windows/{window_id}/open", 200)],
    ),
    Service(
        "concierge",
        concierge.Settings,
        concierge.build_app,
        {"POST /loans", "POST /dispensations", "POST /assistance", "PUT /inventory/{sku}"},
        [("POST /assistance", 201), ("GET /inventory", 200)],
    ),
    Service(
        "parking",
        parking.Settings,
        parking.build_app,
        {"POST /vehicles/arrivals", "POST /incidents", "POST /patrols", "PUT /lot", "PUT /patrols/schedule"},
        [("GET /occupancy", 200), ("POST /headcounts", 200)],
    ),
    Service(
        "feedback",
        feedback.Settings,
        feedback.build_app,
        {"POST /ratings", "POST /messages", "GET /satisfaction", "PUT /rules"},
        [("POST /messages", 201), ("GET /satisfaction", 200)],
    ),
]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
async def test_every_operation_answers_as_documented_whatever_it_is_sent(infra: Any, service: Service) -> None:
    settings = service.settings(
        kafka_bootstrap=infra.kafka_bootstrap,
        mongodb_url=infra.mongodb_url,
        mongodb_database=unique(f"{service.name}_"),
        dev_mode=True,
        dev_tokens=True,
        business_hours="Mon-Sun 00:00-24:00",  # the same rules whenever the test runs
    )
    async with RunningApp(service.build(settings)) as running:
        report = await fuzz_openapi(running.url, TOKENS, max_examples=20)
    assert service.declared <= report.declared
    for operation, status in service.succeeded:
        assert report.called(operation, status), f"{operation} never answered {status}"
