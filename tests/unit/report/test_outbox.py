"""The outbox: durable append with sequence and chain, per-sink pending/ack, dead letters, size policy."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.errors import OutboxError, OutboxFull
from agent.report.chain import verify
from agent.report.outbox import Outbox


def doc(dataset: str = "egress_guard.finding", pad: int = 0) -> dict[str, Any]:
    return {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "message": "x" * pad,
        "event": {"id": str(uuid.uuid4()), "dataset": dataset},
        "agent": {"id": "agent-1"},
    }


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.db", sinks=("a", "b"))
    yield box
    box.close()


def test_append_assigns_gapless_sequence_and_links_chain(outbox: Outbox) -> None:
    """Appended events get sequences 1, 2, 3 and each chain.prev is the previous hash."""
    events = [outbox.append(doc()) for _ in range(3)]
    assert [e.sequence for e in events] == [1, 2, 3]
    docs = [e.document() for e in events]
    assert docs[0]["egress_guard"]["chain"]["prev"] is None
    for before, after in itertools.pairwise(docs):
        assert after["egress_guard"]["chain"]["prev"] == before["egress_guard"]["chain"]["hash"]
    assert all(verify(d) for d in docs)
    assert all(d["event"]["sequence"] == e.sequence for d, e in zip(docs, events, strict=True))


def test_body_is_canonical_json(outbox: Outbox) -> None:
    """The stored body is sorted, compact JSON: what is hashed is what is shipped."""
    event = outbox.append(doc())
    assert event.body == json.dumps(
        json.loads(event.body), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )


def test_sequence_and_chain_continue_after_reopen(tmp_path: Path) -> None:
    """A reopened outbox (a restart, or a second process) continues the same sequence and chain."""
    first = Outbox(tmp_path / "o.db", sinks=("a",))
    e1 = first.append(doc())
    second = Outbox(tmp_path / "o.db", sinks=("a",))
    e2 = second.append(doc())
    e3 = first.append(doc())
    first.close()
    second.close()
    assert [e1.sequence, e2.sequence, e3.sequence] == [1, 2, 3]
    assert (
        e2.document()["egress_guard"]["chain"]["prev"]
        == e1.document()["egress_guard"]["chain"]["hash"]
    )
    assert (
        e3.document()["egress_guard"]["chain"]["prev"]
        == e2.document()["egress_guard"]["chain"]["hash"]
    )


def test_pending_is_oldest_first_within_limits(outbox: Outbox) -> None:
    """pending returns the oldest events, capped by count and bytes (at least one)."""
    events = [outbox.append(doc(pad=100)) for _ in range(5)]
    assert [e.id for e in outbox.pending("a", max_events=3, max_bytes=10**6)] == [
        e.id for e in events[:3]
    ]
    one = outbox.pending("a", max_events=10, max_bytes=1)
    assert [e.id for e in one] == [events[0].id]
    two = outbox.pending("a", max_events=10, max_bytes=len(events[0].body) + len(events[1].body))
    assert len(two) == 2


def test_event_is_deleted_only_when_every_sink_acked(outbox: Outbox) -> None:
    """An event stays until both sinks acknowledged it."""
    event = outbox.append(doc())
    outbox.ack("a", [event.id])
    assert outbox.pending("a", max_events=10, max_bytes=10**6) == []
    assert [e.id for e in outbox.pending("b", max_events=10, max_bytes=10**6)] == [event.id]
    assert outbox.depth() == 1
    outbox.ack("b", [event.id])
    assert outbox.depth() == 0


def test_set_aside_keeps_event_in_dead_letters(outbox: Outbox) -> None:
    """A poison event leaves the sink's queue but is kept with its reason."""
    event = outbox.append(doc())
    outbox.set_aside("a", [event.id], "HTTP 400: bad")
    assert outbox.pending("a", max_events=10, max_bytes=10**6) == []
    assert outbox.dead_letters("a") == [("a", event.id, "HTTP 400: bad")]
    outbox.ack("b", [event.id])
    assert outbox.depth() == 0
    assert len(outbox.dead_letters()) == 1


def test_full_outbox_evicts_heartbeats_before_findings(tmp_path: Path) -> None:
    """When full, old heartbeats make room for a finding, and the drop is reported later."""
    box = Outbox(tmp_path / "o.db", max_bytes=2000, sinks=("a",))
    beats = [box.append(doc("egress_guard.heartbeat", pad=300), priority=0) for _ in range(3)]
    finding = box.append(doc(pad=800), priority=100)
    ids = [e.id for e in box.pending("a", max_events=10, max_bytes=10**6)]
    assert finding.id in ids
    assert beats[0].id not in ids
    assert box.dropped()["egress_guard.heartbeat"] >= 1
    report = box.append(doc("egress_guard.error"), priority=50).document()
    assert report["egress_guard"]["outbox"]["dropped"]["egress_guard.heartbeat"] >= 1
    assert box.dropped() == {}
    box.close()


def test_full_outbox_never_drops_a_finding_silently(tmp_path: Path) -> None:
    """A finding that cannot fit raises OutboxFull, is counted, and stored findings stay."""
    box = Outbox(tmp_path / "o.db", max_bytes=1800, sinks=("a",))
    kept = box.append(doc(pad=1000), priority=100)
    with pytest.raises(OutboxFull):
        box.append(doc(pad=1000), priority=100)
    assert box.dropped() == {"egress_guard.finding": 1}
    assert [e.id for e in box.pending("a", max_events=10, max_bytes=10**6)] == [kept.id]
    beat = box.append(doc("egress_guard.heartbeat"), priority=0).document()
    assert beat["egress_guard"]["outbox"]["dropped"] == {"egress_guard.finding": 1}
    box.close()


def test_drop_counts_survive_a_restart(tmp_path: Path) -> None:
    """A drop counted by one process is reported by the next heartbeat of another."""
    box = Outbox(tmp_path / "o.db", max_bytes=500, sinks=("a",))
    with pytest.raises(OutboxFull):
        box.append(doc(pad=1000), priority=100)
    box.close()
    again = Outbox(tmp_path / "o.db", max_bytes=500, sinks=("a",))
    beat = again.append(doc("egress_guard.heartbeat"))
    assert beat.document()["egress_guard"]["outbox"]["dropped"] == {"egress_guard.finding": 1}
    again.close()


def test_document_without_event_id_is_refused(outbox: Outbox) -> None:
    """A document without event.id is an OutboxError, not a silent store."""
    with pytest.raises(OutboxError):
        outbox.append({"event": {"dataset": "egress_guard.finding"}})


def test_outbox_file_is_private(tmp_path: Path) -> None:
    """The outbox database is created readable by its owner only."""
    box = Outbox(tmp_path / "o.db")
    box.close()
    assert (tmp_path / "o.db").stat().st_mode & 0o077 == 0
