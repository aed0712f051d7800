"""Frozen values that cross stage boundaries.

No value here has a field that could hold key bytes or matched text: a
validator reads the scanned bytes and returns a `KeyFinding` that only
describes the key (format, size, offset, fingerprint of the public half).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ArrivalCause(StrEnum):
    """Why a file is being scanned; users see these in logs and events."""

    CLOSED = "closed"
    SETTLED = "settled"
    MOVED_IN = "moved_in"
    MAX_WAIT = "max_wait"
    OVERFLOW_RESCAN = "overflow_rescan"
    CATCHUP = "catchup"
    SWEEP = "sweep"
    RETRY = "retry"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessInfo:
    """A process seen by the agent: the writer of a file, or the process a core dump holds."""

    pid: int | None = None
    name: str | None = None
    executable: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileIdentity:
    """What identifies one inode at one moment: the scanned file must be the moved file."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    uid: int
    mode: int

    @classmethod
    def of(cls, path: str, st: os.stat_result) -> FileIdentity:
        """The identity of `path` from its (l/f)stat result."""
        return cls(
            path=path,
            device=st.st_dev,
            inode=st.st_ino,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            uid=st.st_uid,
            mode=st.st_mode,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """A file to scan, and why."""

    path: str
    cause: ArrivalCause
    root: str | None = None
    writer: ProcessInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyFinding:
    """One piece of key material found in a file, described without any of its bytes."""

    rule: str
    format: str
    algorithm: str
    offset: int
    validated: bool
    bits: int | None = None
    curve: str | None = None
    address: int | None = None
    container: str | None = None
    fingerprint: str | None = None
    allowlisted: bool = False
    inventory_name: str | None = None
    occurrences: int = 1
    exponent_assumed: bool = False
    encrypted: bool = False
    default_password: bool = False  # opened with a published default password (not protected)

    def to_json(self) -> dict[str, Any]:
        """The finding as it appears in `egress_guard.findings[]`."""
        return {
            "rule": self.rule,
            "format": self.format,
            "algorithm": self.algorithm,
            "bits": self.bits,
            "curve": self.curve,
            "offset": self.offset,
            "address": self.address,
            "container": self.container,
            "validated": self.validated,
            "fingerprint": self.fingerprint,
            "allowlisted": self.allowlisted,
            "inventory": {"name": self.inventory_name} if self.inventory_name else None,
            "occurrences": self.occurrences,
            "exponent_assumed": self.exponent_assumed,
            "encrypted": self.encrypted,
            "default_password": self.default_password,
        }


class ErrorType(StrEnum):
    """Bounded vocabulary of scan problems (the SIEM groups on it)."""

    UNREADABLE = "unreadable"
    VANISHED = "vanished"
    NOT_REGULAR = "not_regular"
    SYMLINK = "symlink"
    ARCHIVE_CORRUPT = "archive_corrupt"
    ARCHIVE_BOMB = "archive_bomb"
    ARCHIVE_LIMIT = "archive_limit"
    ENCRYPTED_MEMBER = "encrypted_member"
    DUMP_CORRUPT = "dump_corrupt"
    NOT_DEEP_SCANNED = "not_deep_scanned"
    HIT_LIMIT = "hit_limit"
    ENGINE_FAILED = "engine_failed"
    VALIDATOR_FAILED = "validator_failed"
    CHANGED_DURING_SCAN = "changed_during_scan"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanProblem:
    """Something that kept part of a file from being scanned fully; never fatal."""

    error_type: ErrorType
    stage: str
    detail: str
    container: str | None = None
    bytes_affected: int = 0

    def to_json(self) -> dict[str, Any]:
        """The problem as it appears in events."""
        return {
            "error_type": str(self.error_type),
            "stage": self.stage,
            "detail": self.detail,
            "container": self.container,
            "bytes_affected": self.bytes_affected,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    """Everything the scan stage learned about one file."""

    arrival: Arrival
    identity: FileIdentity | None
    sha256: str | None
    findings: tuple[KeyFinding, ...] = ()
    problems: tuple[ScanProblem, ...] = ()
    rules_version: str = ""
    bytes_scanned: int = 0
    dumped_process: ProcessInfo | None = None
    duration_seconds: float = 0.0

    @property
    def key_material(self) -> tuple[KeyFinding, ...]:
        """Findings that prove a private key that is not a public test key."""
        return tuple(f for f in self.findings if f.validated and not f.allowlisted)

    @property
    def failed(self) -> bool:
        """True when the file itself could not be read at all."""
        return self.identity is None


class Action(StrEnum):
    """What policy decided to do with a file."""

    QUARANTINE = "quarantine"
    REPORT = "report"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Policy's decision for one scan result."""

    result: ScanResult
    action: Action
    severity: int
    reason: str


class Outcome(StrEnum):
    """ECS event.outcome."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRecord:
    """What the act stage did about a verdict."""

    verdict: Verdict
    outcome: Outcome
    quarantine_id: str | None = None
    quarantine_path: str | None = None
    sealed: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event as stored in the outbox and shipped: an ECS JSON document, already redacted.

    `body` is the serialized JSON so the value stays immutable and the bytes
    hashed into the chain are the bytes shipped.
    """

    id: str
    dataset: str
    sequence: int
    body: str
    priority: int = 0  # higher survives a full outbox longer (findings over heartbeats)

    def document(self) -> dict[str, Any]:
        """The event as a JSON object."""
        doc: dict[str, Any] = json.loads(self.body)
        return doc


@dataclass(frozen=True, slots=True)
class Delivered:
    """A sink accepted the batch."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A sink could not take the batch now; try again after the given time."""

    after_seconds: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A sink refused the batch for good (poison); it is set aside, never dropped."""

    reason: str
    status: int | None = None


Delivery = Delivered | Retry | Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineItem:
    """Metadata kept beside a quarantined file (no key bytes)."""

    id: str
    original_path: str
    vault_path: str
    size: int
    sha256: str
    quarantined_at: str
    owner_uid: int
    mode: int
    mtime_ns: int
    sealed: bool
    rules: tuple[str, ...] = ()
    findings: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    writer: ProcessInfo | None = None
    host: str = ""
