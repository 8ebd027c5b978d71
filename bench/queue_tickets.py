"""`POST /tickets` on one instance of the queue service, measured against ceilings taken in the same run (DESIGN §10).

The service runs as a separate process, as in production (`python -m goldenkey.queue`), on its own
database. A kiosk's load of N requests, C at a time, gives requests/s and latency percentiles;
the service's resident memory is read before and after it. Ceilings: a trivial endpoint of the same
service (`GET /health/live`, the HTTP stack alone) and raw PyMongo `insert_one` into the same
database, both at the same concurrency. A reader of `queue.tickets` notes when each ticket's
`ticket.issued` arrives: from its 201 (the command acknowledged) and from the event's own `time`,
compared with raw aiokafka produce → consume latency at the same rate, measured once the service
has been stopped with SIGTERM.

    .venv/bin/python bench/queue_tickets.py [--requests N] [--concurrency C] [--seconds S]

No request starts after S seconds; the rate is then of those done, and the table says so. Uses
the Kafka and MongoDB-protocol server named by GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL
when both are set, otherwise a throwaway native stack on free loopback ports
(deploy/native/devstack.py). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
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
    DATABASE,
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
    start_stack,
)
from bench.probe import per_operation  # noqa: E402
from goldenkey.contracts.topics import QUEUE_TICKETS  # noqa: E402

ITEM_CODES = ("A001", "B001", "C001", "D001")
"""Service items of four different categories, taken in turn."""
KIOSK = {"Authorization": "Bearer dev-kiosk"}
REQUEST_TIMEOUT_S = 30.0
SINGLE = 100
"""Requests sent one at a time before the load, for a latency without queueing."""


@dataclass
class Load:
    """What a run of requests gave: how many, how fast, the failures."""

    attempted: int = 0
    ok: int = 0
    took: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the successful requests."""
    errors: Counter[str] = field(default_factory=Counter)
    answered: dict[str, float] = field(default_factory=dict)
    """ticket id → when its 201 came back (`time.time()`)."""

    @property
    def rate(self) -> float | None:
        return self.ok / self.took if self.took > 0 and self.ok else None


# --- helpers ---------------------------------------------------------------------------------


async def in_parallel(count: int, operation: Callable[[int], Awaitable[None]], *, tasks: int, until: float) -> int:
    """Run `operation(0..count-1)`, `tasks` at a time, starting none after `until` (a
    `time.monotonic()`); how many started."""
    started = 0

    async def worker() -> None:
        nonlocal started
        while started < count and time.monotonic() < until:
            i = started
            started += 1
            await operation(i)

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return started


def cut_note(done: int, n: int, seconds: float) -> str:
    return "" if done >= n else f"; cut at {seconds:.0f}s with {done}/{n} done"


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime: fields 14 and 15 of stat


class CpuMeter:
    """CPU time each process of interest used between `start()` and `stop()`."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self._began: dict[str, float | None] = {}
        self._wall = 0.0
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self._began = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self._began["bench (load generator)"] = time.process_time()
        self._wall = time.monotonic()

    def stop(self) -> CpuMeter:
        self.wall = time.monotonic() - self._wall
        now = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        now["bench (load generator)"] = time.process_time()
        self.used = {
            name: end - began
            for name, end in now.items()
            if end is not None and (began := self._began.get(name)) is not None
        }
        return self

    def summary(self, requests: int) -> list[str]:
        if not self.wall or not requests:
            return ["—"]
        return [
            f"{name:<22} {used / self.wall:4.0%} of a core, {1000 * used / requests:6.1f} ms a request"
            + (f"; on a core of its own at most {fmt(requests / used, 'req/s')}" if used / self.wall >= 0.2 else "")
            for name, used in self.used.items()
        ]


# --- the events ------------------------------------------------------------------------------


class IssuedEvents(TopicReader):
    """Reads `queue.tickets` from its start, noting when each `ticket.issued` arrived (wall
    clock), by ticket id."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, QUEUE_TICKETS)
        self.seen: dict[str, float] = {}
        self.stamped: dict[str, float] = {}
        """ticket id → the event's own `time` (set by the service as it issued the ticket)."""
        self.types: Counter[str] = Counter()
        self.sample = b""
        """The bytes of one `ticket.issued` record (the Kafka ceiling sends records of that size)."""

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                event = json.loads(record.value or b"")
            except ValueError:
                continue
            self.types[event.get("type", "?")] += 1
            if event.get("type") == "ticket.issued" and event["data"]["ticket_id"] not in self.seen:
                self.sample = self.sample or record.value or b""
                self.seen[event["data"]["ticket_id"]] = at
                self.stamped[event["data"]["ticket_id"]] = datetime.fromisoformat(event["time"]).timestamp()

    async def wait_for(self, ids: Iterable[str], until: float) -> bool:
        """Whether every one of `ids` has arrived by `until` (a `time.monotonic()`)."""
        wanted = set(ids)
        return await self.wait_until(lambda: wanted <= self.seen.keys(), until)


# --- the figures -----------------------------------------------------------------------------


async def issue_tickets(
    client: httpx.AsyncClient, n: int, concurrency: int, seconds: float, prefix: str, load: Load | None = None
) -> Load:
    """N `POST /tickets` from a kiosk, each with its own Idempotency-Key, `concurrency` at a time."""
    load = load or Load()

    async def issue(i: int) -> None:
        headers = {**KIOSK, "Idempotency-Key": f"{prefix}-{i}"}
        body = {"item_code": ITEM_CODES[i % len(ITEM_CODES)], "channel": "kiosk"}
        began = time.perf_counter()
        try:
            response = await client.post("/tickets", json=body, headers=headers)
        except httpx.HTTPError as error:
            load.errors[f"{type(error).__name__}: {error}"[:200]] += 1
            return
        took = time.perf_counter() - began
        if response.status_code != 201:
            load.errors[f"{response.status_code} {response.text[:160]}"] += 1
            return
        load.ok += 1
        load.latencies.append(took)
        load.answered[response.json()["ticket_id"]] = time.time()

    began = time.monotonic()
    load.attempted = await in_parallel(n, issue, tasks=concurrency, until=began + seconds)
    load.took = time.monotonic() - began
    return load


async def health_live(client: httpx.AsyncClient, n: int, concurrency: int, seconds: float) -> Load:
    load = Load()

    async def get(_: int) -> None:
        began = time.perf_counter()
        try:
            response = await client.get("/health/live")
        except httpx.HTTPError as error:
            load.errors[f"{type(error).__name__}: {error}"[:200]] += 1
            return
        if response.status_code != 200:
            load.errors[f"{response.status_code} {response.text[:160]}"] += 1
            return
        load.ok += 1
        load.latencies.append(time.perf_counter() - began)

    began = time.monotonic()
    load.attempted = await in_parallel(n, get, tasks=concurrency, until=began + seconds)
    load.took = time.monotonic() - began
    return load


async def mongo_ceilings(
    infra: Infra, database: str, n: int, concurrency: int, seconds: float
) -> tuple[list[Row], dict[str, Any]]:
    """Raw PyMongo at the same concurrency, into the service's database: N ticket-shaped
    documents inserted, then found again by _id. With the throwaway stack, the note says how much
    CPU the database spent on each."""
    async with AsyncMongoClient(infra.mongodb_url, tz_aware=True) as client:
        db = client[database]
        info = await db.command("buildInfo")
        collection = db["bench_raw"]
        now = datetime.now(UTC)

        def document(i: int) -> dict[str, Any]:  # about the size and shape of a stored ticket
            event = {"type": "ticket.issued", "id": secrets.token_hex(16), "time": now.isoformat(), "data": {}}
            return {
                "_id": f"t{i}-{secrets.token_hex(8)}",
                **{"number": f"A{i:03d}", "category": "A", "item_code": "A001", "channel": "kiosk"},
                "status": "waiting",
                **{"day": now.date().isoformat(), "issued_at": now, "needs": [], "call_count": 0, "seq": 1},
                **{"applied": [], "version": 1, "outbox_n": 1},
                "outbox": [{"id": event["id"], "topic": QUEUE_TICKETS, "key": f"t{i}", "value": json.dumps(event)}],
            }

        documents = [document(i) for i in range(n)]

        async def insert(i: int) -> None:
            await collection.insert_one(documents[i])

        async def find(i: int) -> None:
            await collection.find_one({"_id": documents[i]["_id"]})

        rows = []
        for label, operation in (("insert_one", insert), ("find_one by _id", find)):
            meter = CpuMeter(infra.processes)
            meter.start()
            began = time.monotonic()
            done = await in_parallel(n, operation, tasks=concurrency, until=began + seconds)
            took = time.monotonic() - began
            meter.stop()
            rate = done / took if took > 0 and done else None
            if label == "insert_one" and done < n:  # the lookups should see all N documents
                await collection.insert_many(documents[done:])
            note = f"{n} documents of about {len(json.dumps(documents[0], default=str))} B" + cut_note(done, n, seconds)
            if done and (cpu := meter.used.get(DATABASE)) is not None:
                note += f"; {DATABASE} {1000 * cpu / done:.2f} ms CPU an op"
            rows.append(Row(f"MongoDB {label} x{concurrency}", rate, "op/s", note=note))
        await collection.drop()
    rows[0].figure += " [ceiling]"
    rows[1].note += "; for reference"
    return rows, info


def print_errors(label: str, load: Load) -> None:
    if not load.errors:
        return
    print(f"\n{label}: {sum(load.errors.values())} failed:")
    for message, count in load.errors.most_common(10):
        print(f"  {count:5d} × {message}")


async def measure(infra: Infra, n: int, concurrency: int, seconds: float, workdir: Path) -> None:
    began = time.monotonic()

    def step(what: str) -> None:
        print(f"queue_tickets: {what}…", file=sys.stderr, flush=True)

    run = secrets.token_hex(4)
    database = f"goldenkey_bench_queue_{run}"
    service = ServiceProcess("queue", infra, database, workdir / "queue.log")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(base_url=service.url, limits=limits, timeout=REQUEST_TIMEOUT_S)
    stopped: tuple[float | None, int | None] = (None, None)
    try:
        step("starting the queue service")
        service.start()
        ready_in = await service.ready(client)
        at_ready = memory(service.pid)

        async with IssuedEvents(infra.kafka_bootstrap) as events:
            step("warm-up")
            # Untimed: every path is warm (connections, the first counter of each category).
            warm = await issue_tickets(client, len(ITEM_CODES), concurrency, seconds, f"bench-{run}-warm")
            if not warm.ok:
                print_errors("warm-up", warm)
                raise RuntimeError(f"no warm-up ticket was issued; service log tail:\n{service.tail()}")
            await health_live(client, 50, concurrency, seconds)
            step(f"{SINGLE} POST /tickets one at a time")
            single = await issue_tickets(client, SINGLE, 1, seconds / 4, f"bench-{run}-single")

            processes = {"queue service": service.pid, **infra.processes}
            step("ceilings")
            live_cpu = CpuMeter(processes)
            live_cpu.start()
            live = await health_live(client, max(n, 1000), concurrency, seconds / 4)
            live_cpu.stop()
            mongo_rows, info = await mongo_ceilings(infra, database, n, concurrency, seconds / 4)
            insert_ceiling = mongo_rows[0].value

            step(f"{n} POST /tickets, {concurrency} at a time")
            before = memory(service.pid)
            await service.commands()  # from here on
            load_cpu = CpuMeter(processes)
            load_cpu.start()
            load = await issue_tickets(client, n, concurrency, seconds, f"bench-{run}")
            load_cpu.stop()
            after = memory(service.pid)

            step("waiting for the ticket.issued events")
            issued = {**warm.answered, **single.answered, **load.answered}
            last_answer = max(load.answered.values(), default=time.time())
            all_seen = await events.wait_for(issued, time.monotonic() + max(30.0, seconds / 2))
            seen = {t: events.seen[t] for t in issued if t in events.seen}
            lags = [seen[t] - events.stamped[t] for t in load.answered if t in seen]
            after_201 = [seen[t] - answered for t, answered in load.answered.items() if t in seen]
            alone_201 = [seen[t] - answered for t, answered in single.answered.items() if t in seen]
            last_event = max((seen[t] for t in load.answered if t in seen), default=None)
            event_types = dict(events.types)
            sample = events.sample
            commands = await service.commands()  # the load's, its events' relaying included

        step("stopping the service (SIGTERM)")
        await client.aclose()
        stopped = service.stop()

        # With the service gone, so that nothing else competes for the broker or the CPU.
        ceiling_rate = load.rate or 100.0
        step(f"Kafka latency ceiling: {len(load.answered) or n} records at {ceiling_rate:.0f}/s")
        kafka = await kafka_latencies(
            infra.kafka_bootstrap, len(load.answered) or n, ceiling_rate, lambda _: sample or b"{}" * 250
        )
    finally:
        await client.aclose()
        service.kill()
        async with AsyncMongoClient(infra.mongodb_url) as mongo:
            await mongo.drop_database(database)

    cut = cut_note(load.attempted, n, seconds)
    rows = [
        Row(f"GET /health/live x{concurrency} [ceiling]", live.rate, "req/s", note="the HTTP stack alone"),
        *mongo_rows,
        Row(
            f"POST /tickets x{concurrency}",
            load.rate,
            "req/s",
            "health/live",
            live.rate,
            f"target ≥ 500 req/s; {load.ok} issued, {sum(load.errors.values())} failed{cut}",
        ),
        Row(f"POST /tickets x{concurrency}", load.rate, "req/s", "insert_one", insert_ceiling, "the same, to MongoDB"),
        Row("  latency, p50", percentile(load.latencies, 50), "ms", note="of the 201s; closed loop, so ≈ C / rate"),
        Row(
            "  latency, p99",
            percentile(load.latencies, 99),
            "ms",
            "health/live p99",
            percentile(live.latencies, 99),
            "target < 50 ms",
            lower_is_better=True,
        ),
        Row("  latency, max", percentile(load.latencies, 100), "ms"),
        Row(
            "POST /tickets x1, latency p50",
            percentile(single.latencies, 50),
            "ms",
            note=f"{single.ok} requests one at a time, before the load (tickets {len(warm.answered) + 1}"
            f"–{len(warm.answered) + single.ok} of the day)",
        ),
        Row("POST /tickets x1, latency p99", percentile(single.latencies, 99), "ms", note="target < 50 ms"),
        Row(
            "raw Kafka produce→consume, p50 [ceiling]",
            percentile(kafka, 50),
            "ms",
            note=f"{len(kafka)} records of {len(sample)} B at the load's rate ({ceiling_rate:.0f}/s),"
            " send() to arrival",
        ),
        Row("raw Kafka produce→consume, p99 [ceiling]", percentile(kafka, 99), "ms"),
        Row(
            "201 → ticket.issued on Kafka, p50",
            percentile(after_201, 50),
            "ms",
            "raw Kafka p50",
            percentile(kafka, 50),
            "the 201 back at the client → its event at a reader of queue.tickets",
            lower_is_better=True,
        ),
        Row(
            "201 → ticket.issued on Kafka, p99",
            percentile(after_201, 99),
            "ms",
            "raw Kafka p99",
            percentile(kafka, 99),
            "target < 50 ms",
            lower_is_better=True,
        ),
        Row(
            "201 → ticket.issued on Kafka x1, p50",
            percentile(alone_201, 50),
            "ms",
            "raw Kafka p50",
            percentile(kafka, 50),
            f"the {len(alone_201)} requests sent one at a time: with no queue in front of the relay",
            lower_is_better=True,
        ),
        Row(
            "201 → ticket.issued on Kafka x1, p99",
            percentile(alone_201, 99),
            "ms",
            "raw Kafka p99",
            percentile(kafka, 99),
            "target < 50 ms",
            lower_is_better=True,
        ),
        Row(
            "event time → ticket.issued on Kafka, p50",
            percentile(lags, 50),
            "ms",
            "raw Kafka p50",
            percentile(kafka, 50),
            "the event's `time` (set as the ticket is issued) → relay → Kafka → reader",
            lower_is_better=True,
        ),
        Row(
            "event time → ticket.issued on Kafka, p99",
            percentile(lags, 99),
            "ms",
            "raw Kafka p99",
            percentile(kafka, 99),
            lower_is_better=True,
        ),
    ]
    print(
        f"\nqueue tickets — {n} POST /tickets to one queue service, {concurrency} at a time,"
        f" no request started after {seconds:.0f}s\n"
    )
    print_table(rows)
    print_errors("POST /tickets", load)
    print_errors("GET /health/live", live)
    print_errors("POST /tickets one at a time", single)

    print()
    wanted, earlier = len(issued), len(warm.answered) + len(single.answered)
    if last_event is None:
        after_last = "none seen"
    else:
        gap = last_event - last_answer
        after_last = f"arrived {abs(gap):.2f}s {'after' if gap >= 0 else 'before'} the last 201 came back"
    print(
        f"events:    {len(seen)}/{wanted} ticket.issued seen"
        f" ({'all' if all_seen else 'NOT all'}; {earlier} of them from before the load);"
        f" the load's last {after_last}"
    )
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(event_types.items()))
    print(f"           on {QUEUE_TICKETS}, read from its start: {kinds}")
    print(
        f"memory:    service RSS {mib(at_ready.get('VmRSS'))} when ready, {mib(before.get('VmRSS'))} before the load,"
        f" {mib(after.get('VmRSS'))} after it (peak {mib(after.get('VmHWM'))})"
    )
    print(
        "commands:  MongoDB commands per ticket of the load, the service's relay included"
        " (PyMongo command monitoring in the service; times overlap when concurrent):"
    )
    for line in per_operation(commands, load.ok):
        print(f"             {line}")
    for label, meter, done in (("POST /tickets", load_cpu, load.ok), ("GET /health/live", live_cpu, live.ok)):
        print(f"cpu:       during {label} (/proc/<pid>/stat):")
        for line in meter.summary(done):
            print(f"             {line}")
    print_run_footer(stopped, service, ready_in, infra, info, began)


def print_run_footer(
    stopped: tuple[float | None, int | None], service: Any, ready_in: float, infra: Any, info: Any, began: float
) -> None:
    """The lines every service benchmark ends with: how the service stopped, its log's warnings,
    its start-up, and what it ran on."""
    took, code = stopped
    exit_note = "killed after no exit" if took is None else f"exited in {took:.2f}s, status {code}"
    print(f"sigterm:   {exit_note} (the kit allows shutdown_timeout_s, 8s by default)")
    complaints = service.complaints()
    if complaints:
        print("service log: " + "; ".join(f"{count} × {what}" for what, count in complaints.most_common(6)))
    else:
        print("service log: no warnings or errors")
    print(f"started:   ready {ready_in:.1f}s after launch")
    print()
    print(f"broker:    {infra.kafka}")
    print(f"database:  {database_name(info, infra.native)}")
    print(
        f"client:    Python {platform.python_version()}, httpx {version('httpx')}, uvicorn {version('uvicorn')},"
        f" fastapi {version('fastapi')}, pymongo {version('pymongo')}; {os.cpu_count()} cores,"
        " the load generator on the same machine"
    )
    print(f"took:      {time.monotonic() - began:.0f}s, stack start-up aside")


# --- running it ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", "--events", dest="requests", type=int, default=1000, help="POST /tickets to send (default 1000)"
    )
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight at once (default 10)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="no request starts after this many seconds (default 60)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so that the throwaway stack goes too
    workdir = Path(tempfile.mkdtemp(prefix="goldenkey-bench-queue-"))
    infra, down = start_stack()
    try:
        asyncio.run(measure(infra, args.requests, args.concurrency, args.seconds, workdir))
    finally:
        down()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
