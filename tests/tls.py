"""Certificates for TLS tests, made with the `openssl` binary: a CA, a certificate for
127.0.0.1/localhost signed by it (a broker's, or a client's), and a second CA that signed
nothing here (for "does not verify" cases).

Used by tests/process (the client's TLS context) and tests/integration (a SASL_SSL broker).
There is no `cryptography` package in the project, and openssl is in every Debian image; a
machine without it fails these tests with one clear message rather than skipping them.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "2"  # the certificates live as long as a test run


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    """The CA certificate (PEM): a client's ssl_cafile, a broker's truststore."""
    cert: Path
    """A certificate for DNS:localhost and IP:127.0.0.1, signed by the CA (PEM)."""
    key: Path
    """Its private key, unencrypted PKCS#8 (PEM)."""
    encrypted_key: Path
    """The same key encrypted with `key_password` (PEM, PKCS#8)."""
    key_password: str
    other_ca: Path
    """A CA that signed none of these."""


def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise RuntimeError(
            "the `openssl` binary is not on PATH: the TLS tests make their certificates with "
            "it (Debian/Ubuntu: apt-get install openssl)"
        )
    return path


def _run(*args: str, cwd: Path) -> None:
    proc = subprocess.run([openssl(), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _ca(d: Path, name: str) -> Path:
    _run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS,
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN=logad test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    return d / f"{name}.crt"


def make_pki(d: Path, key_password: str = "key-pass-1") -> Pki:
    """A CA and a localhost certificate in `d` (created)."""
    d.mkdir(parents=True, exist_ok=True)
    ca = _ca(d, "ca")
    other = _ca(d, "other-ca")
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _run(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=localhost",
        cwd=d,
    )  # fmt: skip
    _run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", _DAYS, "-extfile", "leaf.ext", "-out", "leaf.crt",
        cwd=d,
    )  # fmt: skip
    _run(
        "pkcs8", "-topk8", "-in", "leaf.key", "-out", "leaf.enc.key",
        "-v2", "aes-256-cbc", "-passout", f"pass:{key_password}",
        cwd=d,
    )  # fmt: skip
    for p in d.glob("*.key"):
        p.chmod(0o600)
    return Pki(d, ca, d / "leaf.crt", d / "leaf.key", d / "leaf.enc.key", key_password, other)
