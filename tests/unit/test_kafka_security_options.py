"""Kafka security settings: validated once, given to every client the same way, secrets kept
out of every log line. (TLS with real certificates: tests/process/test_kafka_tls.py; a real
SASL_SSL broker: tests/integration/test_kafka_security.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from schemas.errors import ConfigError
from schemas.runtime.secret import Secret
from schemas.runtime.settings import build_settings, leaves, settings_for_log
from stream.devtools.simulate.settings import SimulateSettings
from stream.jobs.replay import ReplaySettings
from stream.serve.kafka_io import kafka_failure, make_consumer, make_producer
from stream.serve.kafka_security import (
    KafkaStartError,
    bootstrap_problem,
    client_options,
    ssl_context,
)
from stream.serve.settings import SECURITY_FIELDS, KafkaSettings, ServeSettings

SASL = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "alice",
    "sasl_password": "env:PW",
}


def _kafka(**flags: Any) -> KafkaSettings:
    s: ServeSettings = build_settings(
        ServeSettings, flags={"model": "m", **flags}, environ={"PW": "pw-1"}
    )
    return s.kafka


def test_plaintext_by_default_and_nothing_else_given_to_clients() -> None:
    assert client_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs sasl_mechanism, sasl_username"),
        ({**SASL, "sasl_username": None}, "SASL_PLAINTEXT needs sasl_username$"),
        ({"security_protocol": "SSL"}, "SSL needs ssl_cafile"),
        ({**SASL, "security_protocol": "SASL_SSL"}, "SASL_SSL needs ssl_cafile"),
        ({"sasl_username": "alice"}, "sasl_username given, but security_protocol PLAINTEXT"),
        ({"ssl_cafile": "/ca.pem"}, "ssl_cafile given, but security_protocol PLAINTEXT"),
        ({**SASL, "ssl_cafile": "/ca.pem"}, "but security_protocol SASL_PLAINTEXT has no TLS"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/ca.pem", "ssl_keyfile": "/k.pem"},
            "ssl_keyfile and ssl_key_password need ssl_certfile",
        ),
        ({"security_protocol": "TLS"}, "must be one of 'PLAINTEXT', 'SSL'"),
        ({**SASL, "sasl_mechanism": "GSSAPI"}, "must be one of 'PLAIN'"),
    ],
)
def test_combinations_that_cannot_work_are_one_error(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _kafka(**flags)


def test_a_sasl_login_reaches_the_client_and_never_the_log() -> None:
    kafka = _kafka(**SASL)
    assert kafka.sasl_password == Secret("pw-1")
    opts = client_options(kafka)
    assert opts == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw-1",
    }
    logged = settings_for_log(ServeSettings(model=Path("m"), kafka=kafka))
    assert logged["kafka"]["sasl_password"] == "***"
    assert "pw-1" not in repr(logged) + repr(kafka)


async def test_every_serve_client_gets_the_security_options() -> None:
    s = ServeSettings(model=Path("m"), kafka=_kafka(**SASL))
    for client in (make_consumer(s), make_producer(s)):
        inner = getattr(client, "_client", None) or client.client
        assert inner._security_protocol == "SASL_PLAINTEXT"
        assert inner._sasl_plain_password == "pw-1"
        await client.stop()


def test_the_section_is_declared_once_and_composed_everywhere() -> None:
    for cls in (ServeSettings, ReplaySettings, SimulateSettings):
        found = leaves(cls)
        assert set(SECURITY_FIELDS) <= set(found), cls
        assert found["sasl_password"].type == Secret | None
    # simulate names its bootstrap `bootstrap` in its live section; the security leaves are
    # the Kafka section's, read from the same variables as serve's.
    sim = build_settings(
        SimulateSettings,
        flags={"bootstrap": "h:1"},
        environ={"LOGAD_SECURITY_PROTOCOL": "SASL_PLAINTEXT", **_env(SASL), "PW": "pw-2"},
    )
    assert client_options(sim.kafka)["sasl_plain_password"] == "pw-2"


def _env(flags: dict[str, str]) -> dict[str, str]:
    return {f"LOGAD_{k.upper()}": v for k, v in flags.items()}


def test_tls_files_that_cannot_be_used_are_one_error_naming_the_setting(tmp_path: Path) -> None:
    tls = {"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "missing.pem")}
    with pytest.raises(ConfigError, match=r"^ssl_cafile .*missing.pem: cannot read: No such file"):
        ssl_context(_kafka(**tls))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"ssl_cafile .*junk\.pem holds no usable PEM"):
        ssl_context(_kafka(**{**tls, "ssl_cafile": str(junk)}))


def test_a_start_failure_names_the_broker_and_why() -> None:
    e = KafkaStartError("h:1", "[Error 58] SaslAuthenticationFailed: bad (check sasl_password)")
    assert str(kafka_failure("h:1", e)) == (
        "Kafka at h:1: [Error 58] SaslAuthenticationFailed: bad (check sasl_password)"
    )
    assert str(kafka_failure("h:1,g:2", e)).startswith("Kafka at h:1,g:2 (h:1): [Error 58]")
    assert isinstance(e, KafkaConnectionError)  # what callers already catch


async def test_the_probe_says_what_a_bootstrap_broker_did() -> None:
    why = await bootstrap_problem(KafkaSettings(bootstrap="127.0.0.1:1"), "127.0.0.1:1")
    assert why is not None and why.address == "127.0.0.1:1"
    assert "ConnectionRefusedError" in why.reason or "Connect call failed" in why.reason


async def test_serve_stops_on_an_unusable_tls_file_before_loading_the_model(
    tmp_path: Path,
) -> None:
    import asyncio

    from stream.serve.app import serve
    from tests.unit.test_promote_and_watch import fake_bundle

    def load(bundle: Path) -> Any:
        raise AssertionError("the model was loaded")

    kafka = _kafka(security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
    settings = ServeSettings(model=fake_bundle(tmp_path / "b", "v1"), kafka=kafka)
    with pytest.raises(ConfigError, match=r"ssl_cafile .*: cannot read"):
        await serve(settings, asyncio.Event(), load)
