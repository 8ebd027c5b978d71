"""The coverage document that the lunch rule is decided on, without Kafka or MongoDB: what it
counts open, and that it never counts open a window that is not, whatever interleaves or dies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldenkey.kit import Conflict
from goldenkey.queue.domain import LEAVING_GRACE, Coverage, Window

T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 in Xi'an: lunch
SERVES = {"W51": ["Z", "P"], "W52": ["Z", "P"], "W57": ["P"]}


def window(window_id: str, state: str = "open", version: int = 1) -> Window:
    return Window(id=window_id, categories=SERVES[window_id], state=state, version=version)  # type: ignore[arg-type]


def covered(*windows: Window) -> Coverage:
    coverage = Coverage(id="coverage")
    coverage.mend(windows)
    return coverage


def test_of_two_pauses_for_the_last_two_windows_of_a_category_the_second_is_refused() -> None:
    coverage = covered(window("W51"), window("W52"), window("W57"))
    assert coverage.open_for() == {"Z": ["W51", "W52"], "P": ["W51", "W52", "W57"]}
    coverage.leave(window("W51"), T0, lunch_rule=True)
    with pytest.raises(Conflict, match="category Z with no open window"):
        coverage.leave(window("W52"), T0, lunch_rule=True)
    assert coverage.open_for() == {"Z": ["W52"], "P": ["W52", "W57"]}
    coverage.leave(window("W52"), T0, lunch_rule=False)  # ops force it: Z has a gap
    assert coverage.open_for() == {"P": ["W57"]}


def test_a_window_counts_open_from_its_own_write_and_out_from_the_decision_to_pause_it() -> None:
    coverage = covered(window("W51", "closed", 1), window("W52"))
    coverage.enter(window("W51", "open", 2))
    assert coverage.open_for()["Z"] == ["W51", "W52"]
    pausing = window("W51", "open", 2)
    coverage.leave(pausing, T0, lunch_rule=True)
    coverage.enter(window("W51", "open", 2))  # a late write of the open that the pause has read
    assert coverage.open_for()["Z"] == ["W52"]
    coverage.enter(window("W51", "open", 4))  # paused at 3, resumed at 4
    assert coverage.open_for()["Z"] == ["W51", "W52"]


def test_mending_trusts_no_read_older_than_what_the_document_knows() -> None:
    coverage = covered(window("W51", "closed", 1))
    coverage.enter(window("W51", "open", 2))
    coverage.mend([window("W51", "closed", 1)])  # read before the open
    assert coverage.open_for() == {"Z": ["W51"], "P": ["W51"]}
    coverage.mend([window("W51", "paused", 3)])  # a pause whose write here was lost... landed
    assert coverage.open_for() == {}
    coverage.mend([window("W51", "open", 4)])  # a resume whose write here was lost
    assert coverage.open_for() == {"Z": ["W51"], "P": ["W51"]}


def test_a_pause_whose_window_write_was_lost_counts_the_window_open_again_after_the_grace() -> None:
    coverage = covered(window("W51"), window("W52"))
    coverage.leave(window("W51"), T0, lunch_rule=True)
    still_open = [window("W51"), window("W52")]
    coverage.mend(still_open)
    assert coverage.open_for()["Z"] == ["W52"], "its write may still be on its way"
    assert coverage.left_open(still_open, T0 + LEAVING_GRACE - timedelta(seconds=1)) == []
    assert coverage.left_open(still_open, T0 + LEAVING_GRACE) == ["W51"]
    coverage.mend([window("W51", "paused", 2)])
    assert coverage.left_open([window("W51", "paused", 2)], T0 + LEAVING_GRACE) == []
    assert coverage.windows["W51"].leaving_since is None, "landed: nothing more to wait for"


# --- the protocol, interleaved and interrupted -----------------------------------------------------
#
# The service's steps (QueueService._coming_in, _going_out, watch_coverage) as small processes over
# an in-memory hall: each `yield` is a point where another process may run, or this one may die.
# A write of one document is atomic, as on the server.


class Hall:
    def __init__(self) -> None:
        self.windows = {w: window(w) for w in SERVES}
        self.coverage = covered(*self.windows.values())
        self.now = T0

    def read(self, window_id: str) -> Window:
        return self.windows[window_id].model_copy(deep=True)

    def write(self, changed: Window, *, if_version: int | None = None) -> Window | None:
        current = self.windows[changed.id]
        if if_version is not None and current.version != if_version:
            return None
        changed.version = current.version + 1
        self.windows[changed.id] = changed.model_copy(deep=True)
        return self.read(changed.id)


def coming_in(hall: Hall, window_id: str, resume: bool) -> Iterator[None]:
    """Open or resume: the window's write (a Repository.update), then the coverage's."""
    changed = hall.read(window_id)
    try:
        changed.resume(hall.now) if resume else changed.open("s-1", hall.now)
    except Conflict:
        return
    written = hall.write(changed)
    assert written is not None
    yield
    hall.coverage.enter(written)


def going_out(hall: Hall, window_id: str, close: bool, lunch_rule: bool) -> Iterator[None]:
    """Pause or close: read the window, decide on the coverage, write the window if unchanged."""
    read = hall.read(window_id)
    try:
        read.can_close() if close else read.can_pause()
    except Conflict:
        return
    yield
    try:
        hall.coverage.leave(read, hall.now, lunch_rule=lunch_rule)
    except Conflict:
        return
    yield
    read.close(hall.now) if close else read.pause("lunch", hall.now)
    hall.write(read, if_version=read.version)


def mending(hall: Hall) -> Iterator[None]:
    """The watchdog: read the windows, mend, and count back in those whose pause was lost."""
    windows = [hall.read(w) for w in SERVES]
    yield
    hall.coverage.mend(windows)
    stuck = hall.coverage.left_open(windows, hall.now)
    for window_id in stuck:
        yield
        touched = hall.write(hall.read(window_id))
        assert touched is not None
        yield
        if touched.state == "open":
            hall.coverage.enter(touched)


def never_counted_open_unless_open(hall: Hall) -> None:
    for window_id, cover in hall.coverage.windows.items():
        assert not cover.open or hall.windows[window_id].state == "open", (window_id, hall.windows[window_id])


def every_category_covered(hall: Hall) -> None:
    for category in ("Z", "P"):
        assert any(w.state == "open" and category in w.categories for w in hall.windows.values()), category


def run(data: st.DataObject, hall: Hall, *, lunch_only: bool) -> list[Iterator[None]]:
    running: list[Iterator[None]] = []
    for _ in range(data.draw(st.integers(5, 40))):
        action = data.draw(st.sampled_from(["start", "start", "step", "step", "step", "die", "tick"]))
        if action == "start":
            window_id = data.draw(st.sampled_from(sorted(SERVES)))
            kind = data.draw(st.sampled_from(["open", "resume", "pause", "mend"] + ([] if lunch_only else ["close"])))
            forced = not lunch_only and data.draw(st.booleans())
            running.append(
                mending(hall)
                if kind == "mend"
                else coming_in(hall, window_id, resume=kind == "resume")
                if kind in ("open", "resume")
                else going_out(hall, window_id, close=kind == "close", lunch_rule=not forced)
            )
        elif action in ("step", "die") and running:
            index = data.draw(st.integers(0, len(running) - 1))
            if action == "die" or next(running[index], StopIteration) is StopIteration:
                running.pop(index)  # it died, or it is done
        elif action == "tick":
            hall.now += data.draw(st.sampled_from([timedelta(seconds=5), LEAVING_GRACE]))
        never_counted_open_unless_open(hall)
        if lunch_only:
            every_category_covered(hall)
    return running


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_whatever_interleaves_or_dies_the_coverage_never_counts_open_a_window_that_is_not(
    data: st.DataObject,
) -> None:
    hall = Hall()
    run(data, hall, lunch_only=False)
    # Everything in flight died; once the grace has passed, one watchdog round puts it right.
    hall.now += LEAVING_GRACE
    for _ in mending(hall):
        pass
    never_counted_open_unless_open(hall)
    assert {w for w, c in hall.coverage.windows.items() if c.open} == {
        w for w, found in hall.windows.items() if found.state == "open"
    }, "self-healing: the coverage counts open exactly the open windows"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_whatever_interleaves_or_dies_lunch_in_turns_keeps_every_category_covered(data: st.DataObject) -> None:
    hall = Hall()
    running = run(data, hall, lunch_only=True)
    for process in running:  # and what was in flight finishes
        for _ in process:
            every_category_covered(hall)
    every_category_covered(hall)
