"""The shipper: delivery and ack, back-off with jitter, Retry-After, poison bisection, flush."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.report.outbox import Outbox
from agent.report.shipper import Backoff, Shipper
from agent.report.sinks import Partial
from agent.report.sinks.memory import MemorySink
from agent.values import Delivered, Event, Rejected, Retry


def doc(dataset: str = "egress_guard.finding") -> dict[str, Any]:
    return {"event": {"id": str(uuid.uuid4()), "dataset": dataset}, "agent": {"id": "a1"}}


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "o.db", sinks=("memory",))
    yield box
    box.close()


def run(shipper: Shipper, deadline: float = 10.0) -> bool:
    shipper.start()
    try:
        return shipper.flush(deadline)
    finally:
        shipper.stop()


def test_backoff_grows_exponentially_and_is_capped() -> None:
    """With the jitter pinned to its ceiling, delays double from min up to max."""
    backoff = Backoff(1.0, 8.0, rng=lambda _lo, hi: hi)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_is_full_range_and_honours_at_least() -> None:
    """Jitter draws between min and the ceiling; Retry-After raises the floor."""
    seen: list[tuple[float, float]] = []

    def rng(lo: float, hi: float) -> float:
        seen.append((lo, hi))
        return lo

    backoff = Backoff(0.5, 60.0, rng=rng)
    backoff.next_delay()
    backoff.next_delay()
    assert seen == [(0.5, 0.5), (0.5, 1.0)]
    assert backoff.next_delay(at_least=30.0) == 30.0


def test_delivered_events_are_acked_and_leave_the_outbox(outbox: Outbox) -> None:
    """Everything appended is sent once, in order, and the outbox ends empty."""
    ids = [outbox.append(doc()).id for _ in range(7)]
    sink = MemorySink(max_events=3)
    assert run(Shipper(outbox, [sink]))
    assert [e.id for e in sink.events] == ids
    assert [len(b) for b in sink.batches] == [3, 3, 1]
    assert outbox.depth() == 0


def test_retry_then_delivered_sends_again(outbox: Outbox) -> None:
    """A Retry answer keeps the events and they are sent again after the back-off."""
    event = outbox.append(doc())
    sink = MemorySink(script=[Retry(0.0, "down"), Retry(0.0, "down"), Delivered()])
    assert run(Shipper(outbox, [sink], retry_min_seconds=0.001, retry_max_seconds=0.01))
    assert [e.id for e in sink.events] == [event.id] * 3
    assert outbox.depth() == 0


def test_retry_after_is_honoured(outbox: Outbox) -> None:
    """A Retry-After of 60 s keeps the batch back beyond a short flush deadline."""
    outbox.append(doc())
    sink = MemorySink(script=[Retry(60.0, "429"), Delivered()])
    shipper = Shipper(outbox, [sink], retry_min_seconds=0.001, retry_max_seconds=0.01)
    shipper.start()
    try:
        assert sink.sent.wait(5)
        assert not shipper.flush(0.3)
        assert len(sink.batches) == 1
    finally:
        shipper.stop()
    assert outbox.depth() == 1


def test_one_poison_event_is_set_aside_alone_with_an_error_report(outbox: Outbox) -> None:
    """A rejected batch is bisected: only the poison event is set aside and reported."""
    events = [outbox.append(doc()) for _ in range(5)]
    poison = events[2].id

    def judge(batch: Sequence[Event]) -> Delivered | Rejected:
        return (
            Rejected("HTTP 400: bad event", 400) if poison in {e.id for e in batch} else Delivered()
        )

    errors: list[dict[str, Any]] = []
    sink = MemorySink(script=[judge])
    assert run(Shipper(outbox, [sink], on_error=errors.append))
    delivered = {e.id for b in sink.batches if poison not in {x.id for x in b} for e in b}
    assert delivered == {e.id for e in events} - {poison}
    assert outbox.dead_letters() == [("memory", poison, "HTTP 400: bad event")]
    assert [(e["error_type"], e["event_ids"], e["status"]) for e in errors] == [
        ("delivery_rejected", [poison], 400)
    ]
    assert outbox.depth() == 0


def test_rejected_error_events_do_not_report_again(outbox: Outbox) -> None:
    """A rejected error event is set aside without another error report (no loop)."""
    outbox.append(doc("egress_guard.error"))
    errors: list[dict[str, Any]] = []
    assert run(Shipper(outbox, [MemorySink(script=[Rejected("no", 400)])], on_error=errors.append))
    assert errors == []
    assert len(outbox.dead_letters()) == 1


def test_partial_delivery_acks_rejects_and_retries_per_event(outbox: Outbox) -> None:
    """A Partial answer acks, sets aside and retries each event as told."""
    a, b, c = (outbox.append(doc()) for _ in range(3))
    sink = MemorySink(
        script=[
            Partial(
                delivered=frozenset({a.id}), rejected=frozenset({b.id}), retry=frozenset({c.id})
            ),
            Delivered(),
        ]
    )
    assert run(Shipper(outbox, [sink], retry_min_seconds=0.001, retry_max_seconds=0.01))
    assert [e.id for e in sink.batches[1]] == [c.id]
    assert [d[1] for d in outbox.dead_letters()] == [b.id]


def test_a_sink_that_raises_does_not_stop_the_shipper(outbox: Outbox) -> None:
    """An exception from a sink counts as a retry; the worker keeps going."""
    outbox.append(doc())
    calls = {"n": 0}

    def flaky(_batch: Sequence[Event]) -> Delivered:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("sink bug")
        return Delivered()

    assert run(Shipper(outbox, [MemorySink(script=[flaky])], retry_min_seconds=0.001))
    assert outbox.depth() == 0


def test_each_sink_gets_every_event_on_its_own_named_thread(tmp_path: Path) -> None:
    """Two sinks each receive all events; workers are named egress-guard.shipper.<label>."""
    import threading

    box = Outbox(tmp_path / "o.db", sinks=("one", "two"))
    ids = [box.append(doc()).id for _ in range(4)]
    one, two = MemorySink("one"), MemorySink("two", script=[Retry(0.0, "x"), Delivered()])
    shipper = Shipper(box, [one, two], retry_min_seconds=0.001, retry_max_seconds=0.01)
    shipper.start()
    try:
        names = {t.name for t in threading.enumerate()}
        assert {"egress-guard.shipper.one", "egress-guard.shipper.two"} <= names
        assert shipper.flush(10)
    finally:
        shipper.stop()
    assert [e.id for e in one.events] == ids
    assert [e.id for e in two.events][-4:] == ids
    assert one.closed and two.closed
    box.close()
