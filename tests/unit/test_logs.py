"""Log set-up: our events and libraries' stdlib records both come out as JSON lines."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import structlog

from schemas.runtime.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_library_records_are_json_with_their_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    structlog.get_logger("x").info("ours", n=1)
    logging.getLogger("aiokafka.conn").error("Unable connect to %s", "h:1")
    logging.getLogger("aiokafka").info("chatty")  # below WARNING: dropped at level info
    lines = _lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["ours", "Unable connect to h:1"]
    assert lines[1]["level"] == "error"
    assert lines[1]["logger"] == "aiokafka.conn"
    assert "timestamp" in lines[1]


def test_debug_lets_library_debug_through_and_reconfiguring_adds_no_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug", json=True)
    configure_logging("debug", json=True)
    logging.getLogger("aiokafka").debug("detail")
    assert [line["event"] for line in _lines(capsys.readouterr().err)] == ["detail"]


def test_transformers_records_and_python_warnings_are_json_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import warnings

    from transformers.utils import logging as hf_logging

    import trainer.model  # noqa: F401  (routes transformers' logs to the root logger)

    configure_logging("info", json=True)
    hf_logging.get_logger("transformers.modeling_utils").warning("Some weights were not used")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated knob", FutureWarning, stacklevel=1)
    logging.captureWarnings(False)
    err = capsys.readouterr().err
    lines = [orjson.loads(line) for line in err.splitlines() if line.strip()]  # JSON only
    assert lines[0]["event"] == "Some weights were not used"
    assert lines[0]["logger"] == "transformers.modeling_utils"
    assert lines[1]["logger"] == "py.warnings" and "deprecated knob" in str(lines[1]["event"])


def test_log_file_takes_every_line_off_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "run.log"
    configure_logging("info", json=False, file=path)  # a file is always JSON lines
    structlog.get_logger("x").warning("ours", n=2)
    logging.getLogger("transformers").warning("theirs")
    configure_logging("info", json=True)  # back to stderr: closes the file
    structlog.get_logger("x").info("after")
    assert capsys.readouterr().err.count("{") == 1
    lines = _lines(path.read_text())
    assert [(line["event"], line.get("logger")) for line in lines] == [
        ("ours", None),
        ("theirs", "transformers"),
    ]
