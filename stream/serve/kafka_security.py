"""How every Kafka client of logad connects: TLS and SASL options from `KafkaSettings`, and
start-up failures explained in one line.

`client_options(kafka)` gives the keyword arguments every aiokafka client takes
(`AIOKafkaConsumer(..., **client_options(kafka))`): the security protocol, the SASL login and
a TLS context built with the standard library (`ssl.create_default_context` on the CA file,
`load_cert_chain` for a client certificate). Bad files are a ConfigError naming the setting.

aiokafka reports a failed bootstrap only as "Unable to bootstrap from [...]" (the reason goes
to its log), so `start_client` asks the first broker directly once, when a client fails to
start, for what went wrong: a refused login, a certificate that does not verify, a TLS
client on a plaintext listener.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, Protocol

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, SaslAuthenticationFailed

from schemas.errors import ConfigError
from stream.serve.settings import KafkaSettings

_PROBE_TIMEOUT_MS = 10_000
_WRONG_PROTOCOL = (ssl.SSLError, asyncio.TimeoutError, ConnectionResetError, KafkaConnectionError)


class Startable(Protocol):
    async def start(self) -> None: ...


class KafkaStartError(KafkaConnectionError):  # type: ignore[misc]
    """A client could not bootstrap, and why: `address` is the broker asked, `reason` what
    went wrong there (with a hint at the setting to check)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.address}: {self.reason}"


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for the connection's security (none for PLAINTEXT beyond
    the protocol itself)."""
    opts: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None  # KafkaSettings checked the combination
        opts["sasl_mechanism"] = kafka.sasl_mechanism
        opts["sasl_plain_username"] = kafka.sasl_username
        opts["sasl_plain_password"] = kafka.sasl_password.reveal()
    if kafka.security_protocol.endswith("SSL"):
        opts["ssl_context"] = ssl_context(kafka)
    return opts


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """A client TLS context: verifies the brokers against ssl_cafile (and their host names),
    and presents ssl_certfile when one is given."""
    assert kafka.ssl_cafile is not None  # KafkaSettings checked the combination
    try:
        ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile))
    except OSError as e:
        raise _file_error("ssl_cafile", kafka.ssl_cafile, e) from None
    if kafka.ssl_certfile is not None:
        secret = kafka.ssl_key_password
        key_password = secret.reveal() if secret is not None else ""
        try:
            # A callable, so an encrypted key with no password fails instead of OpenSSL
            # prompting on the terminal of a service.
            ctx.load_cert_chain(
                str(kafka.ssl_certfile),
                str(kafka.ssl_keyfile) if kafka.ssl_keyfile is not None else None,
                password=lambda: key_password,
            )
        except ssl.SSLError as e:
            raise ConfigError(
                f"cannot load the client certificate {kafka.ssl_certfile} and its key: "
                f"{e.reason or e} (a wrong ssl_key_password, or a key of another certificate?)"
            ) from None
        except OSError as e:
            name, path = "ssl_certfile", kafka.ssl_certfile
            if kafka.ssl_keyfile is not None and not kafka.ssl_keyfile.is_file():
                name, path = "ssl_keyfile", kafka.ssl_keyfile
            raise _file_error(name, path, e) from None
    return ctx


def _file_error(name: str, path: Path, e: OSError) -> ConfigError:
    if isinstance(e, ssl.SSLError):
        return ConfigError(f"{name} {path} holds no usable PEM certificate: {e.reason or e}")
    return ConfigError(f"{name} {path}: cannot read: {e.strerror or e}")


async def start_client(client: Startable, kafka: KafkaSettings, bootstrap: str) -> None:
    """`client.start()`; when it cannot bootstrap, the error says why (see the module doc)."""
    try:
        await client.start()
    except KafkaConnectionError as e:
        why = await bootstrap_problem(kafka, bootstrap)
        if why is None:
            raise
        raise why from e


async def bootstrap_problem(kafka: KafkaSettings, bootstrap: str) -> KafkaStartError | None:
    """Connect (and log in) to the bootstrap brokers one by one, as a client would; the first
    one's failure, with a hint, or None when one of them answers."""
    options = client_options(kafka)
    first: KafkaStartError | None = None
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await create_conn(
                host.strip("[]"), int(port), request_timeout_ms=_PROBE_TIMEOUT_MS, **options
            )
        except (TimeoutError, OSError, KafkaError, ValueError) as e:
            first = first or _explained(address.strip(), kafka, e)
            continue
        conn.close()
        return None
    return first


def _explained(address: str, kafka: KafkaSettings, e: BaseException) -> KafkaStartError:
    text = str(e) or type(e).__name__
    if type(e).__name__ not in text:
        text = f"{type(e).__name__}: {text}"
    hint = ""
    if isinstance(e, SaslAuthenticationFailed):
        hint = "check sasl_username and sasl_password"
    elif isinstance(e, ssl.SSLCertVerificationError):
        hint = "check ssl_cafile, and that the broker's certificate names this host"
    elif isinstance(e, _WRONG_PROTOCOL):  # the broker hung up on what it did not expect
        hint = f"does this listener speak {kafka.security_protocol}?"
    return KafkaStartError(address, text + (f" ({hint})" if hint else ""))
