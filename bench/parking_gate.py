"""The parking service's gate on one instance: arrivals and departures against the lot's one document (DESIGN §10).

Every arrival and departure is decided in one versioned write of the lot's single MongoDB
document (docs/decisions.md, "The parking service"), and the updates of one aggregate from one
process take turns (`Repository.update`), so the lot document is a hot spot: whatever the number
of cameras, the gate's writes go one after another. The service runs as a separate process
(`python -m goldenkey.parking`, through `bench/probe.py`) on its own database, with a lot plan of
10,000 spaces (`GOLDENKEY_LOT_FILE`), so the lot never fills. At each concurrency level C (`--levels`,
default 1, 8 and 32) N cars arrive (`POST /vehicles/arrivals`, each a distinct plate 陕A + letter
+ four digits), C at a time, then the same N leave (`POST /vehicles/departures`), C at a time:
requests/s and latency percentiles of each. A reader of `parking.vehicles` notes when each
visit's `vehicle.arrived` (and `vehicle.departed`) arrives after its answer.

Ceilings, in the same run and on the same database, once the load is over: raw PyMongo
`update_one` by `{_id, version}` of one document shaped as the lot, `$set`-ting its whole state
with one car more each time (so its N writes grow the document as the N arrivals grow the lot),
one write after another, as the lot's writes go; and the same with a `find_one` of the document
before each write, as the service's load-decide-save does (for reference). Raw aiokafka produce →
consume at the one-at-a-time arrival rate, measured once the service has been stopped, is the
ceiling of 201 → on Kafka.

    .venv/bin/python bench/parking_gate.py [--events N] [--levels 1,8,32] [--seconds S]

No request of a phase starts after S seconds (default 30); the rate is then of those done, and
the table says so. Uses the Kafka and MongoDB-protocol server named by GOLDENKEY_KAFKA_BOOTSTRAP
and GOLDENKEY_MONGODB_URL when both are set, otherwise a throwaway native stack on free loopback
ports (deploy/native/devstack.py). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `deploy.native.devstack` lives at the repo root
    sys.path.insert(0, str(REPO))

import bson  # noqa: E402
import httpx  # noqa: E402
from aiokafka import ConsumerRecord  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from bench.common import (  # noqa: E402
    DATABASE,
    Infra,
    Row,
    ServiceProcess,
    TopicReader,
    fmt,
    kafka_latencies,
    memory,
    mib,
    percentile,
    print_table,
    start_stack,
)
from bench.probe import per_operation  # noqa: E402
from bench.queue_tickets import CpuMeter, cut_note, in_parallel, print_run_footer  # noqa: E402
from goldenkey.contracts.topics import PARKING_VEHICLES  # noqa: E402
from goldenkey.kit.pii import LETTERS  # noqa: E402

GUARD = {"Authorization": "Bearer dev-guard"}
REQUEST_TIMEOUT_S = 30.0
LOT_ID = "BENCH"
SPACES = 10_000
"""The bench lot's one zone (a zone has at most 10,000 spaces): more than any run parks at once."""
WARM = 50
"""Cars that arrive and leave, untimed, before anything is measured (the paths and the JVM warm)."""
BUCKETS = 5
"""The arrivals of a level, split by how many cars were inside: does the gate slow as the lot fills?"""
DRAIN_S = 30.0
"""How long after a phase's last answer the benchmark waits for its events."""


def plate(i: int) -> str:
    """The i-th plate of the run: 陕A, a letter (no I or O), four digits. 240,000 distinct ones."""
    return f"陕A{LETTERS[(i // 10_000) % len(LETTERS)]}{i % 10_000:04d}"


def lot_plan() -> dict[str, Any]:
    """A lot like the shipped one (data/lot.json) but with room for every car the run parks."""
    return {
        "lot_id": LOT_ID,
        "name_zh": "基准测试停车场",
        "name_en": "Benchmark car park",
        "default_zone": "A",
        "reopen_free": 5,
        "zones": [
            {"zone_id": "A", "name_zh": "基准A区", "name_en": "Bench zone A", "kind": "standard", "spaces": SPACES}
        ],
    }


@dataclass
class Phase:
    """What a run of gate requests gave: how many, how fast, the failures."""

    attempted: int = 0
    ok: int = 0
    took: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the successful requests, in the order they were answered."""
    done_at: list[float] = field(default_factory=list)
    """When each successful request was answered (`time.monotonic()`), in that order."""
    began: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    answered: dict[str, float] = field(default_factory=dict)
    """visit id → when its answer came back (`time.time()`)."""
    unmatched: int = 0
    """Departures the lot did not count in (`arrival_recorded: false`)."""

    @property
    def rate(self) -> float | None:
        return self.ok / self.took if self.took > 0 and self.ok else None


def by_inside(done_at: list[float], began: float, buckets: int = BUCKETS) -> str:
    """Rate of each successive 1/`buckets` of the completions: for arrivals, by how many cars were
    inside (the k-th arrival answered found about k - 1 there)."""
    if len(done_at) < buckets:
        return "—"
    cells = []
    start, before = 0, began
    for b in range(1, buckets + 1):
        end = round(b * len(done_at) / buckets)
        took = done_at[end - 1] - before
        cells.append(f"{start}–{end} {fmt((end - start) / took if took > 0 else None, '/s')}")
        start, before = end, done_at[end - 1]
    return ", ".join(cells)


class VehicleEvents(TopicReader):
    """Reads `parking.vehicles` from now on, noting when each visit's `vehicle.arrived` and
    `vehicle.departed` first arrived (wall clock)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, PARKING_VEHICLES, from_start=False)
        self.seen: dict[str, dict[str, float]] = {"vehicle.arrived": {}, "vehicle.departed": {}}
        self.types: Counter[str] = Counter()
        self.sample = b""
        """The bytes of one `vehicle.arrived` record (the Kafka ceiling sends records of that size)."""

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                event = json.loads(record.value or b"")
            except ValueError:
                continue
            kind = event.get("type", "?")
            self.types[kind] += 1
            if kind in self.seen and isinstance(data := event.get("data"), dict):
                if kind == "vehicle.arrived":
                    self.sample = self.sample or record.value or b""
                self.seen[kind].setdefault(str(data.get("visit_id")), at)

    async def wait_for(self, kind: str, ids: set[str], seconds: float) -> bool:
        return await self.wait_until(lambda: ids <= self.seen[kind].keys(), time.monotonic() + seconds)

    def lags(self, kind: str, answered: dict[str, float]) -> list[float]:
        seen = self.seen[kind]
        return [seen[v] - at for v, at in answered.items() if v in seen]


# --- the gate --------------------------------------------------------------------------------


async def gate(
    client: httpx.AsyncClient, path: str, plates: list[str], concurrency: int, seconds: float, expect: int
) -> Phase:
    """`POST <path>` with each of `plates`, `concurrency` at a time, from the gate's camera."""
    phase = Phase()

    async def send(i: int) -> None:
        began = time.perf_counter()
        try:
            response = await client.post(path, json={"plate": plates[i], "source": "camera"}, headers=GUARD)
        except httpx.HTTPError as error:
            phase.errors[f"{type(error).__name__}: {error}"[:200]] += 1
            return
        took = time.perf_counter() - began
        if response.status_code != expect:
            phase.errors[f"{response.status_code} {response.text[:160]}"] += 1
            return
        visit = response.json()
        phase.ok += 1
        phase.latencies.append(took)
        phase.done_at.append(time.monotonic())
        phase.answered[visit["visit_id"]] = time.time()
        if not visit.get("arrival_recorded", True):
            phase.unmatched += 1

    phase.began = time.monotonic()
    phase.attempted = await in_parallel(len(plates), send, tasks=concurrency, until=phase.began + seconds)
    phase.took = time.monotonic() - phase.began
    return phase


@dataclass
class Level:
    concurrency: int
    arrivals: Phase
    departures: Phase
    arrivals_cpu: CpuMeter
    departures_cpu: CpuMeter
    lot_bytes: int
    """The lot document's BSON size with this level's cars inside (outbox aside)."""
    arrived_lags: list[float]
    departed_lags: list[float]
    events_complete: bool
    arrival_commands: tuple[Counter[str], Counter[str]]
    departure_commands: tuple[Counter[str], Counter[str]]


# --- the ceilings ----------------------------------------------------------------------------


async def hot_document_ceilings(
    infra: Infra, database: str, template: dict[str, Any], n: int, seconds: float
) -> tuple[list[Row], list[str], dict[str, Any]]:
    """Raw PyMongo on one lot-shaped document in the service's database: N version-conditional
    `update_one`s, each `$set`-ting the whole state with one car more inside, one after another
    (blind: the writer knows the version it wrote); then the same with a `find_one` before each
    write. With the throwaway stack, the note says how much CPU the database spent on each."""
    state = {k: v for k, v in template.items() if k not in ("_id", "version", "outbox", "outbox_n")}
    entry = next(iter(state["inside"].values()))
    rows, by = [], []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    async with client:
        db = client[database]
        info = await db.command("buildInfo")
        collection = db["bench_raw_lot"]
        for label, read_first in (("update_one {_id, version}", False), ("find_one + update_one {_id, version}", True)):
            doc_id = f"{LOT_ID}-{secrets.token_hex(4)}"
            inside: dict[str, Any] = {}
            await collection.insert_one({"_id": doc_id, **state, "inside": inside, "version": 1, "outbox_n": 0})
            done_at: list[float] = []
            meter = CpuMeter(infra.processes)
            meter.start()
            began = time.monotonic()
            until = began + seconds
            v = 1
            for i in range(n):
                if time.monotonic() >= until:
                    break
                if read_first:
                    found = await collection.find_one({"_id": doc_id}, {"outbox": 0})
                    assert found is not None
                    v = found["version"]
                inside[secrets.token_hex(32)] = {
                    **entry,
                    "visit_id": f"v-{i}-{secrets.token_hex(8)}",
                    "plate": plate(i),
                }
                update = {"$set": {**state, "inside": inside, "version": v + 1}}
                result = await collection.update_one({"_id": doc_id, "version": v}, update)
                if result.matched_count != 1:
                    raise RuntimeError(f"the ceiling's version-conditional write of {doc_id} matched nothing")
                v += 1
                done_at.append(time.monotonic())
            took = time.monotonic() - began
            meter.stop()
            done = len(done_at)
            size = len(bson.encode({"_id": doc_id, **state, "inside": inside, "version": v}))
            note = f"1 document, {done} writes, the last {size / 1024:.0f} KiB" + cut_note(done, n, seconds)
            if done and (cpu := meter.used.get(DATABASE)) is not None:
                note += f"; {DATABASE} {1000 * cpu / done:.2f} ms CPU a write"
            rows.append(Row(f"MongoDB {label} x1", done / took if took > 0 and done else None, "op/s", note=note))
            by.append(by_inside(done_at, began))
            await collection.delete_one({"_id": doc_id})
        await collection.drop()
    rows[0].figure += " [ceiling]"
    rows[1].note += "; what load-decide-save costs the database, for reference"
    return rows, by, info


# --- the run ---------------------------------------------------------------------------------


def print_errors(label: str, phase: Phase) -> None:
    if not phase.errors:
        return
    print(f"\n{label}: {sum(phase.errors.values())} failed:")
    for message, count in phase.errors.most_common(10):
        print(f"  {count:5d} × {message}")


LOT_COMMANDS = {"find lots": "find", "update lots (_id+)": "update"}
"""The lot's commands: its reads (`ParkingService.lot`, then `Repository.update`'s load) and its
versioned write, between which the update holds the lot's turn (`Repository.update`)."""


def lot_commands(counted: tuple[Counter[str], Counter[str]]) -> str:
    counts, micros = counted
    return (
        ", ".join(
            f"{short} {counts[name]} × {fmt(micros[name] / counts[name] / 1000, 'ms')}"
            for name, short in LOT_COMMANDS.items()
            if counts[name]
        )
        or "—"
    )


def cpu_line(meter: CpuMeter, requests: int) -> str:
    if not meter.wall or not requests:
        return "—"
    return ", ".join(
        f"{name} {1000 * used / requests:.1f} ms ({used / meter.wall:.0%})" for name, used in meter.used.items()
    )


async def measure(infra: Infra, n: int, levels: list[int], seconds: float, workdir: Path) -> None:
    began = time.monotonic()

    def step(what: str) -> None:
        print(f"parking_gate: {what}…", file=sys.stderr, flush=True)

    run = secrets.token_hex(4)
    database = f"goldenkey_bench_parking_{run}"
    plan_file = workdir / "lot.json"
    plan_file.write_text(json.dumps(lot_plan(), ensure_ascii=False), "utf-8")
    service = ServiceProcess("parking", infra, database, workdir / "parking.log", GOLDENKEY_LOT_FILE=str(plan_file))
    width = max(levels)
    limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
    client = httpx.AsyncClient(base_url=service.url, limits=limits, timeout=REQUEST_TIMEOUT_S)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    lots = mongo[database]["lots"]
    stopped: tuple[float | None, int | None] = (None, None)
    results: list[Level] = []
    arrival_commands: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    departure_commands: tuple[Counter[str], Counter[str]] = (Counter(), Counter())

    def add(into: tuple[Counter[str], Counter[str]], more: tuple[Counter[str], Counter[str]]) -> None:
        into[0].update(more[0])
        into[1].update(more[1])

    try:
        step("starting the parking service")
        service.start()
        ready_in = await service.ready(client)
        at_ready = memory(service.pid)
        processes = {"parking service": service.pid, **infra.processes}

        async with VehicleEvents(infra.kafka_bootstrap) as events:
            step("warm-up")
            warm_plates = [plate(200_000 + i) for i in range(WARM)]
            warm = await gate(client, "/vehicles/arrivals", warm_plates, min(4, width), seconds, 201)
            if not warm.ok:
                print_errors("warm-up arrivals", warm)
                raise RuntimeError(f"no warm-up car arrived; service log tail:\n{service.tail()}")
            template = await lots.find_one({"_id": LOT_ID}, {"outbox": 0})
            if template is None or not template.get("inside"):
                raise RuntimeError(f"the lot counts no warm-up car; service log tail:\n{service.tail()}")
            template = copy.deepcopy(template)
            await gate(client, "/vehicles/departures", warm_plates, min(4, width), seconds, 200)
            await events.wait_for("vehicle.arrived", set(warm.answered), DRAIN_S)

            offset = 0
            for c in levels:
                plates = [plate(offset + i) for i in range(n)]
                offset += n
                await service.commands()  # from here on
                step(f"{n} arrivals, {c} at a time")
                a_cpu = CpuMeter(processes)
                a_cpu.start()
                arrivals = await gate(client, "/vehicles/arrivals", plates, c, seconds, 201)
                a_cpu.stop()
                lot = await lots.find_one({"_id": LOT_ID}, {"outbox": 0})
                lot_bytes = len(bson.encode(lot)) if lot else 0
                arrived_all = await events.wait_for("vehicle.arrived", set(arrivals.answered), DRAIN_S)
                level_arrival_commands = await service.commands()
                add(arrival_commands, level_arrival_commands)

                step(f"{arrivals.ok} departures, {c} at a time")
                d_cpu = CpuMeter(processes)
                d_cpu.start()
                departures = await gate(client, "/vehicles/departures", plates[: arrivals.attempted], c, seconds, 200)
                d_cpu.stop()
                departed_all = await events.wait_for("vehicle.departed", set(departures.answered), DRAIN_S)
                level_departure_commands = await service.commands()
                add(departure_commands, level_departure_commands)
                results.append(
                    Level(
                        c,
                        arrivals,
                        departures,
                        a_cpu,
                        d_cpu,
                        lot_bytes,
                        events.lags("vehicle.arrived", arrivals.answered),
                        events.lags("vehicle.departed", departures.answered),
                        arrived_all and departed_all,
                        level_arrival_commands,
                        level_departure_commands,
                    )
                )
            event_types = dict(events.types)
            sample = events.sample
        after = memory(service.pid)

        # After the load, so that the database has warmed up on the same writes (the service is idle).
        step("MongoDB ceilings")
        ceiling_rows, ceiling_by, info = await hot_document_ceilings(infra, database, template, n, seconds)
        write_ceiling, read_write = ceiling_rows[0].value, ceiling_rows[1].value

        step("stopping the service (SIGTERM)")
        await client.aclose()
        stopped = service.stop()

        # With the service gone, so that nothing else competes for the broker or the CPU.
        alone = results[0].arrivals
        ceiling_rate = alone.rate or 50.0
        count = max(1, min(alone.ok or n, 300))
        step(f"Kafka latency ceiling: {count} records at {ceiling_rate:.0f}/s")
        kafka = await kafka_latencies(infra.kafka_bootstrap, count, ceiling_rate, lambda _: sample or b"{}" * 250)
    finally:
        await client.aclose()
        service.kill()
        await mongo.drop_database(database)
        await mongo.close()

    k50, k99 = percentile(kafka, 50), percentile(kafka, 99)
    rows = [
        *ceiling_rows,
        Row(
            "raw Kafka produce→consume, p50 [ceiling]",
            k50,
            "ms",
            note=f"{len(kafka)} records of {len(sample)} B at the x{results[0].concurrency} arrival rate"
            f" ({ceiling_rate:.0f}/s), send() to arrival",
        ),
        Row("raw Kafka produce→consume, p99 [ceiling]", k99, "ms"),
    ]
    for level in results:
        a, d, c = level.arrivals, level.departures, level.concurrency
        failed_a = sum(a.errors.values())
        rows += [
            Row(
                f"arrivals x{c}",
                a.rate,
                "req/s",
                "update_one",
                write_ceiling,
                f"{a.ok} counted in, {failed_a} failed{cut_note(a.attempted, n, seconds)};"
                f" lot document {level.lot_bytes / 1024:.0f} KiB after",
            ),
            Row(f"arrivals x{c}", a.rate, "req/s", "find+update", read_write, "the same, to load-decide-save"),
            Row("  latency, p50", percentile(a.latencies, 50), "ms", note="of the 201s; closed loop, so ≈ C / rate"),
            Row("  latency, p99", percentile(a.latencies, 99), "ms"),
            Row(
                "  201 → vehicle.arrived on Kafka, p50",
                percentile(level.arrived_lags, 50),
                "ms",
                "raw Kafka p50",
                k50,
                f"{len(level.arrived_lags)}/{a.ok} seen; the 201 back at the client → its event at a reader",
                lower_is_better=True,
            ),
            Row(
                "  201 → vehicle.arrived on Kafka, p99",
                percentile(level.arrived_lags, 99),
                "ms",
                "raw Kafka p99",
                k99,
                "target < 50 ms (an event after its command was acknowledged, DESIGN §10)",
                lower_is_better=True,
            ),
            Row(
                f"departures x{c}",
                d.rate,
                "req/s",
                "update_one",
                write_ceiling,
                f"{d.ok - d.unmatched} counted out, {d.unmatched} unmatched, {sum(d.errors.values())} failed"
                + cut_note(d.attempted, a.attempted, seconds),
            ),
            Row("  latency, p50", percentile(d.latencies, 50), "ms"),
            Row("  latency, p99", percentile(d.latencies, 99), "ms"),
            Row(
                "  200 → vehicle.departed on Kafka, p99",
                percentile(level.departed_lags, 99),
                "ms",
                "raw Kafka p99",
                k99,
                f"{len(level.departed_lags)}/{d.ok} seen",
                lower_is_better=True,
            ),
        ]
    print(
        f"\nparking gate — {n} arrivals then their {n} departures at each of {', '.join(f'x{c}' for c in levels)},"
        f" one parking service, a lot of {SPACES:,} spaces; no request of a phase started after {seconds:.0f}s\n"
    )
    print_table(rows)
    for level in results:
        print_errors(f"arrivals x{level.concurrency}", level.arrivals)
        print_errors(f"departures x{level.concurrency}", level.departures)

    print()
    print("by cars inside: the rate of each fifth of the N writes (the k-th found k - 1 cars in the lot), /s")
    print(f"           update_one ceiling   {ceiling_by[0]}")
    print(f"           find+update          {ceiling_by[1]}")
    for level in results:
        print(f"           arrivals x{level.concurrency:<10} {by_inside(level.arrivals.done_at, level.arrivals.began)}")
    complete = all(level.events_complete for level in results)
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(event_types.items()))
    seen = "all" if complete else "NOT all"
    print(f"events:    {seen} of the load's seen within {DRAIN_S:.0f}s of each phase; on {PARKING_VEHICLES}: {kinds}")
    print(
        f"memory:    service RSS {mib(at_ready.get('VmRSS'))} when ready, {mib(after.get('VmRSS'))} after the load"
        f" (peak {mib(after.get('VmHWM'))})"
    )
    print(
        "commands:  MongoDB commands per request, the service's relay and watchdog included"
        " (PyMongo command monitoring in the service; times overlap when concurrent):"
    )
    arrived = sum(level.arrivals.ok for level in results)
    departed = sum(level.departures.ok for level in results)
    print(f"           per arrival (all levels, {arrived}):")
    for line in per_operation(arrival_commands, arrived):
        print(f"             {line}")
    print(f"           per departure (all levels, {departed}):")
    for line in per_operation(departure_commands, departed):
        print(f"             {line}")
    print("           the lot's two commands by level, each command's mean time (from PyMongo's start to its reply):")
    for level in results:
        print(
            f"             x{level.concurrency:<3} arrivals: {lot_commands(level.arrival_commands)};"
            f" departures: {lot_commands(level.departure_commands)}"
        )
    print("cpu:       CPU per request (share of a core), /proc/<pid>/stat:")
    for level in results:
        print(f"             arrivals x{level.concurrency:<3}   {cpu_line(level.arrivals_cpu, level.arrivals.ok)}")
        print(f"             departures x{level.concurrency:<3} {cpu_line(level.departures_cpu, level.departures.ok)}")
    print_run_footer(stopped, service, ready_in, infra, info, began)


# --- running it ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=300, help="cars that arrive and leave at each level (default 300)"
    )
    parser.add_argument(
        "--levels", default="1,8,32", help="concurrency levels, requests in flight at once (default 1,8,32)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="no request of a phase starts after this many seconds (default 30)"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.levels.split(",") if c.strip()]
    if not levels or min(levels) < 1 or not 1 <= args.events <= SPACES:
        parser.error(f"--levels are positive integers and --events is 1…{SPACES}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so that the throwaway stack goes too
    workdir = Path(tempfile.mkdtemp(prefix="goldenkey-bench-parking-"))
    infra, down = start_stack()
    try:
        asyncio.run(measure(infra, args.events, levels, args.seconds, workdir))
    finally:
        down()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
