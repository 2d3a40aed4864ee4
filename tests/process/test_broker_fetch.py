"""Fetching the broker jars runs Maven: a stand-in `mvn` on PATH fails, then succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import LogadError
from stream.devtools import broker


def _fake_tools(bin_dir: Path, mvn_script: str) -> None:
    bin_dir.mkdir()
    for name, body in (("java", "exit 0"), ("mvn", mvn_script)):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)


def test_failed_fetch_reports_maven_tail_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _fake_tools(tmp_path / "bin", 'echo "[ERROR] Could not resolve kafka_2.13:jar:9.9.9"; exit 1')
    with pytest.raises(LogadError, match=r"mvn could not fetch Kafka 9\.9\.9.*Could not resolve"):
        broker.fetch_jars("9.9.9")
    assert not (tmp_path / "cache" / "kafka-9.9.9" / ".fetched").exists()

    # A later call runs Maven again; success writes the marker and the jars are then reused.
    (tmp_path / "bin" / "mvn").write_text(
        "#!/bin/sh\nfor a; do case $a in -DoutputDirectory=*) d=${a#*=};; esac; done\n"
        '/bin/mkdir -p "$d" && /bin/touch "$d/kafka_2.13-9.9.9.jar"\n'
    )
    libs = broker.fetch_jars("9.9.9")
    assert (libs / "kafka_2.13-9.9.9.jar").exists()
    (tmp_path / "bin" / "mvn").write_text("#!/bin/sh\nexit 1\n")
    assert broker.fetch_jars("9.9.9") == libs
