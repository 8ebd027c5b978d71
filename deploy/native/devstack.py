"""The native dev stack: Apache Kafka (KRaft), FerretDB and Prometheus on loopback, no Docker.

`python deploy/native/devstack.py up|down|status` runs the stack for `make up`; tests import
`Stack` to run a throwaway one on free ports. Downloads and builds are cached outside the repo
(`$GOLDENKEY_CACHE`, default `~/.cache/goldenkey`), so only the first run on a machine is slow.
Standard library only: this runs before the virtualenv has anything in it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.1"
SLF4J_VERSION = "1.7.36"  # the slf4j-api version Kafka 4.1 depends on
FERRETDB_VERSION = "v1.24.2"

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GOLDENKEY_CACHE", Path.home() / ".cache" / "goldenkey"))
SERVICE_PORTS = {"queue": 8001, "concierge": 8002, "parking": 8003, "feedback": 8004}


def log(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(name: str, port: int, proc: subprocess.Popen[bytes] | None, timeout: float, logfile: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = logfile.read_text(errors="replace")[-3000:] if logfile.exists() else ""
    raise RuntimeError(f"{name} did not answer on 127.0.0.1:{port}; log tail:\n{tail}")


# --- building the parts (cached) -------------------------------------------------------------


def kafka_classpath() -> str:
    libs = CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed once to fetch the Apache Kafka jars")
        log(f"fetching Apache Kafka {KAFKA_VERSION} jars with Maven (first run only)")
        work = CACHE / "kafka-pom"
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(
            f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.goldenkey</groupId><artifactId>kafka-classpath</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{SLF4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""
        )
        tmp = libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
            cwd=work,
            check=True,
        )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
    return str(libs / "*")


def ferretdb_binary() -> Path:
    """FerretDB built from its Go module.

    A plain `go install` builds a binary that panics at start: FerretDB embeds its version from
    build/version/version.txt, which only its release tooling writes. So the module source is
    copied from Go's module cache, that file written, and the command built from the copy.
    """
    home = CACHE / f"ferretdb-{FERRETDB_VERSION}"
    binary = home / "bin" / "ferretdb"
    if not binary.exists():
        if shutil.which("go") is None:
            raise RuntimeError("Go is needed once to build FerretDB")
        log(f"building FerretDB {FERRETDB_VERSION} from its Go module (first run only)")
        module = f"github.com/FerretDB/FerretDB@{FERRETDB_VERSION}"
        found = subprocess.run(["go", "mod", "download", "-json", module], check=True, capture_output=True, text=True)
        source = home / "src"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(json.loads(found.stdout)["Dir"], source)
        for folder, _, files in os.walk(source):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        (source / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "./cmd/ferretdb"], cwd=source, check=True)
        shutil.rmtree(source, ignore_errors=True)
    return binary


def prometheus_binary() -> Path | None:
    found = shutil.which("prometheus")
    if found is None:
        log("prometheus not found; install Debian's package (apt-get install prometheus) to run it")
    return Path(found) if found else None


# --- running them ---------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    port: int
    argv: list[str]
    logfile: Path
    pidfile: Path
    cwd: Path | None = None
    timeout: float = 90.0
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} for {self.name} is taken by something else")
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
                env={**os.environ, **self.env} if self.env else None,
            )
        self.pidfile.write_text(str(self.proc.pid))
        wait_for_port(self.name, self.port, self.proc, self.timeout, self.logfile)

    def stop(self, timeout: float = 15.0) -> None:
        pid = read_pid(self.pidfile)
        if pid is not None:
            stop_pid(pid, timeout)
        self.pidfile.unlink(missing_ok=True)
        self.proc = None


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def stop_pid(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class Stack:
    """A Kafka + FerretDB (+ Prometheus) stack under `root`, on the given loopback ports."""

    root: Path
    kafka_port: int = 9092
    mongo_port: int = 27017
    prometheus_port: int | None = 9090
    kafka_heap: str = "512m"

    @classmethod
    def throwaway(cls, root: Path) -> Stack:
        return cls(root, kafka_port=free_port(), mongo_port=free_port(), prometheus_port=None, kafka_heap="384m")

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    def parts(self) -> list[Part]:
        run = self.root / "run"
        logs = self.root / "logs"
        for folder in (run, logs):
            folder.mkdir(parents=True, exist_ok=True)
        parts = [self._ferretdb(run, logs), self._kafka(run, logs)]
        if self.prometheus_port is not None and (prom := prometheus_binary()) is not None:
            parts.append(self._prometheus(prom, run, logs))
        return parts

    def _kafka(self, run: Path, logs: Path) -> Part:
        data = self.root / "kafka"
        controller_port = free_port()
        properties = self.root / "kafka.properties"
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.kafka_port},CONTROLLER://127.0.0.1:{controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        classpath = kafka_classpath()
        java = [
            "java",
            f"-Xmx{self.kafka_heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
        ]
        if not (data / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # StorageTool would read a leading "-" as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return Part(
            "kafka",
            self.kafka_port,
            [*java, "kafka.Kafka", str(properties)],
            logs / "kafka.log",
            run / "kafka.pid",
            timeout=120,
        )

    def _ferretdb(self, run: Path, logs: Path) -> Part:
        data = self.root / "ferretdb"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(ferretdb_binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{self.mongo_port}",
            f"--debug-addr=127.0.0.1:{free_port()}",
            "--telemetry=disable",
            f"--state-dir={data}",
            "--log-level=warn",
        ]
        return Part("ferretdb", self.mongo_port, argv, logs / "ferretdb.log", run / "ferretdb.pid")

    def _prometheus(self, binary: Path, run: Path, logs: Path) -> Part:
        assert self.prometheus_port is not None
        source = REPO / "deploy" / "prometheus" / "prometheus.native.yml"
        config = self.root / "prometheus.yml"
        shutil.copyfile(source, config)
        rules = REPO / "deploy" / "prometheus" / "rules"
        if rules.is_dir():
            shutil.copytree(rules, self.root / "rules", dirs_exist_ok=True)
        argv = [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        ]
        return Part("prometheus", self.prometheus_port, argv, logs / "prometheus.log", run / "prometheus.pid")

    def up(self) -> None:
        started: list[Part] = []
        try:
            for part in self.parts():
                if read_pid(part.pidfile) is not None:
                    log(f"{part.name} already running on 127.0.0.1:{part.port}")
                    continue
                part.start()
                started.append(part)
                log(f"{part.name} up on 127.0.0.1:{part.port} (log: {part.logfile.relative_to(self.root)})")
        except BaseException:
            for part in reversed(started):
                part.stop()
            raise

    def ferretdb(self) -> Part:
        """The FerretDB part, to stop and start it again (tests of database outages)."""
        return self._ferretdb(self.root / "run", self.root / "logs")

    def service_parts(self, ports: dict[str, int] | None = None, env: dict[str, str] | None = None) -> list[Part]:
        """The four services, as `make up` runs them: the caller's GOLDENKEY_* variables win, then `env`."""
        run, logs = self.root / "run", self.root / "logs"
        for folder in (run, logs):
            folder.mkdir(parents=True, exist_ok=True)
        parts = []
        for name, port in (ports or SERVICE_PORTS).items():
            env = {
                "GOLDENKEY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "GOLDENKEY_MONGODB_URL": self.mongodb_url,
                "GOLDENKEY_TOKENS_FILE": str(REPO / "deploy" / "dev-tokens.json"),
                **{k: v for k, v in os.environ.items() if k.startswith("GOLDENKEY_")},
                **(env or {}),
                "GOLDENKEY_HTTP_PORT": str(port),
            }
            parts.append(
                Part(
                    name,
                    port,
                    [sys.executable, "-m", f"goldenkey.{name}"],
                    logs / f"{name}.log",
                    run / f"{name}.pid",
                    cwd=REPO,
                    timeout=60,
                    env=env,
                )
            )
        return parts

    def up_services(self) -> None:
        for part in self.service_parts():
            if read_pid(part.pidfile) is not None:
                log(f"{part.name} already running on 127.0.0.1:{part.port}")
                continue
            part.start()
            log(f"{part.name} up on http://127.0.0.1:{part.port} (docs: /docs, log: logs/{part.logfile.name})")

    def down(self) -> None:
        run = self.root / "run"
        for name in (*SERVICE_PORTS, "prometheus", "kafka", "ferretdb"):
            pidfile = run / f"{name}.pid"
            pid = read_pid(pidfile)
            if pid is not None:
                stop_pid(pid, 20)
                log(f"{name} stopped")
            pidfile.unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        run = self.root / "run"
        return {
            name: f"running, pid {pid}" if (pid := read_pid(run / f"{name}.pid")) else "stopped"
            for name in ("ferretdb", "kafka", "prometheus", *SERVICE_PORTS)
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--services", action="store_true", help="with up: also start the four services")
    parser.add_argument("--root", type=Path, default=REPO / ".devstack", help="data, logs and pid files")
    args = parser.parse_args()
    stack = Stack(args.root)
    if args.command == "build":
        kafka_classpath()
        ferretdb_binary()
    elif args.command == "up":
        stack.up()
        if args.services:
            stack.up_services()
    elif args.command == "down":
        stack.down()
    else:
        print(json.dumps(stack.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
