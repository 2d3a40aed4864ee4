from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from schemas import ConfigError
from schemas.runtime.settings import (
    add_settings_flags,
    build_settings,
    settings_flags,
    settings_for_log,
)


@dataclass(frozen=True)
class Demo:
    port: int = 9092
    ratio: float = 0.5
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    out: Path | None = None
    flag: bool = False
    topics: tuple[str, ...] = ("t",)
    sasl_password: str = ""

    def __post_init__(self) -> None:
        if self.port <= 0:
            raise ValueError("port must be positive")


def test_layers_file_env_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 1\nname = "file"\nmode = "b"\n')
    s = build_settings(
        Demo,
        config_file=cfg,
        environ={"LOGAD_PORT": "2", "LOGAD_FLAG": "yes", "LOGAD_TOPICS": "a,b"},
        flags={"port": 3, "ratio": None},
    )
    assert (s.port, s.name, s.mode, s.flag, s.topics, s.ratio) == (
        3,
        "file",
        "b",
        True,
        ("a", "b"),
        0.5,
    )


def test_typo_in_file_suggests(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"prot": 1}')
    with pytest.raises(ConfigError, match="did you mean 'port'"):
        build_settings(Demo, config_file=cfg, environ={})


@pytest.mark.parametrize(
    ("env", "msg"),
    [
        ({"LOGAD_PORT": "x"}, "LOGAD_PORT"),
        ({"LOGAD_MODE": "c"}, "one of"),
        ({"LOGAD_PORT": "-1"}, "positive"),
    ],
)
def test_bad_values_are_one_clear_error(env: dict[str, str], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        build_settings(Demo, environ=env)


def test_bad_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid toml"):
        build_settings(Demo, config_file=cfg, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        build_settings(Demo, config_file=tmp_path / "missing.toml", environ={})


def test_secrets_are_redacted() -> None:
    s = build_settings(Demo, environ={"LOGAD_SASL_PASSWORD": "hunter2"})
    assert settings_for_log(s)["sasl_password"] == "***"


@dataclass(frozen=True)
class _Knobs:
    name: str = "x"
    """what it is called"""
    depth: int = 3
    fast: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


def test_add_settings_flags_makes_one_flag_per_field_and_leaves_unset_ones_none() -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, _Knobs, shown={"depth": "three"})
    args = p.parse_args(["--no-fast", "--mode", "b", "--sizes", "4,5"])
    flags = settings_flags(args, _Knobs)
    assert flags == {"name": None, "depth": None, "fast": False, "mode": "b", "sizes": "4,5"}
    built = build_settings(_Knobs, flags=flags, environ={"LOGAD_DEPTH": "7"})
    assert built == _Knobs(depth=7, fast=False, mode="b", sizes=(4, 5))
    text = p.format_help()
    assert "what it is called (default: x)" in text and "(default: three)" in text
    assert "(default: 1,2)" in text
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])  # not a choice
