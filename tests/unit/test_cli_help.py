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
