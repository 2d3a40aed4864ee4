"""Secrets are masked by their type, wherever settings go: logs, --help, docs, reprs."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from schemas.errors import ConfigError
from schemas.runtime.logs import configure_logging
from schemas.runtime.secret import Secret, parse_secret
from schemas.runtime.settings import build_settings, settings_for_log
from schemas.runtime.settings_docs import Process, render_reference
from schemas.runtime.settings_flags import add_settings_flags

CLEAR = {
    "api_key": "AKIA-clear-api-key",
    "auth_token": "tok-clear-auth-token",
    "private_key": "-----BEGIN clear private key",
    "credentials": "user:clear-credentials",
}


@dataclass(frozen=True)
class _Creds:
    """Credentials

    Secret fields named nothing like a password."""

    api_key: Secret | None = None
    """An API key."""
    auth_token: Secret | None = None
    """A token."""
    private_key: Secret | None = None
    """A key."""
    credentials: Secret | None = None
    """user:password."""
    password_hint: str = "ask the admin"
    """A plain string, whatever its name says: shown as it is."""


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _all_given(tmp_path: Path) -> _Creds:
    env = {}
    flags = {}
    for i, (name, value) in enumerate(CLEAR.items()):
        if i % 2:  # half from files, half through an environment variable
            path = tmp_path / name
            path.write_text(value + "\n")
            flags[name] = f"file:{path}"
        else:
            env[f"SRC_{i}"] = value
            flags[name] = f"env:SRC_{i}"
    creds: _Creds = build_settings(_Creds, flags=flags, environ=env)
    return creds


def test_every_form_gives_the_value(tmp_path: Path) -> None:
    creds = _all_given(tmp_path)
    assert {n: getattr(creds, n).reveal() for n in CLEAR} == CLEAR  # file: drops the newline
    own_var = build_settings(_Creds, environ={"LOGAD_API_KEY": "literal"})
    assert own_var.api_key == Secret("literal")


def test_secrets_never_print_in_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    creds = _all_given(tmp_path)
    logged = settings_for_log(creds)
    assert logged == {**dict.fromkeys(CLEAR, "***"), "password_hint": "ask the admin"}
    views = [
        repr(creds),
        str(creds),
        f"{creds.api_key}",
        f"{creds.api_key!r:>20}",
        str(dataclasses.asdict(creds)),
        str(dataclasses.astuple(creds)),
    ]
    for json in (True, False):
        configure_logging("info", json=json)
        log = structlog.get_logger("t")
        log.info("settings", **logged)
        log.info("raw", creds=creds, nested={"k": [creds.auth_token]}, key=creds.private_key)
        logging.getLogger("lib").warning("stdlib %s", creds.credentials)
        views.append(capsys.readouterr().err)
    joined = "\n".join(views)
    assert "***" in views[-1] and "ask the admin" in views[-1]
    for value in CLEAR.values():
        assert value not in joined


_DEFAULT_KEY = Secret("default-in-clear")


@dataclass(frozen=True)
class WithDefault:
    api_key: Secret | None = _DEFAULT_KEY
    """Key."""


def test_help_and_docs_show_no_secret_default() -> None:
    p = argparse.ArgumentParser()
    add_settings_flags(p, WithDefault)
    text = p.format_help() + render_reference([Process("x", WithDefault, "s")], "# r")
    assert "default-in-clear" not in text
    assert "(default: ***)" in " ".join(text.split())
    assert "file:PATH|env:NAME" in text


def test_a_secret_pickles_whole_but_never_mutates() -> None:
    s = Secret("v")
    # deepcopy goes through the same reduce protocol as the pickling of worker processes
    assert copy.deepcopy(s) == s and s != Secret("w") and s != "v"
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "literal_ok", "message"),
    [
        ("hunter2", False, "give it as file:PATH or env:NAME"),
        ("env:NOPE", True, "environment variable NOPE is not set"),
        ("file:/no/such/file", True, "cannot read /no/such/file"),
        ("***", True, "the mask"),
        ("env:EMPTY", True, "is empty"),
    ],
)
def test_bad_sources_are_one_error_that_never_shows_the_value(
    value: str, literal_ok: bool, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_secret(value, "--api-key", environ={"EMPTY": ""}, literal_ok=literal_ok)
    assert "--api-key" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_a_literal_is_refused_in_flags_and_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'--api-key' is a secret"):
        build_settings(_Creds, flags={"api_key": "hunter2"}, environ={})
    cfg = tmp_path / "c.toml"
    cfg.write_text('api_key = "hunter2"\n')
    with pytest.raises(ConfigError, match="'api_key' is a secret"):
        build_settings(_Creds, config_file=cfg, environ={})
    cfg.write_text('api_key = "env:K"\n')
    assert build_settings(_Creds, config_file=cfg, environ={"K": "k"}).api_key == Secret("k")
