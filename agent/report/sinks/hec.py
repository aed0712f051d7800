"""Splunk HTTP Event Collector sink: event envelopes, request channel, indexer acknowledgement.

Body: one JSON envelope per event, newline-separated, as documented for
`/services/collector/event`: {"time", "host", "source", "sourcetype",
"index", "event"}. With `ack = true`, Splunk answers {"ackId": n} and the
batch counts as delivered only when `/services/collector/ack` reports the
ackId true (polled until `timeout_seconds`); otherwise it is retried.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence

from agent.config import SinkSection
from agent.report.formats.ecs import text, timestamp
from agent.report.sinks._http import (
    HttpClient,
    classify,
    json_or_none,
    read_secret,
    require_url,
    short,
)
from agent.values import Delivered, Event, Rejected, Retry

_ACK_POLL_SECONDS = 0.5


def envelope(event: Event, *, sourcetype: str, index: str | None, source: str) -> bytes:
    """One HEC event envelope; `event` is the stored body byte for byte."""
    doc = event.document()
    meta: dict[str, object] = {
        "time": round(timestamp(doc).timestamp(), 3),
        "host": text(doc, "host.name") or "unknown",
        "source": source,
        "sourcetype": sourcetype,
    }
    if index:
        meta["index"] = index
    head = json.dumps(meta, separators=(",", ":"))
    return head[:-1].encode("utf-8") + b',"event":' + event.body.encode("utf-8") + b"}"


class HecSink:
    """Ships batches to Splunk HEC (`Authorization: Splunk <token>`)."""

    def __init__(self, section: SinkSection, *, source: str = "egress-guard") -> None:
        self.label = section.label
        self.max_events = section.batch_max_events
        self.max_bytes = section.batch_max_bytes
        base = require_url(section)
        self._event_url = base + "/services/collector/event"
        self._ack_url = base + "/services/collector/ack"
        self._section = section
        self._source = source
        self._ack = section.ack
        # indexer acknowledgement needs a channel; one per agent run is enough
        self._channel = section.channel or (str(uuid.uuid4()) if section.ack else None)
        token = read_secret(section, "token_file")
        self._http = HttpClient(section, auth_header=f"Splunk {token}" if token else None)
        self._closed = threading.Event()

    def _headers(self) -> dict[str, str]:
        return {"X-Splunk-Request-Channel": self._channel} if self._channel else {}

    def request_body(self, batch: Sequence[Event]) -> bytes:
        """Newline-separated envelopes for the batch."""
        return b"\n".join(
            envelope(
                e,
                sourcetype=self._section.sourcetype,
                index=self._section.index,
                source=self._source,
            )
            for e in batch
        )

    def send(self, batch: Sequence[Event]) -> Delivered | Retry | Rejected:
        """POST the envelopes; with ack on, wait for the indexer acknowledgement."""
        response = self._http.post(
            self._event_url,
            self.request_body(batch),
            content_type="application/json",
            headers=self._headers(),
        )
        if isinstance(response, Retry):
            return response
        outcome = classify(response)
        if not isinstance(outcome, Delivered) or not self._ack:
            return outcome
        answer = json_or_none(response)
        ack_id = answer.get("ackId") if isinstance(answer, dict) else None
        if not isinstance(ack_id, int):
            return Retry(0.0, f"HEC answered without an ackId: {short(response.text)}")
        return self._wait_for_ack(ack_id)

    def _wait_for_ack(self, ack_id: int) -> Delivered | Retry:
        deadline = time.monotonic() + self._section.timeout_seconds
        body = json.dumps({"acks": [ack_id]}).encode("utf-8")
        while not self._closed.is_set():
            response = self._http.post(
                self._ack_url, body, content_type="application/json", headers=self._headers()
            )
            if not isinstance(response, Retry) and 200 <= response.status_code < 300:
                answer = json_or_none(response)
                acks = answer.get("acks") if isinstance(answer, dict) else None
                if isinstance(acks, dict) and acks.get(str(ack_id)) is True:
                    return Delivered()
            if time.monotonic() >= deadline:
                break
            self._closed.wait(_ACK_POLL_SECONDS)
        return Retry(0.0, f"HEC did not acknowledge ackId {ack_id} in time")

    def close(self) -> None:
        """Stop any ack wait and close the HTTP session."""
        self._closed.set()
        self._http.close()
