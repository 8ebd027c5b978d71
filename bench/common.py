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
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from deploy.native import devstack

PARTS = {"FerretDB": "ferretdb", "Kafka": "kafka"}


@dataclass
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    kafka: str
    """What the broker is, as far as we know."""
    native: bool
    """A throwaway native stack (FerretDB on its SQLite backend)."""
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

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ceiling_value:
            return None
        return self.value / self.ceiling_value


def print_table(rows: list[Row]) -> None:
    header = ("figure", "value", "ceiling", "ratio")
    cells = [
        (
            r.figure,
            fmt(r.value, r.unit, r.at_least),
            f"{r.ceiling} {fmt(r.ceiling_value)}" if r.ceiling else "",
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
    if ferret := info.get("ferretdbVersion"):
        backend = "SQLite backend in the native stack; " if native else ""
        return f"FerretDB {ferret} ({backend}answers as MongoDB {info.get('version')})"
    return f"MongoDB {info.get('version', '?')}"


class ServiceProcess:
    """`python -m goldenkey.<service>` as a child process on its own database, its log in a file."""

    def __init__(self, service: str, infra: Infra, database: str, log: Path, **env: str) -> None:
        self.service = service
        self.port = devstack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "GOLDENKEY_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "GOLDENKEY_MONGODB_URL": infra.mongodb_url,
            "GOLDENKEY_MONGODB_DATABASE": database,
            "GOLDENKEY_HTTP_PORT": str(self.port),
            "GOLDENKEY_DEV_TOKENS": "true",
            "GOLDENKEY_BUSINESS_HOURS": "Mon-Sun 00:00-24:00",
            "GOLDENKEY_LOG_LEVEL": "WARNING",
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
                [sys.executable, "-m", f"goldenkey.{self.service}"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

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
