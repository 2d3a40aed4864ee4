"""Contracts shared by the trainer and the stream: records, vocab, daily files, bundles.

This package never imports torch (an import-linter contract checks it).
"""

from schemas.bundle import BundleManifest, Calibration, verify_bundle
from schemas.errors import BundleError, ConfigError, DataError, DecodeError, LogadError
from schemas.events import LogEvent
from schemas.scores import Alert, Expected, Score, SurprisingEvent
from schemas.sessions import Session
from schemas.vocab import Vocab
from schemas.windows import MAX_EVENTS, MAX_TOKENS, Window

__all__ = [
    "MAX_EVENTS",
    "MAX_TOKENS",
    "Alert",
    "BundleError",
    "BundleManifest",
    "Calibration",
    "ConfigError",
    "DataError",
    "DecodeError",
    "Expected",
    "LogEvent",
    "LogadError",
    "Score",
    "Session",
    "SurprisingEvent",
    "Vocab",
    "Window",
    "verify_bundle",
]
