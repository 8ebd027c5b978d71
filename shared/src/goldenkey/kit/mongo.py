"""MongoDB through PyMongo's native asyncio API, kept to what MongoDB 7 and mongo-java-server 1.47 share
(docs/decisions.md, "Storage")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, NetworkTimeout, OperationFailure

# Errors that mean "the database is not there right now", as opposed to "this request is wrong".
UNAVAILABLE: tuple[type[Exception], ...] = (ConnectionFailure, AutoReconnect, NetworkTimeout, ExecutionTimeout)

Document = dict[str, Any]


@dataclass(frozen=True)
class Index:
    """An index a collection needs; created at start, idempotently."""

    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def connect(url: str, timeout_ms: int) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10_000),
        appname="goldenkey",
    )


async def ensure_indexes(db: AsyncDatabase[Document], indexes: Sequence[Index]) -> None:
    for index in indexes:
        name = index.name or "_".join(f"{k}_{d}" for k, d in index.keys)
        try:
            await db[index.collection].create_index(list(index.keys), unique=index.unique, name=name, **index.options)
        except OperationFailure as error:
            # 85/86: an index of that name or keys already exists with other options; say which.
            if error.code in (85, 86):
                raise RuntimeError(f"index {name} on {index.collection} exists with other options: {error}") from error
            raise


async def ping(db: AsyncDatabase[Document]) -> None:
    await db.command("ping")


async def describe_server(db: AsyncDatabase[Document]) -> str:
    """The database server as it names itself: "MongoDB 7.0.14", or the native stack's
    "mongo-java-server 1.47.0 (h2 backend, announces MongoDB 4.4.0)" (its launcher adds
    `mongoJavaServer` to `buildInfo`, which MongoDB never sends). For logs and readiness only:
    nothing behaves differently by it."""
    info = await db.command("buildInfo")
    launcher = info.get("mongoJavaServer")
    if isinstance(launcher, dict):
        return (
            f"mongo-java-server {launcher.get('version', '?')} "
            f"({launcher.get('backend', '?')} backend, announces MongoDB {info.get('version', '?')})"
        )
    return f"MongoDB {info.get('version', '?')}"
