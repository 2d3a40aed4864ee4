"""Mask rules files (TOML or JSON): own rules first, built-ins replaced or kept, errors one line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.errors import ConfigError
from schemas.templates import MaskRule
from trainer.mining.masking import DEFAULT_MASK_RULES
from trainer.mining.rules_file import read_mask_rules


def test_json_rules_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    rules = [{"name": "ticket", "pattern": "T-\\d+"}]
    path.write_bytes(orjson.dumps({"use_builtin": False, "rules": rules}))
    assert read_mask_rules(path) == (MaskRule("ticket", "T-\\d+"),)


def test_toml_rules_replace_and_remove_builtins(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[rules]]\nname = "number"\npattern = "\\\\d{4,}"\n'
        '[[rules]]\nname = "quoted"\npattern = ""\n'
    )
    rules = read_mask_rules(path)
    assert rules[0] == MaskRule("number", "\\d{4,}")
    names = [r.name for r in rules]
    assert "quoted" not in names
    assert len(rules) == len(DEFAULT_MASK_RULES) - 1


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"rules": [{"name": "x", "pattern": "("}]}', "mask rule 'x': bad regex"),
        ('{"rulez": []}', "unknown key 'rulez'"),
        ('{"rules": [{"pattern": "a"}]}', "name: missing required field"),
        ('{"use_builtin": "yes"}', "use_builtin must be true or false"),
        ("[1]", "expected a table with a 'rules' list"),
        ("{", "is not valid JSON"),
    ],
)
def test_bad_files_are_one_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        read_mask_rules(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such mask rules file"):
        read_mask_rules(tmp_path / "none.toml")
