"""docs/configuration.md is what `logad config-docs` writes from the settings today."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import main
from stream.cli.config_docs import reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_checked_in_reference_is_current() -> None:
    assert DOCS.read_text() == reference(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_of_serve_is_in_the_reference() -> None:
    from schemas.runtime.settings import leaves
    from stream.serve.settings import ServeSettings

    text = reference()
    for leaf in leaves(ServeSettings).values():
        assert f"| `{leaf.name}` | `{leaf.flag}` | `{leaf.env}` |" in text


def test_check_fails_on_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "configuration.md"
    assert main(["config-docs", "--out", str(out), "--check"]) == 1
    assert "run `make docs`" in capsys.readouterr().err
    assert main(["config-docs", "--out", str(out)]) == 0
    assert main(["config-docs", "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("gap_ms", "gap"))
    assert main(["config-docs", "--out", str(out), "--check"]) == 1
