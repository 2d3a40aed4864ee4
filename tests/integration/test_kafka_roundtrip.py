"""aiokafka against the real broker: produce, group consume, commit, resume; and `logad kafka`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from serve_support import CreateTopic

from stream.cli import main
from stream.devtools import broker


async def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, partition=partition)
    finally:
        await producer.stop()


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_group_consumer_resumes_from_committed_offset(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=1)
    values = [f"v{i}".encode() for i in range(10)]
    await _produce(kafka_bootstrap, topic_name, values)
    tp = TopicPartition(topic_name, 0)
    group = f"{topic_name}-group"

    first = _consumer(kafka_bootstrap, topic_name, group)
    await first.start()
    try:
        read = [await first.getone() for _ in range(4)]
        await first.commit()
        assert await first.committed(tp) == 4
    finally:
        await first.stop()
    assert [(r.offset, r.value) for r in read] == list(enumerate(values[:4]))

    second = _consumer(kafka_bootstrap, topic_name, group)
    await second.start()
    try:
        rest = [await second.getone() for _ in range(6)]
        assert await second.committed(tp) == 4  # nothing committed by reading alone
    finally:
        await second.stop()
    # Resumes exactly at the committed offset: nothing before 4 is re-read.
    assert [(r.offset, r.value) for r in rest] == list(enumerate(values))[4:]


async def test_create_topic_helper_makes_partitions_a_group_reads_all(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=3)
    for p in range(3):
        await _produce(kafka_bootstrap, topic_name, [f"p{p}".encode()], partition=p)

    consumer = _consumer(kafka_bootstrap, topic_name, f"{topic_name}-group")
    await consumer.start()
    try:
        assert consumer.partitions_for_topic(topic_name) == {0, 1, 2}
        got = {(r.partition, r.value) for r in [await consumer.getone() for _ in range(3)]}
    finally:
        await consumer.stop()
    assert got == {(0, b"p0"), (1, b"p1"), (2, b"p2")}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # main() points structlog at capsys's stderr, which is closed after the test.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.slow
@pytest.mark.usefixtures("restore_logging")
def test_cli_start_status_stop_leaves_no_java(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(broker.free_port())
    data_dir = tmp_path / "broker"
    where = ["--port", port, "--data-dir", str(data_dir)]
    try:
        assert main(["kafka", "start", *where]) == 0
        assert capsys.readouterr().out.strip() == f"127.0.0.1:{port}"
        pid = int((data_dir / "broker.pid").read_text())

        assert main(["kafka", "start", *where]) == 0  # already running: same address
        assert capsys.readouterr().out.strip() == f"127.0.0.1:{port}"
        assert int((data_dir / "broker.pid").read_text()) == pid

        assert main(["kafka", "status", *where]) == 0
        assert f"pid {pid}" in capsys.readouterr().out

        assert main(["kafka", "stop", *where]) == 0
        assert f"pid {pid}" in capsys.readouterr().out
    finally:
        broker.stop(data_dir=data_dir)
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (data_dir / "broker.pid").exists()

    assert main(["kafka", "status", *where]) == 1
    assert "not running" in capsys.readouterr().out
    assert main(["kafka", "stop", *where]) == 0  # idempotent
    assert "no Kafka broker is running" in capsys.readouterr().out
