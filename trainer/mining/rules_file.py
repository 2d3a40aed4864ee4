"""A masking-rules file (TOML or JSON): the user's own rules, run before the built-in ones.

    use_builtin = true          # false: only these rules
    [[rules]]
    name = "order_id"
    pattern = 'ORD-\\d+'
    [[rules]]
    name = "quoted"             # a built-in's name replaces that rule,
    pattern = ""                # and an empty pattern switches it off

JSON: `{"use_builtin": true, "rules": [{"name": "order_id", "pattern": "ORD-\\\\d+"}]}`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson

from schemas.errors import ConfigError, DecodeError
from schemas.templates import MaskRule
from trainer.mining.masking import Masker, resolve_rules


def read_mask_rules(path: Path) -> tuple[MaskRule, ...]:
    """The rules in force with the file at `path`, checked (each regex compiles)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no such mask rules file: {path}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"mask rules file {path} is not valid {kind}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise ConfigError(f"mask rules file {path}: expected a table with a 'rules' list")
    unknown = sorted(set(data) - {"rules", "use_builtin"})
    if unknown:
        raise ConfigError(f"mask rules file {path}: unknown key {unknown[0]!r}")
    use_builtin = data.get("use_builtin", True)
    if not isinstance(use_builtin, bool):
        raise ConfigError(f"mask rules file {path}: use_builtin must be true or false")
    try:
        own = [MaskRule.from_dict(r) for r in data.get("rules", [])]
    except DecodeError as e:
        raise ConfigError(f"mask rules file {path}: {e}") from None
    rules = resolve_rules(own, use_builtin=use_builtin)
    Masker(rules)  # every regex compiles, or one error line naming the rule
    return rules
