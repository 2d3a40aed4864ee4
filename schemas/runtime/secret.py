"""`Secret`: a setting's value that must never be printed, masked by its type.

A settings field typed `Secret | None` (a Kafka password, a bundle signing key) holds its
value in a `Secret`, whose `str()` and `repr()` are `***`. So the value stays hidden
wherever the settings go: the start-up log line (`settings_for_log`), any structlog event
that carries it, `--help` and the configuration reference, tracebacks and reprs of the
settings objects. Only `reveal()` gives the value, at the one place that hands it to a
client library.

Where a secret may come from (`parse_secret`):

- `file:PATH`: the file's contents, one trailing newline dropped (a mounted Kubernetes
  Secret, a file readable only by the service's user);
- `env:NAME`: the environment variable NAME (a variable the service manager fills in);
- the value itself, only in the setting's own `LOGAD_<KEY>` variable: a literal in a config
  file or a flag would sit in a world-readable file, the process list or shell history, so
  it is refused there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from schemas.errors import ConfigError

MASK = "***"
FILE_PREFIX = "file:"
ENV_PREFIX = "env:"
_MAX_FILE_BYTES = 64 * 1024  # a key or a password, never a data file given by mistake


class Secret:
    """A secret string. `str()`/`repr()` are `***`; `reveal()` gives the value. Immutable,
    compared by value, and not a dataclass, so `dataclasses.asdict` of a settings object
    keeps it whole (masked) instead of turning it into a dict of its contents."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # For a child process (the model process) that needs the value: pickled in memory,
        # never written out.
        return (Secret, (self._value,))


def parse_secret(
    value: object, name: str, *, environ: Mapping[str, str] | None = None, literal_ok: bool
) -> Secret:
    """A Secret from a setting's raw value, given under `name` (a key, flag or variable):
    `file:PATH`, `env:NAME`, or (only where `literal_ok`: the setting's own variable) the
    value itself. Raises ConfigError naming `name`, never the value."""
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"setting '{name}' must be a string (file:PATH or env:NAME)")
    env = os.environ if environ is None else environ
    if value.startswith(FILE_PREFIX):
        text = _read_secret_file(Path(value[len(FILE_PREFIX) :]).expanduser(), name)
    elif value.startswith(ENV_PREFIX):
        var = value[len(ENV_PREFIX) :]
        if var not in env:
            raise ConfigError(f"setting '{name}': environment variable {var} is not set")
        text = env[var]
    elif value == MASK:
        raise ConfigError(
            f"setting '{name}' is the mask {MASK}, not a secret (copied from a log line?); "
            "give file:PATH or env:NAME"
        )
    elif literal_ok:
        text = value
    else:
        raise ConfigError(
            f"setting '{name}' is a secret: give it as file:PATH or env:NAME (a literal value "
            "is accepted only in its own LOGAD_ environment variable)"
        )
    if not text:
        raise ConfigError(f"setting '{name}' is empty")
    return Secret(text)


def _read_secret_file(path: Path, name: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"setting '{name}': cannot read {path}: {e.strerror}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise ConfigError(f"setting '{name}': {path} is over {_MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"setting '{name}': {path} is not UTF-8 text") from None
    # Files written by `echo` or an editor end in a newline that is not part of the secret.
    return text.removesuffix("\n").removesuffix("\r")


def mask_secrets(value: Any) -> Any:
    """`value` with every Secret inside it (dicts, lists, tuples) replaced by `***`."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_secrets(v) for v in value)
    return value
