"""Golden Key Hall's Grafana dashboards, as code (DESIGN §9).

Each dashboard is one function below, registered with `@provisioned`, that returns a
grafana-foundation-sdk `Dashboard` builder. This script writes every one as `<uid>.json` into
deploy/grafana/dashboards/, which docker-compose mounts where Grafana's file provider
(provisioning/dashboards/goldenkey.yml) reads it:

    .venv/bin/python deploy/grafana/dashboards.py           # (re)write the JSON files
    .venv/bin/python deploy/grafana/dashboards.py --check   # exit 1 naming the stale files

The JSON files are committed; tests/unit/test_dashboards.py fails when they drift from this script.
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as viz
from grafana_foundation_sdk.models import dashboard as model

DIRECTORY = Path(__file__).resolve().parent / "dashboards"
COMMAND = ".venv/bin/python deploy/grafana/dashboards.py"

# The uid provisioning/datasources/prometheus.yml gives the data source.
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="prometheus")
TAGS = ["goldenkey"]
RATE_WINDOW = "5m"
# Citizens arrive, are called and borrow things one every few minutes per category: over 5 minutes
# the hall's own rates jump between 0 and a burst, so they are averaged over 15.
HALL_WINDOW = "15m"
# The business day is Asia/Shanghai's (DESIGN §4, queue): "today" must mean it in any browser.
HALL_TIMEZONE = "Asia/Shanghai"
TODAY = "now/d"  # a panel's relative time: the day so far
# The service level counts waits up to this long as on time. It is a bound of the wait histogram's
# buckets (goldenkey.queue.metrics.WAIT_BUCKETS), so the share is exact, not interpolated.
ON_TIME_WAIT_S = 1200
ON_TIME_BUCKET = f'le="{float(ON_TIME_WAIT_S)}"'  # prometheus_client writes bounds as floats: "1200.0"
# `service` is the scrape target's label (deploy/prometheus/prometheus.yml), so every series has it,
# FastStream's included (whose own `app_name` label carries the same name).
SELECTED_SERVICES = 'service=~"$service"'
SELECTED_CATEGORIES = 'category=~"$category"'
SELECTED_ZONES = 'zone=~"$zone"'
# Guards report a few incidents a day: their times are taken over the hour before each point, where
# 15 minutes would mostly hold none.
INCIDENT_WINDOW = "1h"
# The share of the car park taken at which the GoldenKeyLotNearlyFull alert fires
# (deploy/prometheus/rules/goldenkey.yml).
NEARLY_FULL = 0.95
# An incident's owner is to be paged within 5 minutes of the report, or it is escalated (DESIGN §4,
# parking); GoldenKeyIncidentOwnerNotNotified fires past it.
NOTIFY_PROMISE_S = 300
# The satisfaction levels of a rating (DESIGN §4, feedback), best first; 1 and 2 are a bad review
# (差评), which opens a complaint case.
SCORES = {5: "very satisfied", 4: "satisfied", 3: "basically satisfied", 2: "unsatisfied", 1: "very unsatisfied"}
BAD_REVIEW_SCORES = (1, 2)
BAD_REVIEWS = 'score=~"' + "|".join(str(score) for score in BAD_REVIEW_SCORES) + '"'
# A category's satisfaction rate below this, over at least SATISFACTION_SAMPLE ratings of the last
# 24 hours, is where the GoldenKeySatisfactionLow alert fires.
SATISFACTION_TARGET = 0.9
SATISFACTION_SAMPLE = 20

Build = Callable[[], dashboard.Dashboard]
Panel = TypeVar("Panel", timeseries.Panel, stat.Panel)
DASHBOARDS: list[Build] = []


def provisioned(build: Build) -> Build:
    """Register a dashboard function: the generator writes what it returns as `<uid>.json`."""
    DASHBOARDS.append(build)
    return build


# --- building blocks ---------------------------------------------------------------------------


def goldenkey_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A dashboard with the settings all of ours share."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


def label_variable(name: str, label: str, description: str, values_of: str) -> dashboard.QueryVariable:
    """`$name`: one, several or all of the values the series `values_of` has for the label `name`."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(PROMETHEUS)
        .query(f"label_values({values_of}, {name})")
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def service_variable() -> dashboard.QueryVariable:
    """`$service`: one, several or all of the services Prometheus scrapes."""
    return label_variable("service", "Service", "The services to show", 'up{job="goldenkey"}')


def category_variable(
    values_of: str = "goldenkey_queue_waiting", description: str = "The service categories to show, by ticket letter"
) -> dashboard.QueryVariable:
    """`$category`: one, several or all of the queue's service categories, by ticket letter, as the
    series `values_of` has them."""
    return label_variable("category", "Category", description, values_of)


def zone_variable() -> dashboard.QueryVariable:
    """`$zone`: one, several or all of the car park's zones, as the parking service has them."""
    return label_variable("zone", "Zone", "The car park's zones to show", "goldenkey_parking_zone_capacity")


def selector(metric: str, *matchers: str) -> str:
    """`metric{service=~"$service", …}`: a series of the services picked in `$service`."""
    return metric + "{" + ", ".join([SELECTED_SERVICES, *matchers]) + "}"


def rate(series: str, window: str = RATE_WINDOW) -> str:
    return f"rate({series}[{window}])"


def quantile(q: float, buckets: str, by: str = "service", window: str = RATE_WINDOW) -> str:
    """The q-quantile of a histogram per `by` (labels, comma-separated; "" for one overall), from
    its `_bucket` series."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(buckets, window)}))"


def state(gauge: str, by: str = "") -> str:
    """A state gauge per `by` (labels, comma-separated; "" for one value). Read from MongoDB, every
    instance of the service reports the same value: max, not sum."""
    return f"max by ({by}) ({gauge})" if by else f"max({gauge})"


def share(part: str, whole: str) -> str:
    """`part / whole`, with no value rather than NaN where `whole` is 0 (nothing happened yet)."""
    return f"{part} / ({whole} > 0)"


def query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().datasource(PROMETHEUS).expr(expr).legend_format(legend)


def with_queries(panel: Panel, queries: Sequence[prometheus.Dataquery]) -> Panel:
    for letter, target in zip(string.ascii_uppercase, queries, strict=False):
        panel.with_target(target.ref_id(letter))
    return panel


def graph(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 8, height: int = 8
) -> timeseries.Panel:
    """A time series panel, its legend a table with the last and highest value of each line."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .span(width)
        .height(height)
        .legend(
            common.VizLegendOptions()
            .display_mode(viz.LegendDisplayMode.TABLE)
            .placement(viz.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common.VizTooltipOptions().mode(viz.TooltipDisplayMode.MULTI).sort(viz.SortOrder.DESCENDING))
    )
    return with_queries(panel, queries)


# Thresholds (colours) of `big_number` panels.
NEUTRAL = [model.Threshold(None, "blue")]
NONE_WANTED = [model.Threshold(None, "green"), model.Threshold(1, "red")]
NONE_EXPECTED = [model.Threshold(None, "green"), model.Threshold(1, "orange")]
AT_LEAST_ONE = [model.Threshold(None, "red"), model.Threshold(1, "green")]
UP_OR_DOWN: list[model.ValueMapping] = [
    model.ValueMap(
        {
            "0": model.ValueMappingResult(text="DOWN", color="red", index=0),
            "1": model.ValueMappingResult(text="UP", color="green", index=1),
        }
    )
]
OCCUPANCY = [model.Threshold(None, "green"), model.Threshold(0.85, "orange"), model.Threshold(NEARLY_FULL, "red")]
WAITING_FOR_SOMEONE = [
    model.Threshold(None, "green"),
    model.Threshold(1, "orange"),
    model.Threshold(NOTIFY_PROMISE_S, "red"),
]
SATISFIED = [model.Threshold(None, "red"), model.Threshold(SATISFACTION_TARGET, "green")]
FULL_OR_NOT: list[model.ValueMapping] = [
    model.ValueMap(
        {
            "0": model.ValueMappingResult(text="SPACES LEFT", color="green", index=0),
            "1": model.ValueMappingResult(text="FULL", color="red", index=1),
        }
    )
]


def today(panel: stat.Panel) -> stat.Panel:
    """The panel shows the day so far (in the dashboard's time zone), whatever range is picked."""
    return panel.time_from(TODAY)


def big_number(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    thresholds: list[model.Threshold],
    mappings: list[model.ValueMapping] | None = None,
    width: int = 8,
    height: int = 8,
) -> stat.Panel:
    """A stat panel of the current value of instant queries, coloured by `thresholds`."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(thresholds))
        .mappings(mappings or [])
        .color_mode(viz.BigValueColorMode.BACKGROUND)
        .graph_mode(viz.BigValueGraphMode.NONE)
        .text_mode(viz.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(viz.BigValueJustifyMode.CENTER)
        .orientation(viz.VizOrientation.AUTO)
        .reduce_options(common.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(""))
    )
    return with_queries(panel, [q.instant() for q in queries])


def counted(
    title: str,
    description: str,
    counter: str,
    legend: str,
    *,
    thresholds: list[model.Threshold],
    width: int,
    height: int = 8,
) -> stat.Panel:
    """A big number of how much `counter` went up over the panel's time range, a whole number."""
    increase = query(f"sum(increase({counter}[$__range]))", legend)
    return big_number(
        title, description, "short", increase, thresholds=thresholds, width=width, height=height
    ).decimals(0)


def by_category(gauge: str) -> prometheus.Dataquery:
    """A line or number per category of one of the queue's state gauges (`gauge`: its series)."""
    return query(state(gauge, "category"), "{{category}}")


# --- figures on more than one dashboard ----------------------------------------------------------
# The hall overview repeats figures of the other dashboards, described for the operations team: each
# is written once here, its query, unit and colours the same wherever it is shown.

CONCIERGES_ON_DUTY = state("goldenkey_concierges_on_duty")
ASSISTANCE_OPEN = state("goldenkey_assistance_open", "kind")
LOANS_OUT = state("goldenkey_loans_out", "sku")
LOANS_OVERDUE = state("goldenkey_loans_overdue")
STOCK = state("goldenkey_stock_level", "sku")
STOCK_MINIMUM = state("goldenkey_stock_minimum", "sku")
NEEDS_MATERIALS = 'goldenkey_tickets_completed_total{outcome="needs_materials"}'
OCCUPIED = state("goldenkey_parking_occupied")
CAPACITY = state("goldenkey_parking_capacity")
LOT_FULL = state("goldenkey_parking_full")
INCIDENTS_OPEN = state("goldenkey_incidents_open", "kind")
UNNOTIFIED_OLDEST = state("goldenkey_incident_unnotified_oldest_seconds")
PATROLS_MISSED = "goldenkey_patrols_missed_total"
SATISFACTION_RATE = "goldenkey_satisfaction_rate"
SATISFACTION_RATINGS = "goldenkey_satisfaction_ratings"
BAD_REVIEWS_GIVEN = f"goldenkey_ratings_total{{{BAD_REVIEWS}}}"
COMPLAINTS_OPEN = state("goldenkey_complaints_open")
COMPLAINTS_OVERDUE = state("goldenkey_complaints_overdue")


def satisfaction(rate_series: str, ratings_series: str) -> str:
    """The satisfaction rate of the categories in `rate_series` and `ratings_series` (the gauges'
    series) together: each category's rate weighted by the ratings behind it, as the feedback
    service has no overall figure."""
    rated = state(ratings_series, "category")
    return share(f"sum({state(rate_series, 'category')} * {rated})", f"sum({rated})")


def services_up(title: str, description: str, *matchers: str, width: int) -> stat.Panel:
    """UP or DOWN per service, whether Prometheus reaches it; `matchers` narrow the services."""
    up = query("min by (service) (up{" + ", ".join(['job="goldenkey"', *matchers]) + "})", "{{service}}")
    return big_number(
        title, description, "short", up, thresholds=AT_LEAST_ONE, mappings=UP_OR_DOWN, width=width, height=4
    )


def coverage_gaps(description: str, *, height: int) -> stat.Panel:
    gaps = query(state("goldenkey_coverage_gaps"), "gaps")
    return big_number("Coverage gaps", description, "short", gaps, thresholds=NONE_WANTED, width=4, height=height)


def open_windows_now(title: str, description: str, windows_open: str, *, width: int) -> stat.Panel:
    """`windows_open`: the series of the gauge, of the categories picked or of all."""
    open_now = by_category(windows_open)
    return big_number(title, description, "short", open_now, thresholds=AT_LEAST_ONE, width=width, height=4)


def tickets_waiting(description: str, waiting: str, *more: prometheus.Dataquery, width: int = 8) -> timeseries.Panel:
    """`waiting`: the series of the gauge, of the categories picked or of all; `more`: lines to add."""
    return graph("Tickets waiting", description, "short", by_category(waiting), *more, width=width)


def wait_p90(title: str, description: str, wait_buckets: str, *, width: int = 8) -> timeseries.Panel:
    """`wait_buckets`: the wait histogram's `_bucket` series, of the categories picked or of all."""
    p90 = query(quantile(0.9, wait_buckets, "category", HALL_WINDOW), "{{category}}")
    return graph(title, description, "s", p90, width=width)


def concierges_on_duty(description: str) -> stat.Panel:
    on_duty = query(CONCIERGES_ON_DUTY, "on duty")
    return big_number("Concierges on duty", description, "short", on_duty, thresholds=AT_LEAST_ONE, width=4, height=5)


def loans_out(description: str) -> stat.Panel:
    out = query(f"sum({LOANS_OUT})", "out")
    return big_number("Loans out", description, "short", out, thresholds=NEUTRAL, width=4, height=5)


def loans_overdue(description: str) -> stat.Panel:
    overdue = query(LOANS_OVERDUE, "overdue")
    return big_number("Loans overdue", description, "short", overdue, thresholds=NONE_EXPECTED, width=4, height=5)


def consumables_below_minimum(description: str) -> stat.Panel:
    below = query(f"count({STOCK} < {STOCK_MINIMUM}) or vector(0)", "below minimum")
    return big_number(
        "Consumables below minimum", description, "short", below, thresholds=NONE_WANTED, width=4, height=5
    )


def lot_occupancy(description: str, *, width: int) -> stat.Panel:
    occupancy = query(share(OCCUPIED, CAPACITY), "occupied")
    return big_number(
        "Car park occupancy", description, "percentunit", occupancy, thresholds=OCCUPANCY, width=width, height=5
    )


def open_incidents(description: str, *, width: int) -> stat.Panel:
    open_now = query(f"sum({INCIDENTS_OPEN})", "open")
    return big_number("Open incidents", description, "short", open_now, thresholds=NONE_EXPECTED, width=width, height=5)


def incident_waiting(description: str, *, width: int) -> stat.Panel:
    oldest = query(UNNOTIFIED_OLDEST, "waiting")
    return big_number(
        "Incident waiting for its owner",
        description,
        "s",
        oldest,
        thresholds=WAITING_FOR_SOMEONE,
        width=width,
        height=5,
    )


def satisfaction_now(description: str, rate_series: str, ratings_series: str, *, width: int) -> stat.Panel:
    """`rate_series`, `ratings_series`: the gauges' series, of the categories picked or of all."""
    satisfied = query(satisfaction(rate_series, ratings_series), "satisfied")
    return big_number(
        "Satisfaction, last 24 h", description, "percentunit", satisfied, thresholds=SATISFIED, width=width, height=5
    )


def complaints_open(description: str, *, width: int) -> stat.Panel:
    open_now = query(COMPLAINTS_OPEN, "open")
    return big_number("Open complaint cases", description, "short", open_now, thresholds=NEUTRAL, width=width, height=5)


def complaints_overdue(description: str, *, width: int) -> stat.Panel:
    overdue = query(COMPLAINTS_OVERDUE, "overdue")
    return big_number(
        "Complaint cases overdue", description, "short", overdue, thresholds=NONE_WANTED, width=width, height=5
    )


# --- dashboards ----------------------------------------------------------------------------------


@provisioned
def platform() -> dashboard.Dashboard:
    """Is the plumbing healthy? HTTP RED per service, Kafka events, backlogs, dead letters."""
    requests = selector("goldenkey_http_requests_total")
    server_errors = selector("goldenkey_http_requests_total", 'status=~"5.."')
    consumed = selector("faststream_received_messages_total")
    published = selector("faststream_published_messages_total", 'status="success"')
    all_published = selector("faststream_published_messages_total")
    not_published = selector("faststream_published_messages_total", 'status="error"')
    dead_letters = selector("goldenkey_dlq_messages_total")

    return (
        goldenkey_dashboard(
            "goldenkey-platform",
            "Golden Key Hall — Platform",
            "Health of the four services' plumbing: are they up, how their APIs answer, whether events "
            "flow through Kafka, and what is piling up or being dead-lettered.",
        )
        .with_variable(service_variable())
        .with_row(dashboard.Row("Availability"))
        .with_panel(
            services_up(
                "Service up",
                "Whether Prometheus reaches each service's /metrics endpoint (every 5 s). DOWN means the "
                "process is gone or not answering: its API and its event handling are stopped. With several "
                "instances, one unreachable instance is enough to show the service DOWN.",
                SELECTED_SERVICES,
                width=24,
            )
        )
        .with_row(dashboard.Row("HTTP: requests, errors, duration"))
        .with_panel(
            graph(
                "Requests per second",
                "Requests each service's API answered per second (desks, kiosks, staff apps; health "
                "checks included), averaged over 5 minutes. A sudden drop during opening hours usually "
                "means clients cannot reach the service.",
                "reqps",
                query(f"sum by (service) ({rate(requests)})", "{{service}}"),
            )
        )
        .with_panel(
            graph(
                "Server error ratio (5xx)",
                "Share of requests that failed on the service's side (HTTP status 5xx) over 5 minutes. "
                "Refusals of bad or unauthorised requests (4xx) are not counted. Anything above 0% "
                "deserves a look at that service's logs.",
                "percentunit",
                # `or … * 0`: a service that never failed has no 5xx series at all; show it at 0%.
                query(
                    f"(sum by (service) ({rate(server_errors)}) or sum by (service) ({rate(requests)}) * 0)"
                    f" / sum by (service) ({rate(requests)})",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Response time p50 / p99",
                "How long the APIs take to answer, over 5 minutes: half of the requests are faster than "
                "p50, 99 in 100 faster than p99. The slowest bucket ends at 5 s, so a line at 5 s means "
                "5 s or more.",
                "s",
                query(quantile(0.5, selector("goldenkey_http_request_seconds_bucket")), "{{service}} p50"),
                query(quantile(0.99, selector("goldenkey_http_request_seconds_bucket")), "{{service}} p99"),
            )
        )
        .with_row(dashboard.Row("Kafka events"))
        .with_panel(
            graph(
                "Events consumed per second",
                "Events each service reads from Kafka, per topic, averaged over 5 minutes. A service at "
                "zero while others keep publishing is stuck or disconnected: compare with its consumer "
                "lag below.",
                "eps",
                query(f"sum by (service, handler) ({rate(consumed)})", "{{service}} ← {{handler}}"),
            )
        )
        .with_panel(
            graph(
                "Event handling time p99",
                "99 in 100 events are handled faster than this, per service, over 5 minutes: the "
                "handler's work in MongoDB, retries included. The slowest bucket ends at 10 s.",
                "s",
                query(
                    quantile(0.99, selector("faststream_received_processed_messages_duration_seconds_bucket")),
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Events published per second",
                "Events each service sends to Kafka, per topic, averaged over 5 minutes: what its outbox "
                "relay publishes, and dead letters. A 'not sent' line means Kafka refused the events; "
                "they stay in the outbox and are sent again.",
                "eps",
                query(f"sum by (service, destination) ({rate(published)})", "{{service}} → {{destination}}"),
                # `or … * 0`: FastStream has no error series until Kafka first refuses an event; show 0.
                query(
                    f"sum by (service) ({rate(not_published)}) or sum by (service) ({rate(all_published)}) * 0",
                    "{{service}} not sent",
                ),
            )
        )
        .with_row(dashboard.Row("Backlogs"))
        .with_panel(
            graph(
                "Consumer lag",
                "Events waiting in Kafka that a service has not read yet, per topic (added up over its "
                "instances, which share the topic's partitions). Short bumps are normal; a line that "
                "keeps rising means the service cannot keep up or is stuck. Alert above 1000 for 10 minutes.",
                "short",
                query(
                    f"sum by (service, topic) ({selector('goldenkey_consumer_lag')})",
                    "{{service}} ← {{topic}}",
                ),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Outbox: events not yet published",
                "Events a service has saved with a change but not yet sent to Kafka. Near 0 normally. A "
                "growing number means Kafka is unreachable or the relay stopped: the service still takes "
                "commands, but the other services do not hear of them. Alert above 100 for 5 minutes.",
                "short",
                query(state(selector("goldenkey_outbox_pending"), "service"), "{{service}}"),
                width=12,
            )
        )
        .with_row(dashboard.Row("Dead letters"))
        .with_panel(
            graph(
                "Dead-lettered messages, last hour",
                "Messages each service gave up on in the hour before each point (bad JSON, breaks the "
                "event schema, unknown type, or retries exhausted) and moved to its dlq.<service> topic. "
                "Each is an event the hall did not act on: inspect the topic, whose headers name the "
                "original topic, offset and error.",
                "short",
                query(f"sum by (service) (increase({dead_letters}[1h]))", "{{service}}"),
                width=16,
            )
        )
        .with_panel(
            counted(
                "Dead letters in the time range",
                "All messages the selected services moved to their dead-letter topics during the time "
                "range picked at the top of the dashboard. Should be 0.",
                dead_letters,
                "dead letters",
                thresholds=NONE_WANTED,
                width=8,
            )
        )
    )


@provisioned
def hall_overview() -> dashboard.Dashboard:
    """The operations team's one screen: today's figures and what needs someone now."""
    waits = "goldenkey_wait_seconds"
    waiting = f"sum({state('goldenkey_queue_waiting', 'category')})"

    return (
        goldenkey_dashboard(
            "goldenkey-hall",
            "Golden Key Hall — Hall overview",
            "The hall on one screen for the operations team: today's tickets and service level, the "
            "queues and windows now, the Golden Key concierges' loans and assistance, the car park, "
            "citizens' satisfaction and complaint cases, and whether the services are up. Figures "
            "marked 'today' count the business day so far (Asia/Shanghai).",
        )
        .timezone(HALL_TIMEZONE)
        .time(TODAY, "now")
        .with_row(dashboard.Row("Queue"))
        .with_panel(
            today(
                counted(
                    "Tickets issued today",
                    "Tickets issued since midnight, at kiosks, in the app and by staff. Counted from the "
                    "queue's counters, which can miss the few counted just before a restart; GET "
                    "/stats/today on the queue service has the exact figure.",
                    "goldenkey_tickets_issued_total",
                    "issued",
                    thresholds=NEUTRAL,
                    width=5,
                    height=5,
                )
            )
        )
        .with_panel(
            big_number(
                "Waiting now",
                "Tickets issued today and not yet called, all categories together. The Queue dashboard "
                "splits them by category.",
                "short",
                query(waiting, "waiting"),
                thresholds=NEUTRAL,
                width=5,
                height=5,
            )
        )
        .with_panel(
            today(
                big_number(
                    f"Called within {ON_TIME_WAIT_S // 60} min today",
                    f"Service level: the share of today's citizens who were called within "
                    f"{ON_TIME_WAIT_S // 60} minutes of taking their ticket. Read from the wait histogram, "
                    f"whose bucket ending at {ON_TIME_WAIT_S // 60} minutes makes it exact rather than "
                    "estimated. The hall-wide 20 minutes is the middle of the categories' own targets (15, "
                    "20 or 30 minutes): the metrics do not carry each category's target, and writing them "
                    "here would go stale when an admin changes one. GET /stats/today on the queue service "
                    "gives the service level against each category's own target. Green from 90%, orange "
                    "from 80%.",
                    "percentunit",
                    query(
                        share(
                            f"sum(increase({waits}_bucket{{{ON_TIME_BUCKET}}}[$__range]))",
                            f"sum(increase({waits}_count[$__range]))",
                        ),
                        "on time",
                    ),
                    thresholds=[
                        model.Threshold(None, "red"),
                        model.Threshold(0.8, "orange"),
                        model.Threshold(0.9, "green"),
                    ],
                    width=5,
                    height=5,
                )
            )
        )
        .with_panel(
            today(
                counted(
                    "One-trip promise broken today",
                    "Citizens sent home today to fetch missing materials (service completed with outcome "
                    "needs_materials): each will have to come back, against the hall's 'at most one trip' "
                    "promise. GET /stats/today on the queue service lists them per category and window.",
                    NEEDS_MATERIALS,
                    "breaches",
                    thresholds=NONE_EXPECTED,
                    width=5,
                    height=5,
                )
            )
        )
        .with_panel(
            coverage_gaps(
                "Service categories with no open window now, during business hours. Above 0, citizens in "
                "those queues cannot be called: open or resume a window serving them (GET /windows on the "
                "queue service).",
                height=5,
            )
        )
        .with_panel(
            open_windows_now(
                "Open windows by category",
                "Windows open now that serve each category (ticket letter). A window serving several "
                "categories counts in each, so these do not add up to the windows staffed. Red: no open "
                "window for that category.",
                "goldenkey_windows_open",
                width=24,
            )
        )
        .with_row(dashboard.Row("Golden Key concierges"))
        .with_panel(
            concierges_on_duty(
                "Golden Key concierges on duty now, who take assistance requests and lend items. Red: "
                "nobody, so new assistance requests wait in a queue."
            )
        )
        .with_panel(
            big_number(
                "Open assistance requests",
                "Requests for help (escort, wheelchair, proxy service, mother-and-baby room, vehicle "
                "help…) not yet completed or cancelled, whether queued, assigned or accepted.",
                "short",
                query(f"sum({ASSISTANCE_OPEN})", "open"),
                thresholds=NEUTRAL,
                width=4,
                height=5,
            )
        )
        .with_panel(
            today(
                counted(
                    "Assistance escalations today",
                    "Requests that waited 3 minutes without a concierge accepting them ('come at once when "
                    "called') and were handed to another, since midnight.",
                    "goldenkey_assistance_escalations_total",
                    "escalations",
                    thresholds=NONE_EXPECTED,
                    width=4,
                    height=5,
                )
            )
        )
        .with_panel(loans_out("Lent items (reading glasses, umbrellas, wheelchairs, power banks…) not yet returned."))
        .with_panel(
            loans_overdue(
                "Lent items still out past their due time (by default the end of the business day). GET "
                "/loans?status=out on the concierge service lists them with the ticket or borrower."
            )
        )
        .with_panel(
            consumables_below_minimum(
                "Consumables (band-aids, alcohol swabs, pens…) whose stock is below the level set for "
                "restocking. The Concierge dashboard shows which."
            )
        )
        .with_row(dashboard.Row("Car park"))
        .with_panel(
            lot_occupancy(
                f"Share of the car park's spaces taken now. Red from {NEARLY_FULL:.0%}: citizens coming "
                "by car may find no space. The Parking dashboard shows each zone.",
                width=6,
            )
        )
        .with_panel(
            open_incidents(
                "Problems guards reported on parked cars (flat tyre, lights left on, window open, blocking…) "
                "not yet resolved. The owner is paged through their ticket.",
                width=6,
            )
        )
        .with_panel(
            incident_waiting(
                "How long the oldest open incident has waited with its owner not paged and nobody taking "
                "it in hand; 0 when there is none. Red past 5 minutes: a guard or concierge must take it "
                "over.",
                width=6,
            )
        )
        .with_panel(
            today(
                counted(
                    "Patrol rounds missed today",
                    "The guards' scheduled rounds of the car park that had not started 5 minutes after "
                    "their time, since midnight.",
                    PATROLS_MISSED,
                    "missed",
                    thresholds=NONE_EXPECTED,
                    width=6,
                    height=5,
                )
            )
        )
        .with_row(dashboard.Row("Feedback"))
        .with_panel(
            satisfaction_now(
                "Share of the last 24 hours' ratings, all service categories together, that were satisfied "
                "or very satisfied (4 or 5 of 5). Ratings excluded by an upheld appeal do not count. Red "
                f"under {SATISFACTION_TARGET:.0%}; over few ratings (early in the day) one bad review "
                "weighs a lot. The Feedback dashboard splits it by category.",
                SATISFACTION_RATE,
                SATISFACTION_RATINGS,
                width=6,
            )
        )
        .with_panel(
            today(
                counted(
                    "Bad reviews today",
                    "Ratings of 1 or 2 of 5 (差评: unsatisfied, very unsatisfied) given since midnight. "
                    "Each opens a complaint case owned by the unit that served the citizen.",
                    BAD_REVIEWS_GIVEN,
                    "bad reviews",
                    thresholds=NONE_EXPECTED,
                    width=6,
                    height=5,
                )
            )
        )
        .with_panel(
            complaints_open(
                "Complaint cases not yet closed, from bad reviews and from the message book, whatever "
                "stage they are at: verification, rectification or the follow-up call.",
                width=6,
            )
        )
        .with_panel(
            complaints_overdue(
                "Open complaint cases past the deadline of the stage they wait for (by default: verify "
                "within 1 working day, rectify within 2 or 15, the follow-up call within 2). Red: GET "
                "/complaints on the feedback service lists the cases; the unit owning each must act.",
                width=6,
            )
        )
        .with_row(dashboard.Row("Services"))
        .with_panel(
            services_up(
                "Services up",
                "Whether Prometheus reaches each service's /metrics endpoint. DOWN: that part of the hall "
                "(queue, concierge, parking or feedback) is not working; the Platform dashboard shows more.",
                width=16,
            )
        )
        .with_panel(
            today(
                counted(
                    "Dead-lettered messages today",
                    "Events the services gave up on since midnight and moved to their dead-letter topics: "
                    "each is something the hall did not act on. Should be 0; the Platform dashboard shows "
                    "which service.",
                    "goldenkey_dlq_messages_total",
                    "dead letters",
                    thresholds=NONE_WANTED,
                    width=8,
                    height=4,
                )
            )
        )
        .with_row(dashboard.Row("Today"))
        .with_panel(
            tickets_waiting(
                "Tickets waiting to be called over the day, per category (ticket letter).",
                "goldenkey_queue_waiting",
                query(waiting, "all"),
                width=12,
            )
        )
        .with_panel(
            wait_p90(
                "Wait p90 by category",
                "9 in 10 citizens called in the 15 minutes before each point waited less than this, per "
                "category. The categories' targets are 15 to 30 minutes; the GoldenKeyLongWaits alert "
                "fires when a category stays above 30 minutes for 15 minutes. Estimated from histogram "
                "buckets (1, 5, 10, 15, 20, 30, 45, 60, 90, 120 minutes).",
                f"{waits}_bucket",
                width=12,
            )
        )
    )


@provisioned
def queue() -> dashboard.Dashboard:
    """The queue in detail: waiting, windows, waits, throughput and outcomes per category."""
    waiting = f"goldenkey_queue_waiting{{{SELECTED_CATEGORIES}}}"
    windows_open = f"goldenkey_windows_open{{{SELECTED_CATEGORIES}}}"
    issued = f"goldenkey_tickets_issued_total{{{SELECTED_CATEGORIES}}}"
    priority = f'goldenkey_tickets_issued_total{{{SELECTED_CATEGORIES}, priority!="none"}}'
    wait_buckets = f"goldenkey_wait_seconds_bucket{{{SELECTED_CATEGORIES}}}"
    on_time = f"goldenkey_wait_seconds_bucket{{{SELECTED_CATEGORIES}, {ON_TIME_BUCKET}}}"
    waits = f"goldenkey_wait_seconds_count{{{SELECTED_CATEGORIES}}}"
    service_buckets = f"goldenkey_service_seconds_bucket{{{SELECTED_CATEGORIES}}}"
    completed = "goldenkey_tickets_completed_total"

    return (
        goldenkey_dashboard(
            "goldenkey-queue",
            "Golden Key Hall — Queue",
            "The queue service per category (ticket letter): who is waiting now and where windows are "
            "open, how long citizens wait and how long they spend at the window, how many tickets are "
            "issued and how their service ends.",
        )
        .with_variable(category_variable())
        .with_row(dashboard.Row("Now"))
        .with_panel(
            big_number(
                "Waiting now",
                "Tickets issued today and not yet called, per category, as the queue's database has them "
                "now. Priority tickets, and normal ones past their category's target wait, are called first.",
                "short",
                by_category(waiting),
                thresholds=NEUTRAL,
                width=24,
                height=4,
            )
        )
        .with_panel(
            open_windows_now(
                "Open windows",
                "Windows open now that serve each category. A window serving several categories counts in "
                "each. Red: no window for that category, so its citizens cannot be called.",
                windows_open,
                width=20,
            )
        )
        .with_panel(
            coverage_gaps(
                "Categories with no open window during business hours, all categories (not filtered). "
                "The GoldenKeyCoverageGap alert fires when one lasts a minute. GET /windows shows which "
                "windows are paused or closed.",
                height=4,
            )
        )
        .with_row(dashboard.Row("Waiting"))
        .with_panel(
            tickets_waiting(
                "Tickets waiting to be called, per category. A line that keeps rising while the windows "
                "stay the same means that category needs another window.",
                waiting,
            )
        )
        .with_panel(
            graph(
                "Open windows",
                "Windows open and serving each category (a window serving several counts in each). Dips "
                "are pauses for lunch or a break; 0 during business hours is a coverage gap.",
                "short",
                by_category(windows_open),
            )
        )
        .with_panel(
            wait_p90(
                "Wait p90",
                "9 in 10 citizens called in the 15 minutes before each point had waited less than this "
                "since taking their ticket, per category. Targets are 15 to 30 minutes depending on the "
                "category (GET /categories); the GoldenKeyLongWaits alert fires above 30 minutes for 15 "
                "minutes. Estimated from histogram buckets (1, 5, 10, 15, 20, 30, 45, 60, 90, 120 "
                "minutes): a line at 2 hours means 2 hours or more.",
                wait_buckets,
            )
        )
        .with_panel(
            graph(
                f"Called within {ON_TIME_WAIT_S // 60} min",
                f"Share of the citizens called in the 15 minutes before each point who had waited "
                f"{ON_TIME_WAIT_S // 60} minutes or less, per category: the service level, against one "
                "hall-wide threshold (see the Hall overview's service level). Exact, since "
                f"{ON_TIME_WAIT_S // 60} minutes is a bucket bound of the wait histogram. No line: nobody "
                "of that category was called.",
                "percentunit",
                query(
                    share(
                        f"sum by (category) ({rate(on_time, HALL_WINDOW)})",
                        f"sum by (category) ({rate(waits, HALL_WINDOW)})",
                    ),
                    "{{category}}",
                ),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Time at the window p50",
                "Half of the services that ended in the 15 minutes before each point took less than "
                "this at the window, per category. Compare with the category's expected service minutes "
                "(GET /categories). Estimated from buckets (1, 3, 5, 10, 15, 20, 30, 45, 60 minutes).",
                "s",
                query(quantile(0.5, service_buckets, "category", HALL_WINDOW), "{{category}}"),
                width=12,
            )
        )
        .with_row(dashboard.Row("Tickets"))
        .with_panel(
            graph(
                "Tickets issued per hour",
                "Tickets issued per category, per hour at the pace of the 15 minutes before each point.",
                "short",
                query(f"3600 * sum by (category) ({rate(issued, HALL_WINDOW)})", "{{category}}"),
            )
        )
        .with_panel(
            graph(
                "Tickets issued per hour by channel",
                "Tickets issued at kiosks, in the app and by staff (selected categories), per hour at the "
                "pace of the 15 minutes before each point.",
                "short",
                query(f"3600 * sum by (channel) ({rate(issued, HALL_WINDOW)})", "{{channel}}"),
            )
        )
        .with_panel(
            graph(
                "Priority tickets per hour",
                "Tickets issued with a priority (elderly, disabled, pregnant, with infant, appointment), "
                "which are called before the others, per hour at the pace of the 15 minutes before each "
                "point.",
                "short",
                query(f"3600 * sum by (priority) ({rate(priority, HALL_WINDOW)})", "{{priority}}"),
            )
        )
        .with_row(dashboard.Row("Outcomes (all categories)"))
        .with_panel(
            graph(
                "Services ended per hour by outcome",
                "Tickets whose service ended, per hour at the pace of the 15 minutes before each point, by "
                "outcome: done, needs_materials (the citizen must come back with missing materials) or "
                "referred. The metric has no category, so this ignores the category filter.",
                "short",
                query(f"3600 * sum by (outcome) ({rate(completed, HALL_WINDOW)})", "{{outcome}}"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "One-trip promise broken",
                "Share of the services ended in the hour before each point whose outcome was "
                "needs_materials: the citizen was sent home for missing materials and must come again. "
                "The GoldenKeyOneTripBreaches alert fires above 5% with at least 5 such citizens. GET "
                "/stats/today shows them per category and window, a lead on which materials lists or "
                "kiosk instructions mislead.",
                "percentunit",
                query(
                    share(f"sum(increase({NEEDS_MATERIALS}[1h]))", f"sum(increase({completed}[1h]))"),
                    "needs_materials",
                ),
                width=12,
            )
        )
    )


@provisioned
def concierge() -> dashboard.Dashboard:
    """The Golden Key concierges: who is on duty, assistance requests, loans and consumables."""
    accept_buckets = "goldenkey_assistance_accept_seconds_bucket"

    return (
        goldenkey_dashboard(
            "goldenkey-concierge",
            "Golden Key Hall — Concierge",
            "The Golden Key concierges: who is on duty, how fast assistance requests are accepted, what "
            "is lent and overdue, and which consumables run low.",
        )
        .with_row(dashboard.Row("Now"))
        .with_panel(
            concierges_on_duty(
                "Golden Key concierges on duty now. Red: nobody, so assistance requests wait in a queue "
                "until someone goes on duty (POST /concierges/{id}/duty)."
            )
        )
        .with_panel(
            big_number(
                "Open assistance requests",
                "Requests not yet completed or cancelled (queued, assigned or accepted), per kind. GET "
                "/assistance?status=queued lists those nobody has yet.",
                "short",
                query(ASSISTANCE_OPEN, "{{kind}}"),
                thresholds=NEUTRAL,
                width=8,
                height=5,
            )
        )
        .with_panel(loans_out("Lent units not yet returned, all items together."))
        .with_panel(
            loans_overdue(
                "Loans out past their due time (by default the end of the business day). GET "
                "/loans?status=out lists them with the ticket or the borrower to remind."
            )
        )
        .with_panel(
            consumables_below_minimum(
                "Consumables whose stock is below their minimum; the Consumables row shows which. Restock "
                "with POST /inventory/{sku}/restock."
            )
        )
        .with_row(dashboard.Row("Assistance"))
        .with_panel(
            graph(
                "Open requests and concierges on duty",
                "Open assistance requests (all kinds) against the concierges on duty. Requests piling up "
                "while the concierges stay the same means more are needed on the floor.",
                "short",
                query(f"sum({ASSISTANCE_OPEN})", "open requests"),
                query(CONCIERGES_ON_DUTY, "on duty"),
            )
        )
        .with_panel(
            graph(
                "Time to accept p50 / p90",
                "From a request to a concierge accepting it, over the requests accepted in the 15 minutes "
                "before each point: half are faster than p50, 9 in 10 faster than p90. The promise is 3 "
                "minutes ('come at once when called'); a request not accepted by then is escalated. "
                "Estimated from buckets (10 s, 30 s, 1, 2, 3, 5, 10, 20 minutes).",
                "s",
                query(quantile(0.5, accept_buckets, "", HALL_WINDOW), "p50"),
                query(quantile(0.9, accept_buckets, "", HALL_WINDOW), "p90"),
            )
        )
        .with_panel(
            graph(
                "Escalations per hour",
                "Requests not accepted within 3 minutes and handed to another concierge, in the hour "
                "before each point, per kind. The GoldenKeyAssistanceEscalations alert fires at 3 in half "
                "an hour.",
                "short",
                query("sum by (kind) (increase(goldenkey_assistance_escalations_total[1h]))", "{{kind}}"),
            )
        )
        .with_row(dashboard.Row("Lending"))
        .with_panel(
            graph(
                "Loans out by item",
                "Units lent and not back, per item (sku). An item at its number of units has none left "
                "to lend (POST /loans answers 409).",
                "short",
                query(LOANS_OUT, "{{sku}}"),
            )
        )
        .with_panel(
            graph(
                "Loans overdue",
                "Loans out past their due time. Reminders go out before the due time and when the "
                "borrower's visit ends; the GoldenKeyLoansOverdue alert fires after 30 minutes.",
                "short",
                query(LOANS_OVERDUE, "overdue"),
            )
        )
        .with_panel(
            graph(
                "Loans per hour by item",
                "Units lent in the hour before each point, per item.",
                "short",
                query("sum by (sku) (increase(goldenkey_loans_total[1h]))", "{{sku}}"),
            )
        )
        .with_row(dashboard.Row("Consumables"))
        .with_panel(
            big_number(
                "Stock above minimum",
                "Pieces left above each consumable's minimum (stock minus minimum). Below 0 (red): restock "
                "(POST /inventory/{sku}/restock); the GoldenKeyStockBelowMinimum alert fires after 10 "
                "minutes. GET /inventory has the stock and minimum themselves.",
                "short",
                query(f"{STOCK} - {STOCK_MINIMUM}", "{{sku}}"),
                thresholds=[model.Threshold(None, "red"), model.Threshold(0, "green")],
            )
        )
        .with_panel(
            graph(
                "Stock level",
                "Pieces left of each consumable. Steps up are restocks.",
                "short",
                query(STOCK, "{{sku}}"),
            )
        )
        .with_panel(
            graph(
                "Consumables handed out per hour",
                "Pieces handed out in the hour before each point, per consumable.",
                "short",
                query("sum by (sku) (increase(goldenkey_consumables_dispensed_total[1h]))", "{{sku}}"),
            )
        )
    )


@provisioned
def parking() -> dashboard.Dashboard:
    """The car park: occupancy per zone, cars coming and going, incidents on parked cars, patrols."""
    zone_occupied = f"goldenkey_parking_zone_occupied{{{SELECTED_ZONES}}}"
    zone_capacity = f"goldenkey_parking_zone_capacity{{{SELECTED_ZONES}}}"
    arrivals = "goldenkey_vehicle_arrivals_total"
    departures = "goldenkey_vehicle_departures_total"
    unmatched = 'goldenkey_vehicle_departures_total{matched="false"}'
    notify_buckets = "goldenkey_incident_notify_seconds_bucket"
    resolve_buckets = "goldenkey_incident_resolve_seconds_bucket"
    buckets = "Estimated from buckets (30 s, 1, 2, 3, 5, 10, 15, 30 minutes, 1 and 2 hours)"

    return (
        goldenkey_dashboard(
            "goldenkey-parking",
            "Golden Key Hall — Parking",
            "The car park: how full it is, overall and per zone, the cars coming and going, the "
            "problems guards report on parked cars and how fast their owners are reached, and the "
            "guards' patrol rounds.",
        )
        .with_variable(zone_variable())
        .with_row(dashboard.Row("Now"))
        .with_panel(
            lot_occupancy(
                "Share of the car park's spaces taken now, all zones. Orange from 85%; red from "
                f"{NEARLY_FULL:.0%}, where the GoldenKeyLotNearlyFull alert fires when it lasts 5 minutes.",
                width=4,
            )
        )
        .with_panel(
            big_number(
                "Free spaces",
                "Spaces left in the whole car park (capacity minus cars in it). Red: none, the lot is "
                "full. GET /occupancy on the parking service has the figures per zone.",
                "short",
                query(f"{CAPACITY} - {OCCUPIED}", "free"),
                thresholds=AT_LEAST_ONE,
                width=4,
                height=5,
            )
        )
        .with_panel(
            big_number(
                "Lot full",
                "FULL while the parking service announces the lot full (lot.full), until a car leaves "
                "and it announces lot.available.",
                "short",
                query(LOT_FULL, "lot"),
                thresholds=NONE_WANTED,
                mappings=FULL_OR_NOT,
                width=4,
                height=5,
            )
        )
        .with_panel(
            open_incidents(
                "Problems reported on parked cars (flat tyre, lights on, window open, blocking, damage, "
                "other) not yet resolved, all kinds together. The Incidents row splits them by kind.",
                width=4,
            )
        )
        .with_panel(
            incident_waiting(
                "Age of the oldest open incident nobody has taken in hand: its owner not paged and "
                "nobody acknowledged it; 0 when there is none. Orange: one is waiting; red past 5 "
                "minutes, when it is escalated and the GoldenKeyIncidentOwnerNotNotified alert fires.",
                width=4,
            )
        )
        .with_panel(
            big_number(
                "Rounds missed today",
                "Today's scheduled patrol rounds that had not started 5 minutes after their time "
                "(patrol.missed). The Patrols row shows every round by state.",
                "short",
                query(state('goldenkey_patrol_rounds{state="missed"}'), "missed"),
                thresholds=NONE_EXPECTED,
                width=4,
                height=5,
            )
        )
        .with_row(dashboard.Row("Occupancy"))
        .with_panel(
            big_number(
                "Free spaces by zone",
                "Spaces left now in each zone picked at the top (capacity minus cars in it). Red: that "
                "zone is full, though others may have room.",
                "short",
                query(
                    f"{state(zone_capacity, 'zone')} - {state(zone_occupied, 'zone')}",
                    "{{zone}}",
                ),
                thresholds=AT_LEAST_ONE,
                width=24,
                height=4,
            )
        )
        .with_panel(
            graph(
                "Cars in the lot",
                "Cars in the whole car park against its spaces. Where the lines meet the lot is full "
                "and lot.full is announced.",
                "short",
                query(OCCUPIED, "cars"),
                query(CAPACITY, "spaces"),
            )
        )
        .with_panel(
            graph(
                "Occupancy by zone",
                "Share of each zone's spaces taken (the zones picked at the top). A zone full while others "
                "have room: guide drivers to those.",
                "percentunit",
                query(share(state(zone_occupied, "zone"), state(zone_capacity, "zone")), "{{zone}}"),
            )
        )
        .with_panel(
            graph(
                "Lot full",
                "1 while the lot is announced full (lot.full), 0 once a space is free again (lot.available).",
                "short",
                query(LOT_FULL, "full"),
            )
        )
        .with_row(dashboard.Row("Cars coming and going"))
        .with_panel(
            graph(
                "Arrivals and departures per hour",
                "Cars entering and leaving, per hour at the pace of the 15 minutes before each point, by "
                "source: the entrance camera or a guard typing the plate by hand.",
                "short",
                query(f"3600 * sum by (source) ({rate(arrivals, HALL_WINDOW)})", "arrivals ({{source}})"),
                query(f"3600 * sum by (source) ({rate(departures, HALL_WINDOW)})", "departures ({{source}})"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Departures with no arrival",
                "Cars that left in the hour before each point with no arrival recorded for them, by "
                "source: recorded, not refused. Many from the camera mean it misreads plates at the "
                "entrance; the occupancy undercounts by as many.",
                "short",
                query(f"sum by (source) (increase({unmatched}[1h]))", "{{source}}"),
                width=12,
            )
        )
        .with_row(dashboard.Row("Incidents"))
        .with_panel(
            graph(
                "Open incidents by kind",
                "Incidents on parked cars not yet resolved, per kind (reported, owner notified or acknowledged).",
                "short",
                query(INCIDENTS_OPEN, "{{kind}}"),
            )
        )
        .with_panel(
            graph(
                "Incidents reported per hour",
                "Problems guards reported in the hour before each point, per kind. A flat tyre also "
                "raises a vehicle_help request for the Golden Key concierges.",
                "short",
                query("sum by (kind) (increase(goldenkey_incidents_reported_total[1h]))", "{{kind}}"),
            )
        )
        .with_panel(
            graph(
                "Incident waiting for its owner",
                "Age of the oldest open incident whose owner has not been paged and that nobody "
                "acknowledged; 0 when there is none. A line climbing past 5 minutes is an incident "
                "nobody has in hand: usually its plate matches no ticket of the day, so the queue could "
                "not page the owner. The GoldenKeyIncidentOwnerNotNotified alert fires then.",
                "s",
                query(UNNOTIFIED_OLDEST, "oldest"),
            )
        )
        .with_panel(
            graph(
                "Time to notify the owner p50 / p90",
                "From a guard's report to the owner's page, over the owners paged in the hour before "
                "each point: half are faster than p50, 9 in 10 faster than p90. The promise is 5 "
                f"minutes; an owner not paged by then is escalated. {buckets}.",
                "s",
                query(quantile(0.5, notify_buckets, "", INCIDENT_WINDOW), "p50"),
                query(quantile(0.9, notify_buckets, "", INCIDENT_WINDOW), "p90"),
            )
        )
        .with_panel(
            graph(
                "Time to resolve p50 / p90",
                "From a guard's report to the incident's resolution, over the incidents resolved in the "
                f"hour before each point: half are faster than p50, 9 in 10 faster than p90. {buckets}: "
                "a line at 2 hours means 2 hours or more.",
                "s",
                query(quantile(0.5, resolve_buckets, "", INCIDENT_WINDOW), "p50"),
                query(quantile(0.9, resolve_buckets, "", INCIDENT_WINDOW), "p90"),
            )
        )
        .with_panel(
            graph(
                "Escalations per hour",
                "Incidents whose owner was not notified within 5 minutes (incident.escalated), in the "
                "hour before each point, per kind.",
                "short",
                query("sum by (kind) (increase(goldenkey_incidents_escalated_total[1h]))", "{{kind}}"),
            )
        )
        .with_row(dashboard.Row("Patrols"))
        .with_panel(
            big_number(
                "Rounds today by state",
                "Today's scheduled patrol rounds: planned (not yet due), in progress, completed, "
                "incomplete (finished with checkpoints not scanned) and missed (not started 5 minutes "
                "after their time).",
                "short",
                query(state("goldenkey_patrol_rounds", "state"), "{{state}}"),
                thresholds=NEUTRAL,
                width=24,
                height=4,
            )
        )
        .with_panel(
            graph(
                "Rounds by state",
                "Today's scheduled rounds by state over time: rounds move from planned to in progress "
                "to completed or incomplete, or to missed.",
                "short",
                query(state("goldenkey_patrol_rounds", "state"), "{{state}}"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Rounds finished and missed per hour",
                "Rounds finished with every checkpoint scanned, finished with some missing, and missed, "
                "in the hour before each point. The GoldenKeyPatrolMissed alert fires on a missed round.",
                "short",
                query('sum(increase(goldenkey_patrols_completed_total{complete="true"}[1h]))', "complete"),
                query('sum(increase(goldenkey_patrols_completed_total{complete="false"}[1h]))', "incomplete"),
                query(f"sum(increase({PATROLS_MISSED}[1h]))", "missed"),
                width=12,
            )
        )
    )


@provisioned
def feedback() -> dashboard.Dashboard:
    """Citizens' feedback: ratings and satisfaction per category, complaint cases, the message book."""
    rate_of = f"{SATISFACTION_RATE}{{{SELECTED_CATEGORIES}}}"
    rated = f"{SATISFACTION_RATINGS}{{{SELECTED_CATEGORIES}}}"
    ratings = "goldenkey_ratings_total"
    invitations = "goldenkey_invitations_total"
    messages = "goldenkey_messages_total"
    opened = "goldenkey_complaints_opened_total"
    stages_overdue = "goldenkey_complaint_stages_overdue_total"
    levels = ", ".join(f"{score} {meaning}" for score, meaning in SCORES.items())
    unfiltered = "The counter has no category, so this ignores the category filter."
    rate_graph = graph(
        "Satisfaction rate by category",
        "Share of each category's ratings of the 24 hours before each point that were satisfied or very "
        f"satisfied (4 or 5), against the {SATISFACTION_TARGET:.0%} target (dashed). The "
        f"GoldenKeySatisfactionLow alert fires when a category stays under it over at least "
        f"{SATISFACTION_SAMPLE} ratings for 30 minutes. No line: nothing of that category was rated.",
        "percentunit",
        query(state(rate_of, "category"), "{{category}}"),
        width=12,
    )

    return (
        goldenkey_dashboard(
            "goldenkey-feedback",
            "Golden Key Hall — Feedback",
            "What citizens say: their ratings and the satisfaction rate per service category, the "
            "services offered for rating and how many are rated, the complaint cases opened from bad "
            "reviews and the message book and whether their stages keep their deadlines, and the message "
            "book's praise, suggestions and complaints.",
        )
        .with_variable(
            category_variable(
                SATISFACTION_RATINGS, "The service categories to show, by ticket letter (those with ratings)"
            )
        )
        .with_row(dashboard.Row("Now"))
        .with_panel(
            satisfaction_now(
                "Share of the last 24 hours' ratings of the categories picked at the top that were "
                "satisfied or very satisfied (4 or 5 of 5), each category weighed by its ratings. "
                f"Ratings excluded by an upheld appeal do not count. Red under {SATISFACTION_TARGET:.0%}.",
                rate_of,
                rated,
                width=4,
            )
        )
        .with_panel(
            big_number(
                "Ratings, last 24 h",
                "Ratings of the last 24 hours behind the satisfaction rate (categories picked, appeals "
                f"upheld left out). Under {SATISFACTION_SAMPLE} in a category, its rate is not alerted on.",
                "short",
                query(f"sum({state(rated, 'category')})", "ratings"),
                thresholds=NEUTRAL,
                width=4,
                height=5,
            )
        )
        .with_panel(
            counted(
                "Bad reviews in the time range",
                "Ratings of 1 or 2 of 5 (差评) given during the time range picked at the top, all "
                f"categories. Each opens a complaint case. {unfiltered}",
                BAD_REVIEWS_GIVEN,
                "bad reviews",
                thresholds=NONE_EXPECTED,
                width=4,
                height=5,
            )
        )
        .with_panel(
            complaints_open(
                "Complaint cases not yet closed, at any stage: waiting to be verified, rectified, followed "
                "up or closed. GET /complaints?status=opened (verified, rectified, followed_up) lists them.",
                width=4,
            )
        )
        .with_panel(
            complaints_overdue(
                "Open cases past the deadline of the stage they wait for. Red: the GoldenKeyComplaintOverdue "
                "alert fires; GET /complaints lists the cases, the Complaint cases row shows which stages.",
                width=4,
            )
        )
        .with_panel(
            big_number(
                "Rating take-up in the time range",
                "Ratings given per service offered for rating (a completed ticket, assistance request or "
                "incident) during the time range picked at the top. Low: citizens are not asked, or the "
                f"rating devices are not working. {unfiltered}",
                "percentunit",
                query(
                    share(f"sum(increase({ratings}[$__range]))", f"sum(increase({invitations}[$__range]))"),
                    "rated",
                ),
                thresholds=NEUTRAL,
                width=4,
                height=5,
            )
        )
        .with_row(dashboard.Row("Ratings (all categories)"))
        .with_panel(
            graph(
                "Ratings per hour by score",
                f"Ratings given in the hour before each point, per score ({levels}; 非常满意 … 非常不满意). "
                "Scores 1 and 2 are bad reviews.",
                "short",
                *(
                    query(f'sum(increase({ratings}{{score="{score}"}}[1h]))', f"{score} {meaning}")
                    for score, meaning in SCORES.items()
                ),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Bad-review share",
                "Share of the ratings given in the hour before each point that were bad reviews (1 or 2 "
                "of 5). No line: nothing was rated. Every bad review opens a complaint case.",
                "percentunit",
                query(share(f"sum(increase({BAD_REVIEWS_GIVEN}[1h]))", f"sum(increase({ratings}[1h]))"), "bad reviews"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Invitations and ratings per hour",
                "Services offered for rating in the hour before each point, by what was served (a ticket "
                "completed, an assistance request completed, an incident resolved), against the ratings "
                "given. Counted from the service's counters, which can miss the few counted just before a "
                "restart.",
                "short",
                query(f"sum by (subject_type) (increase({invitations}[1h]))", "invited ({{subject_type}})"),
                query(f"sum(increase({ratings}[1h]))", "rated"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Rating take-up",
                "Ratings given per service offered for rating, in the hour before each point. A citizen "
                "rates a little after being invited, so the share can pass 100% for a while; one that keeps "
                "falling means citizens are no longer asked or the rating devices are down.",
                "percentunit",
                query(share(f"sum(increase({ratings}[1h]))", f"sum(increase({invitations}[1h]))"), "rated"),
                width=12,
            )
        )
        .with_row(dashboard.Row("Satisfaction by category"))
        .with_panel(
            big_number(
                "Satisfaction by category, last 24 h",
                "Each category's share of the last 24 hours' ratings that were satisfied or very satisfied "
                f"(categories picked at the top). Red under {SATISFACTION_TARGET:.0%}. Over few ratings "
                "(Ratings behind the rate, below) one review moves it a lot. GET "
                "/satisfaction?group_by=window on the feedback service ranks the windows.",
                "percentunit",
                by_category(rate_of),
                thresholds=SATISFIED,
                width=24,
                height=4,
            )
        )
        .with_panel(
            rate_graph.thresholds(dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(SATISFIED))
            .thresholds_style(common.GraphThresholdsStyleConfig().mode(viz.GraphTresholdsStyleMode.DASHED))
            .max(1)
        )
        .with_panel(
            graph(
                "Ratings behind the rate",
                "Counted ratings of the 24 hours before each point, per category: the sample of its "
                f"satisfaction rate. Under {SATISFACTION_SAMPLE}, a category's rate is not alerted on.",
                "short",
                by_category(rated),
                width=12,
            )
        )
        .with_row(dashboard.Row("Complaint cases"))
        .with_panel(
            graph(
                "Cases open and overdue",
                "Complaint cases not closed, and those of them past the deadline of the stage they wait "
                "for. The GoldenKeyComplaintOverdue alert fires while any case is overdue.",
                "short",
                query(COMPLAINTS_OPEN, "open"),
                query(COMPLAINTS_OVERDUE, "overdue"),
            )
        )
        .with_panel(
            graph(
                "Cases opened per hour by origin",
                "Complaint cases opened in the hour before each point: from a bad review (bad_review) or "
                "from a complaint written in the message book (message).",
                "short",
                query(f"sum by (origin) (increase({opened}[1h]))", "{{origin}}"),
            )
        )
        .with_panel(
            graph(
                "Stages overdue per hour",
                "Complaint stages that missed their deadline in the hour before each point (complaint.overdue, "
                "once per stage): verify, rectify or the follow-up call. Deadlines are in working days, "
                "by default 1 to verify, 2 (simple) or 15 (complex) to rectify and 2 to follow up.",
                "short",
                query(f"sum by (stage) (increase({stages_overdue}[1h]))", "{{stage}}"),
            )
        )
        .with_row(dashboard.Row("Message book"))
        .with_panel(
            graph(
                "Message-book entries per hour by kind",
                "Messages written in the hour before each point, by kind: praise, suggestion, complaint, "
                "or none when the writer gave no kind. A complaint opens a case.",
                "short",
                query(f"sum by (kind) (increase({messages}[1h]))", "{{kind}}"),
                width=16,
            )
        )
        .with_panel(
            big_number(
                "Entries in the time range by kind",
                "Messages written during the time range picked at the top, by kind, praise included. "
                "Counted from the service's counters, which can miss the few counted just before a restart.",
                "short",
                query(f"sum by (kind) (increase({messages}[$__range]))", "{{kind}}"),
                thresholds=NEUTRAL,
                width=8,
            ).decimals(0)
        )
    )


# --- writing and checking ------------------------------------------------------------------------


def build(make: Build) -> model.Dashboard:
    built = make().build()
    # Grafana needs panel ids unique within a dashboard; numbering them here keeps the JSON stable.
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built


def rendered() -> dict[str, str]:
    """File name → JSON text, for every registered dashboard."""
    files: dict[str, str] = {}
    encoder = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)
    for make in DASHBOARDS:
        built = build(make)
        name = f"{built.uid}.json"
        if name in files:
            raise ValueError(f"two dashboards have the uid {built.uid!r}")
        files[name] = encoder.encode(built) + "\n"
    return files


def stale(directory: Path = DIRECTORY) -> list[str]:
    """Files in `directory` that differ from what the generator writes, are missing or are extra."""
    expected = rendered()
    present = {path.name for path in directory.glob("*.json")}
    differing = {
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    }
    return sorted(differing | (present - expected.keys()))


def write(directory: Path = DIRECTORY) -> list[str]:
    """Write every dashboard and delete JSON files no dashboard produces; the names changed."""
    expected = rendered()
    changed = stale(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()  # a dashboard renamed or removed: Grafana would keep provisioning it
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    shown = DIRECTORY.relative_to(Path.cwd()) if DIRECTORY.is_relative_to(Path.cwd()) else DIRECTORY
    if args.check:
        outdated = stale()
        for name in outdated:
            print(f"stale: {shown / name}", file=sys.stderr)
        if outdated:
            print(f"regenerate with: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    for name in write():
        print(f"wrote {shown / name}" if (DIRECTORY / name).exists() else f"removed {shown / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
