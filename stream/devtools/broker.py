"""A real single-node Apache Kafka broker for development, tests and the demo, without Docker.

The broker jars come from Maven Central (deploy/kafka/pom.xml), once, into a cache outside
the repo; the broker runs detached as `java ... kafka.Kafka server.properties` in KRaft mode
(one node that is both broker and controller) on 127.0.0.1. A data dir holds everything
about one broker: server.properties, the Kafka logs (data/), broker.log and broker.pid.

    info = start(port=9092)        # returns at once if that data dir's broker already runs
    info.bootstrap                 # "127.0.0.1:9092"
    stop(port=9092)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schemas.errors import LogadError
from stream.devtools.broker_config import (
    HOST,
    Listener,
    new_cluster_id,
    parse_port,
    render_server_properties,
)

log = structlog.get_logger(__name__)

# aiokafka 0.14 speaks the oldest protocol versions Kafka 4 still accepts; the 4.0 line is the
# one reported to work with it, and tests/integration proves produce/consume/commit on it.
KAFKA_VERSION = "4.0.2"
DEFAULT_PORT = 9092

_DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
_JVM_HEAP = ("-Xms256m", "-Xmx768m")
FETCHED_MARKER = ".fetched"
"""Written once a fetch of the jars is complete (bench/device_kit.py packs it with them)."""
_RUN_MARK = "=== logad kafka start"  # heads each run's part of broker.log


@dataclass(frozen=True)
class BrokerInfo:
    """What is known about the broker of one data dir."""

    data_dir: Path
    port: int
    running: bool
    pid: int | None = None
    already_running: bool = False  # set by start() when it found the broker up

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def cache_dir() -> Path:
    """`$LOGAD_CACHE_DIR`, or ~/.cache/logad: jars and default data dirs live here."""
    env = os.environ.get("LOGAD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "logad"


def default_data_dir(port: int) -> Path:
    return cache_dir() / f"broker-{port}"


def fetch_jars(version: str = KAFKA_VERSION) -> Path:
    """The libs dir holding the broker jars for `version`, fetched with Maven on first use."""
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if (home / FETCHED_MARKER).exists():
        return libs
    _require("java")
    _require("mvn")
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        if (home / FETCHED_MARKER).exists():  # another process fetched while we waited
            return libs
        shutil.rmtree(libs, ignore_errors=True)  # leftovers of an interrupted fetch
        log.info("kafka_jars_fetch_started", version=version, into=str(libs))
        t0 = time.monotonic()
        cmd = ["mvn", "-B", "-q", "-f", str(_DEPLOY_DIR / "pom.xml")]
        cmd += ["dependency:copy-dependencies", f"-Dkafka.version={version}"]
        cmd += ["-DincludeScope=runtime", f"-DoutputDirectory={libs}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LogadError(
                f"mvn could not fetch Kafka {version} (exit {proc.returncode}): "
                + _tail(proc.stdout + proc.stderr)
            )
        (home / FETCHED_MARKER).write_text(version + "\n")
        jars = len(list(libs.glob("*.jar")))
        log.info("kafka_jars_fetched", version=version, jars=jars, s=round(time.monotonic() - t0))
    return libs


def status(port: int = DEFAULT_PORT, data_dir: Path | None = None) -> BrokerInfo:
    """Whether the broker of `data_dir` (default: the one for `port`) runs, and where."""
    data_dir = _resolve(port, data_dir)
    props = data_dir / "server.properties"
    if props.exists():
        port = parse_port(props.read_text()) or port
    pid = _read_pid(data_dir)
    running = pid is not None and _is_broker(pid, props)
    return BrokerInfo(data_dir=data_dir, port=port, running=running, pid=pid if running else None)


def start(
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    controller_port: int | None = None,
    timeout_s: float = 60.0,
    version: str = KAFKA_VERSION,
    *,
    listeners: Sequence[Listener] = (),
    extra: Mapping[str, str] | None = None,
    scram_users: Sequence[str] = (),
) -> BrokerInfo:
    """Start a broker on 127.0.0.1:`port` and return once it answers a metadata request.

    `listeners` and `extra` settings go into server.properties (see
    `render_server_properties`); `scram_users` are SCRAM credentials the storage is
    formatted with, as Kafka's `--add-scram` takes them:
    `SCRAM-SHA-512=[name=alice,password=...]` (a data dir formatted before keeps its own).
    Call from synchronous code (it runs its own event loop for the readiness probe).
    """
    data_dir = _resolve(port, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir / ".lock"):
        info = status(port, data_dir)
        if info.running:
            log.info("kafka_broker_already_running", bootstrap=info.bootstrap, pid=info.pid)
            return BrokerInfo(info.data_dir, info.port, True, info.pid, already_running=True)
        libs = fetch_jars(version)
        _require("java")
        if not _port_free(port):
            raise LogadError(f"port {port} on {HOST} is already in use; pick another --port")
        props = data_dir / "server.properties"
        text = render_server_properties(
            port=port,
            controller_port=controller_port or free_port(),
            log_dir=data_dir / "data",
            listeners=listeners,
            extra=extra,
        )
        props.write_text(text)
        if extra:  # may hold a private key or a password
            props.chmod(0o600)
        _format_storage(libs, props, data_dir / "data", scram_users)
        pid = _launch(libs, props, data_dir)
        try:
            _wait_ready(pid, props, f"{HOST}:{port}", data_dir / "broker.log", timeout_s)
        except BaseException:
            _terminate(pid, props, grace_s=10.0)
            (data_dir / "broker.pid").unlink(missing_ok=True)
            raise
        log.info(
            "kafka_broker_started", bootstrap=f"{HOST}:{port}", pid=pid, data_dir=str(data_dir)
        )
        return BrokerInfo(data_dir=data_dir, port=port, running=True, pid=pid)


def stop(port: int = DEFAULT_PORT, data_dir: Path | None = None, timeout_s: float = 20.0) -> bool:
    """SIGTERM the data dir's broker, SIGKILL after `timeout_s`. False if none was running."""
    data_dir = _resolve(port, data_dir)
    info = status(port, data_dir)
    pid_file = data_dir / "broker.pid"
    if not info.running or info.pid is None:
        pid_file.unlink(missing_ok=True)  # a stale pid file from a crash or a reboot
        log.info("kafka_broker_not_running", data_dir=str(data_dir))
        return False
    _terminate(info.pid, data_dir / "server.properties", grace_s=timeout_s)
    pid_file.unlink(missing_ok=True)
    log.info("kafka_broker_stopped", pid=info.pid, data_dir=str(data_dir))
    return True


# -- process handling ------------------------------------------------------------------------

# Brokers this process launched, so stop() can reap them (no zombies under a test session).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _java(libs: Path, *args: str) -> list[str]:
    log4j = f"-Dlog4j2.configurationFile={_DEPLOY_DIR / 'log4j2.properties'}"
    return ["java", log4j, "-cp", str(libs / "*"), *args]


def _format_storage(
    libs: Path, props: Path, log_dir: Path, scram_users: Sequence[str] = ()
) -> None:
    if (log_dir / "meta.properties").exists():  # formatted by an earlier start
        return
    cluster_id = new_cluster_id(uuid.uuid4().bytes)
    cmd = _java(libs, "-Xmx256m", "kafka.tools.StorageTool", "format", "-t", cluster_id)
    cmd += ["-c", str(props)]
    for user in scram_users:  # SCRAM credentials go into the first metadata records
        cmd += ["--add-scram", user]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LogadError(
            f"formatting Kafka storage in {log_dir} failed: {_tail(proc.stdout + proc.stderr)}"
        )
    log.info("kafka_storage_formatted", log_dir=str(log_dir), cluster_id=cluster_id)


def _launch(libs: Path, props: Path, data_dir: Path) -> int:
    cmd = _java(libs, *_JVM_HEAP, "-XX:+ExitOnOutOfMemoryError", "kafka.Kafka", str(props))
    with (data_dir / "broker.log").open("ab") as out:
        out.write(f"{_RUN_MARK} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}: {' '.join(cmd)}\n".encode())
        out.flush()
        # Own session: the broker outlives the CLI and is not hit by the terminal's Ctrl-C.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    (data_dir / "broker.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_ready(pid: int, props: Path, bootstrap: str, log_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_broker(pid, props):
            raise LogadError(f"the Kafka broker exited during start: {_tail(_read_tail(log_file))}")
        if asyncio.run(_answers_metadata(bootstrap)):
            return
        time.sleep(0.5)
    raise LogadError(
        f"the Kafka broker did not answer on {bootstrap} within {timeout_s:g} s "
        f"(see {log_file}): {_tail(_read_tail(log_file))}"
    )


async def _answers_metadata(bootstrap: str) -> bool:
    """True once a metadata request lists at least one broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)  # refused connections are expected while it boots
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()
        aiokafka_log.setLevel(level)


def _terminate(pid: int, props: Path, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _is_broker(pid, props) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_broker(pid, props):
        log.warning("kafka_broker_killed", pid=pid, after_s=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _is_broker(pid, props):
            time.sleep(0.1)
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait()


def _is_broker(pid: int, props: Path) -> bool:
    """Whether `pid` is alive and is the broker of `props` (a reused pid is not)."""
    proc = _children.get(pid)
    if proc is not None:  # our own child: right after fork its cmdline is still Python's
        return proc.poll() is None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:  # no /proc (macOS): trust the pid file
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # A zombie has an empty cmdline, so it reads as not running.
    return b"kafka.Kafka" in cmdline and str(props).encode() in cmdline


# -- small helpers ---------------------------------------------------------------------------


def _resolve(port: int, data_dir: Path | None) -> Path:
    return (data_dir if data_dir is not None else default_data_dir(port)).expanduser().resolve()


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "broker.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise LogadError(
            f"'{tool}' is not on PATH: the local Kafka broker needs Java 17+ and Maven "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless maven)"
        )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the JVM does, so TIME_WAIT leftovers of a just-stopped broker do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent starts or fetches do not interleave."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_tail(path: Path, size: int = 8192) -> str:
    """The end of broker.log, from the start of the latest run only."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            _, mark, run = f.read().decode(errors="replace").rpartition(_RUN_MARK)
            return run.partition("\n")[2] if mark else run
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 5) -> str:
    """The last few telling lines of a tool's output, joined so the error stays one line.

    Java stack frames are dropped: the exception message above them says what went wrong.
    """
    clean = re.sub(r"\x1b\[[0-9;]*m", "", text)
    stripped = (line.strip() for line in clean.splitlines())
    kept = [line for line in stripped if line and not re.match(r"at |\.\.\. \d+ more", line)]
    kept = kept[-lines:]
    return " | ".join(kept) or "(no output)"
