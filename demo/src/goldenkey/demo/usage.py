"""What the day cost the machine: each process's CPU time and its peak memory, sampled with psutil."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Watched:
    process: psutil.Process
    cpu_at_start: float
    peak_rss: int = 0
    peak_cpu: float = 0.0
    """The busiest stretch between two samples, as a share of one core: a process pinned at
    100 % during the peak is where the day waits."""
    last: tuple[float, float] = (0.0, 0.0)
    """(monotonic time, CPU seconds) at the last sample."""


@dataclass
class Usage:
    """Processes by name (the services, Kafka, the database, the simulator itself), watched from
    `start()`: `sample()` now and then keeps each one's peak resident memory."""

    pids: dict[str, int]
    started: float = 0.0
    watched: dict[str, Watched] = field(default_factory=dict)

    def start(self) -> None:
        self.started = time.monotonic()
        for name, pid in self.pids.items():
            try:
                process = psutil.Process(pid)
                cpu = _cpu(process)
            except psutil.Error:  # gone already: nothing to say about it
                continue
            self.watched[name] = Watched(process, cpu, last=(self.started, cpu))
        self.sample()

    def sample(self) -> None:
        for watched in self.watched.values():
            try:
                watched.peak_rss = max(watched.peak_rss, watched.process.memory_info().rss)
                now, cpu = time.monotonic(), _cpu(watched.process)
            except psutil.Error:
                continue
            then, cpu_then = watched.last
            if now - then >= 1.0:
                watched.peak_cpu = max(watched.peak_cpu, (cpu - cpu_then) / (now - then))
                watched.last = (now, cpu)

    def figures(self) -> dict[str, dict[str, float]]:
        """name → CPU seconds, CPU as a share of one core over the run and at its busiest (%),
        peak RSS (MiB)."""
        self.sample()
        elapsed = max(time.monotonic() - self.started, 1e-6)
        found: dict[str, dict[str, float]] = {}
        for name, watched in self.watched.items():
            try:
                cpu = _cpu(watched.process) - watched.cpu_at_start
            except psutil.Error:
                continue
            found[name] = {
                "cpu_s": round(cpu, 1),
                "cpu_percent": round(100 * cpu / elapsed, 1),
                "peak_cpu_percent": round(100 * watched.peak_cpu, 1),
                "peak_rss_mib": round(watched.peak_rss / 2**20, 1),
            }
        return found


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
