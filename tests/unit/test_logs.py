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


def test_phone_and_id_numbers_are_masked_in_log_lines_and_tracebacks_but_ids_are_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("feedback", "INFO", json=True)
    try:
        token = correlation_id.set("13812345678")
        log = get_logger("test")
        log.info("message from 13912345678", text="身份证 61010219900307123X", ticket_id="13712345678", n=3)
        log.info("nested", contacts=["+86 135 1234 5678"], checks={"note": "tel 15912345678"})
        logging.getLogger("stdlib").warning("from the standard library: %s", "13612345678")
        try:
            raise ValueError("bad phone 18812345678")
        except ValueError:
            log.exception("failed")
        correlation_id.reset(token)
        out = capsys.readouterr().err
        lines = [json.loads(line) for line in out.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == "message from 139****5678"
    assert lines[0]["text"] == "身份证 6101**********123X"
    assert (lines[0]["ticket_id"], lines[0]["correlation_id"], lines[0]["n"]) == ("13712345678", "13812345678", 3)
    assert lines[1]["contacts"] == ["+86 135 **** 5678"]
    assert lines[1]["checks"] == {"note": "tel 159****5678"}
    assert lines[2]["event"] == "from the standard library: 136****5678"
    assert "188****5678" in lines[3]["exception"]
    assert "18812345678" not in out
