from pathlib import Path

import pytest

from schemas.errors import DataError, DecodeError
from schemas.feedback import (
    Feedback,
    append_feedback,
    decode_feedback,
    read_feedback,
    session_verdicts,
)


def test_round_trip_session_and_span(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    a = Feedback("anomalous", session_id="req-1", note="db outage")
    b = Feedback("anomalous", start_ms=1_000, end_ms=5_000, service="order")
    c = Feedback("normal", session_id="req-1")
    append_feedback(path, [a, b])
    append_feedback(path, [c])
    got = read_feedback(path)
    assert got == [a, b, c]
    assert session_verdicts(got) == {"req-1": "normal"}  # the later line wins


def test_span_covers_times_and_service() -> None:
    fb = Feedback("anomalous", start_ms=1_000, end_ms=5_000, service="order")
    assert fb.covers("x", 1_000, "order")
    assert not fb.covers("x", 5_000, "order")
    assert not fb.covers("x", 2_000, "payment")
    assert not fb.covers("x", None)
    assert Feedback("normal", session_id="s").covers("s", None)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (b'{"verdict": "maybe", "session_id": "s"}', "verdict"),
        (b'{"verdict": "normal", "start": "yesterday", "end": "2026-01-01T00:00:00Z"}', "start"),
        (b'{"session_id": "s"}', "verdict"),
    ],
)
def test_bad_lines_name_their_field(line: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode_feedback(line)
    assert field in str(e.value)


def test_needs_a_session_or_a_span() -> None:
    with pytest.raises(DecodeError):
        decode_feedback(b'{"verdict": "normal"}')
    with pytest.raises(DecodeError):
        decode_feedback(b'{"verdict": "normal", "session_id": "s", "start": "2026-01-01"}')


def test_bad_file_line_is_a_data_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"verdict": "normal", "session_id": "s"}\n\nnot json\n')
    with pytest.raises(DataError, match=r"f.jsonl:3:"):
        read_feedback(path)
