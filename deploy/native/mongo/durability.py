"""What an H2-backed launcher keeps of acknowledged writes when it is killed, and what that costs.

For each durability mode of deploy/native/mongo/ (commit, fsync, background) and the memory backend,
on a fresh database on a free loopback port: warm the JVM up, write N acknowledged inserts (or $inc
updates) through PyMongo from 1 or 16 concurrent writers, `kill -9` the server right after the last
acknowledgement, start it again on the same file and count what is there. Prints one row per run.

    .venv/bin/python deploy/native/mongo/durability.py [--writes 10000]

Figures from a run are in docs/devstack.md. Nothing is asserted (tests/integration/
test_database_restart.py asserts that the default mode loses nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `deploy.native.devstack` lives at the repo root
    sys.path.insert(0, str(REPO))

from pymongo import AsyncMongoClient  # noqa: E402

from deploy.native.devstack import MONGO_JAVA_SERVER_VERSION, Part, Stack  # noqa: E402

WARM_UP = 2000
COUNTERS = 50


def database(root: Path, mode: str) -> tuple[Stack, Part]:
    stack = Stack.throwaway(root, durable=mode != "memory")
    part = stack.database()
    if mode not in ("memory", "commit"):
        part.argv[-1] = mode  # the launcher's last argument: its durability
    return stack, part


async def write(url: str, kind: str, count: int, writers: int) -> tuple[int, float]:
    """Acknowledged writes, after a warm-up: how many were acknowledged, and in how many seconds."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    db = client["durability"]
    try:
        await db["warm"].insert_many([{"i": i} for i in range(WARM_UP)])
        for i in range(WARM_UP):
            await db["warm"].update_one({"_id": i % 10}, {"$inc": {"n": 1}}, upsert=True)
        acknowledged = 0
        todo = iter(range(count))

        async def writer() -> None:
            nonlocal acknowledged
            for i in todo:
                if kind == "insert":
                    await db["docs"].insert_one({"_id": i, "payload": "x" * 200})
                else:
                    await db["counters"].update_one({"_id": i % COUNTERS}, {"$inc": {"n": 1}}, upsert=True)
                acknowledged += 1

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        return acknowledged, time.perf_counter() - started
    finally:
        await client.close()


async def found(url: str, kind: str) -> int:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, serverSelectionTimeoutMS=20_000)
    try:
        db = client["durability"]
        if kind == "insert":
            return await db["docs"].count_documents({})
        return sum([int(str(doc.get("n", 0))) async for doc in db["counters"].find()])
    finally:
        await client.close()


def run(mode: str, kind: str, count: int, writers: int) -> str:
    with tempfile.TemporaryDirectory(prefix="goldenkey-durability-") as folder:
        stack, part = database(Path(folder), mode)
        part.start()
        try:
            acknowledged, seconds = asyncio.run(write(stack.mongodb_url, kind, count, writers))
            size = stack.database_file.stat().st_size if stack.database_file.exists() else 0
            if mode == "memory":
                kept = "-"
            else:
                part.kill()  # right after the last acknowledgement
                part.start()
                there = asyncio.run(found(stack.mongodb_url, kind))
                kept = f"{there} (lost {acknowledged - there})"
        finally:
            part.stop()
    file = f"{size / 1e6:7.1f} MB" if mode != "memory" else "      -"
    return (
        f"| {mode:10} | {kind:6} | {writers:2} | {acknowledged:6} | {kept:18} | "
        f"{acknowledged / seconds:6.0f} | {file} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000, help="acknowledged writes per run")
    parser.add_argument("--modes", default="memory,background,commit,fsync")
    args = parser.parse_args()
    print(f"mongo-java-server {MONGO_JAVA_SERVER_VERSION}, {args.writes} writes per run after {WARM_UP} warm-up ones")
    print("| mode       | write  | writers | acked | there after kill -9 | writes/s | file at kill |")
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        for kind in ("insert", "$inc"):
            for writers in (1, 16):
                print(run(mode, kind, args.writes, writers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
