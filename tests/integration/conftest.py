from __future__ import annotations

from collections.abc import Iterator

import pytest

from goldenkey.contracts import EVENTS, TOPICS


@pytest.fixture(autouse=True)
def forget_test_contracts() -> Iterator[None]:
    """Tests register throwaway event types (tests/widgets.py); the registry forgets them after."""
    events, topics = set(EVENTS), set(TOPICS)
    yield
    for added in set(EVENTS) - events:
        del EVENTS[added]
    for added in set(TOPICS) - topics:
        del TOPICS[added]
