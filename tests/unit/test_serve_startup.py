"""serve's start-up when Kafka cannot be reached: a clear error, and no client left open."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError

from stream.serve import app as serve_module
from stream.serve.kafka_io import kafka_failure
from stream.serve.settings import KafkaSettings, MetricsSettings, ServeSettings
from tests.unit.test_promote_and_watch import Loaded, fake_bundle


async def test_unreachable_broker_stops_both_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: dict[str, Any] = {}

    def keep(name: str, make: Any) -> Any:
        def wrapped(settings: ServeSettings) -> Any:
            made[name] = make(settings)
            return made[name]

        return wrapped

    monkeypatch.setattr(serve_module, "make_consumer", keep("consumer", serve_module.make_consumer))
    monkeypatch.setattr(serve_module, "make_producer", keep("producer", serve_module.make_producer))
    settings = ServeSettings(
        model=fake_bundle(tmp_path / "bundle", "v1"),
        kafka=KafkaSettings(bootstrap="127.0.0.1:1"),  # nothing listens on port 1
        metrics=MetricsSettings(metrics_port=0),
    )
    with pytest.raises(KafkaError):
        await serve_module.serve(settings, asyncio.Event(), load=lambda _: Loaded("v1"))
    # aiokafka's own flag: None never started, False open, True stopped.
    assert made["producer"]._closed is True
    assert made["consumer"]._closed is True


def test_kafka_failure_names_the_error_once() -> None:
    e = KafkaConnectionError("Unable to bootstrap from [('h', 1)]")
    text = str(kafka_failure("h:1", e))
    assert text.startswith("Kafka at h:1: KafkaConnectionError: Unable to bootstrap")
    assert text.count("KafkaConnectionError") == 1
    assert str(kafka_failure("h:1", KafkaError("plain"))).count("KafkaError") == 1
