"""`ModelBundle`: a trained model directory and what it promises.

A bundle holds config.json, model.safetensors, vocab.json, calibration.json and
manifest.json, and, when trained on days `logad parse` mined from raw logs, templates.json
(the template set that maps a raw message to its event id). The manifest records the
version, the training data range, the sha256 of every other file and the creation time.
Verification re-hashes every file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from schemas.errors import BundleError, DecodeError
from schemas.runtime.secret import Secret
from schemas.signing import check_signature, write_signature
from schemas.templates import TemplateSet
from schemas.threshold import AlertBudget, TailModel, ThresholdInterval

CONFIG, WEIGHTS, VOCAB, CALIBRATION, MANIFEST = (
    "config.json",
    "model.safetensors",
    "vocab.json",
    "calibration.json",
    "manifest.json",
)
BUNDLE_FILES = (CONFIG, WEIGHTS, VOCAB, CALIBRATION)
TEMPLATES = "templates.json"
OPTIONAL_FILES = (TEMPLATES,)
"""In the manifest (and verified) when present; a bundle without them still loads."""
THRESHOLD_METHODS = ("quantile", "pot")
T = TypeVar("T")


def new_version(now: datetime | None = None) -> str:
    """A version id that sorts by creation time, to the millisecond: v20261128T044100123Z-1a2b3c."""
    now = now or datetime.now(UTC)
    return f"v{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Calibration:
    """Score quantiles on held-out normal windows, and the alert threshold chosen from them."""

    quantiles: dict[str, float]
    """Keys like 'p50', 'p90', 'p99', 'p99.9', 'p99.99'."""
    threshold: float
    threshold_quantile: float
    n_windows: int
    strategy: dict[str, Any] = field(default_factory=dict)
    """The scoring strategy the scores were computed with, so serving matches calibration."""
    known_mixes: tuple[tuple[int, ...], ...] = ()
    """The event mixes of the training windows (trainer/known_mixes.py: (token id, count)
    pairs, flattened), for strategies that treat a known mix as normal. The file's key is
    "known_counts", the name bundles have always been written with."""
    known_pairs: tuple[tuple[int, int], ...] = ()
    """The pairs of consecutive tokens in the training windows (token ids), for strategies
    that also require a known mix's order to be made of known steps."""
    count_ceilings: tuple[tuple[int, int], ...] | None = None
    """(token id, ceiling) for the events with a count ceiling (trainer/known_mixes.py),
    for strategies that score an occurrence beyond it like an unknown event. None: not
    recorded (files from before count ceilings)."""
    threshold_method: str = "quantile"
    """'quantile' (the threshold_quantile of the scores) or 'pot' (a generalised Pareto
    tail fitted to them: trainer/tail_threshold.py). Files without it: 'quantile'."""
    budget: AlertBudget | None = None
    """The false-alert budget the threshold was chosen for; None: threshold_quantile."""
    interval: ThresholdInterval | None = None
    """A bootstrap interval for the threshold; None: not computed."""
    tail: TailModel | None = None
    """The tail fit that gave the threshold (method 'pot')."""
    fallback: str | None = None
    """Why the method asked for did not give the threshold as such (too few peaks, ...)."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "quantiles": self.quantiles,
                "threshold": self.threshold,
                "threshold_quantile": self.threshold_quantile,
                "n_windows": self.n_windows,
                "strategy": self.strategy,
                "known_counts": [list(k) for k in self.known_mixes],
                "known_pairs": [list(p) for p in self.known_pairs],
                "count_ceilings": (
                    None if self.count_ceilings is None else [list(c) for c in self.count_ceilings]
                ),
                "threshold_method": self.threshold_method,
                "alert_budget": None if self.budget is None else self.budget.to_dict(),
                "threshold_interval": None if self.interval is None else self.interval.to_dict(),
                "tail": None if self.tail is None else self.tail.to_dict(),
                "threshold_fallback": self.fallback,
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Calibration:
        try:
            obj = orjson.loads(data)
            return cls(
                quantiles={str(k): float(v) for k, v in obj["quantiles"].items()},
                threshold=float(obj["threshold"]),
                threshold_quantile=float(obj["threshold_quantile"]),
                n_windows=int(obj["n_windows"]),
                strategy=dict(obj.get("strategy", {})),
                known_mixes=tuple(_mix_key(k) for k in obj.get("known_counts", [])),
                known_pairs=tuple(_pair(p) for p in obj.get("known_pairs", [])),
                count_ceilings=(
                    None
                    if obj.get("count_ceilings") is None
                    else tuple(_ceiling(c) for c in obj["count_ceilings"])
                ),
                threshold_method=_method(obj.get("threshold_method", "quantile")),
                budget=_opt(AlertBudget.from_dict, obj.get("alert_budget")),
                interval=_opt(ThresholdInterval.from_dict, obj.get("threshold_interval")),
                tail=_opt(TailModel.from_dict, obj.get("tail")),
                fallback=None
                if obj.get("threshold_fallback") is None
                else str(obj["threshold_fallback"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise BundleError(f"bad calibration.json: {e}") from None


def _method(obj: Any) -> str:
    if obj not in THRESHOLD_METHODS:
        raise ValueError(f"threshold_method must be one of {THRESHOLD_METHODS}, got {obj!r}")
    return str(obj)


def _opt(parse: Callable[[dict[str, Any]], T], obj: Any) -> T | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError(f"must be an object, got {obj!r}")
    return parse(obj)


def _mix_key(obj: Any) -> tuple[int, ...]:
    if not isinstance(obj, list) or len(obj) % 2:
        raise ValueError(f"a known_counts entry must be a list of (token id, count) pairs: {obj!r}")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in obj):
        raise ValueError(f"a known_counts entry must hold non-negative integers: {obj!r}")
    return tuple(obj)


def _two_ints(obj: Any, lows: tuple[int, int]) -> bool:
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= lo
            for x, lo in zip(obj, lows, strict=True)
        )
    )


def _pair(obj: Any) -> tuple[int, int]:
    if not _two_ints(obj, (0, 0)):
        raise ValueError(f"a known_pairs entry must be two token ids: {obj!r}")
    return (obj[0], obj[1])


def _ceiling(obj: Any) -> tuple[int, int]:
    if not _two_ints(obj, (0, 0)):
        raise ValueError(f"a count_ceilings entry must be a token id and a count: {obj!r}")
    return (obj[0], obj[1])


@dataclass(frozen=True)
class BundleManifest:
    version: str
    created_at: str
    data_from: str | None
    data_to: str | None
    files: dict[str, str]
    """File name to sha256 hex digest."""
    preset: str | None = None
    parent_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    time_buckets: int = 0
    """The model sees each event's time gap as one of this many token types (trainer/
    time_gaps.py), so every scorer must feed the windows' gaps; 0: a time-blind model (and
    every bundle from before time-aware scoring). In the file only when not 0."""

    def __post_init__(self) -> None:
        _check_time_buckets(self.time_buckets)

    def to_json(self) -> bytes:
        d = dict(self.__dict__)
        if not self.time_buckets:
            del d["time_buckets"]  # a time-blind bundle's manifest reads as before
        return orjson.dumps(d, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> BundleManifest:
        try:
            obj = orjson.loads(data)
            return cls(
                version=str(obj["version"]),
                created_at=str(obj["created_at"]),
                data_from=obj.get("data_from"),
                data_to=obj.get("data_to"),
                files={str(k): str(v) for k, v in obj["files"].items()},
                preset=obj.get("preset"),
                parent_version=obj.get("parent_version"),
                metrics=dict(obj.get("metrics", {})),
                time_buckets=obj.get("time_buckets", 0),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
            raise BundleError(f"bad manifest.json: {e}") from None


MAX_TIME_BUCKETS = 64
"""More token types than this would only split gaps longer than ~2^62 ms."""


def _check_time_buckets(n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not (n == 0 or 2 <= n <= MAX_TIME_BUCKETS):
        raise ValueError(f"time_buckets must be 0 or in [2, {MAX_TIME_BUCKETS}], got {n!r}")


def write_manifest(
    bundle_dir: Path,
    version: str,
    data_from: str | None,
    data_to: str | None,
    preset: str | None = None,
    parent_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    time_buckets: int = 0,
) -> BundleManifest:
    """Hash the bundle's files and write manifest.json. Call after the other four (and
    templates.json, if the bundle has one) exist."""
    missing = [n for n in BUNDLE_FILES if not (bundle_dir / n).is_file()]
    if missing:
        raise BundleError(f"bundle {bundle_dir} lacks {', '.join(missing)}")
    manifest = BundleManifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_from=data_from,
        data_to=data_to,
        files={
            n: sha256_file(bundle_dir / n)
            for n in (*BUNDLE_FILES, *OPTIONAL_FILES)
            if n in BUNDLE_FILES or (bundle_dir / n).is_file()
        },
        preset=preset,
        parent_version=parent_version,
        metrics=metrics or {},
        time_buckets=time_buckets,
    )
    (bundle_dir / MANIFEST).write_bytes(manifest.to_json())
    return manifest


def verify_bundle(bundle_dir: Path, key: Secret | None = None) -> BundleManifest:
    """Check that every file exists and matches its sha256; return the manifest. With a
    `key` (the bundle_key setting), the manifest's signature first (schemas/signing.py)."""
    mpath = bundle_dir / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{bundle_dir} is not a model bundle (no {MANIFEST})")
    raw = mpath.read_bytes()  # read once: the bytes signed are the bytes parsed
    manifest = BundleManifest.from_json(raw)
    if key is not None:
        check_signature(bundle_dir, raw, key, manifest.version)
    for name in BUNDLE_FILES:
        p = bundle_dir / name
        if not p.is_file():
            raise BundleError(f"bundle {manifest.version} lacks {name}")
        want = manifest.files.get(name)
        if want is None or sha256_file(p) != want:
            raise BundleError(f"bundle {manifest.version}: {name} fails its sha256 check")
    _verify_optional(bundle_dir, manifest)
    stray = [p.name for p in bundle_dir.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    if stray:
        raise BundleError(f"bundle {manifest.version} holds pickle-format files: {stray}")
    return manifest


def _verify_optional(bundle_dir: Path, manifest: BundleManifest) -> None:
    """An optional file listed in the manifest must be there and match; one that is there
    must be listed (else anyone could slip one into a bundle)."""
    for name in OPTIONAL_FILES:
        p = bundle_dir / name
        want = manifest.files.get(name)
        if want is None:
            if p.exists():
                raise BundleError(f"bundle {manifest.version}: {name} is not in its manifest")
            continue
        if not p.is_file():
            raise BundleError(f"bundle {manifest.version} lacks {name}")
        if sha256_file(p) != want:
            raise BundleError(f"bundle {manifest.version}: {name} fails its sha256 check")


def read_bundle_templates(bundle_dir: Path) -> TemplateSet | None:
    """The bundle's template set, checked against the manifest's sha256, or None when the
    bundle has none: its events must then come with their ids."""
    mpath = bundle_dir / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{bundle_dir} is not a model bundle (no {MANIFEST})")
    manifest = BundleManifest.from_json(mpath.read_bytes())
    want = manifest.files.get(TEMPLATES)
    if want is None:
        _verify_optional(bundle_dir, manifest)  # none there either
        return None
    try:
        raw = (bundle_dir / TEMPLATES).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"bundle {manifest.version} lacks {TEMPLATES}") from None
    # The bytes checked are the bytes decoded.
    if hashlib.sha256(raw).hexdigest() != want:
        raise BundleError(f"bundle {manifest.version}: {TEMPLATES} fails its sha256 check")
    try:
        return TemplateSet.from_dict(orjson.loads(raw))
    except (orjson.JSONDecodeError, DecodeError) as e:
        raise BundleError(f"bundle {manifest.version}: bad {TEMPLATES}: {e}") from None


def sign_bundle(bundle_dir: Path, key: Secret) -> None:
    """Sign the bundle's manifest.json under `key` (write manifest.sig)."""
    write_signature(bundle_dir, (bundle_dir / MANIFEST).read_bytes(), key)


def publish_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Atomically move a fully written directory into place (same filesystem)."""
    if final_dir.exists():
        raise BundleError(f"{final_dir} already exists")
    _fsync_dir(tmp_dir)
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
