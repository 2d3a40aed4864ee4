"""aiokafka's outage flood, rate-limited: fed realistic aiokafka records on a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from schemas.runtime.logs import configure_logging
from stream.serve import kafka_logs
from stream.serve.kafka_logs import KafkaLogFilter, kafka_log_filter, watch_client

CONNECT = "Unable connect to node with id %s: %s"
METADATA = "Unable to update metadata from %s"
FETCH = "Failed fetch messages from %s: %s"
REBALANCING = "Heartbeat failed for group %s because it is rebalancing"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "aiokafka", level: int = logging.ERROR) -> Any:
    return logging.LogRecord(name, level, "client.py", 435, msg, args, None)


def _refused() -> OSError:
    return ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9092)")


@pytest.fixture
def said() -> list[tuple[str, str, dict[str, Any]]]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def f(said: list[tuple[str, str, dict[str, Any]]], clock: Clock) -> KafkaLogFilter:
    return KafkaLogFilter(30.0, clock, lambda *line: said.append(line))


def test_an_outage_is_one_warning_a_summary_every_30_s_and_one_line_when_back(
    f: KafkaLogFilter, said: list[tuple[str, str, dict[str, Any]]], clock: Clock
) -> None:
    passed = 0
    # 95 s without a broker: the consumer's and producer's clients retry every 100 ms or so.
    for tick in range(950):
        clock.now = 1000.0 + tick / 10
        for rec in (
            _record(CONNECT, 1, _refused()),
            _record(METADATA, [1]),
            _record(FETCH, 1, "KafkaConnectionError", name="aiokafka.consumer.fetcher"),
        ):
            passed += f.filter(rec)
    assert passed == 0
    events = [event for _, event, _ in said]
    assert events == ["kafka_unreachable"] + ["kafka_still_unreachable"] * 3
    level, _, first = said[0]
    assert level == "warning"
    assert first["error"].startswith("Unable connect to node with id 1: [Errno 111]")
    summaries = [fields for _, event, fields in said if event == "kafka_still_unreachable"]
    assert [s["down_s"] for s in summaries] == [30.0, 60.0, 90.0]
    assert summaries[0]["like"] in (CONNECT, METADATA, FETCH)
    assert set(summaries[0]["by_message"]) == {CONNECT, METADATA, FETCH}
    # Every record held back is counted once: 30 s of 3 records every 100 ms each time (the
    # first summary's less the alarm, plus the record at 30.0 s that triggered it).
    assert [s["suppressed"] for s in summaries] == [900, 900, 900]
    clock.now = 1095.5
    f.reachable()  # a connection, 0.6 s after the last failure: too soon to call it back
    assert len(said) == 4
    clock.now = 1100.0
    f.reachable()  # a connection, 5 s after the last failure
    assert said[-1] == (
        "info",
        "kafka_reachable_again",
        {"down_s": 100.0, "suppressed": 950 * 3 - 1},
    )
    f.reachable()  # and the next one says nothing
    assert len(said) == 5
    # The next outage raises the alarm again.
    assert not f.filter(_record(CONNECT, 1, _refused()))
    assert [event for _, event, _ in said[-2:]] == ["kafka_reachable_again", "kafka_unreachable"]


def test_other_warnings_are_sampled_per_kind_outside_an_outage(
    f: KafkaLogFilter, said: list[tuple[str, str, dict[str, Any]]], clock: Clock
) -> None:
    name = "aiokafka.consumer.group_coordinator"
    kept = []
    for second in range(65):
        clock.now = 1000.0 + second
        kept.append(f.filter(_record(REBALANCING, "g", name=name, level=logging.WARNING)))
    assert [i for i, k in enumerate(kept) if k] == [0, 30, 60]
    summary = {"suppressed": 29, "like": REBALANCING, "over_s": 30.0}
    assert said == [("warning", "kafka_log_suppressed", summary)] * 2


def test_a_coordinator_not_ready_at_start_raises_no_alarm(
    f: KafkaLogFilter, said: list[tuple[str, str, dict[str, Any]]]
) -> None:
    # The group's coordinator is loading: aiokafka says so at ERROR, but no broker is away.
    msg = "Group Coordinator Request failed: %s"
    rec = _record(msg, "[Error 15] CoordinatorNotAvailableError", name="aiokafka.consumer")
    assert f.filter(rec)
    assert f.outage.down_since is None and said == []


def test_debug_records_and_other_libraries_pass_untouched(
    f: KafkaLogFilter, said: list[tuple[str, str, dict[str, Any]]]
) -> None:
    for _ in range(3):
        assert f.filter(_record(CONNECT, 1, "x", level=logging.DEBUG))
        assert f.filter(_record(CONNECT, 1, "x", name="torch"))
    assert said == []


@pytest.fixture
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_restore_root_logging")
async def test_installed_it_turns_a_flood_into_lines_and_hears_the_clients_metadata(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aiokafka import AIOKafkaProducer

    configure_logging("info", json=True)
    aiokafka_log = logging.getLogger("aiokafka")
    with kafka_log_filter(quiet_s=0.0) as installed:
        with kafka_log_filter() as again:
            assert again is installed  # one per process
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")

        async def connected(node_id: int) -> object:
            return object()  # what aiokafka's connection step returns once a broker answers

        producer.client._get_conn = connected
        watch_client(producer)
        for _ in range(2_000):
            aiokafka_log.error(CONNECT, 1, _refused())
        assert await producer.client._get_conn(1) is not None
        for _ in range(10):
            aiokafka_log.error(CONNECT, 1, _refused())
        for listener in list(producer.client.cluster._listeners):
            listener(producer.client.cluster)  # what aiokafka does after a metadata response
        await producer.stop()
    aiokafka_log.error(CONNECT, 1, _refused())  # the block is over: aiokafka's own line again
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == [
        "kafka_unreachable",
        "kafka_reachable_again",
        "kafka_unreachable",
        "kafka_reachable_again",
        "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)",
    ]
    assert (lines[1]["suppressed"], lines[3]["suppressed"]) == (1_999, 9)
    assert kafka_logs._installed is None


@pytest.mark.usefixtures("_restore_root_logging")
def test_the_filter_survives_logging_being_configured_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", json=True)
    with kafka_log_filter():
        configure_logging("warning", json=True)  # a new handler: the filter goes on it too
        for _ in range(100):
            logging.getLogger("aiokafka").error(METADATA, [1])
    events = [orjson.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["kafka_unreachable"]
