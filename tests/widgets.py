"""A small service on the kit, for testing the kit: widgets that get made and painted.

Every test gets its own event types and topics (`Contract`), so tests never read each other's
events from the shared Kafka.
"""

from __future__ import annotations

import random
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from goldenkey.contracts import CloudEvent, EventData
from goldenkey.contracts.registry import event, topic
from goldenkey.kit import Aggregate, AlreadyExists, Conflict, KitSettings, Principal, ServiceKit, creation_id, require
from goldenkey.kit.clock import Clock

Colour = Literal["red", "green", "blue"]


def letters(n: int = 10) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


@dataclass
class Contract:
    tag: str
    requests_topic: str
    widgets_topic: str
    WidgetMade: type[EventData]
    WidgetPainted: type[EventData]
    PaintRequested: type[EventData]


def new_contract() -> Contract:
    tag = letters()
    requests_topic = topic(f"test.{tag}.requests", "widget_id")
    widgets_topic = topic(f"test.{tag}.widgets", "widget_id")

    @event(f"widget.made.{tag}", topic=widgets_topic, producer="kittest")
    class WidgetMade(EventData):
        """A widget was made."""

        widget_id: str
        colour: Colour

    @event(f"widget.painted.{tag}", topic=widgets_topic, producer="kittest")
    class WidgetPainted(EventData):
        """A widget was painted another colour."""

        widget_id: str
        colour: Colour

    @event(f"paint.requested.{tag}", topic=requests_topic, producer="kittest")
    class PaintRequested(EventData):
        """Someone asked for a widget to be painted."""

        widget_id: str
        colour: Colour

    return Contract(tag, requests_topic, widgets_topic, WidgetMade, WidgetPainted, PaintRequested)


class Widget(Aggregate):
    colour: Colour
    coats: int = 0


class NewWidget(BaseModel):
    colour: Colour
    label: str = Field(default="", max_length=40)


def settings_for(infra: Any, **overrides: Any) -> KitSettings:
    values: dict[str, Any] = {
        "service": "kittest" + letters(8),
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongodb_url": infra.mongodb_url,
        "dev_mode": True,
        "dev_tokens": True,
        "relay_interval_s": 0.1,
        "consumer_backoff_s": 0.05,
        "consumer_backoff_max_s": 0.2,
        "mongodb_timeout_ms": 1000,
    }
    values.update(overrides)
    return KitSettings(**values)


HandlerHook = Callable[[CloudEvent, Any], Awaitable[None]]


def build(
    settings: KitSettings,
    contract: Contract,
    *,
    clock: Clock | None = None,
    before_paint: HandlerHook | None = None,
) -> tuple[ServiceKit, Any]:
    kit = ServiceKit(settings, clock=clock)
    widgets = kit.repository("widgets", Widget)
    kit.emits(contract.WidgetMade, contract.WidgetPainted)
    router = APIRouter()

    @router.post("/widgets", status_code=201)
    async def make(
        body: NewWidget, request: Request, _: Annotated[Principal, Depends(require("kiosk"))]
    ) -> dict[str, Any]:
        widget = Widget(id=creation_id(request), colour=body.colour)
        widget.record(contract.WidgetMade(widget_id=widget.id, colour=body.colour), at=kit.clock.now())
        try:
            await widgets.add(widget)
        except AlreadyExists:  # a retried create after a crash: the first one stands
            widget = await widgets.require(widget.id)
        return {"widget_id": widget.id, "colour": widget.colour}

    @router.post("/widgets/{widget_id}/paint")
    async def paint(
        widget_id: str, body: NewWidget, _: Annotated[Principal, Depends(require("window"))]
    ) -> dict[str, Any]:
        def repaint(widget: Widget) -> None:
            if widget.colour == body.colour:
                raise Conflict(f"widget {widget_id} is {body.colour} already")
            widget.colour = body.colour
            widget.coats += 1
            widget.record(contract.WidgetPainted(widget_id=widget.id, colour=body.colour), at=kit.clock.now())

        widget = await widgets.update(widget_id, repaint)
        return {"widget_id": widget.id, "colour": widget.colour, "coats": widget.coats}

    @kit.consumer.on(contract.PaintRequested.__event_type__)  # type: ignore[attr-defined]
    async def on_paint_requested(envelope: CloudEvent, data: Any) -> None:
        if before_paint is not None:
            await before_paint(envelope, data)

        def repaint(widget: Widget) -> None:
            widget.colour = data.colour
            widget.coats += 1
            widget.record(
                contract.WidgetPainted(widget_id=widget.id, colour=data.colour), at=kit.clock.now(), causation=envelope
            )

        await widgets.update(data.widget_id, repaint, cause=envelope)

    return kit, kit.app([router])
