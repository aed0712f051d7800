"""The exception tree; every message says what went wrong and what to do.

    EgressGuardError            message + hint; never file bytes or tokens
    ├── ConfigError(ValueError) every problem found in one pass, with its key path
    ├── RuleError               file, line, rule, reason (the previous rule set stays active)
    ├── ScanError               path, stage, error_type (per file, never fatal to the daemon)
    │   ├── InventoryError      scan/inventory.py: a key file that cannot be registered
    │   └── AllowlistError      scan/allowlist.py: a bad allowlist line (file and line)
    ├── ScanStateError          sources/state.py: the scan-state store cannot be used
    ├── QuarantineError         quarantine id, step
    │   ├── FileChanged         quarantine/vault.py: not the scanned inode any more; rescan
    │   ├── ItemNotFound        quarantine/items.py: no such vault item
    │   └── SealError           quarantine/seal.py: missing or wrong key, damaged sealed file
    ├── OutboxError
    │   └── OutboxFull
    ├── DeliveryError           sink (inside report/ only)
    └── CollectorError          the reference collector's own failures

Subclasses defined in a stage live beside the code that raises them.

Library exceptions are translated into these at the one module that imports
the library, so callers never catch `yara.Error` or `OSError` from afar.
"""

from __future__ import annotations


class EgressGuardError(Exception):
    """Base of every error the agent raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(EgressGuardError, ValueError):
    """The configuration was refused; `problems` lists every key path with its reason."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"configuration refused{where}:\n{lines}",
            hint="fix the keys above; `egress-guard config check FILE` re-checks without starting",
        )
        self.problems = tuple(problems)


class RuleError(EgressGuardError):
    """A rule file did not compile or a rule's self-test failed."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ":".join(str(x) for x in (file, line) if x is not None)
        prefix = f"{where}: " if where else ""
        rule_part = f"rule {rule}: " if rule else ""
        super().__init__(f"{prefix}{rule_part}{message}", hint=hint)
        self.file = file
        self.line = line
        self.rule = rule


class ScanError(EgressGuardError):
    """One file could not be scanned; the daemon logs it and goes on."""

    def __init__(
        self, message: str, *, path: str, stage: str, error_type: str, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.stage = stage
        self.error_type = error_type


class QuarantineError(EgressGuardError):
    """A quarantine step failed; the original file is left where it was."""

    def __init__(
        self, message: str, *, step: str, item_id: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.item_id = item_id


class OutboxError(EgressGuardError):
    """The durable outbox could not store or read events."""


class OutboxFull(OutboxError):  # noqa: N818 - the name states the condition, as in queue.Full
    """The outbox reached its size limit and the event could not be stored."""


class DeliveryError(EgressGuardError):
    """A sink failed in a way that is not a retry or a rejection (bad set-up)."""

    def __init__(self, message: str, *, sink: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sink = sink


class CollectorError(EgressGuardError):
    """The reference collector could not start or store."""
