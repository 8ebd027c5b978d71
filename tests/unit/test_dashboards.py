"""The Grafana dashboards (deploy/grafana/dashboards.py → deploy/grafana/dashboards/*.json).

The committed JSON must be what the generator writes, and every query may ask Prometheus only for
series the services really export: a renamed metric would otherwise leave a panel silently empty.
The alert rules (deploy/prometheus/rules) are held to the same: an alert would silently never fire.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from deploy.grafana import dashboards as generator
from goldenkey.kit.metrics import Metrics
from goldenkey.queue.metrics import QueueMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules"

# The kit's own series the dashboards may use (goldenkey.kit.metrics), listed by hand on purpose.
KIT_METRICS = {
    "goldenkey_http_requests_total",
    "goldenkey_http_request_seconds_bucket",
    "goldenkey_outbox_pending",
    "goldenkey_dlq_messages_total",
    "goldenkey_consumer_lag",
}
PROMETHEUS_METRICS = {"up"}  # written by Prometheus itself for every scrape target
# A service's own metrics: the class in goldenkey.<service>.metrics that registers them beside the
# kit's, and the dashboard that shows them.
SERVICE_METRICS = {
    "queue": "QueueMetrics",
    "concierge": "ConciergeMetrics",
    "parking": "ParkingMetrics",
    "feedback": "FeedbackMetrics",
}
SERVICE_DASHBOARDS = {
    "queue": "goldenkey-queue.json",
    "concierge": "goldenkey-concierge.json",
    "parking": "goldenkey-parking.json",
    "feedback": "goldenkey-feedback.json",
}
UNITS = {"reqps", "eps", "s", "percentunit", "short"}

SERIES_SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
GRAFANA_VARIABLES = {
    "$__range": "1h",
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$service": "queue",
    "$category": "A",
    "$zone": "A",
}


def families(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Each metric a registry exposes → the names of its series, before any label value is set."""
    return {
        family.name: {family.name + suffix for suffix in SERIES_SUFFIXES[family.type]} for family in registry.collect()
    }


def series_names(registry: CollectorRegistry) -> set[str]:
    """The names of the series a registry exposes, before any label value is set."""
    return {name for names in families(registry).values() for name in names}


def faststream_metrics() -> set[str]:
    """What the Prometheus middleware the kit gives every broker (goldenkey.kit.app) registers."""
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="queue")
    return series_names(registry)


def service_metrics(service: str) -> dict[str, set[str]] | None:
    """The metrics a service registers itself (by metric, as `families`), or None while its
    goldenkey.<service>.metrics module is not written yet: queries asking for them then fail."""
    module_name = f"goldenkey.{service}.metrics"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as missing:
        if missing.name != module_name:
            raise
        return None
    metrics = Metrics(service)
    kit = families(metrics.registry)
    getattr(module, SERVICE_METRICS[service])(metrics)
    return {name: series for name, series in families(metrics.registry).items() if name not in kit}


SERVICES_OWN_METRICS = {
    name for service in SERVICE_METRICS for series in (service_metrics(service) or {}).values() for name in series
}
ALLOWED_METRICS = KIT_METRICS | faststream_metrics() | PROMETHEUS_METRICS | SERVICES_OWN_METRICS


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers,
    ranges, label lists (`by (…)`), numbers, keywords and function calls are set aside."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for token in re.finditer(r"\d[\w.]*|[A-Za-z_:][\w:]*", expr):
        word = token.group()
        called = expr[token.end() :].lstrip().startswith("(")
        if not (word[0].isdigit() or called or word.lower() in PROMQL_KEYWORDS):
            names.add(word)
    return names


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: load(path) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the rows, including those inside collapsed rows."""
    found = []
    for panel in board.get("panels", []):
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = board.get("templating", {}).get("list", [])
    return found


def expressions(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and every `label_values(…)` variable query."""
    found = [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    for variable in variables(board):
        if variable["type"] == "query" and (match := re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"])):
            found.append((f"${variable['name']}", match.group(1)))
    return found


def asked(board: dict[str, Any]) -> set[str]:
    """Every metric name a dashboard's queries ask for."""
    return {name for _, expr in expressions(board) for name in metric_names(expr)}


def rules() -> list[dict[str, Any]]:
    """Every alerting and recording rule of deploy/prometheus/rules (not their promtool tests)."""
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        if not path.stem.endswith("_test")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


ALL_EXPRESSIONS = [
    pytest.param(expr, id=f"{name}: {where}")
    for name, board in committed().items()
    for where, expr in expressions(board)
]
RULE_EXPRESSIONS = [pytest.param(rule["expr"], id=rule.get("alert") or rule["record"]) for rule in rules()]


# --- the generator and the committed files -------------------------------------------------------


def test_committed_dashboards_are_exactly_what_the_generator_writes() -> None:
    stale = generator.stale(DASHBOARDS)
    assert not stale, (
        f"deploy/grafana/dashboards/ differs from the generator: {', '.join(stale)}. "
        f"Regenerate with `{generator.COMMAND}` and commit the JSON."
    )


def test_check_names_files_that_were_edited_by_hand_or_left_behind(tmp_path: Path) -> None:
    assert generator.write(tmp_path) == sorted(generator.rendered())
    assert generator.stale(tmp_path) == []

    edited = tmp_path / "goldenkey-platform.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace("Platform", "Plumbing"), encoding="utf-8")
    (tmp_path / "goldenkey-renamed.json").write_text("{}\n", encoding="utf-8")
    assert generator.stale(tmp_path) == ["goldenkey-platform.json", "goldenkey-renamed.json"]

    generator.write(tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.json")) == sorted(generator.rendered())
    assert generator.stale(tmp_path) == []


def test_generator_output_does_not_change_between_runs() -> None:
    assert generator.rendered() == generator.rendered()


# --- what the dashboards ask Prometheus for -------------------------------------------------------


def test_metric_names_sees_through_functions_matchers_and_label_lists() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, service) (rate(a_seconds_bucket{status=~"5..", x="rate(b)"}[5m])))'
        " / on (service) group_left count(up offset 1h) or vector(0) * 2e3"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "up"}


def test_the_kit_still_exports_every_metric_the_dashboards_may_use() -> None:
    exported = series_names(Metrics("queue").registry)
    assert not KIT_METRICS - exported, f"the kit no longer exports {sorted(KIT_METRICS - exported)}"


def test_faststream_metrics_are_read_from_the_installed_middleware() -> None:
    assert {
        "faststream_received_messages_total",
        "faststream_received_processed_messages_duration_seconds_bucket",
        "faststream_published_messages_total",
    } <= faststream_metrics()


def assert_only_exported_metrics(expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric found in {expr!r}"
    assert names <= ALLOWED_METRICS, (
        f"unknown metric(s) {sorted(names - ALLOWED_METRICS)} in {expr!r}: not exported by the kit, "
        f"FastStream's middleware, Prometheus or the metrics classes of {', '.join(SERVICE_METRICS)}"
    )


@pytest.mark.parametrize("expr", ALL_EXPRESSIONS)
def test_queries_ask_only_for_metrics_the_services_export(expr: str) -> None:
    assert_only_exported_metrics(expr)


@pytest.mark.parametrize("expr", RULE_EXPRESSIONS)
def test_alert_rules_ask_only_for_metrics_the_services_export(expr: str) -> None:
    assert_only_exported_metrics(expr)


@pytest.mark.parametrize("service", sorted(SERVICE_METRICS))
def test_a_service_dashboard_shows_every_metric_of_its_service(service: str) -> None:
    own = service_metrics(service)
    if own is None:
        pytest.skip(f"goldenkey.{service}.metrics is not written yet")
    assert own, f"goldenkey.{service}.metrics registers no metric"
    shown = asked(load(DASHBOARDS / SERVICE_DASHBOARDS[service]))
    missing = sorted(name for name, series in own.items() if not series & shown)
    assert not missing, f"{SERVICE_DASHBOARDS[service]} shows nothing of {missing}"


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    """`promtool check rules` parses each query as a recording rule; no Prometheus server is needed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    rules = []
    for number, param in enumerate(ALL_EXPRESSIONS):
        (expr,) = param.values
        for variable, value in GRAFANA_VARIABLES.items():
            expr = str(expr).replace(variable, value)
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    queries = "\n".join(f"dashboard:query_{number} is {param.id}" for number, param in enumerate(ALL_EXPRESSIONS))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{queries}"


# --- what Grafana needs ----------------------------------------------------------------------------


def test_every_panel_and_query_uses_the_provisioned_prometheus() -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    for name, board in committed().items():
        for panel in panels(board):
            assert panel.get("datasource") == expected, f"{name}: {panel['title']}"
            for target in panel.get("targets", []):
                assert target.get("datasource") == expected, f"{name}: {panel['title']} {target['refId']}"
        for variable in variables(board):
            assert variable.get("datasource") == expected, f"{name}: ${variable['name']}"


def test_dashboard_uids_and_panel_ids_are_unique() -> None:
    boards = committed()
    assert boards, "no dashboard in deploy/grafana/dashboards/"
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert name == f"{board['uid']}.json"
        assert len(board["uid"]) <= 40  # Grafana's limit
        rows = [panel for panel in board["panels"] if panel["type"] == "row"]
        ids = [panel["id"] for panel in [*rows, *panels(board)]]
        assert len(set(ids)) == len(ids), f"{name}: {ids}"
        assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids), f"{name}: {ids}"
        refs = [[target["refId"] for target in panel.get("targets", [])] for panel in panels(board)]
        assert all(len(set(r)) == len(r) and "" not in r for r in refs), f"{name}: {refs}"


def test_every_panel_explains_itself_and_has_a_unit() -> None:
    for name, board in committed().items():
        for panel in panels(board):
            assert panel.get("description", "").strip(), f"{name}: {panel['title']} has no description"
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit in UNITS, f"{name}: {panel['title']} has unit {unit!r}"


def test_the_platform_dashboard_is_provisioned_as_designed() -> None:
    board = load(DASHBOARDS / "goldenkey-platform.json")
    assert board["title"] == "Golden Key Hall — Platform"
    assert "goldenkey" in board["tags"]
    assert board["refresh"] == "30s"
    (service,) = board["templating"]["list"]
    assert service["name"] == "service"
    assert service["multi"]
    assert service["includeAll"]
    assert service["query"] == 'label_values(up{job="goldenkey"}, service)'
    assert asked(board) >= KIT_METRICS | PROMETHEUS_METRICS


def test_the_hall_overview_shows_the_operations_teams_figures() -> None:
    board = load(DASHBOARDS / "goldenkey-hall.json")
    assert board["title"] == "Golden Key Hall — Hall overview"
    assert asked(board) >= {
        "goldenkey_tickets_issued_total",
        "goldenkey_queue_waiting",
        "goldenkey_windows_open",
        "goldenkey_coverage_gaps",
        "goldenkey_wait_seconds_bucket",
        "goldenkey_wait_seconds_count",
        "goldenkey_tickets_completed_total",
        "goldenkey_loans_out",
        "goldenkey_loans_overdue",
        "goldenkey_assistance_open",
        "goldenkey_dlq_messages_total",
        "goldenkey_parking_occupied",
        "goldenkey_parking_capacity",
        "goldenkey_incidents_open",
        "goldenkey_incident_unnotified_oldest_seconds",
        "goldenkey_patrols_missed_total",
        "goldenkey_satisfaction_rate",
        "goldenkey_satisfaction_ratings",
        "goldenkey_ratings_total",
        "goldenkey_complaints_open",
        "goldenkey_complaints_overdue",
        "up",
    }


def test_today_on_the_hall_overview_is_the_halls_business_day() -> None:
    board = load(DASHBOARDS / "goldenkey-hall.json")
    assert board["timezone"] == "Asia/Shanghai"  # the queue's business day (DESIGN §4)
    for panel in panels(board):
        counts_today = "today" in panel["title"].lower()
        assert (panel.get("timeFrom") == "now/d") == counts_today, panel["title"]
        if counts_today:
            assert all("$__range" in target["expr"] for target in panel["targets"]), panel["title"]


def test_the_service_level_reads_a_bucket_the_wait_histogram_has() -> None:
    """Exact rather than interpolated, and spelled as prometheus_client writes the bound."""
    metrics = Metrics("queue")
    QueueMetrics(metrics).wait.labels("A").observe(1.0)
    bounds = {
        f'le="{sample.labels["le"]}"'
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "goldenkey_wait_seconds_bucket"
    }
    assert generator.ON_TIME_BUCKET in bounds, sorted(bounds)


def test_the_parking_dashboard_picks_zones_by_variable_not_by_name() -> None:
    """The lot's zones are data (the shipped lot has A, B, ACC, EV): no query names one."""
    board = load(DASHBOARDS / "goldenkey-parking.json")
    assert board["title"] == "Golden Key Hall — Parking"
    (zone,) = variables(board)
    assert zone["name"] == "zone"
    assert zone["multi"]
    assert zone["includeAll"]
    assert zone["query"] == "label_values(goldenkey_parking_zone_capacity, zone)"
    for where, expr in expressions(board):
        matched = re.findall(r'\bzone\s*(?:=~|!~|!=|=)\s*"([^"]*)"', expr)
        assert all(value == "$zone" for value in matched), f"{where}: {expr}"
    zone_queries = [
        expr for where, expr in expressions(board) if "goldenkey_parking_zone_" in expr and where != "$zone"
    ]
    assert zone_queries
    assert all('zone=~"$zone"' in expr for expr in zone_queries), zone_queries


def test_the_feedback_dashboard_picks_categories_by_variable_not_by_letter() -> None:
    """The categories are the queue's data (A, B, C… as the admin sets them): no query names one."""
    board = load(DASHBOARDS / "goldenkey-feedback.json")
    assert board["title"] == "Golden Key Hall — Feedback"
    (category,) = variables(board)
    assert category["name"] == "category"
    assert category["multi"]
    assert category["includeAll"]
    for where, expr in expressions(board):
        matched = re.findall(r'\bcategory\s*(?:=~|!~|!=|=)\s*"([^"]*)"', expr)
        assert all(value == "$category" for value in matched), f"{where}: {expr}"
    category_queries = [
        expr for where, expr in expressions(board) if "goldenkey_satisfaction_" in expr and where != "$category"
    ]
    assert category_queries
    assert all('category=~"$category"' in expr for expr in category_queries), category_queries


def test_the_feedback_dashboard_knows_the_scores_the_service_counts() -> None:
    """Its legends name each score the ratings counter has; bad reviews are what the domain calls bad."""
    if service_metrics("feedback") is None:
        pytest.skip("goldenkey.feedback.metrics is not written yet")
    from goldenkey.feedback.domain import is_bad_review
    from goldenkey.feedback.metrics import FeedbackMetrics

    metrics = Metrics("feedback")
    FeedbackMetrics(metrics)
    scores = {
        sample.labels["score"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "goldenkey_ratings_total"
    }
    assert scores == {str(score) for score in generator.SCORES}
    assert set(generator.BAD_REVIEW_SCORES) == {score for score in generator.SCORES if is_bad_review(score)}


def test_the_dashboards_thresholds_are_the_alerts() -> None:
    """The red of the occupancy, of the incident waiting for its owner and of the satisfaction rate is
    where the alerts fire."""
    alerts = {rule["alert"]: rule["expr"] for rule in rules() if "alert" in rule}
    assert f">= {generator.NEARLY_FULL}" in alerts["GoldenKeyLotNearlyFull"]
    assert f"> {generator.NOTIFY_PROMISE_S}" in alerts["GoldenKeyIncidentOwnerNotNotified"]
    assert f"< {generator.SATISFACTION_TARGET}" in alerts["GoldenKeySatisfactionLow"]
    assert f">= {generator.SATISFACTION_SAMPLE}" in alerts["GoldenKeySatisfactionLow"]
