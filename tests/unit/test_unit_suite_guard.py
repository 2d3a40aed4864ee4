"""The unit suite's guard (tests/unit/conftest.py) refuses child processes."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest


def test_a_subprocess_is_refused() -> None:
    with pytest.raises(RuntimeError, match="tests/process"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_multiprocessing_child_is_refused() -> None:
    p = multiprocessing.get_context("spawn").Process(target=print)
    with pytest.raises(RuntimeError, match="tests/process"):
        p.start()
