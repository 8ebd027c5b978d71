"""Errors a command can end in, and the HTTP status each one means."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class DomainError(Exception):
    """A rule of the hall said no. The message says which rule, in words a caller understands."""

    status = 409


class Conflict(DomainError):
    """The request is valid but the current state does not allow it (e.g. completing a waiting ticket)."""

    status = 409


class Invalid(DomainError):
    """The request names something that does not fit (e.g. an unknown item code)."""

    status = 422


class Missing(DomainError):
    status = 404


class Forbidden(DomainError):
    """The caller's role may do this, but not to this one: a ticket at another window, a slip's
    code that does not match (docs/access.md)."""

    status = 403


class Problem(BaseModel):
    """One thing wrong with a request's input, as FastAPI's validation reports it."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer: a sentence saying what went wrong, or, for input that fails
    validation, the list of problems."""

    detail: str | list[Problem]


ERRORS = {
    400: "The request could not be read: a body that is not UTF-8 JSON, a malformed Idempotency-Key.",
    401: "No valid bearer token.",
    403: "The token's role may not do this.",
    404: "Nothing with that id.",
    409: "The current state does not allow it.",
    422: "The input does not fit: invalid, or naming something unknown.",
    503: "The database is unavailable; try again shortly.",
}


BODY_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "The body is over the size limit.", "content": {"text/plain": {"schema": {"type": "string"}}}}
}
"""Starlette's own answer, before the app sees the request: plain text."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` declaring the error answers an operation can give."""
    return {status: {"model": ErrorBody, "description": ERRORS[status]} for status in statuses}
