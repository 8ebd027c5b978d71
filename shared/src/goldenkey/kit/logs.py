"""JSON log lines (structlog) that carry the correlation id of the visit or case at hand, with the
phone and ID numbers in them masked (DESIGN §8.2)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from goldenkey.contracts.vocabulary import mask_free_text

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
UNMASKED = frozenset({"timestamp", "level", "logger", "service", "correlation_id"})
"""Keys whose values are the log line's own, never typed by a person (nor are ids, `…_id`)."""


def _add_correlation_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if (cid := correlation_id.get()) is not None:
        event_dict.setdefault("correlation_id", cid)
    return event_dict


def mask_personal_numbers(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: the phone and ID numbers in a log line's values — the message, a
    traceback, an error's text, a value a handler logged — masked as in events (`mask_free_text`)."""
    return {
        key: value if key in UNMASKED or key == "id" or key.endswith("_id") else _masked(value)
        for key, value in event_dict.items()
    }


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_free_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item) for item in value]
    return mask_free_text(repr(value))  # what the JSON renderer would write for it


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library's logging through one JSON renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_correlation_id,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_personal_numbers,  # last before rendering: the traceback is text by now
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    for noisy in ("aiokafka", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
