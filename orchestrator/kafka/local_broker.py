"""A real Apache Kafka broker (KRaft, single node) fetched from Maven Central and run locally.

Used by ``orchestrator kafka up|down|status``, by the demo and by the test suite's broker fixture.
The jars are fetched once with Maven into a cache outside the repository
(``$ORCH_KAFKA_CACHE`` or ``~/.cache/orchestrator/kafka/<version>``) and reused.
Each broker has a run directory (data, config, log, ``broker.json`` with its pid); it is stopped by
that recorded pid, never by process name.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.exceptions import BrokerError, ToolMissingError

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerInfo",
    "LocalBroker",
    "SecureListeners",
    "default_cache_dir",
    "default_run_dir",
    "fetch_kafka",
    "free_port",
]

DEFAULT_KAFKA_VERSION = "4.4.0"
"""Pinned broker version; README.md says why (the newest 4.x our clients pass the suite on)."""

LOG4J2_VERSION = "2.24.3"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>orchestrator.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
{logging}
  </dependencies>
</project>
"""

_LOG4J2 = f"""    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{LOG4J2_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J2_VERSION}</version></dependency>"""

_RELOAD4J = """    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId>
      <version>1.2.25</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version></dependency>"""

_LOG4J2_PROPERTIES = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""

_LOG4J1_PROPERTIES = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise BrokerError(f"not a Kafka version: {version!r}") from None


def default_cache_dir(version: str) -> Path:
    base = os.environ.get("ORCH_KAFKA_CACHE")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (root if base else root / "orchestrator" / "kafka") / version


def default_run_dir(port: int) -> Path:
    root = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return root / "orchestrator" / f"kafka-{port}"


def _port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (a bind succeeds; SO_REUSEADDR as the JVM sets it, so
    a port left in TIME_WAIT by a broker just stopped counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(f"'{tool}' was not found on PATH: {hint}")
    return path


def fetch_kafka(version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Fetch the broker jars of ``version`` (and a logging binding) into the cache; return the lib dir.

    A second call finds the completed cache and returns at once.
    """
    cache = cache_dir or default_cache_dir(version)
    libs = cache / "libs"
    done = cache / ".complete"
    if done.exists() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = _require("mvn", "install Maven (Debian: apt-get install maven) to fetch the Kafka jars")
    _require("java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)")
    cache.mkdir(parents=True, exist_ok=True)
    logging = _LOG4J2 if _major(version) >= 4 else _RELOAD4J
    (cache / "pom.xml").write_text(_POM.format(version=version, logging=logging), encoding="utf-8")
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [mvn, "-q", "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise BrokerError(f"Maven could not fetch org.apache.kafka:kafka_2.13:{version}:\n" + "\n".join(tail))
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven finished but {libs} holds no kafka_2.13 jar")
    done.write_text(version, encoding="utf-8")
    return libs


@dataclass(frozen=True)
class BrokerInfo:
    """What ``broker.json`` records about a started broker."""

    pid: int
    version: str
    host: str
    port: int
    controller_port: int
    run_dir: str
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SecureListeners:
    """Extra listeners of a :class:`LocalBroker`, next to its PLAINTEXT one (which the controller and
    the inter-broker traffic keep using, on loopback).

    - ``ssl_port``: an SSL listener. It *requests* a client certificate (``ssl.client.auth=requested``):
      a client may connect without one, but one it presents must be signed by ``truststore``.
    - ``sasl_ssl_port``: a SASL_SSL listener with SCRAM-SHA-256 and SCRAM-SHA-512 enabled.
    - ``keystore``: the server's private key (PKCS#8) and certificate chain in one PEM file
      (``ssl.keystore.type=PEM``; no keytool needed); ``truststore``: CA certificates (PEM).
    - ``scram_users``: user name -> password, created for both SCRAM mechanisms (through the admin API on
      the PLAINTEXT listener) each time the broker starts.
    """

    keystore: Path
    truststore: Path
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None
    scram_users: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.sasl_ssl_port is not None and not self.scram_users:
            raise BrokerError("a SASL_SSL listener needs at least one SCRAM user")

    def properties(self) -> list[str]:
        """The lines of server.properties these listeners add (listeners themselves excluded)."""
        lines = [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore.resolve()}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.truststore.resolve()}",
            "ssl.endpoint.identification.algorithm=https",
        ]
        if self.ssl_port is not None:
            lines.append("listener.name.ssl.ssl.client.auth=requested")
        if self.sasl_ssl_port is not None:
            login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            lines += [
                "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
                "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
                f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={login}",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={login}",
            ]
        return lines


def _pid_is_kafka(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline


def _answers_metadata(bootstrap: str, timeout: float = 2.0, **extra: Any) -> bool:
    """True when the broker answers a metadata request (not merely an open port); ``extra``: more
    librdkafka settings (the secured listeners' TLS and SASL)."""
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "log_level": 0,
        "logger": _SilentLogger(),
        **extra,
    }
    admin = AdminClient(conf)
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(md.brokers)


def _secure_client_conf(protocol: str, secure: SecureListeners) -> dict[str, Any]:
    conf: dict[str, Any] = {"security.protocol": protocol, "ssl.ca.location": str(secure.truststore)}
    if protocol == "SASL_SSL":
        user, password = secure.scram_users[0]
        conf.update({"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password})
    return conf


def _upsert_scram_users(bootstrap: str, users: tuple[tuple[str, str], ...], timeout: float = 30.0) -> None:
    """Create (or reset) each user's SCRAM-SHA-256 and SCRAM-SHA-512 credentials."""
    if not users:
        return
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0, "logger": _SilentLogger()}
    admin = AdminClient(conf)
    # The broker takes one alteration per user and request: one request per mechanism.
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        changes: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), password.encode())
            for user, password in users
        ]
        for user, future in admin.alter_user_scram_credentials(changes, request_timeout=timeout).items():
            try:
                future.result(timeout)
            except Exception as exc:
                raise BrokerError(
                    f"creating the {mechanism.name} credentials of {user!r} failed: {exc}"
                ) from None


class _SilentLogger:
    """librdkafka logs connection refusals while a broker starts; they are expected here."""

    def log(self, *args: object) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


class LocalBroker:
    """One local KRaft broker: its run directory, config, process and recorded pid."""

    def __init__(
        self,
        *,
        port: int = 9092,
        controller_port: int | None = None,
        run_dir: Path | None = None,
        version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "768m",
        cache_dir: Path | None = None,
        host: str = "127.0.0.1",
        secure: SecureListeners | None = None,
    ) -> None:
        self.port = port
        self.controller_port = controller_port or (port + 1)
        self.run_dir = (run_dir or default_run_dir(port)).resolve()
        self.version = version
        self.heap = heap
        self.cache_dir = cache_dir
        self.host = host
        self.secure = secure

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _state_file(self) -> Path:
        return self.run_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "broker.log"

    def recorded(self) -> BrokerInfo | None:
        """The broker recorded in the run directory, if its process is still a running Kafka."""
        try:
            info = BrokerInfo(**json.loads(self._state_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return info if _pid_is_kafka(info.pid) else None

    def _write_config(self) -> Path:
        data = self.run_dir / "data"
        props = self.run_dir / "server.properties"
        advertised = [f"PLAINTEXT://{self.host}:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        if self.secure is not None and self.secure.ssl_port is not None:
            advertised.append(f"SSL://{self.host}:{self.secure.ssl_port}")
            protocols.append("SSL:SSL")
        if self.secure is not None and self.secure.sasl_ssl_port is not None:
            advertised.append(f"SASL_SSL://{self.host}:{self.secure.sasl_ssl_port}")
            protocols.append("SASL_SSL:SASL_SSL")
        listeners = [*advertised, f"CONTROLLER://{self.host}:{self.controller_port}"]
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.cleaner.dedupe.buffer.size=33554432",
        ]
        if _major(self.version) >= 4:
            lines += [
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
            ]
        if self.secure is not None:
            lines += self.secure.properties()
        props.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return props

    def _logging_args(self) -> list[str]:
        if _major(self.version) >= 4:
            cfg = self.run_dir / "log4j2.properties"
            cfg.write_text(_LOG4J2_PROPERTIES.format(log=self.run_dir / "server.log"), encoding="utf-8")
            return [f"-Dlog4j2.configurationFile=file:{cfg}"]
        cfg = self.run_dir / "log4j.properties"
        cfg.write_text(_LOG4J1_PROPERTIES.format(log=self.run_dir / "server.log"), encoding="utf-8")
        return [f"-Dlog4j.configuration=file:{cfg}"]

    def _format(self, java: str, libs: Path, props: Path, logging: list[str]) -> None:
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "--cluster-id=<id>" in one word: an id may begin with "-", which argparse takes for an option
        cmd = [java, *logging, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
               f"--cluster-id={cluster_id}", "-c", str(props)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(f"formatting {self.run_dir / 'data'} failed:\n{proc.stdout}{proc.stderr}")

    def up(self, timeout: float = 90.0, say: Callable[[str], None] = lambda s: None) -> BrokerInfo:
        """Start the broker (fetching and formatting first when needed); idempotent."""
        running = self.recorded()
        if running is not None:
            say(f"Kafka {running.version} already runs (pid {running.pid}) in {running.run_dir}")
            return running
        self._refuse_ports_in_use()
        java = _require(
            "java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
        )
        say(f"fetching Apache Kafka {self.version} jars (cached after the first run)")
        libs = fetch_kafka(self.version, self.cache_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        logging = self._logging_args()
        self._format(java, libs, props, logging)
        cmd = [java, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               *logging, "-cp", f"{libs}/*", "kafka.Kafka", str(props)]  # fmt: skip
        say(f"starting the broker on {self.bootstrap} (data in {self.run_dir / 'data'})")
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        secure = self.secure
        info = BrokerInfo(
            proc.pid, self.version, self.host, self.port, self.controller_port, str(self.run_dir),
            secure.ssl_port if secure else None, secure.sasl_ssl_port if secure else None,
        )  # fmt: skip
        self._state_file.write_text(json.dumps(asdict(info)), encoding="utf-8")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._state_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker exited with {proc.returncode} while starting:\n{self._log_tail()}"
                )
            if _answers_metadata(self.bootstrap, timeout=1.0):
                if secure is not None:
                    self._secure_up(secure, deadline)
                return info
        self.down()
        raise BrokerError(
            f"the broker did not answer a metadata request within {timeout:.0f}s:\n{self._log_tail()}"
        )

    def _refuse_ports_in_use(self) -> None:
        """A port another process listens on would be answered by it: another broker's metadata would
        pass for this one's, while the new JVM dies on it seconds later. Refused before anything starts."""
        secure = self.secure
        ports: list[tuple[str, int | None]] = [("client", self.port), ("controller", self.controller_port)]
        if secure is not None:
            ports += [("SSL", secure.ssl_port), ("SASL_SSL", secure.sasl_ssl_port)]
        for name, port in ports:
            if port is not None and not _port_free(self.host, port):
                raise BrokerError(
                    f"the {name} port {self.host}:{port} is in use by another process: stop it, or choose "
                    f"another port (orchestrator kafka up --port N; the controller takes N+1)"
                )

    def _secure_up(self, secure: SecureListeners, deadline: float) -> None:
        """Create the SCRAM users, then wait until the secured listeners answer (a SCRAM login on the
        SASL_SSL one); stops the broker and raises :class:`BrokerError` when they do not in time."""
        try:
            _upsert_scram_users(self.bootstrap, secure.scram_users)
            for protocol, port in (("SSL", secure.ssl_port), ("SASL_SSL", secure.sasl_ssl_port)):
                if port is None:
                    continue
                conf = _secure_client_conf(protocol, secure)
                while not _answers_metadata(f"{self.host}:{port}", timeout=1.0, **conf):
                    if time.monotonic() > deadline:
                        raise BrokerError(f"the {protocol} listener on port {port} did not answer in time")
        except BrokerError as exc:
            self.down()
            raise BrokerError(f"{exc}:\n{self._log_tail()}") from None

    def _log_tail(self, lines: int = 25) -> str:
        out: list[str] = []
        for f in (self.log_file, self.run_dir / "server.log"):
            if f.exists():
                out += f.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def down(self, timeout: float = 30.0) -> BrokerInfo | None:
        """Stop the broker by its recorded pid; what was recorded of it (its address), None when none
        was running."""
        info = self.recorded()
        if info is None:
            self._state_file.unlink(missing_ok=True)
            return None
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_is_kafka(info.pid):
            time.sleep(0.1)
        if _pid_is_kafka(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        self._state_file.unlink(missing_ok=True)
        return info

    def status(self) -> BrokerInfo | None:
        """The running broker, if it answers metadata requests."""
        info = self.recorded()
        return info if info is not None and _answers_metadata(info.bootstrap) else None
