"""The container deployment: the service image, docker-compose.yml, Prometheus and Grafana provisioning.

No Docker engine is needed: Debian's `docker-compose` validates the compose file without one, and
Debian's `prometheus` package brings `promtool` for the scrape configs and the alert rule tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from deploy.kafka import acls as kafka_acls
from goldenkey.contracts import EVENTS, TOPICS, dlq_topic

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = "deploy/service.Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules"
RULE_TESTS = RULES / "goldenkey_test.yml"
GRAFANA = ROOT / "deploy" / "grafana"

# DESIGN §2, copied by hand on purpose.
SERVICE_PORTS = {"queue": 8001, "concierge": 8002, "parking": 8003, "feedback": 8004}
PROMETHEUS_CONFIGS = {
    "prometheus.yml": lambda service: f"{service}:{SERVICE_PORTS[service]}",
    "prometheus.native.yml": lambda service: f"127.0.0.1:{SERVICE_PORTS[service]}",
}

# Where Debian's docker-compose package installs the Compose Specification it validates against.
DEBIAN_COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def one_shot_jobs(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services others wait for to *finish* (kafka-init): they exit, so they have no health."""
    return {
        name
        for service in services.values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


def compose_spec() -> dict[str, Any]:
    candidates = [DEBIAN_COMPOSE_SPEC]
    found = importlib.util.find_spec("compose")  # docker-compose installed with pip, if at all
    if found is not None and found.origin is not None:
        candidates.append(Path(found.origin).parent / "config" / "compose_spec.json")
    for candidate in candidates:
        if candidate.is_file():
            spec: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return spec
    pytest.skip("no Compose Specification schema: install docker-compose (apt-get install docker-compose)")


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        package = {"promtool": "prometheus", "docker-compose": "docker-compose"}[tool]
        pytest.skip(f"{tool} is not installed (apt-get install {package})")
    return path


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(Draft201909Validator(compose_spec()).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_docker_compose_accepts_the_file() -> None:
    binary = require("docker-compose")
    result = run([binary, "-f", COMPOSE_FILE.name, "config", "-q"], ROOT)
    assert result.returncode == 0, result.stderr or result.stdout


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    jobs = one_shot_jobs(services)
    assert jobs == {"kafka-init"}
    for name, service in services.items():
        if name in jobs or name == "demo":  # the demo plays one day and exits: nothing waits on it
            assert service.get("restart") == "no", f"{name} is a one-shot job: it must not be restarted"
            continue
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} has its healthcheck disabled"


def test_dependencies_wait_until_healthy_or_done(services: dict[str, dict[str, Any]]) -> None:
    jobs = one_shot_jobs(services)
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in jobs else "service_healthy"
            assert how.get("condition") == expected, f"{name} -> {dependency}"
    for name in SERVICE_PORTS:
        assert set(services[name]["depends_on"]) == {"kafka", "kafka-init", "mongodb"}


def test_kafka_init_creates_every_topic_of_the_contracts(services: dict[str, dict[str, Any]]) -> None:
    init = services["kafka-init"]
    environment = init["environment"]
    created = environment["TOPICS"].split()
    expected = {*TOPICS, *(dlq_topic(service) for service in SERVICE_PORTS)}
    assert len(created) == len(set(created)), "a topic is listed twice"
    assert set(created) == expected
    assert environment["PARTITIONS"] == "3"
    assert environment["REPLICATION_FACTOR"] == "1"
    script = init["command"][0]
    assert "for topic in $$TOPICS" in script  # `$$` is compose's escape for a literal `$`
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    assert init["image"] == services["kafka"]["image"] == "apache/kafka:4.1.1"


def test_the_four_services_share_one_image_recipe(services: dict[str, dict[str, Any]]) -> None:
    for name, port in SERVICE_PORTS.items():
        service = services[name]
        assert service["build"] == {
            "context": ".",
            "dockerfile": DOCKERFILE,
            "args": {"SERVICE": name, "PORT": str(port)},
        }
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert "user" not in service, "the image's non-root user must not be overridden"
        environment = service["environment"]
        assert environment["GOLDENKEY_HTTP_HOST"] == "0.0.0.0"
        assert environment["GOLDENKEY_KAFKA_BOOTSTRAP"] == "kafka:19092"
        assert environment["GOLDENKEY_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert environment["GOLDENKEY_KAFKA_SASL_USERNAME"] == name, "each service logs in as itself"
        assert environment["GOLDENKEY_KAFKA_SASL_PASSWORD"]
        url = environment["GOLDENKEY_MONGODB_URL"]
        assert url.startswith("mongodb://")
        assert "@mongodb:27017/" in url, "MongoDB must be reached with credentials"
        tokens = environment["GOLDENKEY_TOKENS_FILE"]
        source, target, mode = service["volumes"][0].split(":")
        assert (ROOT / source).resolve() == ROOT / "deploy" / "dev-tokens.json"
        assert (target, mode) == (tokens, "ro")


def jaas_users(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The SASL/PLAIN users the compose Kafka accepts on INTERNAL, and their passwords as written."""
    jaas = services["kafka"]["environment"]["KAFKA_LISTENER_NAME_INTERNAL_PLAIN_SASL_JAAS_CONFIG"]
    return dict(re.findall(r'user_(\w+)="([^"]*)"', jaas))


def test_each_service_and_the_demo_log_in_to_kafka_as_a_principal_of_their_own(
    services: dict[str, dict[str, Any]],
) -> None:
    users = jaas_users(services)
    clients = {name: services[name]["environment"] for name in (*SERVICE_PORTS, "demo")}
    for name, environment in clients.items():
        assert environment["GOLDENKEY_KAFKA_SASL_USERNAME"] == name
        password = environment["GOLDENKEY_KAFKA_SASL_PASSWORD"]
        assert password == users[name], f"{name}'s password is not the one Kafka accepts"
        assert password.startswith(f"${{KAFKA_{name.upper()}_PASSWORD:-"), "set from the environment"
    assert len({environment["GOLDENKEY_KAFKA_SASL_PASSWORD"] for environment in clients.values()}) == len(clients)
    assert set(users) == {"admin", *clients}
    init = services["kafka-init"]["environment"]
    assert (init["SASL_USERNAME"], init["SASL_PASSWORD"]) == ("admin", users["admin"])


def test_kafka_allows_what_the_acl_file_says_and_kafka_init_applies_it(services: dict[str, dict[str, Any]]) -> None:
    environment = services["kafka"]["environment"]
    assert environment["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert set(environment["KAFKA_SUPER_USERS"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    assert environment["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    # The controller's plaintext (anonymous, super user) listener is reachable from inside its container only.
    assert "CONTROLLER://127.0.0.1:9093" in environment["KAFKA_LISTENERS"].split(",")
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:9093"
    init = services["kafka-init"]
    source, target, mode = init["volumes"][0].split(":")
    assert (ROOT / source).resolve() == kafka_acls.ACL_FILE
    assert (target, mode) == (init["environment"]["ACLS"], "ro")
    script = init["command"][0]
    assert '"$$ACLS"' in script
    assert "/opt/kafka/bin/kafka-acls.sh" in script
    assert '--add --allow-principal "$$principal"' in script


def test_the_acl_file_is_generated_from_the_contracts_and_the_handlers() -> None:
    expected = kafka_acls.render(kafka_acls.acls())
    assert kafka_acls.ACL_FILE.read_text(encoding="utf-8") == expected, (
        "deploy/kafka/acls.txt is out of date: run .venv/bin/python -m deploy.kafka.acls --write"
    )


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_the_acls_of_a_service_are_what_its_app_emits_and_consumes(service: str) -> None:
    module = importlib.import_module(f"goldenkey.{service}.app")
    kit = module.build_app(module.Settings(dev_mode=True)).state.kit
    mine = [acl for acl in kafka_acls.read() if acl.principal == f"User:{service}"]
    assert mine == kafka_acls.service_acls(service, kit.emitted_topics, kit.consumer.topics)


def test_a_service_may_write_only_its_own_events_and_dead_letters_and_the_demo_nothing() -> None:
    written: dict[str, str] = {}
    for acl in kafka_acls.read():
        user = acl.principal.removeprefix("User:")
        if "Write" in acl.operations:
            assert user in SERVICE_PORTS, f"{user} may write"
            assert acl.resource == "topic"
            own = {spec.topic for spec in EVENTS.values() if spec.producer == user} | {dlq_topic(user)}
            assert set(acl.names) <= own, f"{user} may write {sorted(set(acl.names) - own)}"
            for topic in acl.names:
                assert written.setdefault(topic, user) == user, f"{topic} is written by {written[topic]} and {user}"
        if acl.resource == "group":
            assert acl.names == (user,), f"{user} may use the consumer group of {acl.names}"
        assert set(acl.operations) <= {"Read", "Write", "Describe"}, acl
    assert set(written) == {*TOPICS, *(dlq_topic(service) for service in SERVICE_PORTS)}


def test_the_compose_services_run_in_dev_mode_and_say_what_production_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICE_PORTS:
        assert services[name]["environment"]["GOLDENKEY_DEV_MODE"] == "true"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    before, _, _ = text.partition('GOLDENKEY_DEV_MODE: "true"')
    comment = " ".join(line.strip(" #") for line in before.splitlines()[-6:] if line.strip().startswith("#"))
    for needed in ("development and demos", "production", "tokens file", "GOLDENKEY_PII_KEY", "dev mode off"):
        assert needed in comment, f"the comment above GOLDENKEY_DEV_MODE does not say {needed!r}"


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image, f"{name}: pin the tag of {image}"
        assert image.rpartition(":")[2] != "latest", f"{name}: pin the tag of {image}"


def test_the_demo_profile_plays_a_day_against_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    demo = services["demo"]
    assert demo["profiles"] == ["demo"], "the demo runs only when asked for (docker compose --profile demo)"
    assert demo["restart"] == "no"
    assert demo["build"] == {"context": ".", "dockerfile": "deploy/demo.Dockerfile"}
    assert set(demo["depends_on"]) == {*SERVICE_PORTS, "prometheus"}
    given = dict(argument.removeprefix("--").split("=", 1) for argument in demo["command"])
    for name, port in SERVICE_PORTS.items():
        assert given[f"{name}-url"] == f"http://{name}:{port}"
    assert given["prometheus-url"] == "http://prometheus:9090"
    assert demo["environment"]["GOLDENKEY_KAFKA_BOOTSTRAP"] == "kafka:19092"
    report = given["report"]
    assert any(volume.endswith(f":{report}") for volume in demo["volumes"])


def test_the_services_and_the_demo_share_one_clock(services: dict[str, dict[str, Any]]) -> None:
    """One simulated clock for everyone: the services pass make compose-demo's settings through
    (unset, they are empty: wall-clock time)."""
    for name in (*SERVICE_PORTS, "demo"):
        environment = services[name]["environment"]
        for setting in ("START", "SPEED", "ANCHOR"):
            assert f"${{GOLDENKEY_CLOCK_{setting}:-" in environment[f"GOLDENKEY_CLOCK_{setting}"], (name, setting)


def test_the_demo_image_holds_the_simulator_and_the_dashboards() -> None:
    text = (ROOT / "deploy" / "demo.Dockerfile").read_text(encoding="utf-8")
    assert "COPY demo/ demo/" in text
    assert "deploy/grafana/dashboards/" in text
    assert 'ENTRYPOINT ["python", "-m", "goldenkey.demo"]' in text
    allowed = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {"!demo/", "!deploy/grafana/dashboards/"} <= set(allowed)


# --- the service image -------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (keyword, arguments), grouped by stage (FROM starts one)."""
    text = (ROOT / DOCKERFILE).read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages[1:]


def test_service_image_is_multi_stage_and_runs_as_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build in one stage, run from another"
    runtime = stages[-1]
    instructions = [keyword for keyword, _ in runtime]
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # Nothing after USER switches back.
    assert instructions.index("USER") > max(i for i, k in enumerate(instructions) if k == "RUN")
    copies = [arguments for keyword, arguments in runtime if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the runtime stage copies only the venv"
    for keyword in ("EXPOSE", "HEALTHCHECK", "CMD"):
        assert keyword in instructions, f"the runtime stage has no {keyword}"
    healthcheck = next(arguments for keyword, arguments in runtime if keyword == "HEALTHCHECK")
    assert "urllib" in healthcheck
    assert "/health/live" in healthcheck
    builder = stages[0]
    runs = [arguments for keyword, arguments in builder if keyword == "RUN"]
    install = " ".join(step for step in runs if "pip install" in step)
    assert "-c constraints.txt ./shared" in install
    assert "-e " not in install, "regular installs, not editable ones"


def test_build_context_leaves_local_state_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow only what an image needs"
    assert {"!constraints.txt", "!shared/", "!services/"} <= set(patterns)
    for leftover in (
        "**/.git",
        "**/.venv",
        "**/.devstack",
        "**/__pycache__",
        "**/*.egg-info",
        "**/.pytest_cache",
    ):
        assert leftover in patterns


# --- Prometheus ----------------------------------------------------------------------------------------


def rule_files() -> list[str]:
    return sorted(f"rules/{path.name}" for path in RULES.glob("*.yml") if not path.stem.endswith("_test"))


def test_prometheus_configs_agree_and_scrape_every_service(services: dict[str, dict[str, Any]]) -> None:
    configs = {name: load_yaml(PROMETHEUS / name) for name in PROMETHEUS_CONFIGS}
    for name, config in configs.items():
        # A glob would also load the promtool test files in rules/ as rule files.
        assert sorted(config["rule_files"]) == rule_files(), name
        (job,) = config["scrape_configs"]
        assert job["job_name"] == "goldenkey"
        scraped = {group["labels"]["service"]: group["targets"] for group in job["static_configs"]}
        assert scraped == {service: [PROMETHEUS_CONFIGS[name](service)] for service in SERVICE_PORTS}, name
    compose_config, native_config = configs.values()
    assert compose_config["global"] == native_config["global"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]


@pytest.mark.parametrize("config", sorted(PROMETHEUS_CONFIGS))
def test_promtool_accepts_the_prometheus_config(config: str, tmp_path: Path) -> None:
    promtool = require("promtool")
    # Laid out as Prometheus gets it (compose mounts, the native stack copies): the rules beside.
    shutil.copy(PROMETHEUS / config, tmp_path / "prometheus.yml")
    shutil.copytree(RULES, tmp_path / "rules")
    result = run([promtool, "check", "config", "prometheus.yml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_tests() -> None:
    promtool = require("promtool")
    result = run([promtool, "test", "rules", str(RULE_TESTS.relative_to(ROOT))], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = {
        rule["alert"]
        for path in RULES.glob("*.yml")
        if not path.stem.endswith("_test")
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    cases = [case for test in load_yaml(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts <= firing, f"never seen firing: {sorted(alerts - firing)}"
    assert alerts <= quiet, f"never seen quiet: {sorted(alerts - quiet)}"
    for path in RULES.glob("*.yml"):
        if path.stem.endswith("_test"):
            continue
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                assert {"summary", "description"} <= set(rule.get("annotations", {})), rule.get("alert")
                assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule.get("alert")


# --- Grafana -------------------------------------------------------------------------------------------


def test_grafana_is_provisioned_from_the_repository(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = {volume.split(":")[0]: volume.split(":")[1:] for volume in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == ["/etc/grafana/provisioning", "ro"]
    dashboards_mount, _ = mounts["./deploy/grafana/dashboards"]
    assert (GRAFANA / "dashboards").is_dir()

    (datasource,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]

    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "goldenkey.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_mount == "/var/lib/grafana/dashboards"


def test_compose_healthchecks_probe_what_the_image_serves(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVICE_PORTS:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert "/health/live" in test[3]
        assert "GOLDENKEY_HTTP_PORT" in test[3]
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert "ping" in shlex.join(services["mongodb"]["healthcheck"]["test"])
