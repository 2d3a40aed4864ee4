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


def test_test_modules_have_unique_names() -> None:
    # pytest imports test modules by basename (rootdir-relative), so two suites holding a
    # test_x.py each break collection of the whole run, though each suite passes alone.
    from collections import Counter
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in tests.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
