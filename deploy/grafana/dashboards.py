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
# `service` is the scrape target's label (deploy/prometheus/prometheus.yml), so every series has it,
# FastStream's included (whose own `app_name` label carries the same name).
SELECTED_SERVICES = 'service=~"$service"'

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


def service_variable() -> dashboard.QueryVariable:
    """`$service`: one, several or all of the services Prometheus scrapes."""
    return (
        dashboard.QueryVariable("service")
        .label("Service")
        .description("The services to show")
        .datasource(PROMETHEUS)
        .query('label_values(up{job="goldenkey"}, service)')
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def selector(metric: str, *matchers: str) -> str:
    """`metric{service=~"$service", …}`: a series of the services picked in `$service`."""
    return metric + "{" + ", ".join([SELECTED_SERVICES, *matchers]) + "}"


def rate(series: str) -> str:
    return f"rate({series}[{RATE_WINDOW}])"


def quantile(q: float, buckets: str) -> str:
    """The q-quantile per service of a histogram, from its `_bucket` series."""
    return f"histogram_quantile({q}, sum by (le, service) ({rate(buckets)}))"


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


# --- dashboards ----------------------------------------------------------------------------------


@provisioned
def platform() -> dashboard.Dashboard:
    """Is the plumbing healthy? HTTP RED per service, Kafka events, backlogs, dead letters."""
    requests = selector("goldenkey_http_requests_total")
    server_errors = selector("goldenkey_http_requests_total", 'status=~"5.."')
    consumed = selector("faststream_received_messages_total")
    published = selector("faststream_published_messages_total", 'status="success"')
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
            big_number(
                "Service up",
                "Whether Prometheus reaches each service's /metrics endpoint (every 5 s). DOWN means the "
                "process is gone or not answering: its API and its event handling are stopped. With several "
                "instances, one unreachable instance is enough to show the service DOWN.",
                "short",
                query(f'min by (service) (up{{job="goldenkey", {SELECTED_SERVICES}}})', "{{service}}"),
                thresholds=[model.Threshold(None, "red"), model.Threshold(1, "green")],
                mappings=[
                    model.ValueMap(
                        {
                            "0": model.ValueMappingResult(text="DOWN", color="red", index=0),
                            "1": model.ValueMappingResult(text="UP", color="green", index=1),
                        }
                    )
                ],
                width=24,
                height=4,
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
                query(f"sum by (service) ({rate(not_published)})", "{{service}} not sent"),
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
                # Read from MongoDB, so every instance reports the same number: max, not sum.
                query(f"max by (service) ({selector('goldenkey_outbox_pending')})", "{{service}}"),
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
            big_number(
                "Dead letters in the time range",
                "All messages the selected services moved to their dead-letter topics during the time "
                "range picked at the top of the dashboard. Should be 0.",
                "short",
                query(f"sum(increase({dead_letters}[$__range]))", "dead letters"),
                thresholds=[model.Threshold(None, "green"), model.Threshold(1, "red")],
                width=8,
            )
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
