from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from schemas import ConfigError
from schemas.runtime.secret import Secret
from schemas.runtime.settings import (
    build_settings,
    leaves,
    only,
    sections,
    settings_for_log,
    shown,
)
from schemas.runtime.settings_docs import Process, render_reference
from schemas.runtime.settings_flags import add_settings_flags, settings_flags


@dataclass(frozen=True)
class Demo:
    port: int = 9092
    ratio: float = 0.5
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    out: Path | None = None
    flag: bool = False
    topics: tuple[str, ...] = ("t",)
    sasl_password: Secret | None = None

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
    depth: int = field(default=3, metadata=shown("three"))
    fast: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


def test_add_settings_flags_makes_one_flag_per_field_and_leaves_unset_ones_none() -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, _Knobs)
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


@pytest.mark.parametrize(
    ("argv", "fast"),
    [([], False), (["--fast"], True), (["--fast", "false"], False), (["--no-fast"], False)],
)
def test_a_boolean_flag_alone_or_with_a_value(argv: list[str], fast: bool) -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, _Knobs)
    built = build_settings(_Knobs, flags=settings_flags(p.parse_args(argv), _Knobs), environ={})
    assert built.fast is fast


def test_a_boolean_flag_with_a_value_that_is_not_one() -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, _Knobs)
    flags = settings_flags(p.parse_args(["--fast", "maybe"]), _Knobs)
    with pytest.raises(ConfigError, match="'--fast' must be bool, got 'maybe'"):
        build_settings(_Knobs, flags=flags, environ={})


# --- sections: declared once, composed by a process, flat to the user


@dataclass(frozen=True)
class _Conn:
    """Connection

    Where the broker is."""

    host: str = "localhost"
    """Broker host."""
    port: int = 9092
    """Broker port."""
    sasl_secret: Secret | None = None
    """Password."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")


@dataclass(frozen=True)
class _Window:
    """Windows"""

    gap: int = 10
    """Gap that closes a window."""
    idle: int = 60
    """Wall-clock idle flush."""


@dataclass(frozen=True)
class _Proc:
    model: str = "m"
    """The model."""
    conn: _Conn = field(default=_Conn())
    window: _Window = field(default=_Window(idle=1_000), metadata=only("gap"))


def test_section_keys_flat_or_in_their_table(tmp_path: Path) -> None:
    flat, table = tmp_path / "flat.toml", tmp_path / "table.toml"
    flat.write_text('host = "h"\ngap = 5\n')
    table.write_text('[conn]\nhost = "h"\n[window]\ngap = 5\n')
    a = build_settings(_Proc, config_file=flat, environ={})
    b = build_settings(_Proc, config_file=table, environ={})
    assert a == b == _Proc(conn=_Conn(host="h"), window=_Window(gap=5, idle=1_000))


def test_a_json_config_file_may_nest_sections_too(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"model": "x", "conn": {"port": 1}}')
    assert build_settings(_Proc, config_file=cfg, environ={}).conn.port == 1


def test_env_then_flags_override_a_section_leaf(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[conn]\nport = 1\n")
    s = build_settings(_Proc, config_file=cfg, environ={"LOGAD_PORT": "2", "LOGAD_HOST": "e"})
    assert (s.conn.host, s.conn.port) == ("e", 2)
    s = build_settings(_Proc, config_file=cfg, environ={"LOGAD_PORT": "2"}, flags={"port": "3"})
    assert s.conn.port == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[conn]\nhots = 1\n", "unknown setting 'conn.hots'.*did you mean 'conn.host'"),
        ("hots = 1\n", "unknown setting 'hots'.*did you mean 'host'"),
        ("[window]\nidle = 1\n", "unknown setting 'window.idle'"),  # not exposed
        ("[conns]\nhost = 1\n", "did you mean 'conn'"),
        ('host = "a"\n[conn]\nhost = "b"\n', "'host' is given twice"),
    ],
)
def test_unknown_or_repeated_keys_are_one_error(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        build_settings(_Proc, config_file=cfg, environ={})


def test_a_section_validates_its_own_fields() -> None:
    with pytest.raises(ConfigError, match="port out of range: 0"):
        build_settings(_Proc, flags={"port": 0}, environ={})


def test_only_hides_leaves_and_the_default_instance_gives_the_process_defaults() -> None:
    assert list(leaves(_Proc)) == ["model", "host", "port", "sasl_secret", "gap"]
    assert build_settings(_Proc, environ={"LOGAD_IDLE": "5"}).window.idle == 1_000
    assert leaves(_Proc)["gap"].default == 10


def test_settings_for_log_nests_sections_and_redacts_inside_them() -> None:
    s = build_settings(_Proc, flags={"sasl_secret": "env:PW"}, environ={"PW": "pw"})
    logged = settings_for_log(s)
    assert logged["conn"] == {"host": "localhost", "port": 9092, "sasl_secret": "***"}
    assert logged["window"] == {"gap": 10, "idle": 1_000}


def test_help_groups_the_flags_by_section() -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, _Proc)
    groups = {g.title: [a.dest for a in g._group_actions] for g in p._action_groups}
    assert groups["Connection"] == ["host", "port", "sasl_secret"]
    assert groups["Windows"] == ["gap"]
    assert "model" in groups["options"]
    assert "Where the broker is." in p.format_help()
    args = p.parse_args(["--port", "1", "--gap", "2"])
    assert build_settings(_Proc, flags=settings_flags(args, _Proc), environ={}).window.gap == 2


def test_a_leaf_named_in_two_sections_is_refused() -> None:
    @dataclass(frozen=True)
    class _Twice:
        port: int = 1
        conn: _Conn = field(default=_Conn())

    with pytest.raises(TypeError, match=r"named twice.*\['port'\]"):
        sections(_Twice)

    @dataclass(frozen=True)
    class _Clash:
        host: int = 1
        gap: _Window = field(default=_Window())  # its own leaf is `gap` too

    with pytest.raises(TypeError, match=r"sections named like settings: \['gap'\]"):
        sections(_Clash)


def test_the_reference_has_a_row_per_leaf_under_its_section() -> None:
    text = render_reference([Process("tool", _Proc, "A tool.")], "# Reference")
    assert text.startswith("# Reference\n")
    assert "### Connection (`[conn]`)" in text and "Where the broker is." in text
    row = "| `port` | `--port` | `LOGAD_PORT` | int | `9092` | Broker port. |"
    assert row in text
    assert "`idle`" not in text  # not exposed
