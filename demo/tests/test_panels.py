"""The dashboard check after a demo (goldenkey.demo.panels), against a Prometheus played by a stub,
and the config of the demo's own Prometheus (deploy/native/devstack.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.native.devstack import PROMETHEUS_CONFIG, REPO, SERVICE_PORTS, prometheus_config
from goldenkey.demo import panels
from goldenkey.demo.record import Check

START, END = 1_800_000_000.0, 1_800_000_060.0


def board(title: str, *rows: dict[str, Any], variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"title": title, "uid": title.lower(), "panels": list(rows), "templating": {"list": variables or []}}


def panel(title: str, *exprs: str, instant: bool = False, hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    targets = [{"expr": e, "instant": instant, "range": not instant, "refId": "A"} for e in exprs]
    targets += [{"expr": e, "hide": True, "refId": "Z"} for e in hidden]
    return {"type": "stat" if instant else "timeseries", "title": title, "targets": targets}


ZONES = {
    "name": "zone",
    "type": "query",
    "query": "label_values(goldenkey_parking_zone_capacity, zone)",
    "current": {"text": ["All"], "value": ["$__all"]},
    "includeAll": True,
    "multi": True,
}


class Prometheus:
    """Answers the few API calls the check makes; `data` says which queries return a value."""

    def __init__(self, data: dict[str, list[str]], scraped_at: str = "2027-01-15T08:01:01.123456789Z") -> None:
        self.data = data
        self.scraped_at = scraped_at
        self.asked: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.asked.append((request.url.path, params))
        if request.url.path == "/api/v1/targets":
            targets = [
                {
                    "scrapePool": "goldenkey",
                    "labels": {"service": s},
                    "lastScrape": self.scraped_at,
                    "scrapeInterval": "1s",
                }
                for s in SERVICE_PORTS
            ]
            return httpx.Response(200, json={"status": "success", "data": {"activeTargets": targets}})
        if request.url.path == "/api/v1/label/zone/values":
            return httpx.Response(200, json={"status": "success", "data": ["B", "A"]})
        values = self.data.get(params["query"])
        if values is None:
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})
        if request.url.path == "/api/v1/query":
            result = [{"metric": {}, "value": [END, v]} for v in values]
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})
        series = [{"metric": {}, "values": [[START + i, v] for i, v in enumerate(values)]}]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": series}})


async def run_check(tmp_path: Path, prometheus: Prometheus, *boards: dict[str, Any]) -> Check:
    for b in boards:
        (tmp_path / f"{b['uid']}.json").write_text(json.dumps(b), encoding="utf-8")
    async with httpx.AsyncClient(transport=httpx.MockTransport(prometheus)) as http:
        return await panels.check("http://prometheus", START, END, tmp_path, http)


async def test_every_panel_with_data_passes_and_grafanas_variables_are_put_in(tmp_path: Path) -> None:
    zoned = 'max by (zone) (goldenkey_parking_zone_capacity{zone=~"(A|B)"})'
    counted = "sum(increase(goldenkey_dlq_messages_total[60s]))"
    stub = Prometheus({zoned: ["12", "NaN"], counted: ["0"], "max(goldenkey_coverage_gaps)": ["0"]})
    parking = board(
        "Parking",
        panel("Zones", 'max by (zone) (goldenkey_parking_zone_capacity{zone=~"$zone"})'),
        {
            "type": "row",
            "title": "Later",
            "panels": [panel("Dead letters", "sum(increase(goldenkey_dlq_messages_total[$__range]))", instant=True)],
        },
        variables=[ZONES],
    )
    queue = board("Queue", panel("Gaps", "max(goldenkey_coverage_gaps)", hidden=("never asked",)))
    found = await run_check(tmp_path, stub, parking, queue)
    assert found.ok, found
    assert (found.expected, found.found) == ("3 panels with data", "3 panels with data")
    asked = {params["query"]: path for path, params in stub.asked if "query" in params}
    assert asked == {
        zoned: "/api/v1/query_range",
        counted: "/api/v1/query",
        "max(goldenkey_coverage_gaps)": "/api/v1/query_range",
    }
    ranges = [params for path, params in stub.asked if path == "/api/v1/query_range"]
    assert all((float(p["start"]), float(p["end"]), float(p["step"])) == (START, END, 2.0) for p in ranges)


async def test_a_panel_with_no_series_or_only_nan_is_named_with_its_dashboard_and_query(tmp_path: Path) -> None:
    stub = Prometheus({"up": ["1"], "histogram_quantile(0.9, x)": ["NaN", "NaN"]})
    platform = board(
        "Platform",
        panel("Up", "up"),
        panel("Latency", "histogram_quantile(0.9, x)"),
        panel("Errors", "up", "sum(rate(errors_total[$__rate_interval]))"),
    )
    found = await run_check(tmp_path, stub, platform)
    assert not found.ok
    assert found.expected == "3 panels with data"
    assert found.found.startswith("1 panels with data; no data: ")
    assert "Platform / Latency / histogram_quantile(0.9, x) (NaN only)" in found.found
    assert "Platform / Errors / sum(rate(errors_total[4s])) (no series)" in found.found, "1 s scrapes, 2 s step"


async def test_the_check_waits_for_a_scrape_after_the_day_and_fails_when_none_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = Prometheus({"up": ["1"]}, scraped_at="2027-01-15T08:00:59Z")  # a second before END
    real_scraped_after = panels.scraped_after
    monkeypatch.setattr(panels, "scraped_after", lambda http, url, after: real_scraped_after(http, url, after, 0.5))
    found = await run_check(tmp_path, stale, board("Platform", panel("Up", "up")))
    assert not found.ok
    assert found.found == "not scraped in time: queue, concierge, parking, feedback"
    assert not [path for path, _ in stale.asked if "query" in path], "nothing is judged on stale data"


def test_grafana_variables_are_substituted_in_each_of_their_spellings() -> None:
    variables = {"zone": "(A|B)", "__range": "60s", "__range_s": "60"}
    assert panels.substitute(
        'x{zone=~"$zone"}[$__range] ${zone} ${zone:regex} [[zone]] $__range_s $other', variables
    ) == ('x{zone=~"(A|B)"}[60s] (A|B) (A|B) (A|B) 60 $other')
    assert panels.regex_value(["A"]) == "A"
    assert panels.regex_value(["a.b", "c"]) == "(a\\\\.b|c)"
    window = panels.Window(start=START, end=END, step=2.0, scrape_interval=5.0)
    assert window.grafana_variables()["__rate_interval"] == "20s"


def test_the_provisioned_dashboards_have_queries_to_check() -> None:
    found = [t for b in panels.dashboards() for t in panels.targets(b)]
    assert {t.dashboard for t in found} >= {"Golden Key Hall — Hall overview", "Golden Key Hall — Platform"}
    assert any(t.instant for t in found)
    assert any(not t.instant for t in found)


def test_the_demos_prometheus_scrapes_its_services_every_second_with_the_make_up_config_otherwise() -> None:
    ports = {"queue": 41001, "concierge": 41002, "parking": 41003, "feedback": 41004}
    text = prometheus_config(ports, "1s")
    for service, port in ports.items():
        assert f'"127.0.0.1:{port}"' in text, service
        assert f'"127.0.0.1:{SERVICE_PORTS[service]}"' not in text
    assert "scrape_interval: 1s" in text
    assert "evaluation_interval: 1s" in text
    assert "rules/goldenkey.yml" in text
    assert "job_name: goldenkey" in text
    assert prometheus_config() == PROMETHEUS_CONFIG.read_text(), "make up's Prometheus keeps the file as it is"


def test_promtool_accepts_the_demos_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    (tmp_path / "prometheus.yml").write_text(prometheus_config(dict.fromkeys(SERVICE_PORTS, 41000), "1s"))
    shutil.copytree(REPO / "deploy" / "prometheus" / "rules", tmp_path / "rules")
    done = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_dashboards_can_be_elsewhere_and_none_there_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOLDENKEY_DASHBOARDS", str(tmp_path))
    assert panels.dashboards() == []
    found = await panels.check("http://prometheus", START, END)
    assert (found.ok, found.expected, found.found) == (False, f"dashboards in {tmp_path}", "none")
