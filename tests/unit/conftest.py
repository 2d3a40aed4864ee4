"""The unit suite runs in this one process: starting a child process fails the test.

Tests that need processes (DDP ranks, torchrun, the model's child process) live under
tests/process, and tests that need the Kafka broker under tests/integration.
"""

from __future__ import annotations

import importlib
import multiprocessing.process
import os
import platform
import subprocess
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

# platform asks `uname -p` once and caches it; ask now, before the guard is on, so that code
# recording the machine (bench.machine) does not count as starting a process.
_PROCESSOR = platform.uname().processor
# torch's first import looks a library up with `ldconfig -p` (ctypes.util.find_library): load
# it before the guard too, so a test that is the first to import torch is not refused.
torch = importlib.import_module("torch")


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError("a unit test started a process: move it under tests/process")


@pytest.fixture(autouse=True)
def no_child_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(subprocess, "Popen", _refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _refuse)
    monkeypatch.setattr(os, "fork", _refuse)
    monkeypatch.setattr(os, "posix_spawn", _refuse)
    yield


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one thread for a module's tests: other suites share the machine's cores, and
    small models run no slower on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
