"""Every `logad` command's --help prints and exits 0 (help text comes from docstrings,
where a bare % once broke argparse's formatting)."""

from __future__ import annotations

import argparse

import pytest

from stream.cli import build_parser, main


def _commands() -> list[list[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands: list[list[str]] = []
    for name, p in sub.choices.items():
        commands.append([name])
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        commands += [[name, child] for a in nested for child in a.choices]
    return commands


def test_every_command_is_listed() -> None:
    names = {c[0] for c in _commands()}
    assert {"train", "serve", "evaluate", "replay", "demo", "simulate"} <= names


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_prints(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: logad " + " ".join(command))
    assert "--help" in text


def test_serve_help_groups_the_settings_by_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    titles = ["Kafka connection:", "Sessionizer:", "Batching:", "Scoring:", "logging:"]
    at = [text.index(t) for t in titles]
    assert at == sorted(at), text
    sessionizer = text[text.index("Sessionizer:") : text.index("Batching:")]
    assert "--gap-ms" in sessionizer and "--bootstrap" not in sessionizer


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "models", "--registry", "r"],
        ["models", "--registry", "r", "--log-level", "debug"],
    ],
)
def test_logging_flags_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.log_level == "debug" and args.log_json is None


def test_every_command_with_settings_takes_config() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with_settings = [n for n, p in sub.choices.items() if p.get_default("settings_cls")]
    commands = {"demo", "simulate", "parse", "train", "serve", "replay", "retrain", "evaluate"}
    commands |= {"console"}
    commands |= {"promote", "rollback"}  # the bundle key
    assert set(with_settings) == commands
    for name in with_settings:
        assert "--config" in sub.choices[name].format_help(), name
