"""The Kafka clients' TLS context with real certificates (made by the openssl binary, hence
a process test): the CA verifies the server and its name, a client key loads with its
password and only with it, and a server the CA did not sign is named as such."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.runtime.secret import Secret
from stream.serve.kafka_security import bootstrap_problem, ssl_context
from stream.serve.settings import KafkaSettings
from tests.tls import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[str]:
    """A TLS server on 127.0.0.1 with the CA-signed certificate: it completes handshakes and
    closes (no Kafka behind it)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.cert, pki.key)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            try:
                with server.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        sock.close()


def _handshake(ctx: ssl.SSLContext, address: str, name: str) -> None:
    host, port = address.split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name),
    ):
        pass


def test_the_ca_verifies_the_server_and_its_name(pki: Pki, tls_server: str) -> None:
    ctx = ssl_context(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.ca))
    _handshake(ctx, tls_server, "127.0.0.1")
    _handshake(ctx, tls_server, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(ctx, tls_server, "kafka.example")
    other = ssl_context(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.other_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(other, tls_server, "127.0.0.1")


async def test_a_server_the_ca_did_not_sign_is_named_with_the_setting_to_check(
    pki: Pki, tls_server: str
) -> None:
    kafka = KafkaSettings(bootstrap=tls_server, security_protocol="SSL", ssl_cafile=pki.other_ca)
    why = await bootstrap_problem(kafka, tls_server)
    assert why is not None and why.address == tls_server
    assert "CERTIFICATE_VERIFY_FAILED" in why.reason and "check ssl_cafile" in why.reason


def _client(pki: Pki, key: Path, password: str | None) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki.ca,
        ssl_certfile=pki.cert,
        ssl_keyfile=key,
        ssl_key_password=Secret(password) if password is not None else None,
    )


def test_a_client_key_loads_with_its_password_and_only_with_it(pki: Pki) -> None:
    assert ssl_context(_client(pki, pki.encrypted_key, pki.key_password))
    assert ssl_context(_client(pki, pki.key, None))
    for wrong in ("not-" + pki.key_password, None):  # None: no prompt on a terminal either
        with pytest.raises(ConfigError, match="cannot load the client certificate") as e:
            ssl_context(_client(pki, pki.encrypted_key, wrong))
        assert "\n" not in str(e.value) and pki.key_password not in str(e.value)
    with pytest.raises(ConfigError, match=r"^ssl_keyfile .*missing\.key: cannot read"):
        ssl_context(_client(pki, pki.dir / "missing.key", None))
    with pytest.raises(ConfigError, match="cannot load the client certificate"):
        # A key of another certificate.
        ssl_context(_client(pki, pki.dir / "ca.key", None))
