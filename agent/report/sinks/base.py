"""The sink seam: the Protocol every destination implements and the partial-delivery value.

`requests` is used only under agent/report/sinks/ (import-linter keeps it
there); `_http.py` translates its exceptions and status codes into
Delivered / Retry / Rejected so the shipper never sees a library error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.values import Delivered, Event, Rejected, Retry

DEFAULT_MAX_EVENTS = 500
DEFAULT_MAX_BYTES = 4 * 2**20


@dataclass(frozen=True, slots=True, kw_only=True)
class Partial:
    """Per-event outcome of one batch (Elasticsearch `_bulk` answers item by item).

    Ids in none of the three sets are treated as retry.
    """

    delivered: frozenset[str] = frozenset()
    retry: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()
    reason: str = ""
    retry_after_seconds: float = 0.0


Outcome = Delivered | Retry | Rejected | Partial


@runtime_checkable
class Sink(Protocol):
    """A destination: takes a batch of events, says what happened to it."""

    label: str

    def send(self, batch: Sequence[Event]) -> Outcome:
        """Deliver the batch (oldest first); never raises for a delivery problem."""
        ...

    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""
        ...


def batch_limits(sink: object) -> tuple[int, int]:
    """(max events, max bytes) per batch: a sink's own limits or the defaults."""
    events = getattr(sink, "max_events", DEFAULT_MAX_EVENTS)
    size = getattr(sink, "max_bytes", DEFAULT_MAX_BYTES)
    return (
        int(events) if isinstance(events, int) and events > 0 else DEFAULT_MAX_EVENTS,
        int(size) if isinstance(size, int) and size > 0 else DEFAULT_MAX_BYTES,
    )
