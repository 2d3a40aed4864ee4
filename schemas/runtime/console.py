"""Human-facing output for CLI commands (tables, addresses, summaries).

Library code logs with structlog; only a command's final, human-facing result goes here.
"""

from __future__ import annotations

import sys


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
