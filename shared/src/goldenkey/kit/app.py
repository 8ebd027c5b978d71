"""The service kit: settings, database, broker, relay, consumer, auth and metrics wired into one app.

A service builds a `ServiceKit`, asks it for repositories, registers its event handlers on
`kit.consumer`, declares the events it emits, and calls `kit.app(routers)` for the FastAPI app:
HTTP served by uvicorn, the FastStream Kafka broker started and stopped in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, TypeVar

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification import AsyncAPI
from uvicorn.config import STARTUP_FAILURE

from goldenkey.contracts import EVENTS, EventData, EventSpec, dlq_topic, spec_for
from goldenkey.kit.aggregate import A, AlreadyExists, ConcurrencyError, NotFound, Repository
from goldenkey.kit.asyncapi import AsyncAPIDocument, describe_events
from goldenkey.kit.auth import Authentication, TokenRegistry
from goldenkey.kit.clock import BusinessCalendar, Clock, clock_of
from goldenkey.kit.consumer import INBOX, EventConsumer
from goldenkey.kit.docs import asyncapi_html, docs_router, mount_assets
from goldenkey.kit.errors import BODY_TOO_LARGE, DomainError, error_responses
from goldenkey.kit.http import IDEMPOTENCY, CorrelationIds, IdempotencyKeys
from goldenkey.kit.kafka import BrokerPublisher, ensure_topics, make_broker
from goldenkey.kit.logs import configure_logging, get_logger
from goldenkey.kit.metrics import Metrics, RequestMetrics
from goldenkey.kit.mongo import UNAVAILABLE, Index, connect, describe_server, ensure_indexes, ping
from goldenkey.kit.outbox import OutboxRelay
from goldenkey.kit.settings import KitSettings

log = get_logger(__name__)
S = TypeVar("S", bound=KitSettings)

STARTING_UNREACHABLE = "starting: database not reached yet"
CLOSING_S = 1.0
"""Of the shutdown deadline, what is kept for closing the Kafka and database clients."""


class ServiceKit:
    def __init__(
        self, settings: KitSettings, *, clock: Clock | None = None, title: str = "", version: str = "0.1.0"
    ) -> None:
        self.settings = settings
        self.service = settings.service
        self.tokens = TokenRegistry.configured(settings.tokens_file, settings.dev_tokens)
        settings.refuse_dev_secrets(self.tokens.dev_tokens())  # before anything connects
        self.title = title or f"Golden Key Hall — {self.service}"
        self.version = version
        self.clock: Clock = clock or clock_of(settings.clock_start, settings.clock_speed, settings.clock_anchor)
        self.calendar = BusinessCalendar.of(settings.timezone, settings.business_hours)
        self.client = connect(settings.mongodb_url.get_secret_value(), settings.mongodb_timeout_ms)
        self.db = self.client[settings.database]
        self.metrics = Metrics(self.service)
        self.broker = make_broker(
            settings, middlewares=[KafkaPrometheusMiddleware(registry=self.metrics.registry, app_name=self.service)]
        )
        self.publisher = BrokerPublisher(self.broker)
        self.relay = OutboxRelay(
            self.db,
            self.publisher,
            lease_s=settings.relay_lease_s,
            interval_s=settings.relay_interval_s,
            batch=settings.relay_batch,
        )
        self.consumer = EventConsumer(settings, self.db, self.broker, self.metrics, self.publisher)
        self.indexes: list[Index] = [
            Index(IDEMPOTENCY, [("at", 1)]),
            Index(INBOX, [("handled_at", 1)]),
        ]
        self.emitted_topics: set[str] = set()
        self.emitted: dict[str, EventSpec] = {}
        """event type -> its contract, for the AsyncAPI document"""
        self.database_server: str | None = None
        """The database server as it named itself (`describe_server`), once it answered."""
        self._connect_task: asyncio.Task[None] | None = None
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.kafka_ready = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the indexes exist and the start-up hooks ran: until then commands get 503 and
        the consumer, the relay and the watchdogs wait."""
        self.starting = STARTING_UNREACHABLE
        """What start-up waits for, as readiness reports it while `started` is not set."""
        self._stop_by: float | None = None
        """The monotonic instant by which shutdown must be done (SIGTERM + shutdown_timeout_s)."""
        self._intake_stopped: asyncio.Task[None] | None = None
        self.metrics.refresh_with(self._refresh_platform_gauges)

    # --- what a service declares -----------------------------------------------------------

    def repository(self, collection: str, model: type[A], indexes: Iterable[Index] = ()) -> Repository[A]:
        self.relay.watch(collection)
        self.indexes.append(Index(collection, [("outbox_n", 1)]))
        self.indexes.extend(indexes)
        return Repository(self.db[collection], model, relay=self.relay)

    def emits(self, *models: type[EventData]) -> None:
        """Declare the events this service publishes: their topics are created at start and
        documented in the AsyncAPI document."""
        for model in models:
            spec = spec_for(model)
            self.emitted_topics.add(spec.topic)
            self.emitted[spec.type] = spec

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` at start, once the indexes exist (e.g. load the hall's data). While the database
        is away the hooks are tried again until they all succeed, so a hook must be idempotent."""
        self._on_start.append(hook)

    def background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop` as a task from the end of start-up (indexes and hooks done) until shutdown,
        which cancels it (a watchdog, say)."""
        self._background.append(loop)

    def every(self, seconds: float, job: Callable[[], Awaitable[Any]], *, what: str) -> None:
        """Run `job` once start-up is done and then every `seconds` until shutdown (a watchdog). A
        round that fails — the database away, say — is logged, and the next round tries again."""

        async def rounds() -> None:
            while True:
                try:
                    await job()
                except Exception as error:
                    log.warning("a round failed; the next one tries again", job=what, error=repr(error))
                await self.clock.sleep(seconds)

        rounds.__name__ = what.replace(" ", "-")
        self.background(rounds)

    # --- the app ---------------------------------------------------------------------------

    def app(self, routers: Sequence[APIRouter] = (), *, description: str = "") -> FastAPI:
        self.consumer.attach()
        app = FastAPI(
            title=self.title,
            version=self.version,
            description=description,
            lifespan=self._lifespan,
            max_body_size=self.settings.max_body_bytes,
            docs_url=None,  # served by docs_router with packaged assets, not a CDN's
            redoc_url=None,
        )
        app.state.kit = self
        app.state.db = self.db
        app.state.tokens = self.tokens
        app.add_middleware(IdempotencyKeys)
        app.add_middleware(Authentication, tokens=self.tokens)  # outside IdempotencyKeys: 401 before anything
        app.add_middleware(CorrelationIds)
        app.add_middleware(RequestMetrics, metrics=self.metrics)
        self._install_error_handlers(app)
        app.include_router(self._platform_router())
        app.include_router(docs_router(self.title))
        mount_assets(app)
        for router in routers:  # every route of a service needs a token, reads input, may find the database down
            app.include_router(
                router,
                dependencies=[Depends(self._until_started)],
                responses={**error_responses(400, 401, 403, 503), **BODY_TOO_LARGE},
            )
        return app

    async def _until_started(self) -> None:
        """A service route answers 503 until start-up is done: without its indexes and hall data it
        would give wrong answers (no catalogue: every ticket a 422)."""
        if not self.started.is_set():
            raise HTTPException(
                503, f"{self.service} is {self.starting}, try again shortly", headers={"Retry-After": "2"}
            )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        # The first try is made before uvicorn serves, so a service whose database answers starts
        # complete; an error other than an unreachable database (an index with other options) stops it.
        try:
            await self._start_up()
        except UNAVAILABLE as error:  # serve anyway: /health/live answers, readiness and commands say 503
            self.starting = STARTING_UNREACHABLE
            log.error("database unavailable at start; trying again in the background", error=repr(error))
            self._tasks.append(asyncio.create_task(self._keep_starting(), name="start-up"))
        log.info("service started", service=self.service, complete=self.started.is_set())
        try:
            yield
        finally:
            await self._shutdown()

    async def _start_up(self) -> None:
        """Indexes and start-up hooks, then what needs them: Kafka (and so the consumer), the relay,
        housekeeping and the watchdogs."""
        self.database_server = await describe_server(self.db)
        log.info("database connected", server=self.database_server, database=self.settings.database)
        self.starting = "starting: creating indexes and running start-up hooks"
        await ensure_indexes(self.db, self.indexes)
        for hook in self._on_start:
            await hook()
        if self._stop_by is not None:  # SIGTERM came meanwhile: start nothing more
            return
        self.started.set()
        self._connect_task = asyncio.create_task(self._connect_kafka(), name="kafka-connect")
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks += [
            asyncio.create_task(loop(), name=getattr(loop, "__name__", "loop")) for loop in self._background
        ]
        self.relay.start()
        log.info("start-up complete", service=self.service)

    async def _keep_starting(self) -> None:
        failures = 0
        while not self.started.is_set() and self._stop_by is None:
            failures += 1
            await asyncio.sleep(min(0.25 * 2**failures, 10))
            try:
                await self._start_up()
            except UNAVAILABLE as error:
                self.starting = STARTING_UNREACHABLE
                log.warning("database still unavailable; start-up waits", error=repr(error), failures=failures)
            except Exception as error:  # the database answers, but a hook or an index failed: say so
                self.starting = f"starting: start-up failed, trying again ({type(error).__name__}: {error})"
                log.error("start-up failed; trying again", error=repr(error), failures=failures)

    async def _connect_kafka(self) -> None:
        """Connect to Kafka, retrying until it answers: commands are accepted meanwhile (outbox)."""
        failures = 0
        topics = {*self.emitted_topics, *self.consumer.topics, dlq_topic(self.service)}
        while True:
            try:
                await ensure_topics(self.settings, topics)
                await self.broker.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                log.warning("kafka not reachable yet", error=repr(error), failures=failures)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(min(0.5 * 2**failures, 10))
        self.publisher.running = True
        self.kafka_ready.set()
        self.relay.wake()  # publish what waited in the outbox while Kafka was away
        log.info("kafka connected", topics=sorted(topics))

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.prune(datetime.now(UTC))
            except Exception as error:
                log.warning("housekeeping failed", error=repr(error))
            await asyncio.sleep(3600)

    async def prune(self, now: datetime) -> dict[str, int]:
        """Forget handled-event ids and Idempotency-Key answers past retention.

        (Not TTL indexes: mongo-java-server, the native stack's database, does not expire documents.)"""
        cutoff = now - timedelta(days=self.settings.retention_days)
        inbox = await self.db[INBOX].delete_many({"handled_at": {"$lt": cutoff}})
        answers = await self.db[IDEMPOTENCY].delete_many({"at": {"$lt": cutoff}})
        return {"inbox": inbox.deleted_count, "idempotency": answers.deleted_count}

    def stop_intake(self) -> None:
        """The first step of shutdown, taken as SIGTERM arrives (`serve`), or by the lifespan's
        shutdown when nothing called it before: the one deadline, `shutdown_timeout_s` from now,
        starts; the consumer takes no new message (the one in hand finishes and is committed);
        start-up, the Kafka connection, housekeeping and the watchdogs stop."""
        if self._stop_by is not None:
            return
        self._stop_by = time.monotonic() + self.settings.shutdown_timeout_s
        log.info("stopping", service=self.service, within_s=self.settings.shutdown_timeout_s)
        self.consumer.stopping()
        for task in (self._connect_task, *self._tasks):
            if task is not None and not task.done():
                task.cancel()
        self._intake_stopped = asyncio.create_task(self._stop_consuming(), name="stop-consuming")

    def _left(self, keep: float = 0.0) -> float:
        """Seconds until the shutdown deadline, less `keep` for the steps after."""
        assert self._stop_by is not None
        return max(self._stop_by - keep - time.monotonic(), 0.0)

    async def _stop_consuming(self) -> None:
        for subscriber in self.broker.subscribers:
            try:  # FastStream's stop waits for the message in hand, then leaves the group
                await asyncio.wait_for(subscriber.stop(), self._left(CLOSING_S))
            except Exception as error:
                log.warning("consumer not stopped in time", error=repr(error))

    async def _shutdown(self) -> None:
        # SIGTERM (DESIGN §7.6), on one deadline: stop intake, let the message in hand finish and be
        # committed, flush the relay, close. uvicorn has stopped taking requests and finished those
        # in flight (for at most half the time: `serve`), so what they saved is in the outbox now.
        self.stop_intake()
        assert self._intake_stopped is not None
        pending = [task for task in (self._intake_stopped, self._connect_task, *self._tasks) if task is not None]
        await asyncio.wait(pending, timeout=self._left(CLOSING_S))
        if self.started.is_set():  # else the relay never ran (nor were commands accepted)
            flush = max(self._left(CLOSING_S), 0.2)
            try:
                await asyncio.wait_for(self.relay.stop(flush_timeout=flush), flush)
            except TimeoutError:
                log.warning("outbox not fully flushed by the deadline; the next start publishes the rest")
        self.publisher.running = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), max(self._left(), 0.5))
        await self.client.close()
        assert self._stop_by is not None
        log.info("service stopped", service=self.service, spare_s=round(self._stop_by - time.monotonic(), 2))

    # --- health, metrics, docs -------------------------------------------------------------

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(ping(self.db), 2)
            checks["mongodb"] = "ok"
            if self.database_server is None:
                self.database_server = await asyncio.wait_for(describe_server(self.db), 2)
        except Exception as error:
            checks["mongodb"] = f"unreachable: {type(error).__name__}"
        kafka_ok = self.kafka_ready.is_set() and await self.broker.ping(timeout=2)
        checks["kafka"] = "ok" if kafka_ok else "unreachable"
        if checks["mongodb"] == "ok":
            with contextlib.suppress(Exception):
                checks["outbox_pending"] = await asyncio.wait_for(self.relay.pending(), 2)
        if not self.started.is_set():
            checks["startup"] = self.starting
        # Kafka down alone leaves an instance ready: commands still go to the outbox (DESIGN §7.5).
        ok = checks["mongodb"] == "ok" and self.started.is_set()
        status = (
            "unavailable"
            if checks["mongodb"] != "ok"
            else "starting"
            if not self.started.is_set()
            else "ok"
            if kafka_ok
            else "degraded"
        )
        body = {"status": status, "service": self.service, "database": self.database_server, "checks": checks}
        return ok, body

    async def _refresh_platform_gauges(self) -> None:
        self.metrics.outbox_pending.set(await self.relay.pending())
        consumer = getattr(self.consumer.subscriber, "consumer", None)
        if consumer is None:
            return
        lag: dict[str, int] = {}
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None:
                continue
            position = await consumer.position(partition)
            lag[partition.topic] = lag.get(partition.topic, 0) + max(highwater - position, 0)
        self.metrics.consumer_lag.clear()  # topics whose partitions a rebalance took away
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)

    def asyncapi(self) -> AsyncAPIDocument:
        """The AsyncAPI document: FastStream's frame (servers, security), the kit's channels and
        messages — whole CloudEvents, key, headers — for what `emits` and the consumer declare."""
        frame = AsyncAPI(
            self.broker,
            title=self.title,
            version=self.version,
            description=(
                f"The Kafka records the {self.service} service publishes and consumes. Every value is a "
                "CloudEvents 1.0 event in structured mode (`content-type: application/cloudevents+json`), "
                "keyed by its `subject`. Deduplicate on `id`; order one subject's events by `sequence`, "
                "an integer compared as a number."
            ),
        ).to_specification()
        return describe_events(
            frame.to_jsonable(),
            service=self.service,
            published=self.emitted.values(),
            consumed=[EVENTS[t] for t in self.consumer.handlers],
            dlq_topic=dlq_topic(self.service),
        )

    def _platform_router(self) -> APIRouter:
        router = APIRouter(tags=["platform"])

        @router.get("/health/live")
        async def live() -> dict[str, str]:
            return {"status": "ok", "service": self.service}

        @router.get(
            "/health/ready",
            responses={
                503: {
                    "description": "MongoDB is unreachable, or start-up is not done (`checks.startup` says why)",
                    "content": {"application/json": {}},
                }
            },
        )
        async def ready() -> JSONResponse:
            ok, body = await self.readiness()
            return JSONResponse(body, status_code=200 if ok else 503)

        @router.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(await self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

        @router.get("/asyncapi", summary="AsyncAPI document of the events this service publishes and consumes")
        async def asyncapi() -> JSONResponse:
            return JSONResponse(self.asyncapi().to_jsonable())

        @router.get("/asyncapi/view", include_in_schema=False)
        async def asyncapi_view(request: Request) -> HTMLResponse:
            return HTMLResponse(asyncapi_html(self.title, "/asyncapi", request.scope.get("root_path", "")))

        return router

    def _install_error_handlers(self, app: FastAPI) -> None:
        async def unavailable(_: Request, error: Exception) -> JSONResponse:
            log.warning("database unavailable", error=repr(error))
            return JSONResponse(
                {"detail": "database unavailable, try again shortly"}, status_code=503, headers={"Retry-After": "2"}
            )

        async def domain(_: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=getattr(error, "status", 409))

        async def not_found(_: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=404)

        async def contention(_: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=409)

        async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
            # Starlette's `Allow` names the methods of one route on the path; it must name all of them.
            allow = getattr(error, "headers", None) or {}
            methods = {method.strip() for method in allow.get("Allow", "").split(",") if method.strip()}
            for template, operations in request.app.openapi()["paths"].items():
                if _fits(template, request.url.path):
                    methods |= {method.upper() for method in operations}
            return JSONResponse(
                {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(sorted(methods))}
            )

        for exc in UNAVAILABLE:
            app.add_exception_handler(exc, unavailable)
        app.add_exception_handler(DomainError, domain)
        app.add_exception_handler(NotFound, not_found)
        app.add_exception_handler(AlreadyExists, contention)
        app.add_exception_handler(ConcurrencyError, contention)
        app.add_exception_handler(405, method_not_allowed)


def _fits(template: str, path: str) -> bool:
    """Whether `path` is an instance of an OpenAPI path template such as `/tickets/{ticket_id}`."""
    wanted, given = template.split("/"), path.split("/")
    return len(wanted) == len(given) and all(w == g or w.startswith("{") for w, g in zip(wanted, given, strict=True))


class _Server(uvicorn.Server):
    """uvicorn's server, which tells the kit the moment SIGTERM (or Ctrl-C) arrives: the shutdown
    deadline runs from then, and the consumer stops taking messages while uvicorn drains requests."""

    def __init__(self, config: uvicorn.Config, kit: ServiceKit) -> None:
        super().__init__(config)
        self.kit = kit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):  # no loop yet: the lifespan's shutdown starts the clock
            asyncio.get_running_loop().call_soon_threadsafe(self.kit.stop_intake)


def serve(app: FastAPI, settings: KitSettings) -> None:
    """Run under uvicorn. On SIGTERM the process is gone within `shutdown_timeout_s` (8 s; DESIGN
    §7.6 allows 10): uvicorn stops taking requests and finishes those in flight for up to half of
    it, meanwhile the consumer finishes its message; then the lifespan flushes the relay and closes
    in what is left (`ServiceKit.stop_intake`)."""
    configure_logging(settings.service, settings.log_level, settings.log_json)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s / 2)),
        proxy_headers=False,
    )
    server = _Server(config, app.state.kit)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # the lifespan's start-up failed: say so in the exit status, as uvicorn.run does
        sys.exit(STARTUP_FAILURE)
