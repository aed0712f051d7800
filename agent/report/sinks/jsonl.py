"""JSONL file sink: one event body per line, appended and fsynced, for SIEM file collectors."""

from __future__ import annotations

import os
from collections.abc import Sequence

from agent.config import SinkSection
from agent.errors import DeliveryError
from agent.values import Delivered, Event, Retry


class JsonlSink:
    """Appends events to a local file (created 0600); delivered once fsync returns."""

    def __init__(self, section: SinkSection) -> None:
        if not section.path:
            raise DeliveryError(
                f"sink {section.label} has no path",
                sink=section.label,
                hint="set path in the jsonl [[sink]]",
            )
        self.label = section.label
        self.max_events = section.batch_max_events
        self.max_bytes = section.batch_max_bytes
        self.path = section.path

    def send(self, batch: Sequence[Event]) -> Delivered | Retry:
        """Append the batch; a write failure (full disk, missing folder) is a retry."""
        data = b"".join(e.body.encode("utf-8") + b"\n" for e in batch)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            return Retry(0.0, f"cannot append to {self.path}: {exc.strerror}")
        return Delivered()

    def close(self) -> None:
        """Nothing held open between batches."""
