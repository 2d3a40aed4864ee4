"""Log set-up: our events and libraries' stdlib records both come out as JSON lines."""

from __future__ import annotations

import logging

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
