"""`make bench` runs the benchmarks in bench/, and only those (not the module they share)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_make_bench_runs_every_benchmark_and_not_what_they_share() -> None:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    names = {path.name for path in run.benchmarks()}
    assert "common.py" not in names
    assert "run.py" not in names
    assert {"queue_tickets.py", "kit_pipeline.py", "assistance_latency.py", "parking_gate.py"} <= names
