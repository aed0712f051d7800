"""The native sink: POST {"events": [...]} to the reference collector's /v1/events."""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import SinkSection
from agent.report.sinks._http import HttpClient, classify, read_secret, require_url
from agent.values import Delivered, Event, Rejected, Retry


def request_body(batch: Sequence[Event]) -> bytes:
    """The JSON batch, built from the stored bodies byte for byte (no re-serialisation)."""
    return b'{"events":[' + b",".join(e.body.encode("utf-8") for e in batch) + b"]}"


class CollectorSink:
    """Ships batches to `egress-guard collector serve` with a bearer token."""

    def __init__(self, section: SinkSection) -> None:
        self.label = section.label
        self.max_events = section.batch_max_events
        self.max_bytes = section.batch_max_bytes
        self._url = require_url(section) + "/v1/events"
        token = read_secret(section, "token_file")
        self._http = HttpClient(section, auth_header=f"Bearer {token}" if token else None)

    def send(self, batch: Sequence[Event]) -> Delivered | Retry | Rejected:
        """POST the batch; the collector de-duplicates, so a resend is harmless."""
        response = self._http.post(self._url, request_body(batch), content_type="application/json")
        if isinstance(response, Retry):
            return response
        return classify(response)

    def close(self) -> None:
        """Close the HTTP session."""
        self._http.close()
