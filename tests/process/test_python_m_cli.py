"""`python -m stream.cli` runs `logad` in a fresh interpreter, as the demo and the deploy
manifests run it where the console script is absent."""

from __future__ import annotations


def test_python_m_stream_cli_runs_logad() -> None:
    """What `logad demo` and the deploy manifests run where the console script is absent."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "kafka", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: logad kafka"), done.stderr
