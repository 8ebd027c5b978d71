"""Logs are JSON lines that carry the correlation id of the visit or case at hand."""

from __future__ import annotations

import json
import logging

import pytest

from goldenkey.kit.logs import configure_logging, correlation_id, get_logger


def test_log_lines_are_json_with_the_service_and_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("queue", "INFO", json=True)
    try:
        token = correlation_id.set("visit-7")
        get_logger("test").info("ticket issued", number="B023")
        logging.getLogger("stdlib").warning("from the standard library")
        correlation_id.reset(token)
        get_logger("test").info("outside any visit")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == "ticket issued"
    assert lines[0]["number"] == "B023"
    assert lines[0]["service"] == "queue"
    assert lines[0]["correlation_id"] == "visit-7"
    assert lines[1]["correlation_id"] == "visit-7"
    assert lines[1]["level"] == "warning"
    assert "correlation_id" not in lines[2]
