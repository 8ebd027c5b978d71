from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.native.devstack import Part, Stack
from goldenkey.contracts import EVENTS, TOPICS


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[tuple[Stack, Part]]:
    """A database server of the test's own, on the H2 file backend (as `make up` runs it), for tests
    that stop and start it and expect their data back: the session's shared one must not restart."""
    stack = Stack.throwaway(tmp_path, durable=True)
    database = stack.database()
    database.start()
    try:
        yield stack, database
    finally:
        database.stop()


@pytest.fixture(autouse=True)
def forget_test_contracts() -> Iterator[None]:
    """Tests register throwaway event types (tests/widgets.py); the registry forgets them after."""
    events, topics = set(EVENTS), set(TOPICS)
    yield
    for added in set(EVENTS) - events:
        del EVENTS[added]
    for added in set(TOPICS) - topics:
        del TOPICS[added]
