"""Errors a command can end in, and the HTTP status each one means."""

from __future__ import annotations


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
