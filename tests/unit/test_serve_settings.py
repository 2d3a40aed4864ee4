"""ServeSettings: sections, layering, validation, and the CLI flags generated from it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.runtime.settings import build_settings, leaves, sections, settings_for_log
from stream.serve.settings import ServeSettings, SessionizerSettings


def test_model_is_required() -> None:
    with pytest.raises(ConfigError, match="no model"):
        build_settings(ServeSettings, environ={})


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text('model = "from-file"\ngap_ms = 1000\n[sessionizer]\nidle_timeout_ms = 2000\n')
    s = build_settings(
        ServeSettings,
        config_file=cfg,
        environ={"LOGAD_GAP_MS": "5000", "LOGAD_LENGTH_BUCKETS": "16,512"},
        flags={"idle_timeout_ms": "7000", "group_id": None},
    )
    assert s.model == Path("from-file")
    assert (s.sessionizer.gap_ms, s.sessionizer.idle_timeout_ms) == (5000, 7000)
    assert s.consumer.group_id == "logad"
    assert s.batching.length_buckets == (16, 512)


def test_the_sessionizer_section_is_the_sessionizers_own_settings() -> None:
    s = build_settings(ServeSettings, flags={"model": "m", "gap_ms": 10}, environ={})
    assert s.sessionizer == SessionizerSettings(gap_ms=10)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"max_batch_tokens": 100}, "max_batch_tokens"),
        ({"length_buckets": "64,32,512"}, "length_buckets"),
        ({"length_buckets": "32,64"}, "length_buckets"),
        ({"max_events": 600}, "max_events"),
        ({"gap_ms": 0}, "gap_ms"),
        ({"heartbeat_interval_ms": 20_000}, "heartbeat_interval_ms"),
        ({"scores_topic": "logad.events"}, "topics"),
        ({"metrics_port": 70_000}, "metrics_port"),
        ({"switch_interval_ms": 0}, "switch_interval_ms"),
        ({"reload_check_s": -1}, "reload_check_s"),
    ],
)
def test_rejects_bad_values(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(ServeSettings, flags={"model": "m", **flags}, environ={})


def test_every_setting_has_help_and_every_section_a_title() -> None:
    assert all(leaf.doc for leaf in leaves(ServeSettings).values())
    titles = [s.title for s in sections(ServeSettings) if s.name is not None]
    assert all(t and t[0].isupper() for t in titles), titles
    assert len(set(titles)) == len(titles)


def test_settings_for_log_nests_the_sections() -> None:
    s = build_settings(ServeSettings, flags={"model": "m"}, environ={})
    logged = settings_for_log(s)
    assert logged["model"] == "m"
    kafka = logged["kafka"]
    assert (kafka["bootstrap"], kafka["client_id"]) == ("127.0.0.1:9092", "logad-serve")
    assert (kafka["security_protocol"], kafka["sasl_password"]) == ("PLAINTEXT", None)
    assert logged["sessionizer"]["gap_ms"] == 30_000


def test_serve_flags_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.cli import serve as cli_serve
    from stream.cli.command import execute

    seen: list[ServeSettings] = []

    async def fake_serve(settings: ServeSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(cli_serve, "_serve_until_signal", fake_serve)
    parser = argparse.ArgumentParser()
    cli_serve.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "serve",
            "--model",
            str(tmp_path),
            "--bootstrap",
            "h:1",
            "--gap-ms",
            "1234",
            "--exactly-once",
            "--model-processes",
            "2",
            "--length-buckets",
            "16,64,512",
        ]
    )
    assert execute(args) == 0
    s = seen[0]
    assert s.model == tmp_path
    assert (s.kafka.bootstrap, s.sessionizer.gap_ms) == ("h:1", 1234)
    assert s.publish.exactly_once and s.runtime.model_processes == 2
    assert s.batching.length_buckets == (16, 64, 512)
