"""The local broker's configuration, as pure functions: server.properties and cluster ids."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Listener:
    """A listener besides PLAINTEXT (which the broker always has, for its own readiness
    probe and the inter-broker traffic): `SASL_SSL://127.0.0.1:PORT` is
    `Listener("SASL_SSL", PORT, "SASL_SSL")`."""

    name: str
    port: int
    protocol: str
    """Its security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    listeners: Sequence[Listener] = (),
    extra: Mapping[str, str] | None = None,
) -> str:
    """server.properties for a one-node KRaft broker+controller on 127.0.0.1.

    Static `controller.quorum.voters` (not the dynamic bootstrap servers) so a restart of
    the same data dir may pick a different free controller port. `listeners` are added to
    the PLAINTEXT one; `extra` settings (a listener's TLS and SASL settings) are added last
    and win over the ones here. A value may span lines (an inline PEM key).
    """
    more = "".join(f",{x.name}://{HOST}:{x.port}" for x in listeners)
    protocols = "".join(f",{x.name}:{x.protocol}" for x in listeners)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}{more}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}{more}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # One node: every internal topic must make do with a single replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests join groups often; the default 3 s delay would slow each one down.
        "group.initial.rebalance.delay.ms": "0",
        # The 128 MiB default dedupe buffer does not fit the small heap (OutOfMemoryError).
        "log.cleaner.dedupe.buffer.size": "1048577",
        **(extra or {}),
    }
    return "".join(f"{k}={_escaped(v)}\n" for k, v in settings.items())


def _escaped(value: str) -> str:
    """A value as a Java properties file reads it back (backslash escapes, one line)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def parse_port(server_properties: str) -> int | None:
    """The PLAINTEXT port from rendered server.properties text, if there is one."""
    m = re.search(
        r"^advertised\.listeners=PLAINTEXT://[^:\s]+:(\d+)(?:,\S*)?\s*$", server_properties, re.M
    )
    return int(m.group(1)) if m else None


def new_cluster_id(raw: bytes) -> str:
    """A Kafka cluster id (base64url of 16 bytes, no padding) from 16 random bytes."""
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    # Kafka's own Uuid.randomUuid() avoids a leading '-': it reads as a command-line flag.
    return "A" + text[1:] if text.startswith("-") else text
