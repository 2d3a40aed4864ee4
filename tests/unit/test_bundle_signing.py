"""Optional bundle signing: signed where written, checked where loaded, only with a key."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import orjson
import pytest

from schemas.bundle import MANIFEST, WEIGHTS, sha256_file, sign_bundle, verify_bundle
from schemas.errors import BundleError, ConfigError
from schemas.registry import read_pointer
from schemas.runtime.secret import Secret
from schemas.runtime.settings import build_settings
from schemas.signing import SIGNATURE, BundleKeySettings, manifest_signature
from schemas.vocab import Vocab
from stream.cli import main
from stream.jobs.registry import promote_bundle
from stream.serve.app import signed_only
from stream.serve.metrics import ServeMetrics
from stream.serve.reload import ModelWatcher
from stream.serve.worker import Scorer
from tests.unit.test_promote_and_watch import Loaded, fake_bundle
from trainer.calibration import calibrate
from trainer.export import export_bundle, load_warm_start
from trainer.model import bert_config, build_model, get_preset
from trainer.scoring.strategy import DEFAULT_STRATEGY

KEY = Secret("k" * 32)
OTHER = Secret("o" * 32)


def tamper(bundle: Path) -> None:
    """The attack: new weights, and their sha256 written into the manifest to match."""
    (bundle / WEIGHTS).write_bytes(b"backdoored weights")
    m = orjson.loads((bundle / MANIFEST).read_bytes())
    m["files"][WEIGHTS] = sha256_file(bundle / WEIGHTS)
    (bundle / MANIFEST).write_bytes(orjson.dumps(m, option=orjson.OPT_SORT_KEYS))


def test_signed_verifies_under_its_key_only(tmp_path: Path) -> None:
    b = fake_bundle(tmp_path / "b", "v1")
    sign_bundle(b, KEY)
    sig = (b / SIGNATURE).read_text().strip()
    assert sig == manifest_signature((b / MANIFEST).read_bytes(), KEY) and len(sig) == 64
    assert verify_bundle(b, KEY).version == "v1"
    with pytest.raises(BundleError, match=r"^bundle v1: manifest.sig does not match"):
        verify_bundle(b, OTHER)
    assert verify_bundle(b).version == "v1"  # no key: no check, as before


def test_tampered_manifest_and_hash_together_is_refused_with_a_key(tmp_path: Path) -> None:
    b = fake_bundle(tmp_path / "b", "v1")
    sign_bundle(b, KEY)
    tamper(b)
    assert verify_bundle(b).version == "v1"  # the hashes alone cannot tell
    with pytest.raises(BundleError, match="changed after it was signed, or signed with another"):
        verify_bundle(b, KEY)


def test_unsigned_is_refused_with_a_key_and_accepted_without(tmp_path: Path) -> None:
    b = fake_bundle(tmp_path / "b", "v1")
    assert verify_bundle(b).version == "v1"
    with pytest.raises(BundleError, match=r"^bundle v1 is not signed \(no manifest.sig\)"):
        verify_bundle(b, KEY)


def test_promote_signs_the_registry_copy_and_refuses_a_bad_signature(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    a = fake_bundle(tmp_path / "a", "v1")
    promote_bundle(a, reg, key=KEY)
    assert not (a / SIGNATURE).exists()  # the bundle given is left as it was
    assert verify_bundle(reg / "v1", KEY).version == "v1"
    # A bundle already signed keeps its signature, if it verifies...
    b = fake_bundle(tmp_path / "b", "v2", b"other")
    sign_bundle(b, KEY)
    promote_bundle(b, reg, key=KEY)
    assert (reg / "v2" / SIGNATURE).read_bytes() == (b / SIGNATURE).read_bytes()
    # ...and is refused, the registry untouched, if it does not.
    c = fake_bundle(tmp_path / "c", "v3", b"third")
    sign_bundle(c, OTHER)
    with pytest.raises(BundleError, match=r"bundle v3: manifest\.sig does not match"):
        promote_bundle(c, reg, key=KEY)
    assert not (reg / "v3").exists() and read_pointer(reg).version == "v2"
    d = fake_bundle(tmp_path / "d", "v4", b"fourth")
    sign_bundle(d, KEY)
    tamper(d)
    with pytest.raises(BundleError, match=r"v4: manifest\.sig does not match"):
        promote_bundle(d, reg, key=KEY)


def test_turning_a_key_on_for_an_existing_registry(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    promote_bundle(fake_bundle(tmp_path / "a", "v1"), reg)  # before there was a key
    with pytest.raises(BundleError, match="v1 is not signed"):
        verify_bundle(reg / "v1", KEY)
    promote_bundle(Path("v1"), reg, key=KEY)  # promoting it again, by version, signs it
    assert verify_bundle(reg / "v1", KEY).version == "v1"


def test_cli_promote_and_rollback_take_the_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry"
    assert main(["promote", str(fake_bundle(tmp_path / "a", "v1")), "--registry", str(reg)]) == 0
    key_file = tmp_path / "bundle.key"
    key_file.write_text(KEY.reveal() + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("LOGAD_BUNDLE_KEY", f"file:{key_file}")
    b = fake_bundle(tmp_path / "b", "v2", b"other")
    assert main(["promote", str(b), "--registry", str(reg)]) == 0
    assert verify_bundle(reg / "v2", KEY)
    # v1 came in before the key: rolling back to it is refused until it is signed.
    assert main(["rollback", "--registry", str(reg)]) == 2
    err = capsys.readouterr().err
    assert "logad: error: bundle v1 is not signed" in err and KEY.reveal() not in err
    assert read_pointer(reg).version == "v2"


def test_serve_loads_only_bundles_that_verify(tmp_path: Path) -> None:
    b = fake_bundle(tmp_path / "b", "v1")
    loaded: list[Path] = []

    def load(bundle: Path) -> Loaded:
        loaded.append(bundle)
        return Loaded("v1")

    assert signed_only(load, None) is load  # no key: nothing checked
    checked = signed_only(load, KEY)
    with pytest.raises(BundleError, match="not signed"):
        checked(b)  # at start and on every hot reload: the watcher loads through it too
    assert loaded == []
    sign_bundle(b, KEY)
    assert checked(b).model_version == "v1" and loaded == [b]


def test_every_command_that_loads_or_writes_bundles_has_the_setting() -> None:
    from stream.jobs.replay import ReplaySettings
    from stream.jobs.retrain import RetrainSettings
    from stream.serve.settings import ServeSettings
    from trainer.evaluate_settings import EvaluateSettings
    from trainer.settings import TrainSettings

    for cls in (ServeSettings, ReplaySettings, EvaluateSettings, RetrainSettings):
        flags = {"model": "m", "archive_dir": "a", "registry": "r", "bundle_key": "env:K"}
        known = {k: v for k, v in flags.items() if k in {f.name for f in dataclasses.fields(cls)}}
        s = build_settings(cls, flags={**known, "bundle_key": "env:K"}, environ={"K": KEY.reveal()})
        assert s.signing == BundleKeySettings(KEY), cls  # type: ignore[attr-defined]
    train = build_settings(TrainSettings, environ={"LOGAD_BUNDLE_KEY": KEY.reveal()})
    assert train.bundle_key == KEY
    with pytest.raises(ConfigError, match="bundle_key must be at least 16 characters"):
        build_settings(TrainSettings, environ={"LOGAD_BUNDLE_KEY": "short"})


@pytest.mark.slow  # builds a small torch model
def test_train_export_signs_and_the_warm_start_checks(tmp_path: Path) -> None:
    vocab = Vocab.build([["a.b", "c.d"]])
    model = build_model(bert_config(get_preset("tiny"), len(vocab)))
    cal = calibrate([1.0, 2.0, 3.0], 0.5, strategy=DEFAULT_STRATEGY)
    out = tmp_path / "bundle"
    export_bundle(
        out, model, vocab, cal, data_from=None, data_to=None, preset="tiny",
        parent_version=None, metrics={}, bundle_key=KEY,
    )  # fmt: skip
    assert verify_bundle(out, KEY)
    assert load_warm_start(out, KEY).preset == "tiny"
    with pytest.raises(BundleError, match="does not match"):
        load_warm_start(out, OTHER)
    os.remove(out / SIGNATURE)
    with pytest.raises(BundleError, match="not signed"):
        load_warm_start(out, KEY)


async def test_a_hot_reload_to_a_tampered_bundle_is_refused_and_the_old_model_serves(
    tmp_path: Path,
) -> None:
    reg = tmp_path / "registry"
    for v in ("v1", "v2"):
        promote_bundle(fake_bundle(tmp_path / v, v, v.encode()), reg, key=KEY)
    offered: list[Scorer] = []
    metrics = ServeMetrics()
    load = signed_only(lambda bundle: Loaded(bundle.name), KEY)
    watcher = ModelWatcher(reg, "v2", load, offered.append, metrics, check_s=0.01)
    tamper(reg / "v1")  # someone with write access to the registry
    pointer = reg / "current"  # the pointer moved by hand, since promote would refuse
    pointer.write_bytes(orjson.dumps({"version": "v1", "previous": "v2", "updated_at": "x"}))
    assert not await watcher.check()
    assert offered == [] and metrics.model_refused._value.get() == 1
