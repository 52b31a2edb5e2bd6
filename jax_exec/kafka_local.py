"""A real Apache Kafka broker run by the project: jars from Maven Central, one KRaft node.

Install (idempotent) -> format storage once -> start detached -> wait until ready -> stop.
Everything lives under $JAX_HOME/kafka; the jars under $JAX_HOME/cache.

`jax-exec kafka start` leaves the broker running as a daemon; `jax-exec run` starts it tied to
itself (`start(tied=True)`): on Linux the kernel sends the broker SIGTERM (a controlled
shutdown) when `run` dies, even by SIGKILL, so no broker outlives the command that started it.
"""

from __future__ import annotations

import base64
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from schemas.errors import JaxError

DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
POM = DEPLOY_DIR / "pom.xml"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class KafkaControlError(JaxError):
    code = "kafka_control"


def pinned_version() -> str:
    """The one Kafka release the project runs, as pinned in deploy/kafka/pom.xml."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise KafkaControlError(f"no <kafka.version> in {POM}")
    return match.group(1)


@dataclass(frozen=True)
class LocalKafka:
    """Paths and ports of the local broker under one JAX_HOME."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 9092

    @classmethod
    def from_bootstrap(cls, home: Path, bootstrap: str) -> LocalKafka:
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise KafkaControlError(
                f"KAFKA_BOOTSTRAP={bootstrap} is not local: the project starts a broker only on "
                "127.0.0.1; point KAFKA_BOOTSTRAP at your cluster and skip `jax-exec kafka start`"
            )
        return cls(home=home, host="127.0.0.1", port=int(port))

    @property
    def version(self) -> str:
        return pinned_version()

    @property
    def libs(self) -> Path:
        return self.home / "cache" / f"kafka-{self.version}" / "libs"

    @property
    def base(self) -> Path:
        return self.home / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def logs_dir(self) -> Path:
        return self.base / "logs"

    @property
    def config_file(self) -> Path:
        return self.base / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.base / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def classpath(self) -> str:
        return str(self.libs / "*")

    # -- install -------------------------------------------------------------------------

    def install(self) -> bool:
        """Resolve the pinned release's jars with Maven; skipped when already present."""
        marker = self.libs / ".complete"
        if marker.exists():
            return False
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaControlError("Maven (mvn) is needed to install Kafka: apt-get install maven")
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise KafkaControlError(f"Maven could not resolve Kafka {self.version}:\n"
                                    f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
        marker.write_text(self.version)
        return True

    # -- configure and format ------------------------------------------------------------

    def configure(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        template = Template((DEPLOY_DIR / "server.properties.template").read_text())
        self.config_file.write_text(template.substitute(
            host=self.host, port=self.port, controller_port=self.port + 1,
            data_dir=self.data_dir,
        ))

    def format_storage(self) -> bool:
        """Format the KRaft storage once; a formatted directory is left alone."""
        if (self.data_dir / "meta.properties").exists():
            return False
        cluster_id = _cluster_id()
        cmd = [_java(), "-cp", self.classpath(), *self._log_opts(), "kafka.tools.StorageTool",
               "format", "-t", cluster_id, "-c", str(self.config_file), "--standalone"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise KafkaControlError(f"formatting Kafka storage failed:\n{result.stderr[-3000:]}")
        return True

    # -- run -----------------------------------------------------------------------------

    def _log_opts(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={self.logs_dir}"]

    def pid(self) -> int | None:
        """The broker's pid when it is running, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def reachable(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 90.0, *, tied: bool = False) -> int:
        """Install, format and start the broker detached; return its pid once it serves.
        `tied`: the broker gets SIGTERM when this process dies (Linux), however it dies."""
        running = self.pid()
        if running is not None:
            self.wait_ready(timeout)
            return running
        if self.reachable():
            raise KafkaControlError(
                f"something else listens on {self.bootstrap}; stop it or set KAFKA_BOOTSTRAP"
            )
        self.install()
        self.configure()
        self.format_storage()
        heap = os.environ.get("KAFKA_HEAP", "-Xmx512m")
        cmd = [_java(), heap, "-XX:+UseG1GC", "-cp", self.classpath(), *self._log_opts(),
               "kafka.Kafka", str(self.config_file)]
        with (self.logs_dir / "kafka.out").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent() if tied else None,
            )
        self.pid_file.write_text(str(proc.pid))
        self.wait_ready(timeout, proc)
        return proc.pid

    def wait_ready(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until the broker answers a metadata request (not just an open port)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise KafkaControlError(f"{self.log_tail()}\n^ {self.logs_dir}\n"
                                        f"Kafka on {self.bootstrap} exited with {proc.returncode}")
            if self.reachable() and _answers_metadata(self.bootstrap):
                return
            time.sleep(0.3)
        raise KafkaControlError(f"{self.log_tail()}\n^ {self.logs_dir}\n"
                                f"Kafka on {self.bootstrap} not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> bool:
        """Controlled shutdown (SIGTERM), SIGKILL only after the timeout."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None or _is_zombie(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The log's last warnings and errors, then its last lines (the end matters most)."""
        for name in ("kafka.out", "server.log"):
            path = self.logs_dir / name
            if path.exists() and path.stat().st_size:
                text = path.read_text(errors="replace").splitlines()
                alarms = [line for line in text[:-lines] if " WARN " in line or " ERROR " in line]
                return "\n".join([*alarms[-10:], "...", *text[-lines:]] if alarms
                                 else text[-lines:])
        return "(no log yet)"


def _cluster_id() -> str:
    """A KRaft cluster id as Kafka makes them: base64url of a random UUID, never starting with
    "-" (the storage tool would read it as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaControlError("Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre")
    return java


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when its parent dies (Linux only:
    elsewhere the parent's own stop paths are all there is). The pdeath signal survives exec
    and is tied to the thread that forks: start the broker from the main thread."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not between fork and exec
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _answers_metadata(bootstrap: str) -> bool:
    """True once the broker serves metadata: a KRaft node opens its port before it is ready."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.describe_cluster()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


# -- a three-node cluster on this machine ------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode(LocalKafka):
    """One node of `KafkaCluster`: its own directory, ports and node id; formatted with the
    cluster's shared id against a static quorum of every node's controller."""

    node_id: int = 1
    voters: str = ""
    cluster_dir: Path = Path()

    @property
    def base(self) -> Path:
        return self.cluster_dir / f"node{self.node_id}"

    def configure(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        template = Template((DEPLOY_DIR / "cluster.properties.template").read_text())
        self.config_file.write_text(template.substitute(
            node_id=self.node_id, voters=self.voters, host=self.host, port=self.port,
            controller_port=self.port + 1, data_dir=self.data_dir))

    def format_with(self, cluster_id: str) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = [_java(), "-cp", self.classpath(), *self._log_opts(), "kafka.tools.StorageTool",
               "format", "-t", cluster_id, "-c", str(self.config_file)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise KafkaControlError(f"formatting node {self.node_id} failed:\n"
                                    f"{result.stderr[-3000:]}")

    def launch(self, tied: bool = False) -> subprocess.Popen[bytes]:
        """Start detached without waiting: a node is ready only once a quorum is up."""
        heap = os.environ.get("KAFKA_HEAP", "-Xmx384m")
        cmd = [_java(), heap, "-XX:+UseG1GC", "-cp", self.classpath(), *self._log_opts(),
               "kafka.Kafka", str(self.config_file)]
        with (self.logs_dir / "kafka.out").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent() if tied else None)
        self.pid_file.write_text(str(proc.pid))
        return proc

    def start(self, timeout: float = 90.0, *, tied: bool = False) -> int:
        """(Re)start this one node of a formatted cluster and wait until it serves."""
        running = self.pid()
        if running is not None:
            return running
        self.configure()
        proc = self.launch(tied)
        self.wait_ready(timeout, proc)
        return proc.pid


@dataclass(frozen=True)
class KafkaCluster:
    """`nodes` KRaft nodes (broker + controller each) on 127.0.0.1 under <home>/kafka-cluster:
    node n listens on port + 2(n-1), its controller one above. Replication factor 3 and
    min.insync.replicas 2 (deploy/kafka/cluster.properties.template); jars shared with the
    single broker (<home>/cache)."""

    home: Path
    port: int = 9092
    nodes: int = 3
    host: str = "127.0.0.1"

    @property
    def dir(self) -> Path:
        return self.home / "kafka-cluster"

    @property
    def members(self) -> list[ClusterNode]:
        voters = ",".join(f"{n}@{self.host}:{self.port + 2 * (n - 1) + 1}"
                          for n in range(1, self.nodes + 1))
        return [ClusterNode(home=self.home, host=self.host, port=self.port + 2 * (n - 1),
                            node_id=n, voters=voters, cluster_dir=self.dir)
                for n in range(1, self.nodes + 1)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.members)

    @property
    def version(self) -> str:
        return pinned_version()

    def start(self, timeout: float = 120.0, *, tied: bool = False) -> list[int]:
        """Install, format every node with one cluster id (once), start all, wait for each."""
        members = self.members
        members[0].install()
        self.dir.mkdir(parents=True, exist_ok=True)
        id_file = self.dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_cluster_id())
        cluster_id = id_file.read_text().strip()
        procs: dict[int, subprocess.Popen[bytes] | None] = {}
        for node in members:
            if node.pid() is not None:
                procs[node.node_id] = None
                continue
            if node.reachable():
                raise KafkaControlError(f"something else listens on {node.bootstrap}")
            node.configure()
            node.format_with(cluster_id)
            procs[node.node_id] = node.launch(tied)
        for node in members:
            try:
                node.wait_ready(timeout, procs[node.node_id])
            except KafkaControlError as exc:
                raise KafkaControlError(f"{exc}\n(node {node.node_id} of {self.nodes}; "
                                        f"ports {self.port}..{self.port + 2 * self.nodes - 1})"
                                        ) from None
        return [node.pid() or 0 for node in members]

    def stop(self, timeout: float = 30.0) -> int:
        """Controlled shutdown of every node; how many were running."""
        return sum(1 for node in self.members if node.stop(timeout))

    def node(self, node_id: int) -> ClusterNode:
        return self.members[node_id - 1]
