"""`make demo`, short: a simulated hour of the hall through the four services' HTTP APIs, on their
shared simulated clock, over a real native stack. Its books must balance, every panel of every
dashboard must show data in the demo's Prometheus, and its report must be written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from goldenkey.demo import panels

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_a_short_demo_day_balances_its_books_and_leaves_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "goldenkey.demo",
            "--visitors",
            "100",
            "--hours",
            "1",
            "--speed",
            "120",
            "--seed",
            "7",
            "--day",
            "2026-11-25",
            "--quiet",
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    day = json.loads((report / "day.json").read_text(encoding="utf-8"))
    failed = [c for c in day["checks"] if not c["ok"]]
    assert not failed, f"the books do not balance: {failed}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(day["visits"]) == 100
    assert {v["outcome"] for v in day["visits"]} <= {"done", "needs_materials", "referred", "no_show"}
    assert len(day["checks"]) >= 12
    # The demo's own Prometheus scraped the day: every panel of every provisioned dashboard has data.
    dashboards = [c for c in day["checks"] if c["name"] == panels.NAME]
    assert dashboards, f"the dashboard check did not run (is prometheus installed?)\n{done.stderr[-3000:]}"
    assert dashboards[0]["ok"], dashboards[0]["found"]
    assert day["snapshots"], "the hall was looked at through the day"
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "http://" not in html, "the report opens offline"
    assert "https://" not in html
    assert len(list((report / "charts").glob("*.png"))) >= 9
