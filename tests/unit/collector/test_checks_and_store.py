"""Collector checks and store: de-dup, gaps, reorders, chain breaks, silence, token and body parsing."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collector.checks import AgentState, check_silence
from agent.collector.server import BadRequest, decode_body, parse_tokens
from agent.collector.store import Store
from agent.report.chain import seal


def chain_of(
    n: int, agent: str = "agent-1", dataset: str = "egress_guard.finding"
) -> list[dict[str, Any]]:
    """n sealed events with sequences 1..n, linked like an outbox links them."""
    docs: list[dict[str, Any]] = []
    prev = None
    for seq in range(1, n + 1):
        doc = seal(
            {
                "event": {"id": str(uuid.uuid4()), "dataset": dataset, "sequence": seq},
                "agent": {"id": agent},
            },
            prev,
        )
        prev = doc["egress_guard"]["chain"]["hash"]
        docs.append(doc)
    return docs


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "c.db")
    yield s
    s.close()


def actions(store: Store) -> list[str]:
    return [
        json.loads(b)["event"]["action"] for b in store.events(dataset="egress_guard.collector")
    ]


def test_in_order_chain_raises_no_alert(store: Store) -> None:
    """A complete, linked stream is stored with no alert and chain status ok."""
    result = store.ingest(chain_of(5), now=1.0)
    assert (result.accepted, result.duplicates, result.alerts) == (5, 0, ())
    (state,) = store.agents()
    assert (state.last_sequence, state.gaps, state.chain_status) == (5, 0, "ok")


def test_duplicates_are_counted_not_stored_twice(store: Store) -> None:
    """A resent batch is acknowledged as duplicates and stored once."""
    docs = chain_of(3)
    store.ingest(docs, now=1.0)
    again = store.ingest(docs, now=2.0)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert len(store.events()) == 3


def test_stored_body_is_the_canonical_text_received(store: Store) -> None:
    """Each event is stored as its canonical JSON text (what the agent hashed)."""
    from agent.report.chain import canonical

    docs = chain_of(2)
    store.ingest(docs, now=1.0)
    assert store.events() == [canonical(d) for d in docs]


def test_gap_raises_sequence_gap_alert_and_late_event_fills_it(store: Store) -> None:
    """Sequence 1 then 4 raises sequence-gap for 2..3; 2 arriving late raises sequence-reorder."""
    docs = chain_of(4)
    store.ingest([docs[0], docs[3]], now=1.0)
    assert actions(store) == ["sequence-gap"]
    assert store.agents()[0].missing == ((2, 3),)
    store.ingest([docs[1]], now=2.0)
    assert actions(store) == ["sequence-gap", "sequence-reorder"]
    assert store.agents()[0].missing == ((3, 3),)


def test_altered_event_raises_chain_broken(store: Store) -> None:
    """An event changed after it was hashed raises chain-broken (hash-mismatch)."""
    docs = chain_of(3)
    docs[1]["message"] = "nothing to see"
    result = store.ingest(docs, now=1.0)
    assert [a["egress_guard"]["collector"]["reason"] for a in result.alerts] == ["hash-mismatch"]
    assert store.agents()[0].chain_status == "broken"


def test_rehashed_forgery_breaks_the_link(store: Store) -> None:
    """A forged event with a correct own hash but a wrong prev raises chain-broken (prev-mismatch)."""
    docs = chain_of(2)
    forged = seal({**docs[1], "message": "forged"}, "0" * 64)
    result = store.ingest([docs[0], forged], now=1.0)
    assert [a["egress_guard"]["collector"]["reason"] for a in result.alerts] == ["prev-mismatch"]


def test_agents_are_tracked_separately(store: Store) -> None:
    """Two agents each with sequence 1..2 raise no alert."""
    store.ingest(chain_of(2, "a") + chain_of(2, "b"), now=1.0)
    assert [s.agent_id for s in store.agents()] == ["a", "b"]
    assert actions(store) == []


def test_silent_agent_is_alerted_once_and_cleared_by_a_heartbeat(store: Store) -> None:
    """No heartbeat for the timeout raises agent-silent once; a heartbeat clears it."""
    store.ingest(chain_of(1, dataset="egress_guard.heartbeat"), now=100.0)
    assert store.check_silence(now=150.0, timeout_seconds=60.0) == []
    assert len(store.check_silence(now=161.0, timeout_seconds=60.0)) == 1
    assert store.check_silence(now=300.0, timeout_seconds=60.0) == []
    assert store.agents()[0].silent
    assert actions(store) == ["agent-silent"]


def test_check_silence_is_pure() -> None:
    """check_silence returns a new state and leaves the given one alone."""
    state = AgentState(agent_id="x", last_heartbeat=0.0)
    new, alerts = check_silence(state, 10.0, 5.0)
    assert new.silent and not state.silent and alerts[0]["event"]["action"] == "agent-silent"


def test_tokens_file_lines() -> None:
    """Token lines bind an agent, `*` or a bare token allow any; comments are skipped."""
    tokens = parse_tokens("# c\nt1 agent-a\nt2 *\n\nt3  # any\n")
    assert [(t.secret, t.agent_id) for t in tokens] == [
        ("t1", "agent-a"),
        ("t2", None),
        ("t3", None),
    ]


def test_decode_body_accepts_gzip_and_refuses_bombs() -> None:
    """gzip bodies are inflated up to the limit; beyond it the answer is 413."""
    body = json.dumps({"events": [{"event": {"id": "x", "dataset": "d"}}]}).encode()
    assert decode_body(gzip.compress(body), "gzip", 10_000)[0]["event"]["id"] == "x"
    bomb = gzip.compress(b'{"events": [' + b" " * 1_000_000 + b"]}")
    with pytest.raises(BadRequest) as info:
        decode_body(bomb, "gzip", 10_000)
    assert info.value.status == 413


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_decode_body_never_raises_anything_but_bad_request(raw: bytes) -> None:
    """Arbitrary bytes are either a valid batch or a 4xx BadRequest, never a crash."""
    try:
        events = decode_body(raw, None, 10_000)
    except BadRequest as exc:
        assert 400 <= exc.status < 500
    else:
        assert all(isinstance(e["event"]["id"], str) for e in events)
