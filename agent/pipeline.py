"""The one function that chains the stages for one Arrival: scan -> policy -> act -> report.

Used by the daemon's scan workers and by `sweep` / `scan`. It never raises for
a file: every outcome is a `Processed` value the caller acts on (requeue,
count, exit code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent import policy
from agent.errors import QuarantineError
from agent.logs import get_logger
from agent.report.event import AgentIdentity, error_document, finding_document
from agent.scan.scanner import Scanner
from agent.values import (
    Action,
    ActionRecord,
    Arrival,
    ErrorType,
    FileIdentity,
    Outcome,
    ProcessInfo,
    QuarantineItem,
    ScanResult,
    Verdict,
)

log = get_logger("agent.pipeline")

# problems worth their own error event when a file holds no key (the SIEM must see a bomb)
REPORTED_PROBLEMS = frozenset(
    {
        ErrorType.UNREADABLE,
        ErrorType.ARCHIVE_BOMB,
        ErrorType.ARCHIVE_CORRUPT,
        ErrorType.ARCHIVE_LIMIT,
        ErrorType.ENCRYPTED_MEMBER,
        ErrorType.DUMP_CORRUPT,
        ErrorType.HIT_LIMIT,
        ErrorType.ENGINE_FAILED,
        ErrorType.VALIDATOR_FAILED,
    }
)


class VaultLike(Protocol):
    """What the pipeline needs of the quarantine vault."""

    def quarantine(
        self,
        identity: FileIdentity,
        *,
        sha256: str,
        rules: tuple[str, ...],
        findings: tuple[dict[str, Any], ...],
        writer: ProcessInfo | None,
    ) -> QuarantineItem:
        """Move the scanned inode into the vault."""
        ...

    def reported(self, item_id: str) -> None:
        """The finding event of that move is durable."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Processed:
    """What happened to one arrival."""

    result: ScanResult
    verdict: Verdict | None = None
    record: ActionRecord | None = None
    rescan: bool = False  # the file changed under us: scan it again once it settles
    retry: bool = False  # quarantine failed (disk full, read-only vault): try again later
    event: dict[str, Any] | None = None


Publish = Callable[[dict[str, Any]], None]


def _is_file_changed(exc: QuarantineError) -> bool:
    # the vault raises a FileChanged subclass; matched by name so the stages stay independent
    return type(exc).__name__ == "FileChanged" or exc.step in ("verify_identity", "identity")


def process(
    arrival: Arrival,
    *,
    scanner: Scanner,
    vault: VaultLike | None,
    agent: AgentIdentity,
    publish: Publish,
    dry_run: bool = False,
) -> Processed:
    """Scan one arrival, decide, quarantine when told to, and publish the event."""
    return handle(scanner.scan(arrival), vault=vault, agent=agent, publish=publish, dry_run=dry_run)


def handle(
    result: ScanResult,
    *,
    vault: VaultLike | None,
    agent: AgentIdentity,
    publish: Publish,
    dry_run: bool = False,
) -> Processed:
    """Decide, act and report on a finished scan (sweep workers scan; the parent handles)."""
    arrival = result.arrival
    if result.failed:
        problem = result.problems[0] if result.problems else None
        if problem is not None and problem.error_type in REPORTED_PROBLEMS:
            log.warning(
                "scan.file_failed",
                path=arrival.path,
                error_type=str(problem.error_type),
                detail=problem.detail,
            )
            doc = error_document(
                agent,
                error_type=str(problem.error_type),
                message=f"{arrival.path}: {problem.detail}",
                path=arrival.path,
                details={"stage": problem.stage},
            )
            publish(doc)
            return Processed(result=result, event=doc)
        log.info(
            "scan.file_skipped",
            path=arrival.path,
            reason=str(problem.error_type) if problem else "unknown",
        )
        return Processed(result=result)
    if any(p.error_type is ErrorType.CHANGED_DURING_SCAN for p in result.problems):
        log.info("scan.file_changed", path=arrival.path)
        return Processed(result=result, rescan=True)

    verdict = policy.decide(result, quarantine_enabled=vault is not None and not dry_run)
    log.info(
        "scan.file_scanned",
        path=arrival.path,
        cause=str(arrival.cause),
        findings=len(result.key_material),
        allowlisted=sum(1 for f in result.findings if f.allowlisted),
        bytes=result.bytes_scanned,
        seconds=round(result.duration_seconds, 4),
        action=str(verdict.action),
        problems=[str(p.error_type) for p in result.problems],
    )
    if verdict.action is Action.NONE:
        problem_doc = _problem_event(result, agent)
        if problem_doc is not None:
            publish(problem_doc)
        return Processed(result=result, verdict=verdict, event=problem_doc)

    record = ActionRecord(verdict=verdict, outcome=Outcome.SUCCESS)
    retry = False
    if verdict.action is Action.QUARANTINE and vault is not None and result.identity is not None:
        try:
            item = vault.quarantine(
                result.identity,
                sha256=result.sha256 or "",
                rules=tuple(sorted({f.rule for f in result.findings})),
                findings=tuple(f.to_json() for f in result.findings),
                writer=arrival.writer,
            )
        except QuarantineError as exc:
            if _is_file_changed(exc):
                log.info("quarantine.file_changed", path=arrival.path, step=exc.step)
                return Processed(result=result, verdict=verdict, rescan=True)
            log.error(
                "quarantine.file_failed",
                path=arrival.path,
                step=exc.step,
                error_type="quarantine_failed",
                reason=exc.message,
            )
            record = ActionRecord(verdict=verdict, outcome=Outcome.FAILURE, error=exc.message)
            retry = True
        else:
            log.info("quarantine.file_moved", path=arrival.path, id=item.id, sealed=item.sealed)
            record = ActionRecord(
                verdict=verdict,
                outcome=Outcome.SUCCESS,
                quarantine_id=item.id,
                quarantine_path=item.vault_path,
                sealed=item.sealed,
            )
    for f in result.key_material:
        log.warning(
            "scan.key_found",
            path=arrival.path,
            format=f.format,
            algorithm=f.algorithm,
            bits=f.bits,
            fingerprint=f.fingerprint,
            inventory=f.inventory_name,
        )
    doc = finding_document(record, agent)
    publish(doc)
    if vault is not None and record.quarantine_id is not None:
        vault.reported(record.quarantine_id)
    return Processed(result=result, verdict=verdict, record=record, retry=retry, event=doc)


def _problem_event(result: ScanResult, agent: AgentIdentity) -> dict[str, Any] | None:
    problems = [p for p in result.problems if p.error_type in REPORTED_PROBLEMS]
    if not problems:
        return None
    first = problems[0]
    return error_document(
        agent,
        error_type=str(first.error_type),
        message=f"{result.arrival.path}: {first.detail}",
        path=result.arrival.path,
        details={"problems": [p.to_json() for p in problems]},
    )
