"""Fixtures shared by every test: the real Kafka + MongoDB-protocol server the integration tests use.

Unless GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL point at running ones (docker compose,
say), one throwaway native stack (Apache Kafka in KRaft mode, mongo-java-server on its memory
backend) is started on free loopback ports for the whole test session, and removed afterwards.
Tests that need the database's data to survive a restart start their own H2-backed one
(the `durable` fixture of tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.native.devstack import Stack


@dataclass
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    stack: Stack | None
    """The throwaway stack, when the tests started one (tests that stop its database need it)."""


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    bootstrap, mongo = os.environ.get("GOLDENKEY_KAFKA_BOOTSTRAP"), os.environ.get("GOLDENKEY_MONGODB_URL")
    if bootstrap and mongo:
        yield Infra(bootstrap, mongo, None)
        return
    root = Path(tempfile.mkdtemp(prefix="goldenkey-stack-"))
    stack = Stack.throwaway(root)
    stack.up()
    try:
        yield Infra(stack.kafka_bootstrap, stack.mongodb_url, stack)
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
