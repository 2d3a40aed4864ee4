"""The local broker's pure parts: server.properties, cluster ids, paths, pid-file safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schemas.errors import LogadError
from stream.devtools import broker, broker_config


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_server_properties_single_node_kraft_on_loopback() -> None:
    text = broker_config.render_server_properties(
        port=19092, controller_port=19093, log_dir=Path("/d/data")
    )
    p = _props(text)
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert p["log.dirs"] == "/d/data"
    assert p["auto.create.topics.enable"] == "true"
    assert p["num.partitions"] == "1"
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["log.cleaner.dedupe.buffer.size"] == "1048577"  # else OOM with the small heap
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert p[key] == "1", key
    assert broker_config.parse_port(text) == 19092


def test_parse_port_without_listener() -> None:
    assert broker_config.parse_port("node.id=1\n") is None


@pytest.mark.parametrize("raw", [bytes(16), b"\xf8" + bytes(15), os.urandom(16)])
def test_cluster_id_is_22_base64url_chars_not_starting_with_dash(raw: bytes) -> None:
    cid = broker_config.new_cluster_id(raw)
    assert len(cid) == 22
    assert not cid.startswith("-")
    assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cache_and_default_data_dir_follow_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGAD_CACHE_DIR", str(tmp_path))
    assert broker.cache_dir() == tmp_path
    assert broker.default_data_dir(9099) == tmp_path / "broker-9099"
    monkeypatch.delenv("LOGAD_CACHE_DIR")
    assert broker.cache_dir() == Path.home() / ".cache" / "logad"


def test_stale_pid_of_another_process_is_not_a_broker_and_never_signalled(
    tmp_path: Path,
) -> None:
    # Our own pid stands in for a pid the OS reused after the broker died.
    (tmp_path / "server.properties").write_text(
        broker_config.render_server_properties(port=19092, controller_port=19093, log_dir=tmp_path)
    )
    (tmp_path / "broker.pid").write_text(f"{os.getpid()}\n")
    info = broker.status(data_dir=tmp_path)
    assert (info.running, info.pid, info.port) == (False, None, 19092)
    assert broker.stop(data_dir=tmp_path) is False  # and we are still alive to assert it
    assert not (tmp_path / "broker.pid").exists()


def test_missing_maven_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on it
    with pytest.raises(LogadError, match="not on PATH") as e:
        broker.fetch_jars("4.0.2")
    assert "\n" not in str(e.value)


def test_fetched_jars_are_reused_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "kafka-9.9.9" / "libs").mkdir(parents=True)
    (tmp_path / "kafka-9.9.9" / ".fetched").write_text("9.9.9\n")
    assert broker.fetch_jars("9.9.9") == tmp_path / "kafka-9.9.9" / "libs"


def test_extra_listeners_and_settings_keep_the_plaintext_one() -> None:
    text = broker_config.render_server_properties(
        port=19092,
        controller_port=19093,
        log_dir=Path("/d/data"),
        listeners=[broker_config.Listener("SASL_SSL", 19094, "SASL_SSL")],
        extra={
            "listener.name.sasl_ssl.ssl.keystore.key": "-----BEGIN\nAAA\\B\n-----END\n",
            "num.partitions": "3",
        },
    )
    p = _props(text)
    assert p["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19094"
    )
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    assert p["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert p["num.partitions"] == "3"  # the extra settings win
    # A multi-line value stays on one line, as Java's Properties.load reads it back.
    assert p["listener.name.sasl_ssl.ssl.keystore.key"] == "-----BEGIN\\nAAA\\\\B\\n-----END\\n"
    assert broker_config.parse_port(text) == 19092
