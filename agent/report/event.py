"""Event documents: ECS-aligned JSON built from typed values, redacted by construction.

Builders return plain dicts with `@timestamp`, `event.id` (uuid4) and
`event.dataset`; the outbox adds `event.sequence` and `egress_guard.chain`
when it stores them. Nothing here reads scanned bytes: a finding carries only
what `KeyFinding` describes.
"""

from __future__ import annotations

import os
import platform
import socket
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.values import Action, ActionRecord, Outcome, ProcessInfo

DATASET_FINDING = "egress_guard.finding"
DATASET_HEARTBEAT = "egress_guard.heartbeat"
DATASET_AUDIT = "egress_guard.audit"
DATASET_ERROR = "egress_guard.error"

# a full outbox sheds the lowest priority first: heartbeats go, findings stay
PRIORITY = {DATASET_FINDING: 100, DATASET_AUDIT: 80, DATASET_ERROR: 50, DATASET_HEARTBEAT: 0}

TECHNIQUE = {
    "id": "T1552.004",
    "name": "Unsecured Credentials: Private Keys",
    "reference": "https://attack.mitre.org/techniques/T1552/004/",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentIdentity:
    """Who reports: the agent's stable id and the host it runs on."""

    id: str
    version: str
    host_name: str
    host_id: str
    os_name: str
    os_kernel: str


def load_identity(state_dir: Path, configured_id: str | None = None) -> AgentIdentity:
    """The agent identity; the id is `configured_id` or one kept in state_dir/agent-id."""
    agent_id = configured_id
    if agent_id is None:
        id_file = state_dir / "agent-id"
        try:
            agent_id = id_file.read_text(encoding="ascii").strip() or None
        except OSError:
            agent_id = None
        if agent_id is None:
            agent_id = str(uuid.uuid4())
            try:
                state_dir.mkdir(parents=True, exist_ok=True)
                tmp = id_file.with_suffix(".tmp")
                tmp.write_text(agent_id + "\n", encoding="ascii")
                tmp.replace(id_file)
            except OSError:
                pass  # read-only state: the id lives for this process only
    try:
        host_id = Path("/etc/machine-id").read_text(encoding="ascii").strip()
    except OSError:
        host_id = ""
    return AgentIdentity(
        id=agent_id,
        version=__version__,
        host_name=socket.gethostname(),
        host_id=host_id,
        os_name=platform.system().lower(),
        os_kernel=platform.release(),
    )


def now_iso() -> str:
    """RFC 3339 UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base(agent: AgentIdentity, dataset: str, message: str) -> dict[str, Any]:
    return {
        "@timestamp": now_iso(),
        "message": message,
        "event": {"id": str(uuid.uuid4()), "dataset": dataset, "module": "egress_guard"},
        "host": {
            "name": agent.host_name,
            "id": agent.host_id,
            "os": {"type": "linux", "family": agent.os_name, "kernel": agent.os_kernel},
        },
        "agent": {"type": "egress-guard", "version": agent.version, "id": agent.id},
        "ecs": {"version": "8.11.0"},
    }


def _process(p: ProcessInfo | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {}
    if p.pid is not None:
        out["pid"] = p.pid
    if p.name:
        out["name"] = p.name
    if p.executable:
        out["executable"] = p.executable
    if p.user:
        out["user"] = {"name": p.user}
    return out or None


def _user_name(uid: int) -> str | None:
    try:
        import pwd  # noqa: PLC0415 - POSIX only; absent names are fine

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return None


def finding_document(record: ActionRecord, agent: AgentIdentity) -> dict[str, Any]:
    """The `egress_guard.finding` event for one file with key material."""
    verdict = record.verdict
    result = verdict.result
    ident = result.identity
    quarantined = verdict.action is Action.QUARANTINE and record.outcome is Outcome.SUCCESS
    if verdict.action is Action.QUARANTINE and record.outcome is Outcome.FAILURE:
        action = "quarantine-failed"
    elif quarantined:
        action = "key-material-quarantined"
    else:
        action = "key-material-detected"
    findings = result.findings
    inventory = sorted({f.inventory_name for f in findings if f.inventory_name})
    named = f" ({', '.join(inventory)})" if inventory else ""
    keys = len({f.fingerprint or f"{f.rule}@{f.offset}" for f in findings})
    verb = {"key-material-quarantined": "quarantined", "quarantine-failed": "NOT quarantined"}
    message = (
        f"{keys} private key(s){named} found in {result.arrival.path}; "
        f"file {verb.get(action, 'reported')}"
    )
    doc = _base(agent, DATASET_FINDING, message)
    doc["event"].update(
        {
            "kind": "alert",
            "category": ["file", "intrusion_detection"],
            "type": ["denied"] if quarantined else ["info"],
            "action": action,
            "severity": verdict.severity,
            "outcome": str(record.outcome),
            "reason": verdict.reason,
        }
    )
    path = result.arrival.path
    file_doc: dict[str, Any] = {
        "path": path,
        "name": os.path.basename(path),
        "directory": os.path.dirname(path),
    }
    if ident is not None:
        file_doc.update(
            {
                "size": ident.size,
                "inode": str(ident.inode),
                "device": str(ident.device),
                "uid": str(ident.uid),
                "owner": _user_name(ident.uid),
                "mode": f"{stat.S_IMODE(ident.mode):04o}",
                "mtime": datetime.fromtimestamp(ident.mtime_ns / 1e9, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
        )
    if result.sha256:
        file_doc["hash"] = {"sha256": result.sha256}
    doc["file"] = file_doc
    doc["rule"] = {
        "name": sorted({f.rule for f in findings}),
        "ruleset": "egress-guard",
        "version": result.rules_version,
    }
    doc["threat"] = {
        "framework": "MITRE ATT&CK",
        "technique": {"id": [TECHNIQUE["id"]], "name": [TECHNIQUE["name"]]},
    }
    dumped = _process(result.dumped_process)
    writer = _process(result.arrival.writer)
    eg: dict[str, Any] = {
        "findings": [f.to_json() for f in findings],
        "quarantine": {
            "id": record.quarantine_id,
            "path": record.quarantine_path,
            "sealed": record.sealed,
        }
        if record.quarantine_id
        else None,
        "arrival": str(result.arrival.cause),
        "problems": [p.to_json() for p in result.problems],
        "bytes_scanned": result.bytes_scanned,
    }
    if record.error:
        eg["error"] = record.error
    if dumped is not None:
        doc["process"] = dumped
        if writer is not None:
            eg["writer"] = writer
    elif writer is not None:
        doc["process"] = writer
    doc["egress_guard"] = eg
    return doc


def audit_document(
    agent: AgentIdentity,
    *,
    action: str,
    message: str,
    outcome: Outcome = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An `egress_guard.audit` event: restore, purge, reload, config change, start, stop."""
    doc = _base(agent, DATASET_AUDIT, message)
    doc["event"].update(
        {
            "kind": "event",
            "category": ["configuration"],
            "type": ["change"],
            "action": action,
            "outcome": str(outcome),
            "severity": 21,
        }
    )
    doc["egress_guard"] = {"audit": details or {}}
    doc["user"] = {"id": str(os.getuid()), "name": _user_name(os.getuid())}
    return doc


def error_document(
    agent: AgentIdentity,
    *,
    error_type: str,
    message: str,
    path: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An `egress_guard.error` event: a scan failure, unreadable file, overflow, full disk."""
    doc = _base(agent, DATASET_ERROR, message)
    doc["event"].update(
        {
            "kind": "event",
            "category": ["file"] if path else ["host"],
            "type": ["error"],
            "action": error_type.replace("_", "-"),
            "outcome": "failure",
            "severity": 47,
        }
    )
    doc["error"] = {"type": error_type, "message": message}
    if path:
        doc["file"] = {"path": path, "name": os.path.basename(path)}
    doc["egress_guard"] = {"error": details or {}}
    return doc


def heartbeat_document(
    agent: AgentIdentity, *, counters: dict[str, Any], health: dict[str, Any]
) -> dict[str, Any]:
    """An `egress_guard.heartbeat` event with counters and host health."""
    doc = _base(agent, DATASET_HEARTBEAT, "egress-guard heartbeat")
    doc["event"].update(
        {"kind": "metric", "category": ["host"], "type": ["info"], "action": "heartbeat"}
    )
    doc["egress_guard"] = {"counters": counters, "health": health}
    return doc
