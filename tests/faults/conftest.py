"""The fault suite's one hall for the session, and the table of what each fault cost, printed at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.hall import FaultHall, Row, table

ROWS: list[Row] = []
"""Each fault's figures, in the order the faults ran."""


@pytest.fixture(scope="session")
async def hall() -> AsyncIterator[FaultHall]:
    root = Path(tempfile.mkdtemp(prefix="goldenkey-faults-"))
    running = FaultHall(root)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()
        if os.environ.get("GOLDENKEY_FAULTS_KEEP"):
            print(f"the fault suite's stack, logs and all: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ROWS:
        terminalreporter.write_sep("=", "faults: commands acknowledged vs effects, events published vs consumed")
        terminalreporter.write_line(table(ROWS))
