"""ServeSettings: layering, validation, and the CLI flags generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.runtime.settings import build_settings
from stream.serve.settings import SERVE_HELP, ServeSettings


def test_model_is_required() -> None:
    with pytest.raises(ConfigError, match="no model"):
        build_settings(ServeSettings, environ={})


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text('model = "from-file"\ngap_ms = 1000\nidle_timeout_ms = 2000\n')
    s = build_settings(
        ServeSettings,
        config_file=cfg,
        environ={"LOGAD_GAP_MS": "5000", "LOGAD_LENGTH_BUCKETS": "16,512"},
        flags={"idle_timeout_ms": "7000", "group_id": None},
    )
    assert s.model == Path("from-file")
    assert (s.gap_ms, s.idle_timeout_ms, s.group_id) == (5000, 7000, "logad")
    assert s.length_buckets == (16, 512)


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
    ],
)
def test_rejects_bad_values(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(ServeSettings, flags={"model": "m", **flags}, environ={})


def test_every_setting_has_help() -> None:
    import dataclasses

    assert {f.name for f in dataclasses.fields(ServeSettings)} == set(SERVE_HELP)


def test_serve_flags_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from stream.cli import serve as cli_serve

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
            "--length-buckets",
            "16,64,512",
        ]
    )
    assert args.func(args) == 0
    assert seen[0].model == tmp_path
    assert (seen[0].bootstrap, seen[0].gap_ms) == ("h:1", 1234)
    assert seen[0].exactly_once and seen[0].length_buckets == (16, 64, 512)
