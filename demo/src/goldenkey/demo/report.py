"""The day's report: one self-contained HTML page (inline CSS, every chart a PNG embedded as a
data URI, nothing fetched when it opens) and the charts beside it as PNG files.

    render(record, directory)  -> directory/report.html, directory/charts/<name>.png
    charts(record)             -> {name: matplotlib Figure}, in the report's order
    headlines(record)          -> the headline figures, computed from the record

The charts are drawn with matplotlib on its Agg canvas, without pyplot (no global figure state).
Chart labels are English; the data may carry Chinese (window or category names), so a CJK-capable
font is added after the default one when `fc-list :lang=zh` finds one, and nothing is said when it
does not."""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import subprocess
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib
import matplotlib.dates as mdates
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from goldenkey.demo.record import DayRecord, IncidentRecord, Snapshot, Target, Visit

HALL_TIMEZONE = "Asia/Shanghai"
"""The hall's local time (the services' default `timezone`); the record's instants are aware."""

SERVED = frozenset({"done", "needs_materials", "referred"})
"""Outcomes of a visit whose service started (the others: no_show, cancelled)."""
ONE_TRIP_BREACH = "needs_materials"
ACCEPT_RULE_S = 180.0
"""A request nobody accepts within 3 minutes is escalated (the concierge service's rule)."""
COMPLAINT_STAGES = ("opened", "verified", "rectified", "followed_up", "closed")

WIDTH_IN, DPI = 10.0, 100
"""Every chart is 1000 px wide."""
NO_DATA = "No data"
MAX_INCIDENT_ROWS = 40
WINDOWS_EACH_END = 8
"""The satisfaction chart shows this many best and this many worst windows."""

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Noto Serif CJK SC",
)
"""Preferred when several CJK fonts are installed."""

OK_COLOUR, BAD_COLOUR, MAIN_COLOUR, MUTED_COLOUR = "#2e7d32", "#c62828", "#1f77b4", "#9e9e9e"


# --- fonts -----------------------------------------------------------------------------------------


def cjk_font(fc_list_output: str | None = None) -> str | None:
    """The family name matplotlib knows a CJK-capable font by, or None when none is installed.
    `fc_list_output` is what `fc-list :lang=zh file family` prints (run when not given)."""
    if fc_list_output is None:
        try:
            fc_list_output = subprocess.run(
                ["fc-list", ":lang=zh", "file", "family"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    found: list[str] = []
    added = {entry.fname for entry in font_manager.fontManager.ttflist}
    for line in fc_list_output.splitlines():
        path, _, families = line.partition(":")
        path = path.strip()
        if not path:
            continue
        try:  # matplotlib's cache may predate the font: add it, and read the name it goes by
            if path not in added:
                font_manager.fontManager.addfont(path)
                added.add(path)
            name = font_manager.FontProperties(fname=path).get_name()
        except Exception:  # an unreadable font is just not used
            continue
        found.append(name)
        found.extend(family.strip() for family in families.split(","))
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    usable = [name for name in found if name in known]
    for preferred in CJK_FAMILIES:
        if preferred in usable:
            return preferred
    return usable[0] if usable else None


@functools.cache
def _font_families() -> tuple[str, ...]:
    """The default font first (its Latin glyphs), then the CJK one for the glyphs it lacks."""
    default = list(matplotlib.rcParamsDefault["font.sans-serif"])[:1] or ["DejaVu Sans"]
    cjk = cjk_font()
    return (*default, cjk) if cjk else tuple(default)


@contextmanager
def _style() -> Iterator[None]:
    """Concrete family names (kept by each text when it is made, so a figure saved later still
    has them), and quiet about glyphs no installed font has."""
    settings = {
        "font.family": list(_font_families()),
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.dpi": DPI,
    }
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        yield


# --- reading the record ----------------------------------------------------------------------------


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.replace(tzinfo=tz) if instant.tzinfo is None else instant.astimezone(tz)


def _started(visit: Visit) -> bool:
    return visit.started_at is not None or visit.outcome in SERVED


def _wait_s(visit: Visit) -> float | None:
    """From issue to the start of service, for a visit whose service started."""
    if not _started(visit):
        return None
    if visit.wait_s is not None:
        return visit.wait_s
    if visit.started_at is not None:
        return max((visit.started_at - visit.issued_at).total_seconds(), 0.0)
    return None


def _targets(record: DayRecord) -> dict[str, Target]:
    return {target.category: target for target in record.targets}


def _categories(record: DayRecord) -> list[str]:
    """Every category the day knows of: targets first, in their order, then any others seen."""
    seen = dict.fromkeys(target.category for target in record.targets)
    seen.update(dict.fromkeys(sorted({visit.category for visit in record.visits})))
    for snapshot in record.snapshots:
        seen.update(dict.fromkeys(sorted(snapshot.waiting)))
    return list(seen)


def _within_target(visit: Visit, targets: Mapping[str, Target]) -> bool | None:
    wait, target = _wait_s(visit), targets.get(visit.category)
    if wait is None or target is None:
        return None
    return wait <= target.target_wait_s


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _groups(payload: Mapping[str, object]) -> list[dict[str, object]]:
    """The `groups` of a GET /satisfaction payload (or the `windows` of GET /rankings)."""
    groups = payload.get("groups", payload.get("windows"))
    return [group for group in groups if isinstance(group, dict)] if isinstance(groups, list) else []


def _rated_groups(payload: Mapping[str, object]) -> list[dict[str, object]]:
    """Groups with a satisfaction rate, best rank first."""
    rated = [group for group in _groups(payload) if _number(group.get("satisfaction_rate")) is not None]

    def order(group: dict[str, object]) -> tuple[float, float, str]:
        rank = _number(group.get("rank"))
        return (
            rank if rank is not None else math.inf,
            -(_number(group.get("satisfaction_rate")) or 0.0),
            str(group.get("group")),
        )

    return sorted(rated, key=order)


def _pooled_satisfaction(payload: Mapping[str, object]) -> tuple[int, float | None]:
    """All the groups' counted ratings, and the share of them at levels 4-5."""
    rated = satisfied = 0
    for group in _groups(payload):
        levels = group.get("levels")
        if not isinstance(levels, dict):
            continue
        for level, count in levels.items():
            n = int(_number(count) or 0)
            rated += n
            if str(level) in {"4", "5"}:
                satisfied += n
    return rated, (satisfied / rated if rated else None)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f}%"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def _short(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


# --- the headline figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    label: str
    value: str
    note: str = ""


def headlines(record: DayRecord) -> list[Headline]:
    """The day in a dozen figures, computed from the record (not the services' own figures)."""
    visits, targets = record.visits, _targets(record)
    outcomes = Counter(visit.outcome for visit in visits)
    served = sum(outcomes[outcome] for outcome in SERVED)
    waits = [w for w in (_wait_s(visit) for visit in visits) if w is not None]
    judged = [ok for ok in (_within_target(visit, targets) for visit in visits) if ok is not None]
    accepts = [(a.accepted_at - a.requested_at).total_seconds() for a in record.assistance if a.accepted_at is not None]
    late = sum(1 for s in accepts if s > ACCEPT_RULE_S)
    unaccepted = sum(1 for a in record.assistance if a.accepted_at is None)
    resolves = [(i.resolved_at - i.reported_at).total_seconds() for i in record.incidents if i.resolved_at is not None]
    escalated = sum(1 for i in record.incidents if i.escalated_at is not None)
    scores = [visit.score for visit in visits if visit.score is not None]
    pooled_rated, pooled_rate = _pooled_satisfaction(record.satisfaction_by_window)
    own_rate = sum(1 for s in scores if s >= 4) / len(scores) if scores else None
    cases = sum(record.complaints_by_status.values())
    open_cases = sum(n for stage, n in record.complaints_by_status.items() if stage != "closed")
    return [
        Headline("Visitors served", f"{served:,}", f"of {len(visits):,} tickets issued"),
        Headline("No-shows", f"{outcomes['no_show']:,}", f"{outcomes['cancelled']:,} cancelled"),
        Headline("Mean wait", _minutes(_mean(waits)), f"90th percentile {_minutes(_percentile(waits, 0.9))}"),
        Headline(
            "Service level",
            _percent(sum(judged) / len(judged) if judged else None),
            f"served within target, of {len(judged):,} started",
        ),
        Headline(
            "One-trip breaches",
            f"{outcomes[ONE_TRIP_BREACH]:,}",
            f"{_percent(outcomes[ONE_TRIP_BREACH] / served if served else None)} of those served",
        ),
        Headline(
            "Assistance requests",
            f"{len(record.assistance):,}",
            f"{late:,} accepted after 3 min, {unaccepted:,} never accepted",
        ),
        Headline("Mean accept time", _minutes(_mean(accepts)), f"of {len(accepts):,} accepted"),
        Headline("Incidents", f"{len(record.incidents):,}", f"{escalated:,} escalated, {len(resolves):,} resolved"),
        Headline("Mean time to resolve", _minutes(_mean(resolves)), "report to resolution"),
        Headline("Ratings", f"{len(scores):,}", f"{_percent(own_rate)} satisfied (4-5), as the visitors rated"),
        Headline(
            "Satisfaction rate",
            _percent(pooled_rate),
            f"feedback service, {pooled_rated:,} window ratings"
            if pooled_rated
            else "no figures from the feedback service",
        ),
        Headline("Complaint cases", f"{cases:,}", f"{open_cases:,} not closed"),
    ]


# --- the charts ------------------------------------------------------------------------------------


def _figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _no_data(ax: Axes, why: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.text(
        0.5, 0.5, f"{NO_DATA}: {why}", ha="center", va="center", transform=ax.transAxes, color="#616161", fontsize=12
    )


def _too_few(snapshots: Sequence[Snapshot]) -> str:
    return "no snapshots" if not snapshots else "a single snapshot is not a day"


def _time_axis(ax: Axes, tz: ZoneInfo) -> None:
    locator = mdates.AutoDateLocator(tz=tz, minticks=5, maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.set_xlabel("Time of day (hall's local time)")


def _times(snapshots: Sequence[Snapshot], tz: ZoneInfo) -> list[float]:
    return [_num(s.at, tz) for s in snapshots]


def _num(instant: datetime, tz: ZoneInfo) -> float:
    return float(mdates.date2num(_local(instant, tz)))


def _label(category: str, targets: Mapping[str, Target], length: int = 26) -> str:
    target = targets.get(category)
    return f"{category} {_short(target.name_en, length)}" if target and target.name_en else category


def _wait_by_hour(record: DayRecord, tz: ZoneInfo) -> Figure:
    targets = _targets(record)
    waits: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for visit in record.visits:
        wait = _wait_s(visit)
        if wait is not None:
            waits[visit.category][_local(visit.issued_at, tz).hour].append(wait / 60)
    categories = [c for c in _categories(record) if c in waits]
    if not categories:
        figure = _figure(4)
        ax = figure.add_subplot()
        _no_data(ax, "no visit was served")
        figure.suptitle("Waiting time by hour of issue and category")
        return figure
    columns = min(4, len(categories))
    rows = math.ceil(len(categories) / columns)
    figure = _figure(1.0 + 2.3 * rows)
    axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    hours = sorted({hour for by_hour in waits.values() for hour in by_hour})
    first, last = hours[0], hours[-1]
    means = {c: {h: sum(v) / len(v) for h, v in sorted(waits[c].items())} for c in categories}
    limits = {c: targets[c].target_wait_s / 60 for c in categories if c in targets}
    top = max([*(m for by_hour in means.values() for m in by_hour.values()), *limits.values(), 1.0])
    for ax, category in zip(axes, categories, strict=False):
        limit = limits.get(category)
        xs, ys = list(means[category]), list(means[category].values())
        colours = [BAD_COLOUR if limit is not None and m > limit else MAIN_COLOUR for m in ys]
        ax.bar(xs, ys, width=0.8, color=colours, alpha=0.85)
        if limit is not None:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1.2, label=f"target {limit:g} min")
            ax.legend(loc="upper left", fontsize=7, frameon=False)
        count = sum(len(v) for v in waits[category].values())
        ax.set_title(f"{_label(category, targets, 30)}\n{count:,} served", fontsize=8.5)
        ax.set_xlim(first - 0.6, last + 0.6)
        ax.set_ylim(0, top * 1.3)
        ax.set_xticks(range(first, last + 1, 1 if last - first <= 10 else 2))
    for ax in axes[len(categories) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("Mean wait (min)")
    for ax in axes[: len(categories)][-columns:]:
        ax.set_xlabel("Hour of issue")
        ax.tick_params(labelbottom=True)
    figure.suptitle("Waiting time by hour of issue and category (red: mean above the dashed target)")
    return figure


def _queue_lengths(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(5.5)
    ax = figure.add_subplot()
    figure.suptitle("Queue lengths through the day")
    snapshots = record.snapshots
    if len(snapshots) < 2:
        _no_data(ax, _too_few(snapshots))
        return figure
    targets = _targets(record)
    categories = [c for c in _categories(record) if any(s.waiting.get(c) for s in snapshots)]
    times = _times(snapshots, tz)
    if categories:
        series = [[s.waiting.get(c, 0) for s in snapshots] for c in categories]
        colours = [matplotlib.colormaps["tab20"](i % 20) for i in range(len(categories))]
        ax.stackplot(times, series, labels=[_label(c, targets, 22) for c in categories], colors=colours, alpha=0.85)
    ax.plot(times, [s.in_hall for s in snapshots], color="black", linewidth=1.2, label="in hall (all visitors)")
    ax.set_ylabel("Tickets waiting (stacked by category)")
    ax.set_ylim(bottom=0)
    if times[-1] > times[0]:
        ax.set_xlim(times[0], times[-1])
    _time_axis(ax, tz)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return figure


def _windows_open(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(6)
    figure.suptitle("Windows open through the day")
    snapshots = record.snapshots
    if len(snapshots) < 2:
        _no_data(figure.add_subplot(), _too_few(snapshots))
        return figure
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    times = _times(snapshots, tz)
    top.step(times, [s.windows_open for s in snapshots], where="post", color=MAIN_COLOUR, linewidth=1.8)
    top.set_ylabel("Windows open")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylim(bottom=0)
    top.set_title("All windows", fontsize=10)
    covered = [(t, s) for t, s in zip(times, snapshots, strict=True) if s.open_by_category]
    if not covered:
        _no_data(bottom, "no open-by-category counts")
        _time_axis(top, tz)
        return figure
    lows = [min(s.open_by_category.values()) for _, s in covered]
    xs = [t for t, _ in covered]
    bottom.step(xs, lows, where="post", color=OK_COLOUR if min(lows) > 0 else BAD_COLOUR, linewidth=1.8)
    bottom.axhline(0, color=BAD_COLOUR, linestyle="--", linewidth=1, label="zero: a category with no open window")
    at = lows.index(min(lows))
    snapshot = covered[at][1]
    weakest = ", ".join(sorted(c for c, n in snapshot.open_by_category.items() if n == lows[at]))
    bottom.annotate(
        f"lowest {lows[at]} at {_local(snapshot.at, tz):%H:%M} ({_short(weakest, 30)})",
        xy=(xs[at], lows[at]),
        xytext=(10, 14),
        textcoords="offset points",
        fontsize=9,
        arrowprops={"arrowstyle": "->", "color": "#424242"},
    )
    bottom.set_ylabel("Fewest open\nfor any category")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylim(-0.5, max(lows) + 1.5)
    bottom.set_title("The least-covered category (the lunch dip must stay above zero)", fontsize=10)
    bottom.legend(loc="upper right", fontsize=8, frameon=False)
    if times[-1] > times[0]:
        bottom.set_xlim(times[0], times[-1])
    _time_axis(bottom, tz)
    return figure


def _service_level(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(5)
    figure.suptitle("Service level and one-trip breaches by category")
    targets = _targets(record)
    judged: dict[str, list[bool]] = defaultdict(list)
    served: Counter[str] = Counter()
    breaches: Counter[str] = Counter()
    for visit in record.visits:
        ok = _within_target(visit, targets)
        if ok is not None:
            judged[visit.category].append(ok)
        if visit.outcome in SERVED:
            served[visit.category] += 1
        if visit.outcome == ONE_TRIP_BREACH:
            breaches[visit.category] += 1
    left, right = figure.subplots(1, 2)
    categories = [c for c in _categories(record) if c in judged or c in served]
    if not categories:
        _no_data(left, "no visit was served")
        _no_data(right, "no visit was served")
        return figure
    rated = [c for c in categories if judged[c]]
    if rated:
        levels = [100 * sum(judged[c]) / len(judged[c]) for c in rated]
        bars = left.bar(rated, levels, color=MAIN_COLOUR)
        left.bar_label(bars, labels=[f"{v:.0f}%" for v in levels], fontsize=8, padding=2)
        overall = 100 * sum(sum(v) for v in judged.values()) / sum(len(v) for v in judged.values())
        left.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"whole hall {overall:.1f}%")
        left.legend(loc="lower left", fontsize=8, frameon=True)
        left.set_ylim(0, 110)
        left.set_ylabel("Served within target wait (%)")
        left.set_xlabel("Category")
    else:
        _no_data(left, "no category has a target")
    left.set_title("Service level", fontsize=10)
    counts = [breaches[c] for c in categories]
    bars = right.bar(categories, counts, color=BAD_COLOUR, alpha=0.85)
    labels = [
        f"{n} ({100 * n / served[c]:.0f}%)" if served[c] else str(n) for c, n in zip(categories, counts, strict=True)
    ]
    right.bar_label(bars, labels=labels, fontsize=8, padding=2)
    right.set_ylim(0, max([*counts, 1]) * 1.25)
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("Sent home for materials (visits)")
    right.set_xlabel("Category")
    right.set_title("One-trip breaches (share of those served)", fontsize=10)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=9)
    return figure


def _assistance(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(4.5)
    ax = figure.add_subplot()
    figure.suptitle("Assistance: minutes from request to a concierge accepting")
    minutes = [
        (a.accepted_at - a.requested_at).total_seconds() / 60 for a in record.assistance if a.accepted_at is not None
    ]
    unaccepted = sum(1 for a in record.assistance if a.accepted_at is None)
    if not minutes:
        _no_data(ax, f"no request was accepted ({len(record.assistance)} requested)")
        return figure
    top = max(max(minutes), ACCEPT_RULE_S / 60 + 1)
    width = max(0.25, math.ceil(top / 60 * 4) / 4)  # at most ~60 bins
    edges = [i * width for i in range(math.ceil(top / width) + 2)]
    _, _, patches = ax.hist([max(m, 0.0) for m in minutes], bins=edges, color=MAIN_COLOUR, edgecolor="white")
    for patch in patches:
        if patch.get_x() >= ACCEPT_RULE_S / 60:
            patch.set_facecolor(BAD_COLOUR)
    late = sum(1 for m in minutes if m * 60 > ACCEPT_RULE_S)
    ax.axvline(ACCEPT_RULE_S / 60, color="black", linestyle="--", linewidth=1.4, label="3-minute rule (escalation)")
    ax.set_title(
        f"{len(minutes):,} accepted, {late:,} after 3 min, {unaccepted:,} never accepted; "
        f"median {_percentile(minutes, 0.5):.1f} min, 90th percentile {_percentile(minutes, 0.9):.1f} min",
        fontsize=9,
    )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Minutes from request to acceptance")
    ax.set_ylabel("Requests")
    ax.set_xlim(left=0)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return figure


def _incident_end(record: DayRecord, incidents: Iterable[IncidentRecord], tz: ZoneInfo) -> datetime:
    """Where a bar still open ends: the last instant the record knows of."""
    instants = [record.started_at, *(s.at for s in record.snapshots)]
    if record.finished_at is not None:
        instants.append(record.finished_at)
    for incident in incidents:
        instants.extend(
            t
            for t in (
                incident.reported_at,
                incident.notified_at,
                incident.escalated_at,
                incident.acknowledged_at,
                incident.resolved_at,
            )
            if t is not None
        )
    return max(_local(t, tz) for t in instants)


def _incidents(record: DayRecord, tz: ZoneInfo) -> Figure:
    incidents = sorted(record.incidents, key=lambda i: _local(i.reported_at, tz))
    shown = incidents[:MAX_INCIDENT_ROWS]
    figure = _figure(max(3.5, 1.6 + 0.32 * len(shown)))
    ax = figure.add_subplot()
    figure.suptitle("Incidents from report to resolution")
    if not shown:
        _no_data(ax, "no incident was reported")
        return figure
    end = _num(_incident_end(record, incidents, tz), tz)
    labels = []
    for row, incident in enumerate(shown):
        start = _num(incident.reported_at, tz)
        reached = [t for t in (incident.notified_at, incident.escalated_at) if t is not None]
        middle = min((_num(t, tz) for t in reached), default=None)
        finish = _num(incident.resolved_at, tz) if incident.resolved_at is not None else None
        stop = finish if finish is not None else end
        first_leg = middle if middle is not None else stop
        ax.barh(row, max(first_leg - start, 1e-5), left=start, height=0.55, color="#ffb74d")
        if stop > first_leg:
            ax.barh(
                row,
                stop - first_leg,
                left=first_leg,
                height=0.55,
                color=OK_COLOUR if finish is not None else "#e0e0e0",
                hatch=None if finish is not None else "//",
                edgecolor="white" if finish is not None else MUTED_COLOUR,
            )
        for instant, marker, colour in (
            (incident.notified_at, "o", "black"),
            (incident.acknowledged_at, "D", "#6a1b9a"),
            (incident.escalated_at, "^", BAD_COLOUR),
        ):
            if instant is not None:
                ax.plot(_num(instant, tz), row, marker=marker, color=colour, markersize=6, linestyle="none")
        took = (stop - start) * 24 * 60
        note = f"{took:.0f} min" if finish is not None else "not resolved"
        if incident.resolution:
            note += f" · {_short(incident.resolution, 20)}"
        ax.text(stop, row, f"  {note}", va="center", fontsize=8)
        labels.append(f"{_short(incident.kind, 14)} · {_short(incident.incident_id, 10)}")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    span = max(end - _num(shown[0].reported_at, tz), 1 / 24)
    ax.set_xlim(_num(shown[0].reported_at, tz) - span * 0.02, end + span * 0.15)
    _time_axis(ax, tz)
    handles = [
        Patch(color="#ffb74d", label="reported → owner paged / escalated"),
        Patch(color=OK_COLOUR, label="→ resolved"),
        Patch(facecolor="#e0e0e0", edgecolor=MUTED_COLOUR, hatch="//", label="still open"),
        Line2D([], [], marker="o", color="black", linestyle="none", label="owner notified"),
        Line2D([], [], marker="D", color="#6a1b9a", linestyle="none", label="acknowledged"),
        Line2D([], [], marker="^", color=BAD_COLOUR, linestyle="none", label="escalated to ops"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if len(incidents) > len(shown):
        ax.set_title(f"the first {len(shown)} of {len(incidents)} incidents", fontsize=9)
    return figure


def _loans_stock(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(6)
    figure.suptitle("Lending box and consumables through the day")
    snapshots = record.snapshots
    if len(snapshots) < 2:
        _no_data(figure.add_subplot(), _too_few(snapshots))
        return figure
    top, bottom = figure.subplots(2, 1, sharex=True)
    times = _times(snapshots, tz)
    top.step(times, [s.loans_out for s in snapshots], where="post", color=MAIN_COLOUR, linewidth=1.8)
    top.set_ylabel("Units lent out")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylim(bottom=0)
    top.set_title("Loans out", fontsize=10)
    skus = sorted({sku for s in snapshots for sku in s.stock})
    if skus:
        for i, sku in enumerate(skus):
            values = [s.stock.get(sku) for s in snapshots]
            bottom.step(
                times,
                [math.nan if v is None else v for v in values],
                where="post",
                color=matplotlib.colormaps["tab10"](i % 10),
                label=_short(sku, 22),
                linewidth=1.5,
            )
        bottom.axhline(0, color=BAD_COLOUR, linestyle="--", linewidth=1)
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        bottom.set_ylim(bottom=-0.5)
    else:
        _no_data(bottom, "no consumable stock counts")
    bottom.set_ylabel("Units left")
    bottom.set_title("Consumable stock", fontsize=10)
    if times[-1] > times[0]:
        bottom.set_xlim(times[0], times[-1])
    _time_axis(bottom, tz)
    return figure


def _rate_bars(
    ax: Axes, groups: Sequence[dict[str, object]], names: Callable[[str], str], colours: Sequence[str]
) -> None:
    rates = [100 * (_number(g.get("satisfaction_rate")) or 0.0) for g in groups]
    labels = [names(str(g.get("group"))) for g in groups]
    rows = list(range(len(groups)))
    bars = ax.barh(rows, rates, color=colours, height=0.7)
    notes = []
    for g, rate in zip(groups, rates, strict=True):
        rank = _number(g.get("rank"))
        rated = int(_number(g.get("rated")) or 0)
        notes.append(f"{rate:.0f}%  #{rank:.0f}  n={rated}" if rank is not None else f"{rate:.0f}%  n={rated}")
    ax.bar_label(bars, labels=notes, fontsize=7, padding=2)
    ax.set_yticks(rows, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 135)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("Satisfaction rate (% rated 4-5)")
    ax.grid(axis="y", visible=False)


def _satisfaction(record: DayRecord, tz: ZoneInfo) -> Figure:
    windows = _rated_groups(record.satisfaction_by_window)
    categories = _rated_groups(record.satisfaction_by_category)
    ranking = sorted(
        (w for w in _groups(record.rankings) if _number(w.get("satisfaction_rate")) is not None),
        key=lambda w: (_number(w.get("rank")) or math.inf, str(w.get("window_id"))),
    )
    title = "Satisfaction by window and category, and the month's window ranking"
    if not (windows or categories or ranking):
        figure = _figure(4)
        _no_data(figure.add_subplot(), "nothing was rated")
        figure.suptitle(title)
        return figure
    figure = _figure(10)
    figure.suptitle(title)
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 2])
    windows_ax, categories_ax = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    ranking_ax = figure.add_subplot(grid[1, :])
    targets = _targets(record)

    windows_ax.set_title("Windows: the best and the worst", fontsize=10)
    if windows:
        if len(windows) > 2 * WINDOWS_EACH_END:
            shown = windows[:WINDOWS_EACH_END] + windows[-WINDOWS_EACH_END:]
            colours = [OK_COLOUR] * WINDOWS_EACH_END + [BAD_COLOUR] * WINDOWS_EACH_END
            windows_ax.axhline(WINDOWS_EACH_END - 0.5, color="black", linewidth=0.8, linestyle=":")
        else:
            shown, colours = windows, [MAIN_COLOUR] * len(windows)
        _rate_bars(windows_ax, shown, lambda g: _short(g, 14), colours)
        windows_ax.set_ylabel("Window")
        if len(windows) > len(shown):
            windows_ax.set_title(f"Windows: the best and the worst {WINDOWS_EACH_END} of {len(windows)}", fontsize=10)
    else:
        _no_data(windows_ax, "no window was rated")

    categories_ax.set_title("Categories", fontsize=10)
    if categories:
        _rate_bars(categories_ax, categories, lambda g: _label(g, targets, 18), [MAIN_COLOUR] * len(categories))
        categories_ax.set_ylabel("Category")
    else:
        _no_data(categories_ax, "no category was rated")

    month = record.rankings.get("month")
    ranking_ax.set_title(f"Monthly ranking{f' ({month})' if month else ''}", fontsize=10)
    if ranking:
        xs = list(range(len(ranking)))
        rates = [100 * (_number(w.get("satisfaction_rate")) or 0.0) for w in ranking]
        colours = [
            "#7f0000" if w.get("last_two_months_running") else BAD_COLOUR if w.get("last") else MAIN_COLOUR
            for w in ranking
        ]
        ranking_ax.bar(xs, rates, color=colours)
        ranking_ax.set_xticks(xs, [_short(str(w.get("window_id")), 8) for w in ranking], rotation=90, fontsize=7)
        low = min(rates)
        ranking_ax.set_ylim(max(0.0, low - 10), 102)
        ranking_ax.set_ylabel("Satisfaction rate (%)")
        ranking_ax.set_xlabel("Window, by rank (best on the left)")
        ranking_ax.legend(
            handles=[
                Patch(color=MAIN_COLOUR, label="ranked"),
                Patch(color=BAD_COLOUR, label="last this month"),
                Patch(color="#7f0000", label="last two months running"),
            ],
            loc="upper right",
            fontsize=8,
            frameon=True,
        )
    else:
        _no_data(ranking_ax, "no ranking for the month")
    return figure


def _complaints(record: DayRecord, tz: ZoneInfo) -> Figure:
    figure = _figure(4.5)
    ax = figure.add_subplot()
    figure.suptitle("Complaint cases by stage")
    stages = [*COMPLAINT_STAGES, *sorted(set(record.complaints_by_status) - set(COMPLAINT_STAGES))]
    counts = [record.complaints_by_status.get(stage, 0) for stage in stages]
    if not any(counts):
        _no_data(ax, "no complaint case")
        return figure
    colours = [OK_COLOUR if stage == "closed" else "#ef6c00" for stage in stages]
    bars = ax.bar([stage.replace("_", " ") for stage in stages], counts, color=colours)
    ax.bar_label(bars, fontsize=9, padding=2)
    ax.set_ylim(0, max(counts) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Stage the case has reached")
    ax.set_ylabel("Cases")
    return figure


@dataclass(frozen=True)
class Chart:
    name: str
    draw: Callable[[DayRecord, ZoneInfo], Figure]
    caption: str


CHARTS = (
    Chart(
        "wait_by_hour",
        _wait_by_hour,
        "Mean wait from ticket to service for the tickets issued in each hour, per category: red bars above "
        "the dashed line are the hours a category missed its target wait.",
    ),
    Chart(
        "queue_lengths",
        _queue_lengths,
        "Tickets waiting in each category through the day (stacked), with everyone in the hall as the black "
        "line: look for the morning build-up, the lunch bulge, and every queue draining by closing time.",
    ),
    Chart(
        "windows_open",
        _windows_open,
        "Windows open in the whole hall and for the least-covered category: the lower line dips while staff "
        "take lunch in turns, and must never touch the red zero line.",
    ),
    Chart(
        "service_level",
        _service_level,
        "The share of started tickets served within their category's target wait, and the visitors sent home "
        "for missing materials (one-trip breaches): short blue bars and tall red ones mark the weak categories.",
    ),
    Chart(
        "assistance_accept",
        _assistance,
        "Minutes from an assistance request to a concierge accepting it: the red bars right of the dashed "
        "3-minute line are the requests the rule escalated.",
    ),
    Chart(
        "incidents",
        _incidents,
        "Each car-park incident from the guard's report through paging the owner (or escalating) to its "
        "resolution: look for long bars, red escalation marks and hatched ones never resolved.",
    ),
    Chart(
        "loans_stock",
        _loans_stock,
        "Lending-box units out and consumables left through the day: look for loans not coming back by "
        "closing and stock running down to zero.",
    ),
    Chart(
        "satisfaction",
        _satisfaction,
        "Satisfaction rates (ratings of 4 or 5) of the best and worst windows and of each category, with "
        "ranks and counts, and the month's ranking with the last place in red.",
    ),
    Chart(
        "complaints",
        _complaints,
        "Complaint cases by the stage they have reached: cases piling up before 'closed' are still waiting "
        "on a rectification or a follow-up call.",
    ),
)
CHART_NAMES = tuple(chart.name for chart in CHARTS)


def _failed(name: str, error: Exception) -> Figure:
    """A chart the record could not be drawn into: the report still opens, and says so."""
    figure = _figure(3)
    ax = figure.add_subplot()
    _no_data(ax, f"could not be drawn ({type(error).__name__}: {_short(str(error), 80)})")
    figure.suptitle(name)
    return figure


def _draw(chart: Chart, record: DayRecord, tz: ZoneInfo) -> Figure:
    try:
        return chart.draw(record, tz)
    except Exception as error:  # one odd payload must not cost the whole report
        return _failed(chart.name, error)


def _chart_png(chart: Chart, record: DayRecord, tz: ZoneInfo) -> tuple[bytes, str | None]:
    """The chart as a PNG, and why it could not be drawn when it could not (drawing included)."""
    try:
        figure = chart.draw(record, tz)
        try:
            return _png(figure), None
        finally:
            figure.clear()
    except Exception as error:  # one odd payload must not cost the whole report
        return _png(_failed(chart.name, error)), f"{type(error).__name__}: {error}"


def charts(record: DayRecord, *, timezone: str = HALL_TIMEZONE) -> dict[str, Figure]:
    """The report's charts, by name, in its order (Agg figures, not registered with pyplot)."""
    tz = ZoneInfo(timezone)
    with _style():
        return {chart.name: _draw(chart, record, tz) for chart in CHARTS}


# --- the page --------------------------------------------------------------------------------------

CSS = """
body { font-family: "Helvetica Neue", Arial, "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 0 auto; max-width: 1040px; padding: 0 20px 40px; color: #212121; background: #fafafa; }
header { border-bottom: 3px solid #b8860b; padding: 18px 0 10px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #e0e0e0; padding-bottom: 4px; }
.meta { color: #555; margin: 4px 0; }
.badge { display: inline-block; padding: 6px 14px; border-radius: 4px; font-weight: bold; margin-top: 8px; }
.badge.ok { background: #e8f5e9; color: #1b5e20; border: 1px solid #66bb6a; }
.badge.fail { background: #ffebee; color: #b71c1c; border: 1px solid #ef5350; }
table { border-collapse: collapse; width: 100%; font-size: 14px; background: #fff; }
th, td { border: 1px solid #e0e0e0; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.mark { text-align: center; font-weight: bold; width: 3em; }
tr.pass td.mark { color: #2e7d32; }
tr.fail td { background: #ffebee; }
tr.fail td.mark { color: #c62828; }
table.kv td:first-child { font-family: monospace; width: 40%; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; }
.tile { background: #fff; border: 1px solid #e0e0e0; border-radius: 4px; padding: 10px 12px; }
.tile .label { font-size: 13px; color: #616161; }
.tile .value { font-size: 24px; font-weight: bold; margin: 2px 0; }
.tile .note { font-size: 12px; color: #757575; }
figure { margin: 0 0 26px; background: #fff; border: 1px solid #e0e0e0; padding: 10px; }
figure img { width: 100%; max-width: 1000px; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 14px; color: #424242; margin-top: 6px; }
.empty { color: #757575; font-style: italic; }
footer { color: #9e9e9e; font-size: 12px; margin-top: 30px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _flatten(value: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, Mapping):
        if not value and prefix:
            yield prefix, "{}"
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _shown(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _header(record: DayRecord, tz: ZoneInfo) -> str:
    start = _local(record.started_at, tz)
    span = f"{start:%H:%M}"
    if record.finished_at is not None:
        span += f"–{_local(record.finished_at, tz):%H:%M}"
    failed = [check for check in record.checks if not check.ok]
    if not record.checks:
        badge = '<p class="badge ok">Balanced: no checks were recorded</p>'
    elif record.balanced:
        badge = f'<p class="badge ok">✓ The books balanced: all {len(record.checks)} checks passed</p>'
    else:
        failing = f"{len(failed)} of {len(record.checks)} checks failed"
        badge = f'<p class="badge fail">✗ The books did not balance: {failing}</p>'
    return (
        f"<header><h1>Golden Key Hall: a simulated day, {_e(record.day)}</h1>"
        f'<p class="meta"><strong>{record.visitors:,}</strong> visitors · speed <strong>{record.speed:g}×</strong>'
        f" · real time taken <strong>{_e(_duration(record.real_seconds))}</strong>"
        f" · simulated {_e(span)} ({_e(tz.key)}) · seed {record.seed}</p>{badge}</header>"
    )


def _checks_table(record: DayRecord) -> str:
    if not record.checks:
        return '<p class="empty">No checks were recorded.</p>'
    rows = "".join(
        f'<tr class="{"pass" if check.ok else "fail"}"><td>{_e(check.name)}</td>'
        f'<td class="mark">{"✓" if check.ok else "✗"}</td><td>{_e(check.expected)}</td><td>{_e(check.found)}</td></tr>'
        for check in record.checks
    )
    return (
        '<table class="checks"><thead><tr><th>Check</th><th>OK</th><th>Expected</th><th>Found</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _headline_tiles(record: DayRecord) -> str:
    tiles = "".join(
        f'<div class="tile"><div class="label">{_e(h.label)}</div><div class="value">{_e(h.value)}</div>'
        f'<div class="note">{_e(h.note)}</div></div>'
        for h in headlines(record)
    )
    return f'<div class="tiles">{tiles}</div>'


def _figures_table(record: DayRecord) -> str:
    items = list(_flatten(record.figures))
    if not items:
        return '<p class="empty">No figures were recorded.</p>'
    rows = "".join(f"<tr><td>{_e(key)}</td><td>{_e(_shown(value))}</td></tr>" for key, value in items)
    return f'<table class="kv"><thead><tr><th>Figure</th><th>Value</th></tr></thead><tbody>{rows}</tbody></table>'


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


def render(record: DayRecord, directory: Path, *, timezone: str = HALL_TIMEZONE) -> Path:
    """Write `directory/report.html` and `directory/charts/<name>.png`; return the page's path."""
    tz = ZoneInfo(timezone)
    chart_dir = directory / "charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    with _style():
        for chart in CHARTS:
            png, failure = _chart_png(chart, record, tz)
            (chart_dir / f"{chart.name}.png").write_bytes(png)
            data = base64.b64encode(png).decode("ascii")
            caption = chart.caption if failure is None else f"This chart could not be drawn ({failure})."
            sections.append(
                f'<figure id="{chart.name}"><img alt="{_e(chart.name.replace("_", " "))}" '
                f'src="data:image/png;base64,{data}"><figcaption>{_e(caption)}</figcaption></figure>'
            )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Golden Key Hall · {_e(record.day)}</title><style>{CSS}</style></head><body>"
        f"{_header(record, tz)}"
        f"<section><h2>Balance checks</h2>{_checks_table(record)}</section>"
        f"<section><h2>Headline figures</h2>{_headline_tiles(record)}</section>"
        f"<section><h2>The run's figures</h2>{_figures_table(record)}</section>"
        f"<section><h2>Charts</h2>{''.join(sections)}</section>"
        "<footer>Drawn from the day's record alone; this page needs nothing else to open.</footer>"
        "</body></html>\n"
    )
    path = directory / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
