"""`python -m goldenkey.demo` (`make demo`): play one business day at the hall, live, and leave a report.

By default it starts a throwaway native stack (Kafka, mongo-java-server in memory) and the four
services on free ports, all on one simulated clock; with `--queue-url` … `--feedback-url` and
`--kafka` it plays against services that run already (the compose `demo` profile), which must then
share the clock the simulator is told about (`--clock-anchor`). Its own stack has a Prometheus too
(when Debian's `prometheus` is installed), scraping the services every second; after the day every
panel of every dashboard must show data in it, or in the Prometheus `--prometheus-url` names."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from goldenkey.demo import panels
from goldenkey.demo.books import reckon
from goldenkey.demo.driver import TOKENS, Hall, Services
from goldenkey.demo.model import Category, Item, plan_day
from goldenkey.demo.record import DayRecord, Target
from goldenkey.demo.usage import Usage
from goldenkey.kit.clock import SimulatedClock
from goldenkey.kit.kafka import admin_kwargs
from goldenkey.kit.settings import KitSettings

HALL = ZoneInfo("Asia/Shanghai")
TERMINATED = threading.Event()
"""Set when SIGTERM asked the demo to stop (and not something else that cancelled it)."""
LEAD = timedelta(minutes=10)
"""The simulated day starts this long before opening: windows open at 08:55."""


def next_working_day(today: date) -> date:
    day = today
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m goldenkey.demo", description=__doc__)
    parser.add_argument("--visitors", type=int, default=int(os.environ.get("VISITORS") or 5000))
    parser.add_argument(
        "--speed",
        type=float,
        default=float(os.environ.get("SPEED") or 50),
        help="simulated seconds per real second (50: a day in about 10 minutes; the ×100 target: bench/README.md)",
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED") or 1))
    parser.add_argument(
        "--day", type=date.fromisoformat, default=os.environ.get("DAY") or None, help="YYYY-MM-DD (a weekday)"
    )
    parser.add_argument(
        "--hours", type=float, default=8.0, help="how much of the day to play from 09:00 (a short demo: 1)"
    )
    parser.add_argument("--report", type=Path, default=Path(os.environ.get("REPORT") or "demo-report"))
    parser.add_argument("--quiet", action="store_true", help="no live display")
    for service in ("queue", "concierge", "parking", "feedback"):
        parser.add_argument(f"--{service}-url")
    parser.add_argument(
        "--kafka", help="bootstrap of the stack the given services use (default: GOLDENKEY_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument(
        "--clock-anchor",
        type=datetime.fromisoformat,
        help="the given services' GOLDENKEY_CLOCK_ANCHOR, when it is not in this environment",
    )
    parser.add_argument(
        "--prometheus-url",
        help="the Prometheus that scrapes the given services, to check that every dashboard panel shows data "
        "(by default the throwaway stack's own)",
    )
    parser.add_argument(
        "--print-clock",
        action="store_true",
        help="print the GOLDENKEY_CLOCK_* settings for services that are to play the day, and exit",
    )
    parser.add_argument(
        "--clock-lead", type=float, default=60, help="with --print-clock: real seconds until the clock reads 08:50"
    )
    return parser.parse_args(argv)


def clock_settings(day: date, speed: float, anchor: datetime) -> dict[str, str]:
    """The shared simulated clock of a demo day: it reads 08:50 of `day` at the real instant `anchor`."""
    start = datetime.combine(day, clock_time(9), HALL).astimezone(UTC) - LEAD
    return {
        "GOLDENKEY_CLOCK_START": start.isoformat(),
        "GOLDENKEY_CLOCK_SPEED": f"{speed:g}",
        "GOLDENKEY_CLOCK_ANCHOR": anchor.isoformat(),
    }


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    given = KitSettings()
    if args.queue_url and given.clock_start is not None:  # services already on a simulated clock: play theirs
        args.speed, args.clock_anchor = given.clock_speed, given.clock_anchor
        args.day = (given.clock_start + LEAD).astimezone(HALL).date()
    day = args.day or next_working_day(datetime.now(HALL).date())
    if day.weekday() >= 5:
        print(f"{day} is a {day:%A}: the hall is closed; pick a weekday", file=sys.stderr)
        return 2
    if args.print_clock:  # for services started apart (make compose-demo): they start meanwhile
        anchor = args.clock_anchor or datetime.now(UTC) + timedelta(seconds=args.clock_lead)
        print("\n".join(f"export {k}={v}" for k, v in clock_settings(day, args.speed, anchor).items()))
        return 0
    if args.queue_url and args.clock_anchor is None:
        print(
            "the services' simulated clock is unknown: set GOLDENKEY_CLOCK_START, _SPEED and _ANCHOR as "
            "theirs are (make compose-demo does), or pass --clock-anchor",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(run(args, day))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not TERMINATED.is_set() and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            raise  # cancelled by nobody who asked: a defect, shown with where it came from
        print("interrupted: the demo's stack is stopped", file=sys.stderr)
        return 130


async def run(args: argparse.Namespace, day: date) -> int:
    # A terminated demo (a closed terminal, `kill`, a CI timeout) stops the stack it started, as Ctrl-C does.
    main_task = asyncio.current_task()
    assert main_task is not None

    def terminate() -> None:
        TERMINATED.set()
        main_task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    console = Console(stderr=True)
    stack, root, parts = None, None, []
    prometheus = args.prometheus_url
    kafka = admin_kwargs(KitSettings())  # for the books, which read every event back
    try:
        if args.queue_url:
            anchor = args.clock_anchor
            services = Services(args.queue_url, args.concierge_url, args.parking_url, args.feedback_url)
            kafka["bootstrap_servers"] = args.kafka or kafka["bootstrap_servers"]
        else:
            from deploy.native.devstack import Stack, free_port  # the repository's native dev stack

            root = Path(tempfile.mkdtemp(prefix="goldenkey-demo-"))
            stack = Stack.throwaway(root)
            console.print("[bold]Starting a throwaway stack[/] (Kafka, mongo-java-server) and the four services…")
            stack.up()
            anchor = datetime.now(UTC) + timedelta(seconds=20)  # the services start meanwhile
            ports = {name: free_port() for name in ("queue", "concierge", "parking", "feedback")}
            env = {**clock_settings(day, args.speed, anchor), "GOLDENKEY_LOG_LEVEL": "WARNING"}
            parts = stack.service_parts(ports, env)
            scraper = None if prometheus else stack.prometheus(ports)
            if scraper is not None:  # launched first, so it scrapes the services from their start
                scraper.launch()
                prometheus = stack.prometheus_url
            for part in parts:
                part.start()
            if scraper is not None:
                parts.insert(0, scraper)
                scraper.wait()
            services = Services(
                *(f"http://127.0.0.1:{ports[n]}" for n in ("queue", "concierge", "parking", "feedback"))
            )
            kafka = {"bootstrap_servers": stack.kafka_bootstrap}
        start = datetime.fromisoformat(clock_settings(day, args.speed, anchor)["GOLDENKEY_CLOCK_START"])
        clock = SimulatedClock(start, args.speed, anchor)
        async with httpx.AsyncClient(timeout=30) as http:
            await _ready(http, services)
            plan_inputs = await _hall_data(http, services)
            if clock.now() > start + LEAD / 2:
                console.print(
                    f"[yellow]The services took long to start: the day is at {clock.now().astimezone(HALL):%H:%M} "
                    "already, and what was planned before now happens at once.[/]"
                )
        items, categories, windows, rounds, checkpoints, minimums = plan_inputs
        plan = plan_day(
            seed=args.seed,
            day=day,
            visitors=args.visitors,
            items=items,
            categories=categories,
            windows=windows,
            round_ids=rounds,
            checkpoints=checkpoints,
            minimums=minimums,
            closes=(datetime.combine(day, clock_time(9)) + timedelta(hours=args.hours)).time(),
        )
        record = DayRecord(
            day=day.isoformat(),
            seed=args.seed,
            visitors=len(plan.visitors),
            speed=args.speed,
            started_at=start,
            targets=[
                Target(category=c.letter, name_en=c.letter, target_wait_s=c.target_wait_minutes * 60)
                for c in categories
            ],
        )
        hall = Hall(services, plan, clock, record)
        usage = Usage({"simulator": os.getpid(), **(stack.pids() if stack is not None else {})})
        usage.start()
        started, began = time.monotonic(), time.time()
        sampling = asyncio.create_task(_sample(usage))
        if args.quiet:
            await hall.play()
        else:
            with Live(console=console, refresh_per_second=2) as live:

                async def show(h: Hall) -> None:
                    live.update(_progress(h, started))

                await hall.play(show)
        record.real_seconds = time.monotonic() - started
        sampling.cancel()
        record.figures["processes"] = usage.figures()
        console.print("[bold]Closing the books…[/]")
        await _figures(hall)
        record.checks = await reckon(hall, kafka)
        if prometheus:
            console.print("[bold]Asking Prometheus whether every dashboard panel shows data…[/]")
            shown = await panels.check(prometheus, began, time.time())
            record.checks.append(shown)
            if not shown.ok:  # the books' table shortens it
                console.print(f"[red]Dashboards:[/] expected {escape(shown.expected)}, found {escape(shown.found)}")
        else:
            why = "no --prometheus-url was given" if stack is None else "`prometheus` is not installed (make tools)"
            console.print(f"[yellow]Skipped the dashboard check[/] (every panel of every dashboard shows data): {why}.")
        record.figures["events per real second"] = round(
            int(record.figures["events on Kafka"]) / max(record.real_seconds, 1e-6),
            1,  # type: ignore[call-overload]
        )
        args.report.mkdir(parents=True, exist_ok=True)
        record.save(args.report / "day.json")
        report = _render(record, args.report)
        _summary(console, record, report)
        await hall.http.aclose()
        return 0 if record.balanced else 1
    finally:
        for part in reversed(parts):
            part.stop()
        if stack is not None:
            stack.down()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


async def _sample(usage: Usage) -> None:
    while True:
        usage.sample()
        await asyncio.sleep(2)


async def _ready(http: httpx.AsyncClient, services: Services) -> None:
    deadline = time.monotonic() + 120
    for url in (services.queue, services.concierge, services.parking, services.feedback):
        while True:
            try:
                if (await http.get(f"{url}/health/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready")
            await asyncio.sleep(0.3)


async def _hall_data(
    http: httpx.AsyncClient, services: Services
) -> tuple[list[Item], list[Category], list[str], list[str], dict[str, list[str]], dict[str, int]]:
    catalog = (await http.get(f"{services.queue}/catalog", headers=TOKENS["ops"])).json()
    categories = (await http.get(f"{services.queue}/categories", headers=TOKENS["ops"])).json()
    windows = (await http.get(f"{services.queue}/windows", headers=TOKENS["ops"])).json()
    inventory = (await http.get(f"{services.concierge}/inventory", headers=TOKENS["ops"])).json()
    schedule = (await http.get(f"{services.parking}/patrols/schedule", headers=TOKENS["guard"])).json()
    return (
        [Item(code=i["code"], category=i["category"], expected_minutes=float(i["service_min"])) for i in catalog],
        [Category(letter=c["code"], target_wait_minutes=float(c["target_wait_min"])) for c in categories],
        [w["window_id"] for w in windows],
        [r["round_id"] for r in schedule["rounds"]],
        {
            r["round_id"]: r.get("checkpoints") or [c["checkpoint_id"] for c in schedule["checkpoints"]]
            for r in schedule["rounds"]
        },
        {c["sku"]: c["minimum"] for c in inventory["consumables"]},
    )


async def _figures(hall: Hall) -> None:
    """The services' own figures at the end of the day, for the report."""
    ops = TOKENS["ops"]
    day = hall.record.day
    period = {"from": day, "to": day}
    hall.record.satisfaction_by_window = (
        await hall.http.get(
            f"{hall.services.feedback}/satisfaction", params={"group_by": "window", **period}, headers=ops
        )
    ).json()
    hall.record.satisfaction_by_category = (
        await hall.http.get(
            f"{hall.services.feedback}/satisfaction", params={"group_by": "category", **period}, headers=ops
        )
    ).json()
    hall.record.rankings = (
        await hall.http.get(f"{hall.services.feedback}/rankings", params={"month": day[:7]}, headers=ops)
    ).json()
    cases = (await hall.http.get(f"{hall.services.feedback}/complaints", params={"limit": 500}, headers=ops)).json()
    by_status: dict[str, int] = {}
    for case in cases:
        by_status[case["status"]] = by_status.get(case["status"], 0) + 1
    hall.record.complaints_by_status = by_status
    hall.record.figures |= {
        "commands": sum(hall.tally.commands.values()),
        "refused by the rules (409)": dict(hall.tally.refused),
        "sent again (no answer, or 503)": dict(hall.tally.retried),
        "commands per real second": round(sum(hall.tally.commands.values()) / max(hall.record.real_seconds, 1e-6), 1),
        "simulated hours per real minute": round((hall.clock.speed * 60) / 3600, 2),
        **_spread("request latency", hall.tally.latencies),
        **_spread("waiting for a connection", hall.tally.queued),
        **_spread("simulator late", hall.tally.lags),
    }


def _spread(what: str, seconds: list[float]) -> dict[str, object]:
    """p50/p95/p99 in real milliseconds: at ×100 a second of it is 100 s of the simulated day."""
    if not seconds:
        return {}
    ordered = sorted(seconds)
    at = lambda share: round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))])  # noqa: E731
    return {f"{what} (ms real)": f"p50 {at(0.5)}, p95 {at(0.95)}, p99 {at(0.99)}"}


def _render(record: DayRecord, directory: Path) -> Path:
    from goldenkey.demo.report import render

    return render(record, directory)


def _progress(hall: Hall, started: float) -> Table:
    now = hall.clock.now().astimezone(HALL)
    last = hall.record.snapshots[-1] if hall.record.snapshots else None
    table = Table(
        title=f"Golden Key Hall — {now:%Y-%m-%d %H:%M} (×{hall.clock.speed:g}, {time.monotonic() - started:.0f} s real)"
    )
    table.add_column("in the hall", justify="right")
    table.add_column("waiting by category")
    table.add_column("windows open", justify="right")
    table.add_column("loans out", justify="right")
    table.add_column("assistance open", justify="right")
    table.add_column("incidents open", justify="right")
    table.add_column("commands/s", justify="right")
    in_hall = sum(1 for v in hall.visits.values() if v.outcome is None)
    waiting = " ".join(f"{c}:{n}" for c, n in sorted(last.waiting.items()) if n) if last else ""
    table.add_row(
        str(in_hall),
        waiting or "—",
        str(last.windows_open) if last else "—",
        str(last.loans_out) if last else "—",
        str(last.assistance_open) if last else "—",
        str(last.incidents_open) if last else "—",
        f"{last.events_per_s:.0f}" if last else "—",
    )
    return table


def _summary(console: Console, record: DayRecord, report: Path) -> None:
    table = Table(title=f"The books of {record.day}")
    table.add_column("check")
    table.add_column("")
    table.add_column("expected")
    table.add_column("found")
    for check in record.checks:
        table.add_row(check.name, "[green]✓[/]" if check.ok else "[red]✗[/]", check.expected[:60], check.found[:60])
    console.print(table)
    served = sum(1 for v in record.visits if v.outcome in ("done", "needs_materials", "referred"))
    console.print(
        f"{record.visitors} visitors, {served} served, played in {record.real_seconds:.0f} s real "
        f"(×{record.speed:g}). The books {'[green]balance[/]' if record.balanced else '[red]do not balance[/]'}."
    )
    processes = record.figures.get("processes") or {}
    if processes:
        cost = Table(title="What the day cost the machine")
        cost.add_column("process")
        cost.add_column("CPU s", justify="right")
        cost.add_column("CPU % of a core", justify="right")
        cost.add_column("at its busiest", justify="right")
        cost.add_column("peak memory MiB", justify="right")
        for name, used in processes.items():  # type: ignore[union-attr]
            cost.add_row(
                name,
                f"{used['cpu_s']:.0f}",
                f"{used['cpu_percent']:.0f}",
                f"{used['peak_cpu_percent']:.0f}",
                f"{used['peak_rss_mib']:.0f}",
            )
        console.print(cost)
    console.print(
        "\n".join(
            f"{name}: {record.figures[name]}"
            for name in (
                "events on Kafka",
                "events per real second",
                "request latency (ms real)",
                "waiting for a connection (ms real)",
                "simulator late (ms real)",
            )
            if name in record.figures
        )
    )
    console.print(f"Report: {report}")


if __name__ == "__main__":
    sys.exit(main())
