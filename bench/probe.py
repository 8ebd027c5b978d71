"""Runs a service module with a PyMongo command listener in it: `python -m bench.probe goldenkey.queue`.

The service benchmarks start their service through this module, so that they can say which
MongoDB commands the service sent during a load, and how long those took. SIGUSR1 makes the
process write what it counted since the last SIGUSR1 (or since start) to the JSON file
BENCH_COMMANDS_FILE names, and start counting afresh. Nothing else about the service
changes: its `__main__` runs as `python -m <module>` would run it.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from pymongo import monitoring

FILTERS = {"find": "filter", "findAndModify": "query", "count": "query", "distinct": "query"}
"""Where each command that selects documents keeps its filter (update and delete: per statement)."""


def selection(name: str, command: Any) -> str:
    """How a command selects its documents, as mongo-java-server 1.47 sees it: "" by `_id` alone
    (or a command that selects none), "(_id+)" by `_id` and other fields, "(no _id)"
    by other fields only. It uses an index only when a filter's fields are exactly the index's,
    so the last two scan the whole collection (bench/README.md)."""
    if name in FILTERS:
        filters = [command.get(FILTERS[name]) or {}]
    elif name in ("update", "delete"):
        filters = [statement.get("q") or {} for statement in command.get(f"{name}s", [])]
    elif name == "aggregate":
        first = (command.get("pipeline") or [{}])[0]
        filters = [first.get("$match", {})]
    else:
        return ""
    if any("_id" not in f for f in filters):
        return "(no _id)"
    if any(set(f) != {"_id"} for f in filters):
        return "(_id+)"
    return ""


def label(event: monitoring.CommandStartedEvent) -> str:
    """`<command> <collection>`, marked with how it selects its documents (`selection`)."""
    target = event.command.get(event.command_name)
    what = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
    return f"{what} {how}" if (how := selection(event.command_name, event.command)) else what


class CommandCounts(monitoring.CommandListener):
    """The MongoDB commands sent while counting, and the time they took, by `label` (every client
    made after `monitoring.register`). Its lock is re-entrant: the SIGUSR1 handler runs on the
    thread it interrupts, which may hold it."""

    def __init__(self, on: bool = True) -> None:
        self.counts: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self.on = on
        self._started: dict[tuple[Any, int], str] = {}
        self._lock = threading.RLock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            what = label(event)
            with self._lock:
                self.counts[what] += 1
                self._started[event.connection_id, event.request_id] = what

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event)

    def _finished(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        with self._lock:
            if (what := self._started.pop((event.connection_id, event.request_id), None)) is not None:
                self.micros[what] += event.duration_micros

    def start(self) -> None:
        with self._lock:
            self.counts.clear()
            self.micros.clear()
            self._started.clear()
            self.on = True

    def stop(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            self.on = False
            return Counter(self.counts), Counter(self.micros)

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """What was counted so far; counting goes on from zero."""
        counted = self.stop()
        self.start()
        return counted


def per_operation(counted: tuple[Counter[str], Counter[str]], operations: int, leave_out: str = "") -> list[str]:
    """Per operation: each kind of command, how many, and how long they took together."""
    counts, micros = counted
    if not operations:
        return ["—"]
    names = sorted((name for name in counts if name != leave_out), key=lambda name: -micros[name])
    total = sum(counts[name] for name in names) / operations
    total_ms = sum(micros[name] for name in names) / operations / 1000
    lines = [
        f"{counts[name] / operations:4.1f} {name:<31} {micros[name] / operations / 1000:6.1f} ms" for name in names
    ]
    return [f"{total:.1f} commands, {total_ms:.1f} ms", *lines]


def read_counts(path: Path) -> tuple[Counter[str], Counter[str]]:
    """What a probed process wrote on SIGUSR1 (see `main`)."""
    written = json.loads(path.read_text("utf-8"))
    return Counter(written["counts"]), Counter(written["micros"])


def main() -> None:
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    out = Path(os.environ["BENCH_COMMANDS_FILE"])
    commands = CommandCounts()
    monitoring.register(commands)

    def dump(_signal: int, _frame: FrameType | None) -> None:
        counts, micros = commands.take()
        partial = out.with_name(out.name + ".partial")
        partial.write_text(json.dumps({"counts": counts, "micros": micros}), "utf-8")
        partial.replace(out)

    signal.signal(signal.SIGUSR1, dump)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
