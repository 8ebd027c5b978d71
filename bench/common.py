"""What every benchmark shares: the stack it measures on."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.native import devstack

PARTS = {"FerretDB": "ferretdb", "Kafka": "kafka"}


@dataclass
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    kafka: str
    """What the broker is, as far as we know."""
    native: bool
    """A throwaway native stack (FerretDB on its SQLite backend)."""
    processes: dict[str, int] = field(default_factory=dict)
    """Pids of the broker's and the database's processes, when this machine runs them (CPU figures)."""


def start_stack() -> tuple[Infra, Callable[[], None]]:
    """The running stack GOLDENKEY_KAFKA_BOOTSTRAP and GOLDENKEY_MONGODB_URL name, or a throwaway
    native one; with the function that takes it down again."""
    bootstrap, mongo = os.environ.get("GOLDENKEY_KAFKA_BOOTSTRAP"), os.environ.get("GOLDENKEY_MONGODB_URL")
    if bootstrap and mongo:
        return Infra(bootstrap, mongo, f"the broker at {bootstrap} (GOLDENKEY_KAFKA_BOOTSTRAP)", False), lambda: None
    root = Path(tempfile.mkdtemp(prefix="goldenkey-bench-"))
    stack = devstack.Stack.throwaway(root)

    def down() -> None:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)

    try:
        stack.up()
    except BaseException:
        down()
        raise
    kafka = f"Apache Kafka {devstack.KAFKA_VERSION} (KRaft, one node, native throwaway stack)"
    pids = {name: devstack.read_pid(root / "run" / f"{part}.pid") for name, part in PARTS.items()}
    processes = {name: pid for name, pid in pids.items() if pid is not None}
    return Infra(stack.kafka_bootstrap, stack.mongodb_url, kafka, True, processes), down
