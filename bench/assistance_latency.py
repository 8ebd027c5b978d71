"""`ticket.issued` → `assistance.assigned` through the concierge service at a steady rate (DESIGN §10).

The concierge runs as a separate process (`python -m goldenkey.concierge`) on its own database, with
its five concierges on duty. The benchmark produces `ticket.issued` events, each with one need, at a
steady R per second for S seconds, onto `queue.tickets` as the queue service would, and reads
`concierge.assistance` without a consumer group: the latency of a ticket is from the moment its
event was sent to the moment its `assistance.assigned` arrived. Ceiling, in the same run and at the
same rate: raw aiokafka produce → consume of events of the same size (the two Kafka hops of the
path cost at least twice that). Target: p99 < 250 ms at 50 tickets/s sustained for 60 s.

    .venv/bin/python bench/assistance_latency.py [--rate R] [--seconds S] [--events N]

`--events N` sends N tickets (at the rate R) instead of R × S. Uses the Kafka and MongoDB-protocol
server named by GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL when both are set, otherwise a
throwaway native stack on free loopback ports. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `deploy.native.devstack` lives at the repo root
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from aiokafka import ConsumerRecord  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from bench.common import (  # noqa: E402
    Infra,
    Row,
    ServiceProcess,
    TopicReader,
    database_name,
    fmt,
    kafka_latencies,
    memory,
    mib,
    percentile,
    print_table,
    raw_producer,
    start_stack,
    steady,
)
from bench.probe import per_operation  # noqa: E402
from goldenkey.contracts import TicketIssued, envelope_for  # noqa: E402
from goldenkey.contracts.topics import CONCIERGE_ASSISTANCE, QUEUE_TICKETS  # noqa: E402

DRAIN_S = 30.0
"""How long after the last send the benchmark waits for the last assignments."""


def ticket_issued(ticket_id: str) -> bytes:
    now = datetime.now(UTC)
    data = TicketIssued(
        ticket_id=ticket_id,
        number="B001",
        category="B",
        item_code="B001",
        channel="kiosk",
        needs=["wheelchair"],
        issued_at=now,
    )
    return envelope_for(data, time=now, correlationid=ticket_id).to_bytes()


class Arrivals(TopicReader):
    """Reads a topic from now on, noting when each wanted event arrived, by a key of it."""

    def __init__(self, bootstrap: str, topic: str, key: Callable[[dict[str, object]], str | None]) -> None:
        super().__init__(bootstrap, topic, from_start=False)
        self.key = key
        self.at: dict[str, float] = {}

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            key = self.key(json.loads(record.value or b"{}"))
            if key is not None:
                self.at.setdefault(key, at)

    async def wait(self, keys: set[str], seconds: float) -> None:
        await self.wait_until(lambda: keys <= self.at.keys(), time.monotonic() + seconds)


def assigned_ticket(event: dict[str, object]) -> str | None:
    data = event.get("data")
    if event.get("type") == "assistance.assigned" and isinstance(data, dict):
        return str(data.get("ticket_id"))
    return None


def by_window(sent: dict[str, float], at: dict[str, float], windows: int = 6) -> str:
    """The p99 of the tickets sent in each sixth of the load: whether the path keeps up (flat) or
    falls behind (rising)."""
    if not sent:
        return "—"
    began, ended = min(sent.values()), max(sent.values())
    width = max(ended - began, 1e-9) / windows
    cells = []
    for w in range(windows):
        lags = [at[k] - t for k, t in sent.items() if k in at and min(int((t - began) / width), windows - 1) == w]
        cells.append(f"{w * width:.0f}s {fmt(percentile(lags, 99), 'ms')}")
    return ", ".join(cells)


def late_at(sent: dict[str, float], at: dict[str, float], limit_s: float) -> str:
    """When, into the load, the tickets over `limit_s` were sent (whether the path fell behind
    steadily, or at one moment)."""
    if not sent:
        return "—"
    began = min(sent.values())
    late = sorted(sent[k] - began for k in sent if k in at and at[k] - sent[k] > limit_s)
    if not late:
        return f"none over {1000 * limit_s:.0f} ms"
    return f"{len(late)} over {1000 * limit_s:.0f} ms, sent {late[0]:.1f}–{late[-1]:.1f}s into the load"


async def database_info(infra: Infra) -> dict[str, Any]:
    async with AsyncMongoClient(infra.mongodb_url) as client:
        info: dict[str, Any] = await client.admin.command("buildInfo")
        return info


async def measure(infra: Infra, n: int, rate: float, workdir: Path) -> None:
    began = time.monotonic()

    def step(what: str) -> None:
        print(f"assistance_latency: {what}…", file=sys.stderr, flush=True)

    info = await database_info(infra)
    step(f"Kafka latency ceiling: {n} records at {rate:g}/s")
    ceiling = await kafka_latencies(infra.kafka_bootstrap, n, rate, lambda i: ticket_issued(f"ceiling-{i}"))
    database = f"bench_concierge_{uuid.uuid4().hex[:8]}"
    service = ServiceProcess("concierge", infra, database, workdir / "concierge.log")
    service.start()
    producer = raw_producer(infra.kafka_bootstrap)
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            ready_s = await service.ready(client)
        await producer.start()
        rss_ready = memory(service.pid).get("VmRSS")
        async with Arrivals(infra.kafka_bootstrap, CONCIERGE_ASSISTANCE, assigned_ticket) as arrivals:
            warm = f"warm-{uuid.uuid4().hex[:8]}"
            await producer.send_and_wait(QUEUE_TICKETS, ticket_issued(warm), key=warm.encode())
            await arrivals.wait({warm}, 60)  # the consumer group has joined and the path is warm
            await service.commands()  # from here on
            sent: dict[str, float] = {}
            prefix = uuid.uuid4().hex[:8]

            async def send(i: int) -> None:
                ticket_id = f"t-{prefix}-{i}"
                sent[ticket_id] = time.time()
                await producer.send_and_wait(QUEUE_TICKETS, ticket_issued(ticket_id), key=ticket_id.encode())

            step(f"{n} ticket.issued at {rate:g}/s")
            achieved = await steady(n, rate, send)
            await arrivals.wait(set(sent), DRAIN_S)
            latencies = [arrivals.at[k] - sent[k] for k in sent if k in arrivals.at]
            windows = by_window(sent, arrivals.at)
            done_in = max((arrivals.at[k] for k in sent if k in arrivals.at), default=0.0) - min(sent.values())
            late = late_at(sent, arrivals.at, 0.25)
            commands = await service.commands()
        rss_after = memory(service.pid)
    finally:
        await producer.stop()
        stopped_s, code = service.stop()
        async with AsyncMongoClient(infra.mongodb_url) as mongo:
            await mongo.drop_database(database)

    c50, c99 = percentile(ceiling, 50), percentile(ceiling, 99)
    ceiling_note = f"{len(ceiling)}/{n} records of the same size at the same rate, send() to arrival"
    rows = [
        Row("raw Kafka produce→consume, p50 [ceiling]", c50, "ms", note=ceiling_note),
        Row("raw Kafka produce→consume, p99 [ceiling]", c99, "ms"),
        Row(
            "ticket.issued → assistance.assigned, p50",
            percentile(latencies, 50),
            "ms",
            "raw Kafka p50",
            c50,
            f"{len(latencies)}/{n} assigned within {DRAIN_S:.0f}s of the last send; two Kafka hops",
            lower_is_better=True,
        ),
        Row(
            "ticket.issued → assistance.assigned, p99",
            percentile(latencies, 99),
            "ms",
            "raw Kafka p99",
            c99,
            f"target < 250 ms at 50/s for 60 s; {late}",
            lower_is_better=True,
        ),
        Row("ticket.issued → assistance.assigned, max", percentile(latencies, 100), "ms"),
        Row(
            "assistance.assigned rate",
            len(latencies) / done_in if done_in > 0 else None,
            "ev/s",
            "tickets sent/s",
            achieved,
            "first ticket sent → last assignment seen; below 100 %: the service fell behind",
        ),
    ]
    print(
        f"\nassistance latency — {n} ticket.issued at {rate:g}/s (achieved {achieved:.1f}/s, {n / rate:.0f}s),"
        " one need each; five concierges on duty\n"
    )
    print_table(rows)
    print()
    print(f"p99 by when the ticket was sent: {windows}")
    print(f"concierge: ready in {ready_s:.1f}s; RSS {mib(rss_ready)} ready → {mib(rss_after.get('VmRSS'))} after")
    print(f"           (peak {mib(rss_after.get('VmHWM'))}); SIGTERM → exit in {fmt(stopped_s, 's')} (code {code})")
    print(
        "commands:  MongoDB commands per ticket, the relay included"
        " (PyMongo command monitoring in the service; times overlap when concurrent):"
    )
    for line in per_operation(commands, n):
        print(f"             {line}")
    complaints = service.complaints()
    if complaints:
        print("service log: " + "; ".join(f"{count} × {what}" for what, count in complaints.most_common(5)))
    else:
        print("service log: no warnings or errors")
    print()
    print(f"broker:    {infra.kafka}")
    print(f"database:  {database_name(info, infra.native)}")
    print(
        f"client:    Python {platform.python_version()}, aiokafka {version('aiokafka')}, pymongo {version('pymongo')};"
        f" {os.cpu_count()} cores, the load generator on the same machine"
    )
    print(f"took:      {time.monotonic() - began:.0f}s, stack start-up aside")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="tickets per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the steady load lasts (default 60)")
    parser.add_argument("--events", type=int, default=None, help="send this many tickets instead of rate × seconds")
    args = parser.parse_args()
    n = args.events or max(1, round(args.rate * args.seconds))
    infra, down = start_stack()
    try:
        with tempfile.TemporaryDirectory(prefix="goldenkey-bench-") as workdir:
            asyncio.run(measure(infra, n, args.rate, Path(workdir)))
    finally:
        down()


if __name__ == "__main__":
    main()
