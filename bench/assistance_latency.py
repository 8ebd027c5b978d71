"""`ticket.issued` → `assistance.assigned` through the concierge service at a steady rate (DESIGN §10).

The concierge runs as a separate process (`python -m goldenkey.concierge`) on its own database, with
its five concierges on duty. The benchmark produces `ticket.issued` events, each with one need, at a
steady R per second for S seconds, onto `queue.tickets` as the queue service would, and reads
`concierge.assistance` without a consumer group: the latency of a ticket is from the moment its
event was sent to the moment its `assistance.assigned` arrived. Ceiling, in the same run and at the
same rate: raw aiokafka produce → consume of events of the same size (the two Kafka hops of the
path cost at least twice that). Target: p99 < 250 ms at 50 tickets/s.

    .venv/bin/python bench/assistance_latency.py [--rate R] [--seconds S] [--events N]

`--events N` sends N tickets (at the rate R) instead of R × S. Uses the Kafka and MongoDB-protocol
server named by GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL when both are set, otherwise a
throwaway native stack on free loopback ports. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `deploy.native.devstack` lives at the repo root
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from aiokafka import AIOKafkaProducer, ConsumerRecord  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.common import Infra, ServiceProcess, TopicReader, fmt, memory, mib, percentile, start_stack  # noqa: E402
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


async def steady(n: int, rate: float, send: Callable[[int], Awaitable[None]]) -> float:
    """Call `send(i)` for i < n at `rate` per second on a fixed schedule; the rate achieved."""
    began = time.monotonic()
    pending = []
    for i in range(n):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(send(i)))
    await asyncio.gather(*pending)
    took = time.monotonic() - began
    return n / took if took > 0 else float("nan")


async def kafka_ceiling(infra: Infra, n: int, rate: float) -> list[float]:
    """Latencies of raw produce → consume at the same rate and event size."""
    topic = f"bench-latency-{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=1
    )
    await producer.start()
    sent: dict[str, float] = {}
    try:
        async with Arrivals(infra.kafka_bootstrap, topic, lambda e: str(e.get("subject"))) as arrivals:

            async def send(i: int) -> None:
                ticket_id = f"ceiling-{i}"
                sent[ticket_id] = time.time()
                await producer.send_and_wait(topic, ticket_issued(ticket_id), key=ticket_id.encode())

            await steady(n, rate, send)
            await arrivals.wait(set(sent), DRAIN_S)
            return [arrivals.at[k] - sent[k] for k in sent if k in arrivals.at]
    finally:
        await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def assigned_ticket(event: dict[str, object]) -> str | None:
    data = event.get("data")
    if event.get("type") == "assistance.assigned" and isinstance(data, dict):
        return str(data.get("ticket_id"))
    return None


async def measure(infra: Infra, n: int, rate: float, workdir: Path) -> None:
    ceiling = await kafka_ceiling(infra, n, rate)
    database = f"bench_concierge_{secrets.token_hex(4)}"
    service = ServiceProcess("concierge", infra, database, workdir / "concierge.log")
    service.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=1
    )
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            ready_s = await service.ready(client)
        await producer.start()
        rss_ready = memory(service.pid).get("VmRSS")
        async with Arrivals(infra.kafka_bootstrap, CONCIERGE_ASSISTANCE, assigned_ticket) as arrivals:
            warm = f"warm-{uuid.uuid4().hex[:8]}"
            await producer.send_and_wait(QUEUE_TICKETS, ticket_issued(warm), key=warm.encode())
            await arrivals.wait({warm}, 60)  # the consumer group has joined and the path is warm
            sent: dict[str, float] = {}
            prefix = uuid.uuid4().hex[:8]

            async def send(i: int) -> None:
                ticket_id = f"t-{prefix}-{i}"
                sent[ticket_id] = time.time()
                await producer.send_and_wait(QUEUE_TICKETS, ticket_issued(ticket_id), key=ticket_id.encode())

            achieved = await steady(n, rate, send)
            await arrivals.wait(set(sent), DRAIN_S)
            latencies = [arrivals.at[k] - sent[k] for k in sent if k in arrivals.at]
        rss_after = memory(service.pid)
    finally:
        await producer.stop()
        stopped_s, code = service.stop()

    p50, p99, c50, c99 = (
        percentile(latencies, 50),
        percentile(latencies, 99),
        percentile(ceiling, 50),
        percentile(ceiling, 99),
    )
    print(f"broker: {infra.kafka}")
    print(f"load: {n} ticket.issued at {rate:g}/s (achieved {achieved:.1f}/s), one need each; five concierges on duty")
    print()
    print(f"{'figure':<44} {'p50':>10} {'p99':>10}")
    print(f"{'ticket.issued → assistance.assigned':<44} {fmt(p50, 'ms'):>10} {fmt(p99, 'ms'):>10}")
    print(f"{'ceiling: raw Kafka produce → consume':<44} {fmt(c50, 'ms'):>10} {fmt(c99, 'ms'):>10}")
    if p99 and c99:
        print(f"{'ratio (ceiling p99 / p99)':<44} {c99 / p99:>21.1%}")
    print(f"{'target (DESIGN §10)':<44} {'':>10} {'< 250 ms':>10}")
    print()
    print(f"assigned within {DRAIN_S:.0f}s of the last send: {len(latencies)}/{n}")
    print(f"concierge: ready in {ready_s:.1f}s; RSS {mib(rss_ready)} ready → {mib(rss_after.get('VmRSS'))} after")
    print(f"           (peak {mib(rss_after.get('VmHWM'))}); SIGTERM → exit in {fmt(stopped_s, 's')} (code {code})")
    complaints = service.complaints()
    if complaints:
        print("log complaints: " + "; ".join(f"{count} × {what}" for what, count in complaints.most_common(5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="tickets per second (default 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the steady load lasts (default 20)")
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
