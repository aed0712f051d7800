"""Per-agent integrity checks: sequence gaps, reorders, chain breaks, silent agents.

The hash is recomputed exactly as the agent's agent/report/chain.py computes
it (canonical JSON: sorted keys, compact separators, ASCII escapes; the
document with `egress_guard.chain.hash` removed). The collector does not
import agent.report (stages stay independent), so the three rules are
repeated here and a test checks both sides agree.

Each check is a pure function from the agent's previous state and one event
to the new state plus the alert documents to store (dataset
`egress_guard.collector`).
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

DATASET_ALERT = "egress_guard.collector"
DATASET_HEARTBEAT = "egress_guard.heartbeat"


def canonical(document: dict[str, Any]) -> str:
    """The canonical JSON text (same rules as the agent's chain)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def recompute_hash(document: dict[str, Any]) -> str | None:
    """sha256 hex over the document without chain.hash; None when it has no chain."""
    eg = document.get("egress_guard")
    if not isinstance(eg, dict) or not isinstance(eg.get("chain"), dict):
        return None
    chain = {k: v for k, v in eg["chain"].items() if k != "hash"}
    unhashed = {**document, "egress_guard": {**eg, "chain": chain}}
    return hashlib.sha256(canonical(unhashed).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState:
    """What the collector knows about one agent's stream of events."""

    agent_id: str
    last_sequence: int | None = None
    last_hash: str | None = None
    missing: tuple[tuple[int, int], ...] = ()  # inclusive ranges not (yet) received
    gaps: int = 0
    reorders: int = 0
    chain_breaks: int = 0
    events: int = 0
    last_seen: float = 0.0
    last_heartbeat: float | None = None
    silent: bool = False
    health: dict[str, Any] = field(default_factory=dict)

    @property
    def chain_status(self) -> str:
        """Either "ok" or "broken" (an altered event or a broken link was seen)."""
        return "broken" if self.chain_breaks else "ok"


def _now_iso(now: float) -> str:
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def alert(
    action: str, agent_id: str, message: str, now: float, details: dict[str, Any]
) -> dict[str, Any]:
    """One collector alert document (ECS-shaped, stored beside the agents' events)."""
    return {
        "@timestamp": _now_iso(now),
        "message": message,
        "event": {
            "id": str(uuid.uuid4()),
            "dataset": DATASET_ALERT,
            "module": "egress_guard",
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "action": action,
            "severity": 73,
        },
        "agent": {"id": agent_id},
        "observer": {"type": "egress-guard-collector", "hostname": socket.gethostname()},
        "egress_guard": {"collector": {"agent_id": agent_id, **details}},
    }


def _remove(missing: tuple[tuple[int, int], ...], seq: int) -> tuple[tuple[int, int], ...] | None:
    """The ranges without `seq`, or None when seq was not missing."""
    for i, (lo, hi) in enumerate(missing):
        if lo <= seq <= hi:
            parts = [(lo, seq - 1)] if seq > lo else []
            parts += [(seq + 1, hi)] if seq < hi else []
            return missing[:i] + tuple(parts) + missing[i + 1 :]
    return None


def check_event(
    state: AgentState, document: dict[str, Any], now: float
) -> tuple[AgentState, list[dict[str, Any]]]:
    """Advance one agent's state by one (new, non-duplicate) event; return alerts raised."""
    alerts: list[dict[str, Any]] = []
    agent_id = state.agent_id
    event = document.get("event") or {}
    event_id = str(event.get("id"))
    seq = event.get("sequence")
    chain = (document.get("egress_guard") or {}).get("chain")
    claimed = chain.get("hash") if isinstance(chain, dict) else None
    state = replace(state, events=state.events + 1, last_seen=now)
    if event.get("dataset") == DATASET_HEARTBEAT:
        health = (document.get("egress_guard") or {}).get("health")
        state = replace(
            state,
            last_heartbeat=now,
            silent=False,
            health=health if isinstance(health, dict) else {},
        )
    elif state.last_heartbeat is None:
        state = replace(state, last_heartbeat=now)  # silence is counted from first contact

    breaks = 0
    if claimed is None or recompute_hash(document) != claimed:
        breaks += 1
        alerts.append(
            alert(
                "chain-broken",
                agent_id,
                f"event {event_id} from agent {agent_id} does not match its hash: altered",
                now,
                {"event_id": event_id, "sequence": seq, "reason": "hash-mismatch"},
            )
        )
    if not isinstance(seq, int) or isinstance(seq, bool):
        return replace(state, chain_breaks=state.chain_breaks + breaks), alerts

    last = state.last_sequence
    prev = chain.get("prev") if isinstance(chain, dict) else None
    if last is None or seq == last + 1:
        if last is not None and state.last_hash is not None and prev != state.last_hash:
            breaks += 1
            alerts.append(
                alert(
                    "chain-broken",
                    agent_id,
                    f"event {event_id} (sequence {seq}) from agent {agent_id} does not link "
                    "to the previous event",
                    now,
                    {"event_id": event_id, "sequence": seq, "reason": "prev-mismatch"},
                )
            )
        state = replace(state, last_sequence=seq, last_hash=claimed)
    elif seq > last + 1:
        state = replace(
            state,
            last_sequence=seq,
            last_hash=claimed,
            missing=(*state.missing, (last + 1, seq - 1)),
            gaps=state.gaps + 1,
        )
        alerts.append(
            alert(
                "sequence-gap",
                agent_id,
                f"agent {agent_id}: events {last + 1}..{seq - 1} missing before sequence {seq}",
                now,
                {"event_id": event_id, "sequence": seq, "missing": [last + 1, seq - 1]},
            )
        )
    else:
        remaining = _remove(state.missing, seq)
        late = remaining is not None
        state = replace(
            state,
            missing=remaining if remaining is not None else state.missing,
            reorders=state.reorders + 1,
        )
        what = "arrived late (fills a gap)" if late else "repeats an earlier sequence number"
        alerts.append(
            alert(
                "sequence-reorder",
                agent_id,
                f"agent {agent_id}: event {event_id} with sequence {seq} {what}",
                now,
                {"event_id": event_id, "sequence": seq, "last_sequence": last, "late": late},
            )
        )
    return replace(state, chain_breaks=state.chain_breaks + breaks), alerts


def check_silence(
    state: AgentState, now: float, timeout_seconds: float
) -> tuple[AgentState, list[dict[str, Any]]]:
    """Raise `agent-silent` once when no heartbeat came for timeout_seconds."""
    if state.silent or state.last_heartbeat is None:
        return state, []
    quiet = now - state.last_heartbeat
    if quiet < timeout_seconds:
        return state, []
    doc = alert(
        "agent-silent",
        state.agent_id,
        f"agent {state.agent_id}: no heartbeat for {int(quiet)} s",
        now,
        {"seconds_since_heartbeat": round(quiet, 1), "timeout_seconds": timeout_seconds},
    )
    return replace(state, silent=True), [doc]
