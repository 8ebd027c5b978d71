"""The events the queue consumes: a guard's report on a parked car pages its owner."""

from __future__ import annotations

from goldenkey.contracts import CloudEvent, IncidentReported, TyreAlert
from goldenkey.kit import ServiceKit
from goldenkey.queue.service import QueueService

MESSAGES = {
    "flat_tyre": "您的车辆轮胎疑似亏气，请联系停车场保安。 A tyre of your car seems flat: see the car-park guard.",
    "lights_on": "您的车辆灯未关闭。 Your car's lights are on.",
    "window_open": "您的车窗未关闭。 A window of your car is open.",
    "blocking": "您的车辆阻挡通道，请挪车。 Your car is blocking the way: please move it.",
    "damage": "您的车辆可能受损，请联系保安。 Your car may be damaged: please see the guard.",
    "other": "停车场保安请您联系。 The car-park guard asks you to get in touch.",
}


def register(kit: ServiceKit, queue: QueueService) -> None:
    @kit.consumer.on("tyre.alert", "incident.reported")
    async def page_owner(envelope: CloudEvent, report: TyreAlert | IncidentReported) -> None:
        await queue.page_owner(
            envelope, report.ticket_id, report.plate_hash, MESSAGES.get(report.kind, MESSAGES["other"])
        )
