"""templates.json: round trip, and a bad file is one clear error naming it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.errors import DataError
from schemas.templates import read_templates, write_templates
from trainer.mining import TemplateMiner


def _written(tmp_path: Path) -> Path:
    m = TemplateMiner()
    m.mine("Receiving block blk_1 src: /10.0.0.1:1", first_seen="a.log:1")
    m.mine("Receiving block blk_2 src: /10.0.0.2:1", first_seen="a.log:2")
    m.mine("Disk full", first_seen="2026-01-01T00:00:00Z")
    path = tmp_path / "templates.json"
    write_templates(path, m.to_set())
    return path


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = _written(tmp_path)
    obj = orjson.loads(path.read_bytes())
    assert obj["format"] == "logad-templates"
    assert [t["id"] for t in obj["templates"]] == ["T1", "T2"]
    first = obj["templates"][0]
    assert first["template"] == "Receiving block <*> src: /<*>"
    assert first["count"] == 2
    assert first["first_seen"] == "a.log:1"
    assert obj["templates"][1]["first_seen"] == "2026-01-01T00:00:00Z"
    loaded = read_templates(path)
    assert loaded.to_dict() == obj
    assert TemplateMiner.from_set(loaded).to_set() == loaded


def test_mask_rules_and_parameters_travel_with_the_set(tmp_path: Path) -> None:
    path = _written(tmp_path)
    params = read_templates(path).params
    assert params == TemplateMiner().params


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda o: o.update(format="other"), "not a template set"),
        (lambda o: o.update(version=99), "unsupported version"),
        (lambda o: o["templates"][1].update(id="T1"), "unique and increasing"),
        (lambda o: o["templates"][0].update(id="X1"), "must look like T1"),
        (lambda o: o["templates"][0].update(count=-1), "count: out of range"),
        (lambda o: o["templates"][0].update(route=[]), "route: must be a non-empty list"),
        (lambda o: o["params"].update(depth="4"), "depth: must be an integer"),
        (lambda o: o["params"]["mask_rules"].append({"name": "x"}), "pattern"),
    ],
)
def test_a_bad_file_is_one_error_naming_it(tmp_path: Path, edit: object, error: str) -> None:
    path = _written(tmp_path)
    obj = orjson.loads(path.read_bytes())
    edit(obj)  # type: ignore[operator]
    path.write_bytes(orjson.dumps(obj))
    with pytest.raises(DataError, match=f"{path.name}: bad template set: .*{error}"):
        read_templates(path)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such templates file"):
        read_templates(tmp_path / "none.json")
    broken = tmp_path / "t.json"
    broken.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_templates(broken)
