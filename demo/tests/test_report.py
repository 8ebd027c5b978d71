"""The day's report: one self-contained page and a PNG per chart, from a synthetic record."""

from __future__ import annotations

import base64
import random
import re
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib
import pytest
from matplotlib.text import Text

from goldenkey.demo import report
from goldenkey.demo.record import (
    AssistanceRecord,
    Check,
    DayRecord,
    IncidentRecord,
    Snapshot,
    Target,
    Visit,
)
from goldenkey.demo.report import CHART_NAMES, charts, cjk_font, headlines, render

HALL = ZoneInfo("Asia/Shanghai")
OPEN = datetime(2026, 3, 16, 9, 0, tzinfo=HALL)
PNG = b"\x89PNG\r\n\x1a\n"
CATEGORIES = [("A", "Business start-up", 20), ("C", "Social insurance and medical insurance", 15)]


def _levels(rng: random.Random, n: int) -> dict[str, int]:
    scores = rng.choices([5, 4, 3, 2, 1], weights=[60, 25, 8, 4, 3], k=n)
    return {str(level): scores.count(level) for level in (5, 4, 3, 2, 1)}


def _figures(group: str, levels: dict[str, int]) -> dict[str, object]:
    rated = sum(levels.values())
    return {
        "group": group,
        "levels": levels,
        "rated": rated,
        "excluded": 0,
        "satisfaction_rate": round((levels["5"] + levels["4"]) / rated, 4) if rated else None,
        "bad": levels["2"] + levels["1"],
        "bad_rate": round((levels["2"] + levels["1"]) / rated, 4) if rated else None,
        "cases": levels["2"] + levels["1"],
        "on_time_rate": 1.0,
        "rectified_rate": 0.5,
        "followed_up_rate": None,
        "rank": None,
    }


def _ranked(groups: list[dict[str, object]]) -> list[dict[str, object]]:
    rates = sorted((g["satisfaction_rate"] for g in groups if g["satisfaction_rate"] is not None), reverse=True)
    for group in groups:
        rate = group["satisfaction_rate"]
        group["rank"] = None if rate is None else rates.index(rate) + 1
    return groups


def synthetic_day(
    *,
    visits: int = 40,
    categories: list[tuple[str, str, int]] = CATEGORIES,
    windows: int = 20,
    snapshot_every: timedelta = timedelta(minutes=15),
    assistance: int = 3,
    incidents: int = 2,
    failing_check: bool = True,
    seed: int = 7,
) -> DayRecord:
    """A day with some of everything; the same record for the same arguments."""
    rng = random.Random(seed)
    codes = [code for code, _, _ in categories]
    target_s = {code: minutes * 60 for code, _, minutes in categories}
    window_ids = [f"W{n:02d}" for n in range(1, windows + 1)]
    day_visits = []
    for n in range(visits):
        category = codes[n % len(codes)]
        issued = OPEN + timedelta(seconds=rng.uniform(0, 7.5 * 3600))
        outcome = rng.choices(
            ["done", "needs_materials", "referred", "no_show", "cancelled"], weights=[80, 7, 3, 7, 3]
        )[0]
        visit = Visit(
            ticket_id=f"t-{n:05d}",
            number=f"{category}{n:03d}",
            category=category,
            item_code=f"{category}001",
            by_car=n % 5 == 0,
            issued_at=issued,
            outcome=outcome,
        )
        if outcome in {"done", "needs_materials", "referred"}:
            wait = rng.uniform(0, 2 * target_s[category])
            service = rng.uniform(300, 1200)
            visit.called_at = issued + timedelta(seconds=wait - 30)
            visit.started_at = issued + timedelta(seconds=wait)
            visit.finished_at = visit.started_at + timedelta(seconds=service)
            visit.window_id = window_ids[n % windows]
            visit.wait_s, visit.service_s = wait, service
            visit.score = rng.choice([None, 5, 5, 4, 3, 2])
        elif outcome == "no_show":
            visit.called_at = issued + timedelta(minutes=10)
        day_visits.append(visit)

    close = OPEN + timedelta(hours=8)
    snapshots = []
    at, step = OPEN, 0
    while at <= close:
        lunch = OPEN + timedelta(hours=2, minutes=30) <= at < OPEN + timedelta(hours=4, minutes=30)
        snapshots.append(
            Snapshot(
                at=at,
                in_hall=rng.randint(5, 60),
                waiting={code: rng.randint(0, 20) for code in codes},
                windows_open=windows - (windows // 3 if lunch else 0),
                open_by_category={code: (1 if lunch else 3) + i % 2 for i, code in enumerate(codes)},
                loans_out=min(step, 6),
                stock={"candy": max(0, 50 - 2 * step), "band-aid": 30 - step // 3, "针线包": 10},
                assistance_open=rng.randint(0, 3),
                incidents_open=rng.randint(0, 1),
                occupied=rng.randint(20, 120),
                events_per_s=rng.uniform(50, 500),
            )
        )
        at, step = at + snapshot_every, step + 1

    day_assistance = []
    for n in range(assistance):
        requested = OPEN + timedelta(minutes=20 + n * (400 / max(assistance, 1)))
        accept = [60.0, 250.0, None][n % 3] if assistance <= 3 else None if rng.random() < 0.1 else rng.uniform(5, 400)
        day_assistance.append(
            AssistanceRecord(
                assistance_id=f"as-{n:04d}",
                kind=["wheelchair", "vehicle_help", "guide"][n % 3],
                requested_at=requested,
                accepted_at=None if accept is None else requested + timedelta(seconds=accept),
                completed_at=None if accept is None else requested + timedelta(seconds=accept + 600),
                concierge_id=None if accept is None else f"c-{n % 5 + 1}",
                escalations=1 if accept is None or accept > 180 else 0,
            )
        )

    day_incidents = []
    for n in range(incidents):
        reported = OPEN + timedelta(minutes=45 + n * (420 / max(incidents, 1)))
        escalated = n % 2 == 1
        day_incidents.append(
            IncidentRecord(
                incident_id=f"inc-{n:04d}",
                kind=["flat_tyre", "lights_on", "blocking"][n % 3],
                ticket_id=None if escalated else f"t-{n:05d}",
                reported_at=reported,
                notified_at=None if escalated else reported + timedelta(minutes=2),
                escalated_at=reported + timedelta(minutes=5) if escalated else None,
                acknowledged_at=None if escalated else reported + timedelta(minutes=6),
                resolved_at=None if escalated and n % 4 == 1 else reported + timedelta(minutes=35),
                resolution=None if escalated and n % 4 == 1 else "owner_fixed",
            )
        )

    by_window = _ranked([_figures(w, _levels(rng, rng.randint(0, 30))) for w in window_ids])
    by_category = _ranked(
        [_figures(code, _levels(rng, rng.randint(10, 60))) for code in codes] + [_figures("社保医保", _levels(rng, 12))]
    )
    ranked = [g for g in by_window if g["rank"] is not None]
    worst = max(g["rank"] for g in ranked)
    rankings = [
        {
            "window_id": g["group"],
            "rank": g["rank"],
            "satisfaction_rate": g["satisfaction_rate"],
            "rated": g["rated"],
            "last": g["rank"] == worst,
            "last_two_months_running": g["rank"] == worst and g["group"] == ranked[-1]["group"],
        }
        for g in ranked
    ]
    served = sum(1 for v in day_visits if v.outcome in {"done", "needs_materials", "referred"})
    return DayRecord(
        day="2026-03-16",
        seed=seed,
        visitors=visits,
        speed=120.0,
        real_seconds=241.5,
        started_at=OPEN,
        finished_at=close,
        targets=[Target(category=code, name_en=name, target_wait_s=target_s[code]) for code, name, _ in categories],
        snapshots=snapshots,
        visits=day_visits,
        assistance=day_assistance,
        incidents=day_incidents,
        stats_today={"issued": visits, "served": served},
        satisfaction_by_window={"group_by": "window", "from": "2026-03-16", "to": "2026-03-16", "groups": by_window},
        satisfaction_by_category={
            "group_by": "category",
            "from": "2026-03-16",
            "to": "2026-03-16",
            "groups": by_category,
        },
        rankings={"month": "2026-03", "windows": rankings},
        complaints_by_status={"opened": 3, "verified": 2, "rectified": 1, "followed_up": 0, "closed": 4},
        checks=[
            Check(name="every ticket issued is known to the queue", ok=True, expected=str(visits), found=str(visits)),
            Check(name="served tickets", ok=True, expected=str(served), found=str(served)),
            Check(
                name="loans all returned",
                ok=not failing_check,
                expected="0 out",
                found="2 out" if failing_check else "0 out",
            ),
            Check(name="complaint cases opened for bad ratings", ok=True, expected="10", found="10"),
        ],
        figures={
            "events_per_s": 312.25,
            "events": 48211,
            "queue": {"cpu_s": 12.5, "rss_mb": 88.0},
            "feedback": {"cpu_s": 4.0, "rss_mb": 71.5},
            "note": "synthetic",
        },
    )


@pytest.fixture(scope="module")
def day() -> DayRecord:
    return synthetic_day()


@pytest.fixture(scope="module")
def rendered(day: DayRecord, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Chinese in the data (a category, a sku) included: not a word
        page = render(day, directory)
    return page, page.read_text(encoding="utf-8")


def _texts(figure: matplotlib.figure.Figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text)]


def test_render_writes_the_page_and_a_png_per_chart(rendered: tuple[Path, str]) -> None:
    page, _ = rendered
    assert page.name == "report.html"
    assert page.is_file()
    for name in CHART_NAMES:
        png = (page.parent / "charts" / f"{name}.png").read_bytes()
        assert png.startswith(PNG), name
        assert len(png) > 10_000, name


def test_the_page_opens_offline(rendered: tuple[Path, str]) -> None:
    page, text = rendered
    assert not re.search(r"https?://", text)
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert "<link" not in text.lower()
    assert "@import" not in text
    assert "url(" not in text
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(sources) == len(CHART_NAMES)
    for source, name in zip(sources, CHART_NAMES, strict=True):
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.removeprefix("data:image/png;base64,"), validate=True)
        assert png == (page.parent / "charts" / f"{name}.png").read_bytes()


def test_the_page_shows_the_failing_check_and_that_the_books_did_not_balance(
    day: DayRecord, rendered: tuple[Path, str]
) -> None:
    _, text = rendered
    assert not day.balanced
    assert re.search(
        r'<tr class="fail"><td>loans all returned</td><td class="mark">✗</td><td>0 out</td><td>2 out</td>', text
    )
    assert text.count('<tr class="fail">') == 1
    assert text.count('<tr class="pass">') == 3
    assert "The books did not balance: 1 of 4 checks failed" in text
    assert "The books balanced" not in text


def test_the_page_shows_a_balanced_day(tmp_path: Path) -> None:
    day = _bare().model_copy(update={"checks": synthetic_day(visits=4, failing_check=False).checks})
    assert day.balanced
    text = render(day, tmp_path).read_text(encoding="utf-8")
    assert "The books balanced: all 4 checks passed" in text
    assert text.count('<tr class="pass">') == 4
    assert '<tr class="fail">' not in text
    assert "✗" not in text


def test_the_page_has_the_header_the_headlines_and_the_figures(rendered: tuple[Path, str]) -> None:
    _, text = rendered
    assert "2026-03-16" in text
    assert "speed <strong>120×</strong>" in text
    assert "4 min 02 s" in text  # 241.5 s of real time
    for label in ("Visitors served", "No-shows", "Mean wait", "Service level", "One-trip breaches"):
        assert label in text
    assert "<td>queue.cpu_s</td><td>12.5</td>" in text
    assert "<td>events</td><td>48,211</td>" in text
    for name in CHART_NAMES:
        assert f'<figure id="{name}">' in text
    assert text.count("<figcaption>") == len(CHART_NAMES)
    assert "could not be drawn" not in text


def test_headlines_are_computed_from_the_record() -> None:
    at = OPEN + timedelta(hours=1)

    def visit(n: int, outcome: str, wait_min: float | None, score: int | None = None) -> Visit:
        started = None if wait_min is None else at + timedelta(minutes=wait_min)
        return Visit(
            ticket_id=f"t{n}",
            number=f"A{n:03d}",
            category="A",
            item_code="A001",
            issued_at=at,
            started_at=started,
            outcome=outcome,
            wait_s=None if wait_min is None else wait_min * 60,
            score=score,
        )

    day = DayRecord(
        day="2026-03-16",
        seed=1,
        visitors=5,
        speed=60,
        started_at=OPEN,
        targets=[Target(category="A", name_en="Business start-up", target_wait_s=1200)],
        visits=[
            visit(1, "done", 10, 5),
            visit(2, "done", 30, 2),
            visit(3, "needs_materials", 20, 4),
            visit(4, "no_show", None),
            visit(5, "cancelled", None),
        ],
        assistance=[
            AssistanceRecord(assistance_id="a1", kind="guide", requested_at=at, accepted_at=at + timedelta(minutes=1)),
            AssistanceRecord(assistance_id="a2", kind="guide", requested_at=at, accepted_at=at + timedelta(minutes=5)),
            AssistanceRecord(assistance_id="a3", kind="guide", requested_at=at),
        ],
        incidents=[
            IncidentRecord(incident_id="i1", kind="flat_tyre", reported_at=at, resolved_at=at + timedelta(minutes=30)),
            IncidentRecord(incident_id="i2", kind="lights_on", reported_at=at, escalated_at=at + timedelta(minutes=5)),
        ],
        satisfaction_by_window={"groups": [_figures("W01", {"5": 6, "4": 2, "3": 1, "2": 1, "1": 0})]},
        complaints_by_status={"opened": 1, "closed": 2},
    )
    figures = {h.label: (h.value, h.note) for h in headlines(day)}
    assert figures["Visitors served"] == ("3", "of 5 tickets issued")
    assert figures["No-shows"] == ("1", "1 cancelled")
    assert figures["Mean wait"][0] == "20.0 min"
    assert figures["Service level"] == ("66.7%", "served within target, of 3 started")
    assert figures["One-trip breaches"] == ("1", "33.3% of those served")
    assert figures["Assistance requests"] == ("3", "1 accepted after 3 min, 1 never accepted")
    assert figures["Mean accept time"] == ("3.0 min", "of 2 accepted")
    assert figures["Incidents"] == ("2", "1 escalated, 1 resolved")
    assert figures["Mean time to resolve"][0] == "30.0 min"
    assert figures["Ratings"] == ("3", "66.7% satisfied (4-5), as the visitors rated")
    assert figures["Satisfaction rate"] == ("80.0%", "feedback service, 10 window ratings")
    assert figures["Complaint cases"] == ("3", "1 not closed")


def _bare() -> DayRecord:
    return DayRecord(day="2026-03-16", seed=0, visitors=0, speed=60, started_at=OPEN)


def test_an_almost_empty_record_still_renders(tmp_path: Path) -> None:
    day = _bare()
    page = render(day, tmp_path)
    text = page.read_text(encoding="utf-8")
    assert "No checks were recorded" in text
    assert "No figures were recorded" in text
    assert text.count("data:image/png;base64,") == len(CHART_NAMES)
    for name in CHART_NAMES:
        png = (tmp_path / "charts" / f"{name}.png").read_bytes()
        assert png.startswith(PNG), name
        assert len(png) > 2_000, name
    for name, figure in charts(day).items():
        texts = _texts(figure)
        assert any(t.startswith("No data") for t in texts), name
        assert not any("could not be drawn" in t for t in texts), name


def test_every_chart_draws_the_full_record(day: DayRecord) -> None:
    drawn = charts(day)
    assert list(drawn) == list(CHART_NAMES)
    for name, figure in drawn.items():
        texts = _texts(figure)
        assert not any(t.startswith("No data") for t in texts), name
        assert figure.get_suptitle(), name
        assert figure.get_size_inches()[0] * figure.dpi == 1000


def test_odd_payloads_are_no_data_rather_than_an_error(tmp_path: Path) -> None:
    day = synthetic_day(visits=8).model_copy(
        update={
            "satisfaction_by_window": {"groups": "not a list"},
            "satisfaction_by_category": {"groups": [{"group": "A", "satisfaction_rate": "n/a"}, 3]},
            "rankings": {"month": "2026-03", "windows": [{"window_id": "W01"}]},
            "snapshots": [],
        }
    )
    drawn = charts(day)
    assert any(t.startswith("No data") for t in _texts(drawn["satisfaction"]))
    for name, figure in drawn.items():
        assert not any("could not be drawn" in t for t in _texts(figure)), name
    assert render(day, tmp_path).is_file()


def test_a_day_with_one_of_everything_draws_every_chart(tmp_path: Path) -> None:
    full = synthetic_day(visits=1, assistance=1, incidents=2)
    day = full.model_copy(
        update={
            "snapshots": full.snapshots[:1],
            "assistance": [full.assistance[0].model_copy(update={"accepted_at": None})],
            "incidents": [full.incidents[1]],  # escalated, never notified nor resolved
            "rankings": {},
            "complaints_by_status": {"opened": 1, "appealed": 2},
            "checks": [],
            "finished_at": None,
        }
    )
    text = render(day, tmp_path).read_text(encoding="utf-8")
    assert "could not be drawn" not in text
    assert "Balanced: no checks were recorded" in text


def test_a_chart_that_fails_is_reported_in_its_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(record: DayRecord, tz: ZoneInfo) -> matplotlib.figure.Figure:
        raise ValueError("a payload nobody expected")

    charts_ = list(report.CHARTS)
    charts_[1] = report.Chart(charts_[1].name, broken, charts_[1].caption)
    monkeypatch.setattr(report, "CHARTS", tuple(charts_))
    text = render(_bare(), tmp_path).read_text(encoding="utf-8")
    assert "This chart could not be drawn (ValueError: a payload nobody expected)." in text
    assert (tmp_path / "charts" / f"{CHART_NAMES[1]}.png").read_bytes().startswith(PNG)
    assert text.count("data:image/png;base64,") == len(CHART_NAMES)


def test_a_cjk_font_is_found_in_what_fc_list_prints() -> None:
    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    assert cjk_font(f"{dejavu}: DejaVu Sans\n") == "DejaVu Sans"
    assert cjk_font("") is None
    assert cjk_font("/nowhere/NotoSansCJK-Regular.ttc: Noto Sans CJK SC,Noto Sans CJK SC Regular\n") is None
