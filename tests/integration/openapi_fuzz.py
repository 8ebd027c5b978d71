"""Property-based testing of a running service's HTTP API against its own OpenAPI document.

`fuzz_openapi(url, tokens)` works for any Golden Key Hall service served by `tests.support.RunningApp`:

- every operation that declares the bearer scheme is asked without a token and with an unknown one
  (401 expected), and with the token of a role it does not list, when `tokens` has one (403);
- then schemathesis runs its phases (the schema's examples, the boundaries of every constraint,
  random valid and invalid data, stateful sequences that feed one answer into the next request)
  and its checks on every answer: no 5xx, status codes, content types, headers and bodies as
  documented, invalid data refused with a 4xx, valid data not refused, authentication enforced.

Each request carries the token of a role the operation allows: the kit lists those roles as the
scopes of the operation's security requirement. Failures are collected and raised together, each
with a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from schemathesis import engine
from schemathesis.engine import events

SEMANTIC_REJECTIONS = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""What a schema-valid request may get: 422 too, for the rules no schema can say (an unknown item
code, two lists that must be as long as each other); a 5xx is not_a_server_error's to report."""


@dataclass
class FuzzReport:
    """What a run covered, and what it found (nothing, when the API kept every promise)."""

    declared: set[str] = field(default_factory=set)
    """Every operation of the OpenAPI document, as `METHOD /path`."""
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(operation, status) → how many answers with that status the operation gave."""
    seed: int | None = None
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.answers.values())

    def called(self, operation: str, status: int) -> int:
        return self.answers[(operation, status)]


def roles_by_operation(document: Mapping[str, Any]) -> dict[str, list[str] | None]:
    """`METHOD /path` → the roles its security requirement lists ([] = any token), or None if open."""
    found: dict[str, list[str] | None] = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method.startswith("x-") or not isinstance(operation, dict):
                continue
            requirements = operation.get("security", document.get("security", []))
            roles = {role for requirement in requirements for scopes in requirement.values() for role in scopes}
            found[f"{method.upper()} {path}"] = sorted(roles) if requirements else None
    return found


def token_for(roles: list[str] | None, tokens: Mapping[str, str]) -> str | None:
    """The token of the first role in `tokens` the operation allows (None for an open operation)."""
    if roles is None:
        return None
    return next((token for role, token in tokens.items() if not roles or role in roles), None)


async def authentication_problems(
    client: httpx.AsyncClient, roles: Mapping[str, list[str] | None], tokens: Mapping[str, str]
) -> list[str]:
    """Every protected operation answers 401 without a valid token, 403 to a role it does not list."""
    problems = []
    for label, allowed in roles.items():
        if allowed is None:
            continue
        if token_for(allowed, tokens) is None:
            problems.append(f"{label}: no token given for any of its roles {allowed}")
        method, path = label.split(" ", 1)
        url = re.sub(r"\{[^}]+\}", "x", path)
        attempts = [("no token", {}, 401), ("an unknown token", {"Authorization": "Bearer not-a-token"}, 401)]
        outsider = next((token for role, token in tokens.items() if allowed and role not in allowed), None)
        if outsider is not None:
            attempts.append(("a role it does not list", {"Authorization": f"Bearer {outsider}"}, 403))
        for what, headers, expected in attempts:
            response = await client.request(method, url, headers=headers)
            if response.status_code != expected:
                problems.append(f"{label} with {what}: expected {expected}, got {response.status_code} {response.text}")
    return problems


def _run_schemathesis(
    url: str, roles: Mapping[str, list[str] | None], tokens: Mapping[str, str], max_examples: int, seed: int | None
) -> FuzzReport:
    settings: dict[str, Any] = {
        "generation": {
            "max-examples": max_examples,
            "mode": "all",  # valid and invalid data
            "database": "none",  # no .hypothesis directory in the work tree
            "with-security-parameters": False,  # authentication_problems covers bad tokens, once per operation
        },
        "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_REJECTIONS}},
        "request-timeout": 30,
    }
    if seed is not None:
        settings["seed"] = seed
    config = schemathesis.Config.from_dict(settings)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)

    @schema.auth(refresh_interval=None)
    class ByRole:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str | None:
            return token_for(roles.get(case.operation.label), tokens)

        def set(self, case: schemathesis.Case, token: str | None, context: schemathesis.AuthContext) -> None:
            if token is not None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    report = FuzzReport(declared=set(roles), seed=schema.config.seed)
    reported: set[tuple[str, str, str]] = set()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(event.recorder, report, reported)
        elif isinstance(event, events.NonFatalError):
            report.failures.append(f"{event.label}: schemathesis could not test it: {event.info.title}\n  {event.info}")
        elif isinstance(event, events.FatalError):
            report.failures.append(f"schemathesis stopped: {event.exception!r}")
    return report


def _record(recorder: Any, report: FuzzReport, reported: set[tuple[str, str, str]]) -> None:
    """Count a scenario's answers; add each failure not reported yet, with its answer and a curl."""
    for case_id, node in recorder.cases.items():
        interaction = recorder.interactions.get(case_id)
        if interaction is not None and interaction.response is not None:
            report.answers[(node.value.operation.label, interaction.response.status_code)] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            key = (recorder.label, check.name, failure.title)
            if key in reported:
                continue
            reported.add(key)
            found = [f"{recorder.label}: {check.name}: {failure.title}", failure.message.strip()]
            interaction = recorder.interactions.get(case_id)
            if interaction is not None and interaction.response is not None:
                body = interaction.response.content[:300].decode(errors="replace")
                found.append(f"answered {interaction.response.status_code}: {body}")
            found.append(f"reproduce: {check.failure_info.code_sample}")
            report.failures.append(found[0] + "\n" + textwrap.indent("\n".join(found[1:]), "  "))


async def fuzz_openapi(
    url: str, tokens: Mapping[str, str], *, max_examples: int = 15, seed: int | None = None
) -> FuzzReport:
    """Test every operation of the service at `url` against its OpenAPI document.

    `tokens` maps a role to a bearer token of that role; an operation is called with the first
    role in that order it allows. `max_examples` bounds the random cases per operation and data
    mode. Raises AssertionError listing every distinct failure; returns what was covered."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        document = (await client.get("/openapi.json")).raise_for_status().json()
        roles = roles_by_operation(document)
        problems = await authentication_problems(client, roles, tokens)
    # schemathesis is synchronous: it runs in a thread while this event loop goes on serving the app.
    report = await asyncio.to_thread(_run_schemathesis, url, roles, tokens, max_examples, seed)
    report.failures[:0] = problems
    report.failures += [f"{label}: never called" for label in sorted(roles) if not _was_called(report, label)]
    report.elapsed_s = time.monotonic() - started
    if report.failures:
        found = "\n\n".join(report.failures)
        raise AssertionError(f"{len(report.failures)} API failure(s), schemathesis seed {report.seed}:\n\n{found}")
    return report


def _was_called(report: FuzzReport, operation: str) -> bool:
    return any(label == operation for label, _ in report.answers)
