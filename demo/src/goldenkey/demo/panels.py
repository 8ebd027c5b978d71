"""Does every panel of every provisioned dashboard show data? Asked of Prometheus after the day.

Grafana is not needed: a panel's queries are the PromQL of its targets in
deploy/grafana/dashboards/*.json (rows' nested panels included). Each is asked as Grafana would ask
it for a time range of the demo's real start to its end: Grafana's own variables (`$__range`,
`$__interval`, `$__rate_interval`…) and the dashboard's template variables (their current value;
"All" as the values Grafana's `label_values(…)` would offer) put in, an instant query at the end
for a target marked `instant` (a stat panel's number), a range query with a step of a few seconds
otherwise. A query has data when it returns a series with a value that is not NaN; a panel shows
data when each of its queries does. One that shows "No data" after a whole day is a defect: a
dashboard that says nothing when nothing went wrong cannot be told from one that is broken.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from goldenkey.demo.record import Check

DASHBOARDS = Path(__file__).resolve().parents[4] / "deploy" / "grafana" / "dashboards"
"""The provisioned dashboards in the repository; `GOLDENKEY_DASHBOARDS` names them elsewhere (the
demo's image has them but not the repository)."""
NAME = "every panel of every dashboard shows data"
JOB = "goldenkey"
"""The scrape job of the services (deploy/prometheus/prometheus*.yml)."""
GRAFANA_SCRAPE_INTERVAL = 15.0
"""What Grafana takes for the scrape interval when Prometheus does not say (its own default)."""
MIN_STEP = 2.0
MAX_POINTS = 500
PARALLEL = 6


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    dashboard: str
    panel: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class Window:
    """The time range the dashboards are looked at over, in Unix seconds, and its step."""

    start: float
    end: float
    step: float
    scrape_interval: float

    def grafana_variables(self) -> dict[str, str]:
        """Grafana's built-in variables, as its Prometheus data source fills them in."""
        range_s = max(1, math.ceil(self.end - self.start))
        step = math.ceil(self.step)
        rate = max(step + math.ceil(self.scrape_interval), 4 * math.ceil(self.scrape_interval))
        return {
            "__range": f"{range_s}s",
            "__range_s": str(range_s),
            "__range_ms": str(range_s * 1000),
            "__interval": f"{step}s",
            "__interval_ms": str(step * 1000),
            "__rate_interval": f"{rate}s",
        }


def dashboards_directory() -> Path:
    return Path(os.environ.get("GOLDENKEY_DASHBOARDS") or DASHBOARDS)


def dashboards(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every dashboard Grafana is provisioned with."""
    directory = directory or dashboards_directory()
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, those inside (collapsed) rows too."""
    for panel in container.get("panels") or []:
        yield panel
        yield from panels(panel)


def targets(dashboard: dict[str, Any]) -> list[Target]:
    """Every query of every panel, hidden ones left out (a panel does not show them)."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            if target.get("hide") or not target.get("expr"):
                continue
            found.append(
                Target(
                    dashboard=dashboard.get("title", dashboard.get("uid", "?")),
                    panel=panel.get("title") or f"panel {panel.get('id')}",
                    expr=target["expr"],
                    instant=bool(target.get("instant")) and not target.get("range"),
                )
            )
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def substitute(text: str, variables: dict[str, str]) -> str:
    """`text` with Grafana's `$name`, `${name}`, `${name:format}` and `[[name]]` put in; a name
    that is not a variable is left as it is."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        return variables.get(name, match[0])

    return _VARIABLE.sub(value, text)


def regex_value(values: list[str]) -> str:
    """Several values of a multi-value variable as Grafana writes them for Prometheus: `(a|b)`,
    each escaped for a regular expression inside a PromQL string."""
    escaped = [re.sub(r"[\\^$*+?.()|\[\]{}]", lambda m: "\\\\" + m[0], v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")


async def template_variables(
    http: httpx.AsyncClient, prometheus: str, dashboard: dict[str, Any], window: Window
) -> dict[str, str]:
    """The dashboard's template variables at their current values; "All" as what Grafana would
    offer to pick from, asked of Prometheus over the window."""
    variables = window.grafana_variables()
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        name, kind = variable["name"], variable.get("type")
        current = (variable.get("current") or {}).get("value")
        picked = [current] if isinstance(current, str) else list(current or [])
        if kind == "constant":
            variables[name] = str(variable.get("query", ""))
            continue
        if picked and "$__all" not in picked:
            variables[name] = regex_value(picked)
            continue
        if variable.get("allValue"):
            variables[name] = substitute(variable["allValue"], variables)
            continue
        if kind == "query":
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query or "")
            options = await label_values(http, prometheus, substitute(query, variables), window)
        elif kind in ("custom", "interval"):
            options = [o.strip() for o in str(variable.get("query", "")).split(",") if o.strip()]
        else:
            options = [str(o.get("value")) for o in variable.get("options") or [] if o.get("value") != "$__all"]
        variables[name] = regex_value(options) if options else ""
    return variables


async def label_values(http: httpx.AsyncClient, prometheus: str, query: str, window: Window) -> list[str]:
    """What Grafana's `label_values([series,] label)` offers."""
    parsed = _LABEL_VALUES.match(query)
    if parsed is None:
        raise ValueError(f"a template variable's query is not label_values(…): {query!r}")
    params: dict[str, Any] = {"start": window.start, "end": window.end}
    if parsed["match"]:
        params["match[]"] = parsed["match"]
    answer = await http.get(f"{prometheus}/api/v1/label/{parsed['label']}/values", params=params)
    answer.raise_for_status()
    return sorted(str(v) for v in answer.json()["data"])


async def has_data(http: httpx.AsyncClient, prometheus: str, expr: str, instant: bool, window: Window) -> str | None:
    """None when the query returns a series with a value that is not NaN; else what it returned."""
    if instant:
        answer = await http.get(f"{prometheus}/api/v1/query", params={"query": expr, "time": window.end})
    else:
        answer = await http.get(
            f"{prometheus}/api/v1/query_range",
            params={"query": expr, "start": window.start, "end": window.end, "step": window.step},
        )
    body = answer.json()
    if body.get("status") != "success":
        return f"error: {body.get('error', answer.status_code)}"
    data = body["data"]
    result = data["result"]
    if data["resultType"] == "scalar":
        samples = [result]
    elif data["resultType"] == "vector":
        samples = [series["value"] for series in result]
    else:
        samples = [point for series in result for point in series["values"]]
    if any(not math.isnan(float(value)) for _, value in samples):
        return None
    return "NaN only" if samples else "no series"


async def scraped_after(
    http: httpx.AsyncClient, prometheus: str, after: float, timeout: float = 60.0
) -> tuple[float, list[str]]:
    """Wait until Prometheus has scraped every service after `after` (Unix seconds), so it holds
    everything up to then: the scrape interval, and the targets not scraped in time."""
    deadline = time.monotonic() + timeout
    while True:
        late: list[str] = []
        interval = GRAFANA_SCRAPE_INTERVAL
        try:
            answer = await http.get(f"{prometheus}/api/v1/targets", params={"state": "active"})
            active = answer.json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError) as error:
            active, late = [], [f"Prometheus at {prometheus}: {error!r}"]
        ours = [t for t in active if t.get("scrapePool") == JOB or t.get("labels", {}).get("job") == JOB]
        if active and not ours:
            late = [f"no scrape target of job {JOB!r}"]
        for target in ours:
            if target.get("scrapeInterval"):
                interval = _seconds(target["scrapeInterval"])
            if _unix(target.get("lastScrape", "")) <= after:
                late.append(target.get("labels", {}).get("service") or target.get("scrapeUrl", "?"))
        if not late or time.monotonic() > deadline:
            return interval, late
        await asyncio.sleep(0.25)


async def check(
    prometheus: str, start: float, end: float, directory: Path | None = None, http: httpx.AsyncClient | None = None
) -> Check:
    """Every panel query of every dashboard in `directory`, asked of `prometheus` over `start` …
    `end` (Unix seconds, real time): one check, its `found` naming the panels that show nothing."""
    directory = directory or dashboards_directory()
    boards = dashboards(directory)
    if not boards:
        return Check(name=NAME, ok=False, expected=f"dashboards in {directory}", found="none")
    client = http or httpx.AsyncClient(timeout=30)
    try:
        interval, late = await scraped_after(client, prometheus, end)
        if late:
            return Check(
                name=NAME,
                ok=False,
                expected=f"Prometheus scraped every service after the day ({prometheus})",
                found=f"not scraped in time: {', '.join(late)}",
            )
        step = max(MIN_STEP, interval, (end - start) / MAX_POINTS)
        window = Window(start=start, end=end, step=step, scrape_interval=interval)
        queries: list[tuple[Target, str]] = []
        for dashboard in boards:
            variables = await template_variables(client, prometheus, dashboard, window)
            queries.extend((target, substitute(target.expr, variables)) for target in targets(dashboard))
        limit = asyncio.Semaphore(PARALLEL)

        async def ask(expr: str, instant: bool) -> str | None:
            async with limit:
                return await has_data(client, prometheus, expr, instant, window)

        answers = await asyncio.gather(*(ask(expr, target.instant) for target, expr in queries))
    except (httpx.HTTPError, ValueError, KeyError) as error:
        return Check(name=NAME, ok=False, expected=f"answers from Prometheus at {prometheus}", found=repr(error))
    finally:
        if http is None:
            await client.aclose()
    shown = {(t.dashboard, t.panel) for t, _ in queries}
    empty: dict[tuple[str, str], list[str]] = {}
    for (target, expr), answer in zip(queries, answers, strict=True):
        if answer is not None:
            empty.setdefault((target.dashboard, target.panel), []).append(f"{expr} ({answer})")
    listed = "; ".join(f"{d} / {p} / {' | '.join(exprs)}" for (d, p), exprs in sorted(empty.items()))
    return Check(
        name=NAME,
        ok=bool(shown) and not empty,
        expected=f"{len(shown)} panels with data",
        found=f"{len(shown) - len(empty)} panels with data" + (f"; no data: {listed}" if empty else ""),
    )


def _seconds(duration: str) -> float:
    """A Prometheus duration such as `1s`, `500ms` or `1m30s`, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", duration)
    return sum(float(n) * units[u] for n, u in parts) or GRAFANA_SCRAPE_INTERVAL


def _unix(timestamp: str) -> float:
    """An RFC 3339 time as Prometheus writes it (nanoseconds, `Z`), in Unix seconds; 0 if none."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", timestamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        return 0.0
