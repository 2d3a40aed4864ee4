"""What every benchmark records about the machine it ran on, so results can be compared."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other jobs on the machine slow CPU timings; the 1-minute load says how much.
        "load_avg_1m": os.getloadavg()[0],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")  # only benches that use torch pay for importing it
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def report_header(name: str, key: str = "bench") -> dict[str, Any]:
    """The first fields of every bench's results JSON: its name (under `key`), when, and on
    what machine."""
    return {
        key: name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


REPO = Path(__file__).resolve().parents[1]


def shown_path(path: Path) -> str:
    """`path` as results should record it: relative to the repository, so a results file
    names no one machine's directories. Tried as given (made absolute) first, then with
    links resolved."""
    for p in (Path(os.path.abspath(path)), Path(path).resolve()):
        if p.is_relative_to(REPO):
            return str(p.relative_to(REPO))
    return str(Path(path).resolve())
