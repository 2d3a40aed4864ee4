"""The model in child processes of its own, so that it never waits for the consume loop's GIL.

In one process, the model thread needs the GIL back after every torch op while the consume
loop runs Python, so on a machine with few cores the two threads slow each other down
(docs/performance.md). Here `serve` keeps the consume loop and the score cache; the child loads the
bundle (verified as always) and scores the windows it is sent over a socket pair. The child
is a fresh interpreter (`python -m stream.serve.model_process`). It ignores SIGINT and SIGTERM (a
clean shutdown still has open windows to score; the parent stops it when done), and exits
when its socket closes, so a parent killed with -9 leaves no child behind for longer than
the batch it is scoring. `ProcessPool` spreads batches over several such children
(`model_processes` > 1).
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import structlog

from schemas.bundle import verify_bundle
from schemas.errors import BundleError
from schemas.runtime.logs import configure_logging, logging_file, logging_settings
from schemas.scores import Score
from schemas.windows import Window

log = structlog.get_logger(__name__)

_STOP_TIMEOUT_S = 10.0


class ModelProcessError(RuntimeError):
    """The child failed to score a batch, or is gone."""


class ProcessScorer:
    """A `Scorer` whose model runs in a child process. One caller at a time (the worker's
    scoring thread); `close` may come from another thread and waits for a call in flight."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        conn: Connection,
        model_version: str,
        time_buckets: int = 0,
    ) -> None:
        self._process = process
        self._conn = conn
        self._version = model_version
        self.time_buckets = time_buckets
        """The bundle's (its manifest's): the score cache keys on gap buckets when > 0."""
        self._lock = threading.Lock()
        self._closed = False

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        with self._lock:
            if self._closed:
                raise ModelProcessError(f"model process for {self._version} is closed")
            try:
                self._conn.send(("score", list(windows), now_ms))
                reply = self._conn.recv()
            except (EOFError, OSError) as e:
                raise ModelProcessError(
                    f"model process for {self._version} is gone "
                    f"(exit code {self._process.poll()}): {e}"
                ) from None
        if reply[0] != "ok":
            raise ModelProcessError(f"model process: {reply[1]}: {reply[2]}")
        scores: list[Score] = reply[1]
        return scores

    def close(self) -> None:
        """Stop the child (after the call in flight); kill it if it does not stop in time."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop",))
            self._conn.close()
        try:
            self._process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("model_process_killed", model_version=self._version, pid=self.pid)
            self._process.kill()
            self._process.wait()


def _spawn(
    bundle_dir: Path, device: str, threads: int, explain_known_mixes: bool
) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start a child that loads `bundle_dir`, without waiting for it."""
    ours, theirs = socket.socketpair()
    level, json = logging_settings()
    cmd = [
        sys.executable,
        "-m",
        "stream.serve.model_process",
        str(theirs.fileno()),
        str(bundle_dir),
    ]
    cmd += [device, str(threads), str(int(explain_known_mixes)), level]
    cmd += ["json" if json else "console"]
    if (file := logging_file()) is not None:
        cmd.append(str(file))
    # A fresh interpreter, not multiprocessing's spawn, which re-imports the caller's
    # __main__ (a script without a main guard would start serving again in the child).
    process = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
    theirs.close()  # the child's end: EOF on ours then means the child is gone
    return process, Connection(ours.detach())


def _ready(
    process: subprocess.Popen[bytes], conn: Connection, bundle_dir: Path, time_buckets: int
) -> ProcessScorer:
    """Wait until a spawned child has loaded its bundle."""
    try:
        reply = conn.recv()
    except EOFError:
        conn.close()
        code = process.wait()
        raise BundleError(
            f"model process for {bundle_dir} exited while loading (exit code {code})"
        ) from None
    if reply[0] != "ready":
        conn.close()
        process.wait()
        raise BundleError(reply[2]) if reply[1] == "BundleError" else ModelProcessError(reply[2])
    log.info("model_process_started", model_version=reply[1], pid=process.pid)
    return ProcessScorer(process, conn, reply[1], time_buckets)


def start_process_scorer(
    bundle_dir: Path, device: str, threads: int, explain_known_mixes: bool = False
) -> ProcessScorer:
    """Start a child that loads `bundle_dir`; returns once it is ready to score. A bundle
    that fails to load or verify raises BundleError here, as the in-process loader does."""
    # Checked here first: a tampered bundle is refused at once, without paying for a child
    # interpreter that imports torch only to refuse it (the child verifies again on load).
    manifest = verify_bundle(bundle_dir)
    process, conn = _spawn(bundle_dir, device, threads, explain_known_mixes)
    return _ready(process, conn, bundle_dir, manifest.time_buckets)


class ProcessPool:
    """A `Scorer` over several model processes of the same bundle: concurrent calls (one per
    process, from the worker's scoring threads) each take an idle child, so batches are
    scored side by side. Each child is single-threaded by default, because one torch
    thread per process keeps scoring even when the consume loop takes a core, where several
    torch threads in one process wait for each other (docs/performance.md)."""

    def __init__(self, children: Sequence[ProcessScorer]) -> None:
        if not children or len({c.model_version for c in children}) != 1:
            raise ValueError("a pool needs at least one child, all of one model version")
        self._children = list(children)
        self._idle: queue.SimpleQueue[ProcessScorer] = queue.SimpleQueue()
        for child in children:
            self._idle.put(child)
        self.time_buckets = children[0].time_buckets
        """The bundle's (its manifest's): the score cache keys on gap buckets when > 0."""

    @property
    def model_version(self) -> str:
        return self._children[0].model_version

    @property
    def parallel(self) -> int:
        """How many batches it can score at once: the worker keeps that many in flight."""
        return len(self._children)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children]

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        child = self._idle.get()
        try:
            return child.score_windows(windows, now_ms)
        finally:
            self._idle.put(child)

    def close(self) -> None:
        """Stop every child, each after its call in flight."""
        for child in self._children:
            child.close()


def start_process_pool(
    bundle_dir: Path,
    device: str,
    processes: int,
    threads: int,
    explain_known_mixes: bool = False,
) -> ProcessPool:
    """Start `processes` children of `threads` torch threads each, loading side by side;
    returns once all are ready. Any failure stops the children already started."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    manifest = verify_bundle(bundle_dir)  # a bad bundle is refused before any child starts
    spawned = [_spawn(bundle_dir, device, threads, explain_known_mixes) for _ in range(processes)]
    ready: list[ProcessScorer] = []
    try:
        for process, conn in spawned:
            ready.append(_ready(process, conn, bundle_dir, manifest.time_buckets))
    except BaseException:
        for child in ready:
            child.close()
        for process, conn in spawned[len(ready) :]:
            conn.close()
            process.kill()
            process.wait()
        raise
    return ProcessPool(ready)


def main(argv: list[str]) -> None:
    """The child: `python -m stream.serve.model_process FD BUNDLE DEVICE THREADS EXPLAIN LEVEL
    FORMAT` (EXPLAIN: 1 to explain known mixes, 0 not)."""
    # The parent decides when scoring ends: a Ctrl-C or a SIGTERM sent to the whole process
    # group must not kill the model before the parent's shutdown has scored its open windows.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, bundle_dir, device, threads, explain, level, fmt, *file = argv
    configure_logging(level, fmt == "json", Path(file[0]) if file else None)
    conn = Connection(int(fd))
    from stream.serve.reload import load_window_scorer  # torch is imported here, in the child only

    try:
        scorer = load_window_scorer(device, int(threads), explain == "1")(Path(bundle_dir))
    except Exception as e:
        conn.send(("error", type(e).__name__, str(e)))
        return
    # The model's objects live as long as the child: out of the collector's sight, a full
    # collection does not walk them (it took ~165 ms in the middle of a batch on `tiny`).
    gc.collect()
    gc.freeze()
    conn.send(("ready", scorer.model_version))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg[0] == "stop":
            return
        try:
            conn.send(("ok", scorer.score_windows(msg[1], msg[2])))
        except Exception as e:
            conn.send(("error", type(e).__name__, str(e)))


if __name__ == "__main__":
    main(sys.argv[1:])
    # No interpreter teardown: the child has nothing left to release, and torch's triton
    # bindings print leak reports into serve's output there.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
