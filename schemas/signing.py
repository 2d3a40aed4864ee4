"""Optional signing of model bundles: `manifest.sig` beside `manifest.json`.

The manifest lists the sha256 of every file of a bundle, so checking the hashes finds a
file changed by accident. It does not stop someone who may write to the registry: they can
replace the weights and write their hashes into the manifest. With a key (the `bundle_key`
setting, a `Secret`), the manifest is signed: `manifest.sig` holds the hex HMAC-SHA256 of
the manifest.json bytes exactly as stored, under the key. Whoever lacks the key cannot make
a signature that verifies.

- `logad train` (its export) and the registry (`logad promote`, and `logad retrain`'s
  promotion) sign what they write when a key is set. Promoting an unsigned bundle is how
  an operator vouches for it; a bundle whose signature does not verify is refused.
- Every load (serve and its hot reloads, replay, evaluate, retrain's warm start and gate,
  promote, rollback) verifies the signature when a key is set: an unsigned bundle, or one
  signed otherwise, is refused with one error line.
- With no key set, nothing is signed or checked: bundles behave as before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import BundleError
from schemas.runtime.secret import Secret

SIGNATURE = "manifest.sig"
MIN_KEY_CHARS = 16


@dataclass(frozen=True)
class BundleKeySettings:
    """Bundle signing

    With a key, bundles are signed where they are written (train, promote, retrain) and
    refused where they are loaded unless their manifest.sig verifies. Unset: no signing and
    no check."""

    bundle_key: Secret | None = None
    """HMAC-SHA256 key of bundle signatures: file:PATH, env:NAME, or the value in
    LOGAD_BUNDLE_KEY (at least 16 characters, e.g. `openssl rand -hex 32`; unset: bundles
    are neither signed nor checked)."""

    def __post_init__(self) -> None:
        check_bundle_key(self.bundle_key)


def check_bundle_key(key: Secret | None) -> None:
    """ValueError for a key too short to be one (a settings class's `__post_init__`)."""
    if key is not None and len(key.reveal()) < MIN_KEY_CHARS:
        raise ValueError(f"bundle_key must be at least {MIN_KEY_CHARS} characters")


def manifest_signature(manifest: bytes, key: Secret) -> str:
    """The hex HMAC-SHA256 of the manifest's bytes under `key`."""
    return hmac.new(key.reveal().encode(), manifest, hashlib.sha256).hexdigest()


def write_signature(bundle_dir: Path, manifest: bytes, key: Secret) -> None:
    """Sign `manifest` (the bytes of the bundle's manifest.json): write manifest.sig, whole
    or not at all."""
    tmp = bundle_dir / f".{SIGNATURE}.tmp"
    tmp.write_text(manifest_signature(manifest, key) + "\n")
    os.replace(tmp, bundle_dir / SIGNATURE)


def check_signature(bundle_dir: Path, manifest: bytes, key: Secret, version: str) -> None:
    """Raise BundleError unless manifest.sig is the signature of `manifest` under `key`."""
    try:
        text = (bundle_dir / SIGNATURE).read_text().strip()
    except FileNotFoundError:
        raise BundleError(
            f"bundle {version} is not signed (no {SIGNATURE}) and a bundle_key is set: "
            "promote it with the key to sign it, or unset bundle_key"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"bundle {version}: cannot read {SIGNATURE}: {e}") from None
    if not hmac.compare_digest(text.encode(), manifest_signature(manifest, key).encode()):
        raise BundleError(
            f"bundle {version}: {SIGNATURE} does not match its manifest under the bundle_key "
            "(changed after it was signed, or signed with another key)"
        )


def is_signed(bundle_dir: Path) -> bool:
    return (bundle_dir / SIGNATURE).is_file()
