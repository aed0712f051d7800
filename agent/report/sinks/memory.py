"""MemorySink: the in-process test double of the Sink protocol.

Records every batch it is sent and answers from a script of outcomes (the
last one repeats), so shipper behaviour can be tested without a socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from agent.report.sinks.base import Outcome
from agent.values import Delivered, Event

Script = Outcome | Callable[[Sequence[Event]], Outcome]


class MemorySink:
    """Keeps batches in memory; `script` decides each answer in turn."""

    def __init__(
        self,
        label: str = "memory",
        *,
        script: Sequence[Script] = (),
        max_events: int = 500,
        max_bytes: int = 4 * 2**20,
    ) -> None:
        self.label = label
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.batches: list[list[Event]] = []
        self.closed = False
        self._script = list(script)
        self._lock = threading.Lock()
        self.sent = threading.Event()  # set after every batch

    def send(self, batch: Sequence[Event]) -> Outcome:
        """Record the batch and answer the next scripted outcome (Delivered by default)."""
        with self._lock:
            self.batches.append(list(batch))
            step: Script = Delivered()
            if self._script:
                step = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        self.sent.set()
        return step(batch) if callable(step) else step

    @property
    def events(self) -> list[Event]:
        """Every event sent, in order, duplicates included."""
        with self._lock:
            return [e for b in self.batches for e in b]

    def close(self) -> None:
        """Mark closed."""
        self.closed = True
