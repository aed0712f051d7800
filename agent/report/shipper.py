"""The shipper: one named worker thread per sink draining the outbox, at least once.

Each worker loops: read the oldest pending batch for its sink, send it, then
ack (delivered), back off (retry: exponential with full jitter between
retry_min and retry_max, at least the receiver's Retry-After), or set aside
(rejected). A rejected batch of several events is split in halves first, so
one poison event does not take its neighbours into the dead-letter table;
only a single rejected event is set aside, and `on_error` is told so the
daemon can record an `egress_guard.error` event. Sink and outbox failures
never end a worker: the loop is an isolation point.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.errors import EgressGuardError
from agent.logs import get_logger
from agent.report.outbox import Outbox
from agent.report.sinks.base import Outcome, Partial, Sink, batch_limits
from agent.values import Delivered, Event, Rejected, Retry

log = get_logger(__name__)

ERROR_DATASET = "egress_guard.error"
_FLUSH_POLL_SECONDS = 0.05


class Backoff:
    """Exponential back-off with full jitter: uniform(min, min(max, min * 2**attempt))."""

    def __init__(
        self, minimum: float, maximum: float, *, rng: Callable[[float, float], float] | None = None
    ) -> None:
        self.minimum = max(0.0, minimum)
        self.maximum = max(self.minimum, maximum)
        self._uniform = rng or random.uniform  # jitter, not cryptography
        self.attempt = 0

    def next_delay(self, at_least: float = 0.0) -> float:
        """The wait before the next attempt (grows per call), never below `at_least`."""
        ceiling = min(self.maximum, self.minimum * (2.0 ** min(self.attempt, 32)))
        self.attempt += 1
        return max(at_least, self._uniform(self.minimum, ceiling))

    def reset(self) -> None:
        """A delivery succeeded: start again from the minimum."""
        self.attempt = 0


class _Worker:
    """The loop for one sink; all state lives here, the thread only runs `run`."""

    def __init__(self, shipper: Shipper, sink: Sink) -> None:
        self.shipper = shipper
        self.sink = sink
        self.label = sink.label
        self.max_events, self.max_bytes = batch_limits(sink)
        self.limit = self.max_events
        self.backoff = Backoff(
            shipper.retry_min_seconds, shipper.retry_max_seconds, rng=shipper.rng
        )
        self.woken = threading.Event()
        self.thread = threading.Thread(
            target=self.run, name=f"egress-guard.shipper.{self.label}", daemon=False
        )

    def run(self) -> None:
        stop = self.shipper.stopping
        while not stop.is_set():
            try:
                delay = self.step()
            except Exception:  # isolation point: one bad round must not stop shipping
                log.exception("shipper.round_failed", sink=self.label, error_type="unexpected")
                delay = self.backoff.next_delay()
            self.shipper.notify()
            if delay is None:
                continue
            if delay == 0:
                # idle: sleep until woken or the poll interval passes (other processes append too)
                self.woken.wait(self.shipper.poll_seconds)
                self.woken.clear()
            else:
                stop.wait(delay)

    def step(self) -> float | None:
        """One round: None = go on at once, 0 = idle, > 0 = back off that long."""
        outbox = self.shipper.outbox
        batch = outbox.pending(self.label, max_events=self.limit, max_bytes=self.max_bytes)
        if not batch:
            self.limit = self.max_events
            return 0.0
        try:
            outcome: Outcome = self.sink.send(batch)
        except Exception as exc:  # noqa: BLE001 - isolation point: a sink bug is a retry, not a dead shipper
            outcome = Retry(0.0, f"sink raised {type(exc).__name__}")
        return self.handle(batch, outcome)

    def handle(self, batch: Sequence[Event], outcome: Outcome) -> float | None:
        outbox = self.shipper.outbox
        ids = [e.id for e in batch]
        if isinstance(outcome, Delivered):
            outbox.ack(self.label, ids)
            self.backoff.reset()
            self.limit = min(self.max_events, self.limit * 2)
            log.debug("shipper.batch_sent", sink=self.label, events=len(batch))
            return None
        if isinstance(outcome, Retry):
            delay = self.backoff.next_delay(at_least=outcome.after_seconds)
            log.warning(
                "shipper.batch_failed",
                sink=self.label,
                error_type="retry",
                reason=outcome.reason,
                events=len(batch),
                retry_in_seconds=round(delay, 3),
            )
            return delay
        if isinstance(outcome, Rejected):
            if len(batch) > 1:
                # bisect: find the poison event(s) instead of setting good ones aside
                self.limit = max(1, len(batch) // 2)
                return None
            self.set_aside(batch, outcome.reason, outcome.status)
            return None
        return self.handle_partial(batch, outcome)

    def handle_partial(self, batch: Sequence[Event], outcome: Partial) -> float | None:
        outbox = self.shipper.outbox
        if outcome.delivered:
            outbox.ack(self.label, [e.id for e in batch if e.id in outcome.delivered])
        rejected = [e for e in batch if e.id in outcome.rejected]
        if rejected:
            self.set_aside(rejected, outcome.reason or "rejected by the receiver", None)
        if len(outcome.delivered) + len(rejected) == len(batch):
            self.backoff.reset()
            return None
        return self.backoff.next_delay(at_least=outcome.retry_after_seconds)

    def set_aside(self, events: Sequence[Event], reason: str, status: int | None) -> None:
        ids = [e.id for e in events]
        self.shipper.outbox.set_aside(self.label, ids, reason)
        log.error(
            "shipper.batch_failed",
            sink=self.label,
            error_type="rejected",
            status=status,
            reason=reason,
            events=len(ids),
        )
        # an error event about rejected error events could be rejected in turn: stop there
        if all(e.dataset == ERROR_DATASET for e in events):
            return
        self.shipper.report_error(
            {
                "error_type": "delivery_rejected",
                "message": f"sink {self.label} rejected {len(ids)} event(s); set aside",
                "sink": self.label,
                "status": status,
                "reason": reason,
                "event_ids": ids,
            }
        )


class Shipper:
    """Drains an Outbox into sinks on named worker threads; flush() on shutdown."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        *,
        retry_min_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        on_error: Callable[[dict[str, Any]], None] | None = None,
        poll_seconds: float = 1.0,
        rng: Callable[[float, float], float] | None = None,
    ) -> None:
        self.outbox = outbox
        self.sinks = tuple(sinks)
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self.poll_seconds = poll_seconds
        self.rng = rng
        self.stopping = threading.Event()
        self._on_error = on_error
        self._progress = threading.Condition()
        self._workers = [_Worker(self, sink) for sink in self.sinks]
        self._started = False

    def start(self) -> None:
        """Start one worker thread per sink (`egress-guard.shipper.<label>`)."""
        if self._started:
            return
        self._started = True
        for worker in self._workers:
            worker.thread.start()

    def wake(self) -> None:
        """An event was appended: idle workers send it now (back-off waits are kept)."""
        for worker in self._workers:
            worker.woken.set()

    def notify(self) -> None:
        """A worker finished a round: wake any flush() waiting."""
        with self._progress:
            self._progress.notify_all()

    def report_error(self, details: dict[str, Any]) -> None:
        """Hand a delivery problem to on_error (which appends an error event)."""
        if self._on_error is None:
            return
        try:
            self._on_error(details)
        except EgressGuardError as exc:
            log.error(
                "shipper.error_event_failed", error_type=type(exc).__name__
            )  # e.g. OutboxFull: expected

    def delivered_all(self) -> bool:
        """True when no sink has anything pending."""
        return all(self.outbox.depth(sink.label) == 0 for sink in self.sinks)

    def flush(self, deadline_seconds: float) -> bool:
        """Wait up to the deadline for every pending event to be delivered; True if it was."""
        deadline = time.monotonic() + deadline_seconds
        self.wake()
        while True:
            if self.delivered_all():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._progress:
                self._progress.wait(min(remaining, _FLUSH_POLL_SECONDS))

    def stop(self) -> None:
        """Stop the workers (a batch in flight finishes), join them, close the sinks."""
        self.stopping.set()
        self.wake()
        for worker in self._workers:
            if worker.thread.is_alive():
                worker.thread.join()
        for sink in self.sinks:
            sink.close()
