"""The HTTP side of the kit, over real connections: auth, Idempotency-Key, limits, health, docs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends

from goldenkey.kit import http as kit_http
from goldenkey.kit.auth import Principal, require
from goldenkey.kit.http import IDEMPOTENCY
from tests.support import RunningApp, TopicReader, free_port, wait_for
from tests.widgets import build, new_contract, settings_for

pytestmark = pytest.mark.integration
KIOSK = {"Authorization": "Bearer dev-kiosk"}
WINDOW = {"Authorization": "Bearer dev-window"}


@pytest.fixture
async def widgets(infra: Any) -> Any:
    contract = new_contract()
    kit, app = build(settings_for(infra), contract)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        yield kit, contract, client


async def test_no_token_is_401_an_unknown_token_is_401_and_the_wrong_role_is_403(widgets: Any) -> None:
    kit, _, client = widgets
    missing = await client.post("/widgets", json={"colour": "red"})
    unknown = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer guess"})
    wrong_role = await client.post("/widgets", json={"colour": "red"}, headers=WINDOW)
    assert missing.status_code == 401
    assert "bearer" in missing.json()["detail"].lower()
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert unknown.status_code == 401
    assert wrong_role.status_code == 403
    assert "kiosk" in wrong_role.json()["detail"]
    assert await kit.db["widgets"].count_documents({}) == 0
    allowed = await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)
    admin = await client.post("/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-admin"})
    assert (allowed.status_code, admin.status_code) == (201, 201)


async def test_without_a_valid_token_nothing_is_read_checked_or_written(widgets: Any) -> None:
    kit, _, client = widgets
    refused = [
        await client.post("/widgets", json={"colour": "purple"}),  # a bad body is not looked at
        await client.post("/widgets", content=b"{", headers={"content-type": "application/json"}),
        await client.post("/widgets", json={"colour": "red"}, headers={"Idempotency-Key": "k" * 201}),
        await client.post("/widgets", json={"colour": "red"}, headers={"Idempotency-Key": "anonymous-1"}),
        await client.post(
            "/widgets", json={"colour": "red"}, headers={"Idempotency-Key": "anonymous-2", "Authorization": "Bearer x"}
        ),
        await client.post("/widgets/nope/paint", json={"colour": "red"}),
        await client.get("/no-such-path"),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    for response in refused:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/json"
        assert "token" in response.json()["detail"]
        assert response.headers["x-correlation-id"], "the correlation id middleware still wraps it"
    assert await kit.db["idempotency"].count_documents({}) == 0
    assert await kit.db["widgets"].count_documents({}) == 0


async def test_health_metrics_and_the_documents_need_no_token(widgets: Any) -> None:
    _, _, client = widgets
    public = ["/health/live", "/metrics", "/openapi.json", "/docs", "/redoc", "/asyncapi", "/asyncapi/view"]
    public += ["/docs/assets/swagger-ui.css", "/asyncapi/assets/asyncapi-viewer.js"]
    answers = {path: (await client.get(path)).status_code for path in public}
    assert answers == dict.fromkeys(public, 200)
    assert (await client.get("/health/ready")).status_code in (200, 503), "public, whatever it says"
    assert (await client.get("/docs/assets/no-such-file.js")).status_code == 404


async def test_an_idempotency_key_belongs_to_the_token_however_the_header_is_spelled(widgets: Any) -> None:
    kit, _, client = widgets
    first = await client.post("/widgets", json={"colour": "red"}, headers={**KIOSK, "Idempotency-Key": "k1"})
    spelled = {"Authorization": "bearer   dev-kiosk", "Idempotency-Key": "k1"}
    same_token = await client.post("/widgets", json={"colour": "red"}, headers=spelled)
    other_token = await client.post(
        "/widgets", json={"colour": "red"}, headers={"Authorization": "Bearer dev-admin", "Idempotency-Key": "k1"}
    )
    assert (first.status_code, same_token.status_code, other_token.status_code) == (201, 201, 201)
    assert same_token.headers["idempotency-replayed"] == "true"
    assert same_token.json() == first.json()
    assert "idempotency-replayed" not in other_token.headers
    assert other_token.json()["widget_id"] != first.json()["widget_id"], "another caller's key is another key"
    assert await kit.db["widgets"].count_documents({}) == 2


RACERS = 120
"""Concurrent attempts of one Idempotency-Key: enough that the failed ones let the key go while the
others are between their insert and their read, on a loaded machine as on an idle one."""


async def _race(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    return list(await asyncio.gather(*(client.post(path, json=body, headers=headers) for _ in range(RACERS))))


async def test_concurrent_retries_of_a_post_that_fails_each_get_a_defined_answer_never_a_5xx(infra: Any) -> None:
    kit, app = build(settings_for(infra), new_contract())
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=60, limits=limits) as client:
        made = (await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)).json()
        paint = f"/widgets/{made['widget_id']}/paint"
        rounds = []
        for n in range(3):  # a rule says no: red already (409 from the domain), every attempt
            rounds += await _race(client, paint, {"colour": "red"}, {**WINDOW, "Idempotency-Key": f"paint-{n}"})
        for n in range(3):  # the body does not validate (422), every attempt
            rounds += await _race(client, "/widgets", {"colour": "purple"}, {**KIOSK, "Idempotency-Key": f"bad-{n}"})
        left = await kit.db["idempotency"].count_documents({})
    statuses = sorted({r.status_code for r in rounds})
    assert statuses in ([409], [409, 422]), statuses
    for response in rounds:
        assert response.headers["content-type"] == "application/json"
        if "in progress" in response.text:
            assert response.headers["retry-after"] == "1"
    assert left == 0, "every failed attempt let its key go"


async def test_concurrent_attempts_of_one_create_make_one_thing_and_all_who_answer_201_agree(infra: Any) -> None:
    kit, app = build(settings_for(infra), new_contract())
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=60, limits=limits) as client:
        answers = await _race(client, "/widgets", {"colour": "green"}, {**KIOSK, "Idempotency-Key": "one-widget"})
        again = await client.post(
            "/widgets", json={"colour": "green"}, headers={**KIOSK, "Idempotency-Key": "one-widget"}
        )
        widgets = await kit.db["widgets"].count_documents({})
    assert {r.status_code for r in answers} <= {201, 409}
    made = {r.json()["widget_id"] for r in answers if r.status_code == 201}
    assert len(made) == 1
    assert (again.status_code, again.headers["idempotency-replayed"]) == (201, "true"), "settled before answering"
    assert again.json()["widget_id"] in made
    assert widgets == 1


async def test_a_running_request_keeps_its_key_past_the_stale_mark(infra: Any, monkeypatch: Any) -> None:
    """A pending key is stale only when its attempt stopped renewing it (a crash), not when it is old."""
    monkeypatch.setattr(kit_http, "STALE_AFTER", timedelta(seconds=1))
    monkeypatch.setattr(kit_http, "KEEP_ALIVE_S", 0.1)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_: Annotated[Principal, Depends(require("kiosk"))]) -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"done": "once"}

    kit, app = build(settings_for(infra), new_contract())
    app.add_api_route("/slow", slow, methods=["POST"])
    headers = {**KIOSK, "Idempotency-Key": "held-open"}
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        first = asyncio.create_task(client.post("/slow", headers=headers))
        await wait_for(entered.is_set)
        (record,) = await kit.db[IDEMPOTENCY].find({"state": "pending"}).to_list()
        began = record["at"]

        async def renewed_past_the_stale_mark() -> bool:
            now = await kit.db[IDEMPOTENCY].find_one({"_id": record["_id"]})
            return now is not None and now["at"] - began > kit_http.STALE_AFTER

        await wait_for(renewed_past_the_stale_mark)
        meanwhile = await client.post("/slow", headers=headers)
        release.set()
        answered = await first
        again = await client.post("/slow", headers=headers)
    assert meanwhile.status_code == 409, "not taken over while it runs"
    assert "in progress" in meanwhile.text
    assert answered.status_code == again.status_code == 200
    assert again.headers["idempotency-replayed"] == "true"


async def test_a_retried_idempotency_key_post_gets_the_first_answer_and_creates_one_thing(widgets: Any) -> None:
    kit, contract, client = widgets
    headers = {**KIOSK, "Idempotency-Key": "kiosk-7-req-42"}
    async with TopicReader(kit.settings.kafka_bootstrap, contract.widgets_topic) as reader:
        first = await client.post("/widgets", json={"colour": "green"}, headers=headers)
        again = await client.post("/widgets", json={"colour": "green"}, headers=headers)
        other = await client.post("/widgets", json={"colour": "blue"}, headers=headers)
        fresh = await client.post("/widgets", json={"colour": "green"}, headers={**KIOSK, "Idempotency-Key": "k2"})
        await reader.wait_events(2)
        await asyncio.sleep(0.5)
        events = reader.events()
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert other.status_code == 422
    assert fresh.json()["widget_id"] != first.json()["widget_id"]
    assert await kit.db["widgets"].count_documents({}) == 2
    assert len(events) == 2


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(widgets: Any) -> None:
    kit, _, client = widgets
    bad_enum = await client.post("/widgets", json={"colour": "purple"}, headers=KIOSK)
    too_long = await client.post("/widgets", json={"colour": "red", "label": "x" * 41}, headers=KIOSK)
    not_json = await client.post("/widgets", content=b"{", headers={**KIOSK, "content-type": "application/json"})
    huge = await client.post("/widgets", json={"colour": "red", "label": "x" * 100_000}, headers=KIOSK)
    missing = await client.post("/widgets/nope/paint", json={"colour": "red"}, headers=WINDOW)
    assert bad_enum.status_code == 422
    assert "colour" in bad_enum.text
    assert too_long.status_code == 422
    assert not_json.status_code == 422
    assert huge.status_code == 413
    assert missing.status_code == 404
    assert await kit.db["widgets"].count_documents({}) == 0
    assert await kit.db["idempotency"].count_documents({}) == 0


async def test_a_rule_that_says_no_is_a_409_naming_the_state(widgets: Any) -> None:
    _, _, client = widgets
    made = (await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)).json()
    same = await client.post(f"/widgets/{made['widget_id']}/paint", json={"colour": "red"}, headers=WINDOW)
    assert same.status_code == 409
    assert "red already" in same.json()["detail"]


async def test_a_method_a_path_does_not_serve_is_a_405_naming_every_method_it_does(infra: Any) -> None:
    _, app = build(settings_for(infra), new_contract())

    async def listing() -> list[str]:
        return []

    app.add_api_route("/widgets", listing, methods=["GET"])
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        response = await client.delete("/widgets", headers=KIOSK)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_health_metrics_and_documents_are_served(widgets: Any) -> None:
    kit, contract, client = widgets
    await wait_for(kit.kafka_ready.is_set)
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")
    metrics = await client.get("/metrics")
    asyncapi = await client.get("/asyncapi")
    docs = await client.get("/docs")
    openapi = await client.get("/openapi.json")
    assert live.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"]["mongodb"] == "ok"
    assert ready.json()["checks"]["kafka"] == "ok"
    assert "goldenkey_outbox_pending" in metrics.text
    assert "goldenkey_dlq_messages_total" in metrics.text
    assert asyncapi.status_code == 200
    channels = str(asyncapi.json()["channels"])
    assert contract.widgets_topic in channels
    assert contract.requests_topic in channels
    assert docs.status_code == 200
    create = openapi.json()["paths"]["/widgets"]["post"]
    assert create["security"] == [{"HTTPBearer": ["admin", "kiosk"]}], "the roles that may call it"
    assert {"400", "401", "403", "413", "503"} <= set(create["responses"])


async def test_readiness_turns_503_when_the_database_stops_and_200_when_it_is_back(infra: Any) -> None:
    if infra.stack is None:
        pytest.skip("needs the throwaway native stack, to stop its database")
    contract = new_contract()
    kit, app = build(settings_for(infra), contract)
    database = infra.stack.database()
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=15) as client:
        await wait_for(kit.kafka_ready.is_set)
        assert (await client.get("/health/ready")).status_code == 200
        database.stop()
        try:
            down = await client.get("/health/ready")
            command = await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)
            assert down.status_code == 503
            assert down.json()["checks"]["mongodb"].startswith("unreachable")
            assert down.json()["status"] == "unavailable"
            assert command.status_code == 503
            assert (await client.get("/health/live")).status_code == 200
        finally:
            database.start()
        back = await wait_for(lambda: _ready(client), 30)
        assert back.json()["checks"]["mongodb"] == "ok"
        assert back.json()["database"].startswith("mongo-java-server 1.47.0 ("), "it names the server it talks to"
        assert (await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)).status_code == 201


async def _ready(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/health/ready")
    return response if response.status_code == 200 else None


def test_a_service_stops_within_ten_seconds_of_sigterm(infra: Any) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GOLDENKEY_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "GOLDENKEY_MONGODB_URL": infra.mongodb_url,
        "GOLDENKEY_MONGODB_DATABASE": f"goldenkey_sigterm_{port}",
        "GOLDENKEY_HTTP_PORT": str(port),
        "GOLDENKEY_DEV_MODE": "true",  # the dev PII key
    }
    service = subprocess.Popen([sys.executable, "-m", "goldenkey.queue"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the queue service did not become ready")
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=15)
        took = time.monotonic() - started
    finally:
        if service.poll() is None:
            service.kill()
        logs = service.stderr.read().decode() if service.stderr else ""
    # uvicorn re-raises the signal once shut down, so the exit status says "ended by SIGTERM".
    assert code in (0, -signal.SIGTERM), logs[-2000:]
    assert took < 10, f"took {took:.1f}s to stop"
    assert "Application shutdown complete" in logs
    assert "service stopped" in logs
    assert "Traceback" not in logs


async def test_with_kafka_down_commands_are_accepted_and_readiness_says_degraded(infra: Any) -> None:
    contract = new_contract()
    settings = settings_for(infra, kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    kit, app = build(settings, contract)
    async with RunningApp(app) as running, httpx.AsyncClient(base_url=running.url, timeout=15) as client:
        made = await client.post("/widgets", json={"colour": "red"}, headers=KIOSK)
        ready = await client.get("/health/ready")
        pending = await kit.relay.pending()
    assert made.status_code == 201
    assert ready.status_code == 200, "still ready: commands are accepted into the outbox"
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"] == {"mongodb": "ok", "kafka": "unreachable", "outbox_pending": 1}
    assert pending == 1, "the event waits in the outbox for Kafka to come back"


async def test_requests_are_counted_by_route_template_and_carry_a_correlation_id(widgets: Any) -> None:
    _, _, client = widgets
    made = await client.post("/widgets", json={"colour": "red"}, headers={**KIOSK, "X-Correlation-ID": "visit-42"})
    await client.post(f"/widgets/{made.json()['widget_id']}/paint", json={"colour": "blue"}, headers=WINDOW)
    fresh = await client.get("/health/live")
    metrics = (await client.get("/metrics")).text
    assert made.headers["x-correlation-id"] == "visit-42"
    assert len(fresh.headers["x-correlation-id"]) == 32
    assert 'goldenkey_http_requests_total{method="POST",route="/widgets",status="201"} 1.0' in metrics
    assert 'route="/widgets/{widget_id}/paint",status="200"' in metrics
    assert made.json()["widget_id"] not in metrics, "ids never become label values"


async def test_housekeeping_forgets_old_inbox_entries_and_answers(infra: Any) -> None:
    kit, _ = build(settings_for(infra, retention_days=7), new_contract())
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=1)
    await kit.db["inbox"].insert_many([{"_id": "old", "handled_at": old}, {"_id": "new", "handled_at": recent}])
    await kit.db["idempotency"].insert_many([{"_id": "old", "at": old}, {"_id": "new", "at": recent}])
    assert await kit.prune(now) == {"inbox": 1, "idempotency": 1}
    assert [d["_id"] async for d in kit.db["inbox"].find()] == ["new"]
    assert [d["_id"] async for d in kit.db["idempotency"].find()] == ["new"]
