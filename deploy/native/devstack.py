"""The native dev stack: Apache Kafka (KRaft), mongo-java-server and Prometheus on loopback, no Docker.

`python deploy/native/devstack.py up|down|status|build` runs the stack for `make up`; tests import
`Stack` to run a throwaway one on free ports. The MongoDB-protocol server is mongo-java-server
behind our launcher (deploy/native/mongo/), which announces MongoDB 4.4 (wire version 9): on its
H2 file backend for `make up`, in memory for throwaway stacks. Downloads and builds are cached
outside the repo (`$GOLDENKEY_CACHE`, default `~/.cache/goldenkey`), so only the first run on a
machine is slow. Standard library only: this runs before the virtualenv has anything in it.
See docs/devstack.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.1"
SLF4J_VERSION = "1.7.36"  # the slf4j-api version Kafka 4.1 depends on
MONGO_JAVA_SERVER_VERSION = "1.47.0"

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GOLDENKEY_CACHE", Path.home() / ".cache" / "goldenkey"))
LAUNCHER = REPO / "deploy" / "native" / "mongo"
SERVICE_PORTS = {"queue": 8001, "concierge": 8002, "parking": 8003, "feedback": 8004}
DATABASE = "mongodb"
"""The database part's name: its pid file, log file and `status` key."""

KAFKA_TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-get-offsets.sh": "org.apache.kafka.tools.GetOffsetShell",
}
"""Apache Kafka's command-line tools (in org.apache.kafka:kafka-tools since Kafka 4), as `up` writes
them into <root>/bin: the script name Kafka's distribution uses, and its main class."""


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


KAFKA_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.goldenkey</groupId><artifactId>kafka-classpath</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{KAFKA_VERSION}</version>
      <exclusions><!-- only the Kafka Connect tools need these (a web server's worth of jars) -->
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.jakarta.rs</groupId><artifactId>jackson-jakarta-rs-json-provider</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{SLF4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""


def digest(*parts: bytes) -> str:
    """A short hash naming a cached build after what it was built from."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:12]


def maven(arguments: list[str], cwd: Path) -> None:
    """Runs Maven quietly; its output is shown only when it fails."""
    done = subprocess.run(["mvn", "-q", "-B", *arguments], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"Maven failed (exit {done.returncode}) in {cwd}: mvn {' '.join(arguments)}")


def kafka_classpath() -> str:
    """Apache Kafka's broker and command-line tools jars, fetched by Maven once per pom above."""
    home = CACHE / f"kafka-{KAFKA_VERSION}-{digest(KAFKA_POM.encode())}"
    libs = home / "libs"
    if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed once to fetch the Apache Kafka jars")
        log(f"fetching Apache Kafka {KAFKA_VERSION} jars (broker and tools) with Maven (first run only)")
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(KAFKA_POM)
        tmp = libs.with_name(f"libs.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        maven(["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"], home)
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
    return str(libs / "*")


def launcher_sources() -> list[Path]:
    """The launcher's Maven project: pom.xml and src/, never a build's output."""
    return sorted(
        path
        for path in LAUNCHER.rglob("*")
        if path.is_file() and path.relative_to(LAUNCHER).parts[0] in {"pom.xml", "src"}
    )


def mongo_classpath() -> str:
    """Our mongo-java-server launcher and its jars, built by Maven once per version and source hash."""
    sources = launcher_sources()
    key = digest(
        MONGO_JAVA_SERVER_VERSION.encode(),
        *(part for path in sources for part in (path.relative_to(LAUNCHER).as_posix().encode(), path.read_bytes())),
    )
    home = CACHE / f"mongo-java-server-{MONGO_JAVA_SERVER_VERSION}-{key}"
    jar = home / "goldenkey-mongo.jar"
    if not jar.exists():
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed once to build the mongo-java-server launcher")
        log(
            f"building the mongo-java-server {MONGO_JAVA_SERVER_VERSION} launcher with Maven (first run, or it changed)"
        )
        work = home.with_name(f"{home.name}.partial-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        for path in sources:
            target = work / "src" / path.relative_to(LAUNCHER)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        maven(
            [
                f"-Dmongo-java-server.version={MONGO_JAVA_SERVER_VERSION}",
                "package",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={work / 'libs'}",
            ],
            work / "src",
        )
        (work / "src" / "target" / "goldenkey-mongo.jar").rename(work / "goldenkey-mongo.jar")
        shutil.rmtree(work / "src")
        try:
            work.rename(home)
        except OSError:  # another run finished the same build meanwhile
            if not jar.exists():
                raise
            shutil.rmtree(work, ignore_errors=True)
    return os.pathsep.join([str(jar), str(home / "libs" / "*")])


def prometheus_binary() -> Path | None:
    found = shutil.which("prometheus")
    if found is None:
        log("prometheus not found; install Debian's package (apt-get install prometheus) to run it")
    return Path(found) if found else None


PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.native.yml"


def prometheus_config(ports: dict[str, int] | None = None, interval: str | None = None) -> str:
    """The native Prometheus's config (prometheus.native.yml), the services' ports in `ports`
    (service → port) instead of SERVICE_PORTS, and scraping and evaluating the rules every
    `interval` instead of the file's. Derived from the file, so its jobs and labels stay the same."""
    text = PROMETHEUS_CONFIG.read_text()
    if ports is not None:
        by_port = {f"127.0.0.1:{SERVICE_PORTS[service]}": f"127.0.0.1:{port}" for service, port in ports.items()}
        text, found = re.subn(r'"(127\.0\.0\.1:\d+)"', lambda m: f'"{by_port.get(m[1], m[1])}"', text)
        if found != len(SERVICE_PORTS):
            raise ValueError(f"{PROMETHEUS_CONFIG.name} has {found} targets, not one per service")
    if interval is not None:
        text, found = re.subn(r"(?m)^(\s+(?:scrape|evaluation)_interval:\s*)\S+", rf"\g<1>{interval}", text)
        if found != 2:
            raise ValueError(f"{PROMETHEUS_CONFIG.name} has no global scrape_interval and evaluation_interval")
    return text


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
        self.launch()
        self.wait()

    def launch(self) -> None:
        """Start the process and return at once; `wait()` waits for its port."""
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
        self.pidfile.write_text(pid_line(self.proc.pid))

    def wait(self) -> None:
        wait_for_port(self.name, self.port, self.proc, self.timeout, self.logfile)

    def running(self) -> int | None:
        """The pid of this part's process while it runs (`read_pid`), else None."""
        return read_pid(self.pidfile)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        pid = read_pid(self.pidfile)
        if pid is not None:
            stop_pid(pid, timeout)
        self.pidfile.unlink(missing_ok=True)
        self.proc = None

    def kill(self, timeout: float = 15.0) -> None:
        """SIGKILL at once, as a crash would: nothing is shut down or flushed."""
        pid = read_pid(self.pidfile)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            wait_gone(pid, timeout)
        self.pidfile.unlink(missing_ok=True)
        self.proc = None


def process_state(pid: int) -> tuple[str, int] | None:
    """Process `pid`'s state letter (`R`, `S`, … `Z` for a zombie) and start time (clock ticks
    after boot) from /proc/<pid>/stat; None when there is no such process. The fields are counted
    from the last `)`, since the command name before it may hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def pid_line(pid: int) -> str:
    """What a pid file holds: the pid and, where /proc tells it, the process's start time."""
    state = process_state(pid)
    return f"{pid} {state[1]}\n" if state is not None else f"{pid}\n"


def alive(pid: int, started: int | None = None) -> bool:
    """Whether process `pid` runs, and started at `started` when that is given (so it is not another
    process that got the pid since). A zombie does not run: a process killed with SIGKILL stays one
    until its parent reaps it, and `kill(pid, 0)` still finds it. But a leader thread shows as a
    zombie as soon as it ends, while the process's other threads may run on, or still be letting go
    of its ports: it runs while /proc lists another of its threads. Without /proc only existence is
    known."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    state = process_state(pid)
    if state is None or (started is not None and state[1] != started):
        return False
    if state[0] not in "ZX":
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def read_pid(pidfile: Path) -> int | None:
    """The pid in `pidfile` while its process runs (`alive`), else None. A pid file an older
    devstack.py wrote holds the pid alone: only the process's existence is checked then."""
    try:
        pid, *started = (int(field) for field in pidfile.read_text().split())
    except (OSError, ValueError):
        return None
    return pid if alive(pid, started[0] if started else None) else None


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` ended within `timeout` seconds. Our own child is gone once reaped (the
    kernel lets a parent reap only a process whose every thread ended); another's, once not `alive`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child, or reaped already
            if not alive(pid):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_pid(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        wait_gone(pid, 5)


@dataclass
class Stack:
    """A Kafka + MongoDB-protocol server (+ Prometheus) stack under `root`, on the given loopback ports.

    `database_backend` is the launcher's: "h2" keeps the data in a file under `root` (what
    `make up` runs, so data survives `make down && make up`), "memory" keeps it in the JVM only.
    """

    root: Path
    kafka_port: int = 9092
    mongo_port: int = 27017
    prometheus_port: int | None = 9090
    kafka_heap: str = "512m"
    database_backend: str = "h2"
    database_heap: str = "256m"

    @classmethod
    def throwaway(cls, root: Path, durable: bool = False) -> Stack:
        """A stack on free ports for tests and benchmarks: the database in memory, unless `durable`
        (the H2 file backend, for tests that restart the database and expect their data back)."""
        return cls(
            root,
            kafka_port=free_port(),
            mongo_port=free_port(),
            prometheus_port=None,
            kafka_heap="384m",
            database_backend="h2" if durable else "memory",
        )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def database_file(self) -> Path:
        """The H2 backend's file (MVStore)."""
        return self.root / "mongodb" / "goldenkey.mv.db"

    def _folders(self) -> tuple[Path, Path]:
        run, logs = self.root / "run", self.root / "logs"
        for folder in (run, logs):
            folder.mkdir(parents=True, exist_ok=True)
        return run, logs

    def pids(self) -> dict[str, int]:
        """What runs under this stack's root, by part name (the services too, once started)."""
        run, _ = self._folders()
        found = {pidfile.stem: read_pid(pidfile) for pidfile in sorted(run.glob("*.pid"))}
        return {name: pid for name, pid in found.items() if pid is not None}

    def parts(self) -> list[Part]:
        run, logs = self._folders()
        parts = [self._database(run, logs), self._kafka(run, logs)]
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

    def _database(self, run: Path, logs: Path) -> Part:
        if self.database_backend == "h2":
            self.database_file.parent.mkdir(parents=True, exist_ok=True)
            backend = ["h2", str(self.database_file), "commit"]  # commit after every write: see docs/devstack.md
        elif self.database_backend == "memory":
            backend = ["memory"]
        else:
            raise ValueError(f"unknown database backend {self.database_backend!r} (h2 or memory)")
        argv = [
            "java",
            f"-Xmx{self.database_heap}",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.log.de.bwaldvogel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
            "-cp",
            mongo_classpath(),
            "goldenkey.devstack.MongoLauncher",
            str(self.mongo_port),
            *backend,
        ]
        return Part(DATABASE, self.mongo_port, argv, logs / f"{DATABASE}.log", run / f"{DATABASE}.pid", timeout=60)

    def prometheus(self, ports: dict[str, int], interval: str = "1s") -> Part | None:
        """A Prometheus for services this stack runs on other ports than `make up`'s (`ports`:
        service → port), scraping them and evaluating the alert rules every `interval`, on
        `prometheus_port` (a free port if None); its data under <root>/prometheus. To `start()` and
        `stop()`; `down()` stops it too. None when the prometheus binary is not installed."""
        binary = prometheus_binary()
        if binary is None:
            return None
        if self.prometheus_port is None:
            self.prometheus_port = free_port()
        return self._prometheus(binary, *self._folders(), config=prometheus_config(ports, interval))

    @property
    def prometheus_url(self) -> str | None:
        return f"http://127.0.0.1:{self.prometheus_port}" if self.prometheus_port is not None else None

    def _prometheus(self, binary: Path, run: Path, logs: Path, config: str | None = None) -> Part:
        """`config`: the text of prometheus.yml; by default prometheus.native.yml as it is."""
        assert self.prometheus_port is not None
        path = self.root / "prometheus.yml"
        path.write_text(config if config is not None else PROMETHEUS_CONFIG.read_text())
        rules = REPO / "deploy" / "prometheus" / "rules"
        if rules.is_dir():
            shutil.copytree(rules, self.root / "rules", dirs_exist_ok=True)
        argv = [
            str(binary),
            f"--config.file={path}",
            f"--storage.tsdb.path={self.root / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        ]
        return Part("prometheus", self.prometheus_port, argv, logs / "prometheus.log", run / "prometheus.pid")

    def up(self) -> None:
        self.write_kafka_tools()
        started: list[Part] = []
        try:
            for part in self.parts():
                if part.running() is not None:
                    log(f"{part.name} already running on 127.0.0.1:{part.port}")
                    continue
                part.start()
                started.append(part)
                log(f"{part.name} up on 127.0.0.1:{part.port} (log: {part.logfile.relative_to(self.root)})")
        except BaseException:
            for part in reversed(started):
                part.stop()
            raise

    def database(self) -> Part:
        """The MongoDB-protocol server's part, to stop (or kill) and start it again (tests of outages)."""
        return self._database(*self._folders())

    def kafka(self) -> Part:
        """The Kafka part, to stop (or kill) and start it again on the same port (tests of outages).
        Its data directory stays, and is formatted only the first time, so the topics, their
        records and the committed offsets are there after the restart."""
        return self._kafka(*self._folders())

    def write_kafka_tools(self) -> list[Path]:
        """<root>/bin/kafka-topics.sh and the other tools of KAFKA_TOOLS, on this stack's classpath.

        They take Kafka's own options: `--bootstrap-server 127.0.0.1:9092` and so on."""
        folder = self.root / "bin"
        folder.mkdir(parents=True, exist_ok=True)
        classpath = kafka_classpath()
        written = []
        for script, main_class in KAFKA_TOOLS.items():
            path = folder / script
            path.write_text(
                "#!/bin/sh\n"
                f"# Apache Kafka {KAFKA_VERSION}'s {script}, for the native dev stack (written by devstack.py up).\n"
                f"exec java -Xmx256m -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn"
                f' -cp {shlex.quote(classpath)} {main_class} "$@"\n'
            )
            path.chmod(0o755)
            written.append(path)
        return written

    def service_parts(self, ports: dict[str, int] | None = None, env: dict[str, str] | None = None) -> list[Part]:
        """The four services, as `make up` runs them: the caller's GOLDENKEY_* variables win, then `env`."""
        run, logs = self._folders()
        parts = []
        for name, port in (ports or SERVICE_PORTS).items():
            env = {
                "GOLDENKEY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "GOLDENKEY_MONGODB_URL": self.mongodb_url,
                "GOLDENKEY_TOKENS_FILE": str(REPO / "deploy" / "dev-tokens.json"),
                "GOLDENKEY_DEV_MODE": "true",  # the dev tokens and the dev PII key (docs/security.md)
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
            if part.running() is not None:
                log(f"{part.name} already running on 127.0.0.1:{part.port}")
                continue
            part.start()
            log(f"{part.name} up on http://127.0.0.1:{part.port} (docs: /docs, log: logs/{part.logfile.name})")

    def down(self) -> None:
        """Stops what `up` started: every process with a pid file under <root>/run."""
        run = self.root / "run"
        known = [*SERVICE_PORTS, "prometheus", "kafka", DATABASE]
        others = sorted(path.stem for path in run.glob("*.pid") if path.stem not in known) if run.is_dir() else []
        for name in (*known, *others):  # others: parts an older devstack.py ran
            pidfile = run / f"{name}.pid"
            pid = read_pid(pidfile)
            if pid is not None:
                stop_pid(pid, 20)
                log(f"{name} stopped")
            pidfile.unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        run = self.root / "run"
        status = {}
        for name in (DATABASE, "kafka", "prometheus", *SERVICE_PORTS):
            pid = read_pid(run / f"{name}.pid")
            status[name] = f"running, pid {pid}" if pid else "stopped"
            if pid and name == DATABASE:
                status[name] += f", {describe_database(self.mongo_port)}"
        return status


# --- asking the database what it is (OP_MSG, a few BSON types; standard library only) -----------


def bson_encode(document: dict[str, object]) -> bytes:
    """BSON for a command: strings, booleans, 32-bit integers, doubles and sub-documents only."""
    body = bytearray()
    for key, value in document.items():
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, float):
            body += b"\x01" + name + struct.pack("<d", value)
        elif isinstance(value, str):
            text = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(text)) + text
        elif isinstance(value, dict):
            body += b"\x03" + name + bson_encode(value)
        else:
            raise TypeError(f"cannot encode {type(value).__name__} for {key!r}")
    return struct.pack("<i", len(body) + 5) + bytes(body) + b"\x00"


def bson_decode(data: bytes, start: int = 0) -> dict[str, object]:
    """A BSON document; types a reply carries decode to Python values, a few to their raw bytes."""
    (length,) = struct.unpack_from("<i", data, start)
    end, pos = start + length, start + 4
    document: dict[str, object] = {}
    while pos < end - 1:
        kind = data[pos]
        nul = data.index(b"\x00", pos + 1)
        key, pos = data[pos + 1 : nul].decode(), nul + 1
        value: object
        if kind == 0x01:
            (value,), pos = struct.unpack_from("<d", data, pos), pos + 8
        elif kind in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol
            (size,) = struct.unpack_from("<i", data, pos)
            value, pos = data[pos + 4 : pos + 3 + size].decode(), pos + 4 + size
        elif kind in (0x03, 0x04):  # document, array
            (size,) = struct.unpack_from("<i", data, pos)
            inner = bson_decode(data, pos)
            value, pos = (inner if kind == 0x03 else list(inner.values())), pos + size
        elif kind == 0x05:  # binary: length, subtype, bytes
            (size,) = struct.unpack_from("<i", data, pos)
            value, pos = data[pos + 5 : pos + 5 + size], pos + 5 + size
        elif kind == 0x07:  # ObjectId
            value, pos = data[pos : pos + 12].hex(), pos + 12
        elif kind == 0x08:
            value, pos = data[pos] != 0, pos + 1
        elif kind in (0x09, 0x12):  # UTC datetime (ms), int64
            (value,), pos = struct.unpack_from("<q", data, pos), pos + 8
        elif kind in (0x0A, 0x06, 0x7F, 0xFF):  # null, undefined, max key, min key
            value = None
        elif kind == 0x10:
            (value,), pos = struct.unpack_from("<i", data, pos), pos + 4
        elif kind == 0x11:  # timestamp
            (value,), pos = struct.unpack_from("<Q", data, pos), pos + 8
        elif kind == 0x13:  # decimal128
            value, pos = data[pos : pos + 16], pos + 16
        else:
            raise ValueError(f"BSON type {kind:#04x} for {key!r} is not decoded here")
        document[key] = value
    return document


OP_MSG = 2013
_request_ids = itertools.count(1)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return bytes(data)


def mongo_command(
    port: int, command: dict[str, object], database: str = "admin", timeout: float = 3.0
) -> dict[str, object]:
    """One command over OP_MSG to 127.0.0.1:`port`, and its reply document."""
    body = struct.pack("<I", 0) + b"\x00" + bson_encode({**command, "$db": database})
    request_id = next(_request_ids)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body)
        length, _, response_to, opcode = struct.unpack("<iiii", _receive(sock, 16))
        reply = _receive(sock, length - 16)
    if opcode != OP_MSG or response_to != request_id or reply[4] != 0:
        raise ValueError(f"unexpected reply (opcode {opcode}, to {response_to}, section {reply[4]})")
    return bson_decode(reply, 5)


def describe_database(port: int) -> str:
    """What answers on `port`, as it says: e.g. "mongo-java-server 1.47.0, h2 backend (announces
    MongoDB 4.4.0, wire 9)". Our launcher names itself in buildInfo's `mongoJavaServer`; anything
    else is named by the version it announces."""
    try:
        info = mongo_command(port, {"buildInfo": 1})
        hello = mongo_command(port, {"hello": 1})
        if not hello.get("ok"):  # servers older than MongoDB 4.4.2 know only the legacy name
            hello = mongo_command(port, {"isMaster": 1})
    except (OSError, ValueError, struct.error, IndexError) as error:
        return f"not answering on 127.0.0.1:{port} ({error})"
    announced = f"MongoDB {info.get('version', '?')}, wire {hello.get('maxWireVersion', '?')}"
    server = info.get("mongoJavaServer")
    if isinstance(server, dict):
        backend = f", {server['backend']} backend" if server.get("backend") else ""
        return f"mongo-java-server {server.get('version', '?')}{backend} (announces {announced})"
    return announced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--services", action="store_true", help="with up: also start the four services")
    parser.add_argument("--root", type=Path, default=REPO / ".devstack", help="data, logs and pid files")
    args = parser.parse_args()
    stack = Stack(args.root)
    if args.command == "build":
        kafka_classpath()
        mongo_classpath()
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
