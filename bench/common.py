"""What every benchmark shares: the stack it measures on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.probe import read_counts
from deploy.native import devstack
from goldenkey.contracts import CONTENT_TYPE

REPO = Path(__file__).resolve().parents[1]
DATABASE = "mongo-java-server"
"""The native stack's database, as the figures name it (its part is `devstack.DATABASE`)."""
PARTS = {DATABASE: devstack.DATABASE, "Kafka": "kafka"}
"""The throwaway stack's processes whose CPU time is reported: display name → part (pid file) name."""


@dataclass
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    kafka: str
    """What the broker is, as far as we know."""
    native: bool
    """A throwaway native stack (mongo-java-server on its memory backend)."""
    processes: dict[str, int] = field(default_factory=dict)
    """Pids of the broker's and the database's processes, when this machine runs them (CPU figures)."""


def start_stack() -> tuple[Infra, Callable[[], None]]:
    """The running stack GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL name, or a throwaway
    native one; with the function that takes it down again."""
    bootstrap, mongo = os.environ.get("GOLDENKEY_KAFKA_BOOTSTRAP"), os.environ.get("GOLDENKEY_MONGODB_URL")
    if bootstrap and mongo:
        return Infra(bootstrap, mongo, f"the broker at {bootstrap} (GOLDENKEY_KAFKA_BOOTSTRAP)", False), lambda: None
    root = Path(tempfile.mkdtemp(prefix="goldenkey-bench-"))
    stack = devstack.Stack.throwaway(root)

    def down() -> None:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)

    try:
        stack.up()
    except BaseException:
        down()
        raise
    kafka = f"Apache Kafka {devstack.KAFKA_VERSION} (KRaft, one node, native throwaway stack)"
    pids = {name: devstack.read_pid(root / "run" / f"{part}.pid") for name, part in PARTS.items()}
    processes = {name: pid for name, pid in pids.items() if pid is not None}
    return Infra(stack.kafka_bootstrap, stack.mongodb_url, kafka, True, processes), down


# --- what the service benchmarks share ------------------------------------------------------------

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return None
    return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def mib(kb: int | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f} MiB"


def fmt(value: float | None, unit: str = "", at_least: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return ("≥ " if at_least else "") + f"{text} {unit}".strip()


@dataclass
class Row:
    """One line of a benchmark's table: a figure, and the ceiling it is compared with."""

    figure: str
    value: float | None
    unit: str
    ceiling: str = ""
    ceiling_value: float | None = None
    note: str = ""
    at_least: bool = False
    """The value is a lower bound (a latency percentile that includes events never seen)."""
    lower_is_better: bool = False
    """A latency: the ratio is then ceiling / value, so that for every row 100 % means "as good as
    the ceiling" and less is worse."""

    @property
    def ratio(self) -> float | None:
        if not self.value or not self.ceiling_value:
            return None
        return self.ceiling_value / self.value if self.lower_is_better else self.value / self.ceiling_value


def print_table(rows: list[Row]) -> None:
    header = ("figure", "value", "ceiling", "ratio")
    cells = [
        (
            r.figure,
            fmt(r.value, r.unit, r.at_least),
            f"{r.ceiling} {fmt(r.ceiling_value, 'ms' if r.lower_is_better else '')}" if r.ceiling else "",
            "" if r.ratio is None else f"{r.ratio:.0%}" if r.ratio >= 0.1 else f"{r.ratio:.1%}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

    def line(values: Iterable[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))

    print(line(header))
    print(line("-" * w for w in widths))
    for r, c in zip(rows, cells, strict=True):
        print((line(c) + (f"  {r.note}" if r.note else "")).rstrip())


def database_name(info: dict[str, Any], native: bool) -> str:
    """What the database says it is (`buildInfo`)."""
    if isinstance(server := info.get("mongoJavaServer"), dict):
        backend = f"{server.get('backend', '?')} backend" + (", native throwaway stack" if native else "")
        return f"mongo-java-server {server.get('version', '?')} ({backend}; answers as MongoDB {info.get('version')})"
    return f"MongoDB {info.get('version', '?')}"


class ServiceProcess:
    """`python -m goldenkey.<service>` as a child process on its own database, its log in a file.

    It is started through `bench/probe.py`, which counts the MongoDB commands it sends
    (`commands()`); the service itself runs as `python -m` would run it."""

    def __init__(self, service: str, infra: Infra, database: str, log: Path, **env: str) -> None:
        self.service = service
        self.port = devstack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.commands_file = log.with_name(log.name + ".commands.json")
        self.env = {
            **os.environ,
            "GOLDENKEY_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "GOLDENKEY_MONGODB_URL": infra.mongodb_url,
            "GOLDENKEY_MONGODB_DATABASE": database,
            "GOLDENKEY_HTTP_PORT": str(self.port),
            "GOLDENKEY_DEV_MODE": "true",
            "GOLDENKEY_DEV_TOKENS": "true",
            "GOLDENKEY_BUSINESS_HOURS": "Mon-Sun 00:00-24:00",
            "GOLDENKEY_LOG_LEVEL": "WARNING",
            "BENCH_COMMANDS_FILE": str(self.commands_file),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.probe", f"goldenkey.{self.service}"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def commands(self) -> tuple[Counter[str], Counter[str]]:
        """The MongoDB commands the service sent since the last call (or since it started), and
        their durations in microseconds, by command and collection (`bench.probe`)."""
        assert self.proc is not None
        self.commands_file.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not self.commands_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return Counter(), Counter()
            await asyncio.sleep(0.02)
        return read_counts(self.commands_file)

    async def ready(self, client: httpx.AsyncClient) -> float:
        """Seconds from start until /health/ready answered 200."""
        assert self.proc is not None
        began = time.monotonic()
        while time.monotonic() - began < READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                break
            try:
                if (await client.get("/health/ready", timeout=3)).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the {self.service} service did not become ready; log tail:\n{self.tail()}")

    def stop(self) -> tuple[float | None, int | None]:
        """SIGTERM, then wait: seconds until it exited and its exit code (None: it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None, None if self.proc is None else self.proc.returncode
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, None
        return time.monotonic() - began, code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def complaints(self) -> Counter[str]:
        """Warnings, errors and tracebacks in the service's log, by message."""
        found: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines() if self.log.exists() else []:
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    found["Traceback (not JSON)"] += 1
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                found[f"{entry['level']}: {entry.get('event')}"] += 1
        return found


class TopicReader:
    """Reads topics in the background without a consumer group (from their start, or from now on)
    and hands each batch of records to `arrived` with its arrival time (wall clock)."""

    def __init__(self, bootstrap: str, *topics: str, from_start: bool = True) -> None:
        self.topics = topics
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest" if from_start else "latest",
            enable_auto_commit=False,
        )
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        deadline = time.monotonic() + 30
        while not self.consumer.assignment():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partitions of {', '.join(self.topics)} assigned within 30s")
            await asyncio.sleep(0.05)
        for partition in self.consumer.assignment():  # fix the positions before anything is sent
            await self.consumer.position(partition)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=20)
            records = [record for partition in batch.values() for record in partition]
            if records:
                self.arrived(time.time(), records)
                self._changed.set()

    async def wait_until(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Whether `condition()` holds, after records arriving, by `deadline` (a `time.monotonic()`)."""
        while True:
            self._changed.clear()
            if condition():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


async def steady(n: int, rate: float, send: Callable[[int], Coroutine[Any, Any, None]]) -> float:
    """Call `send(i)` for i < n at `rate` per second on a fixed schedule (open loop: a slow send
    does not delay the next one); the rate achieved."""
    began = time.monotonic()
    pending: list[asyncio.Task[None]] = []
    for i in range(n):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(send(i)))
    await asyncio.gather(*pending)
    took = time.monotonic() - began
    return n / took if took > 0 else float("nan")


def raw_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer configured as the kit's broker produces (goldenkey.kit.kafka.make_broker):
    idempotent, acks=all, linger 1 ms."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1)


class KeyArrivals(TopicReader):
    """Reads a topic from now on, noting when each record first arrived, by its key."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic, from_start=False)
        self.at: dict[bytes, float] = {}

    def arrived(self, at: float, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            if record.key is not None:
                self.at.setdefault(record.key, at)


async def kafka_latencies(
    bootstrap: str, n: int, rate: float, value: Callable[[int], bytes], drain_s: float = 30.0
) -> list[float]:
    """The Kafka latency ceiling: seconds from `send()` of each of N records (`value(i)`, sent at
    `rate` per second by a producer set up as the kit's) to its arrival at a reader without a
    consumer group, on a 3-partition topic of its own, deleted afterwards."""
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = raw_producer(bootstrap)
    await producer.start()
    sent: dict[bytes, float] = {}
    headers = [("content-type", CONTENT_TYPE.encode())]
    try:
        await producer.partitions_for(topic)  # metadata fetched before the clock runs
        async with KeyArrivals(bootstrap, topic) as arrivals:

            async def send(i: int) -> None:
                key = f"ceiling-{i}".encode()
                sent[key] = time.time()
                await producer.send_and_wait(topic, value(i), key=key, headers=headers)

            await steady(n, rate, send)
            await arrivals.wait_until(lambda: sent.keys() <= arrivals.at.keys(), time.monotonic() + drain_s)
            return [arrivals.at[k] - sent[k] for k in sent if k in arrivals.at]
    finally:
        await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
