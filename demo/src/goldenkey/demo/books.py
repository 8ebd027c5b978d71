"""The evening's reckoning: what the simulator did against what the services say and what Kafka holds.

Every difference is a failed check, printed with what was expected and what was found."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer

from goldenkey.contracts import TOPICS, dlq_topic
from goldenkey.demo.driver import TOKENS, Hall
from goldenkey.demo.record import Check

SERVICES = ("queue", "concierge", "parking", "feedback")


def check(name: str, expected: object, found: object) -> Check:
    return Check(name=name, ok=expected == found, expected=str(expected), found=str(found))


async def reckon(hall: Hall, kafka: dict[str, Any]) -> list[Check]:
    """The books of the day, once the outboxes are empty; `kafka` holds the aiokafka client
    options of the stack's broker."""
    checks: list[Check] = []
    visits = list(hall.visits.values())
    outcomes = Counter(v.outcome for v in visits)
    checks.append(check("every visitor is accounted for", len(hall.plan.visitors), len(visits)))
    checks.append(check("every visit ended (served, no-show or cancelled)", 0, outcomes.get(None, 0)))
    checks.append(check("nobody was left waiting until the simulator gave up", 0, outcomes.get("cancelled", 0)))
    checks.append(check("no command got an answer nobody expected", [], hall.tally.failures[:5]))

    stats = (await hall.http.get(f"{hall.services.queue}/stats/today", headers=TOKENS["ops"])).json()
    hall.record.stats_today = stats
    served = sum(outcomes[o] for o in ("done", "needs_materials", "referred"))
    checks.append(check("the queue issued the tickets the kiosk took", len(visits), stats["issued"]))
    checks.append(check("the queue served whom the windows completed", served, stats["served"]))
    checks.append(
        check("the queue's no-shows are the visitors who never came back", outcomes["no_show"], stats["no_shows"])
    )
    checks.append(
        check(
            "the queue's one-trip breaches are the needs_materials outcomes",
            outcomes["needs_materials"],
            stats["one_trip_breaches"],
        )
    )

    day = hall.record.day
    by_day = (
        await hall.http.get(
            f"{hall.services.feedback}/satisfaction",
            params={"group_by": "day", "from": day, "to": day},
            headers=TOKENS["ops"],
        )
    ).json()
    rated = sum(1 for v in visits if v.score is not None)
    checks.append(check("feedback counted every rating given", rated, sum(g["rated"] for g in by_day["groups"])))

    occupancy = (await hall.http.get(f"{hall.services.parking}/occupancy", headers=TOKENS["ops"])).json()
    checks.append(check("every car that came has left the car park", 0, occupancy["occupied"]))

    inventory = (await hall.http.get(f"{hall.services.concierge}/inventory", headers=TOKENS["ops"])).json()
    stock = {c["sku"]: c["stock"] for c in inventory["consumables"]}
    first = hall.record.snapshots[0].stock if hall.record.snapshots else {}
    expected = {sku: first.get(sku, 0) - hall.dispensed[sku] + hall.restocked[sku] for sku in stock}
    if first:
        checks.append(
            check("consumables left are what was there, less what was handed out, plus restocks", expected, stock)
        )

    pending = {service: await _outbox_pending(hall, service) for service in SERVICES}
    checks.append(check("no outbox holds an event", dict.fromkeys(SERVICES, 0), pending))

    counts, duplicates = await _events(kafka, sorted(TOPICS))
    hall.record.figures["events on Kafka"] = sum(counts.values())
    checks.append(check("no event is on Kafka twice", 0, duplicates))
    expect = {
        "ticket.issued": len(visits),
        "ticket.completed": served,
        "rating.submitted": rated,
        # visitors' cars, and the strangers' cars whose flat tyre has no ticket to page
        "vehicle.arrived": hall.tally.commands["POST parking/vehicles/arrivals"],
        "tyre.alert": sum(1 for i in hall.incidents.values() if i.kind == "flat_tyre"),
    }
    checks.append(check("each command's event is on Kafka exactly once", expect, {t: counts.get(t, 0) for t in expect}))
    dead, _ = await _events(kafka, [dlq_topic(s) for s in SERVICES])
    checks.append(check("every dead-letter topic is empty", 0, sum(dead.values())))
    return checks


async def _outbox_pending(hall: Hall, service: str) -> int | str:
    url = getattr(hall.services, service)
    for _ in range(120):
        ready = (await hall.http.get(f"{url}/health/ready")).json()
        pending = ready.get("checks", {}).get("outbox_pending")
        if pending == 0:
            return 0
        await asyncio.sleep(0.25)
    return str(pending)


async def _events(kafka: dict[str, Any], topics: list[str]) -> tuple[Counter[str], int]:
    """Every record on `topics` from the beginning: counts by event type, and repeated event ids."""
    consumer = AIOKafkaConsumer(*topics, **kafka, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        for _ in range(100):  # without a group, the consumer takes every partition of its topics
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        partitions = list(consumer.assignment())
        counts: Counter[str] = Counter()
        ids: Counter[str] = Counter()
        if not partitions:
            return counts, 0
        ends = await consumer.end_offsets(partitions)
        remaining = {p for p in partitions if ends[p] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for partition, records in batch.items():
                for record in records:
                    event = _event(record.value)
                    counts[event.get("type", "?")] += 1
                    ids[event.get("id", f"?{partition}:{record.offset}")] += 1
                    if record.offset + 1 >= ends[partition]:
                        remaining.discard(partition)
        return counts, sum(n - 1 for n in ids.values() if n > 1)
    finally:
        await consumer.stop()


def _event(value: bytes | None) -> dict[str, Any]:
    try:
        found = json.loads(value or b"")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
