"""Elasticsearch / OpenSearch `_bulk` sink: ECS documents created with the event id as _id.

`create` with `_id = event.id` makes a resend idempotent: the second copy is
a 409 conflict, which counts as delivered. Other per-item errors reject those
events (429 items are retried), as reported item by item in the response.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent.config import SinkSection
from agent.report.sinks._http import (
    HttpClient,
    classify,
    json_or_none,
    read_secret,
    require_url,
    short,
)
from agent.report.sinks.base import Partial
from agent.values import Delivered, Event, Rejected, Retry

DEFAULT_INDEX = "logs-egress_guard.events-default"


def request_body(batch: Sequence[Event], index: str) -> bytes:
    """NDJSON: an action line then the document, per event, ending with a newline."""
    lines: list[bytes] = []
    for event in batch:
        action = {"create": {"_index": index, "_id": event.id}}
        lines.append(json.dumps(action, separators=(",", ":")).encode("utf-8"))
        lines.append(event.body.encode("utf-8"))
    return b"\n".join(lines) + b"\n"


def read_items(answer: object, batch: Sequence[Event]) -> Partial | None:
    """Per-event outcome from a `_bulk` answer; None when the answer is not understood."""
    if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
        return None
    items = answer["items"]
    if len(items) != len(batch):
        return None
    delivered: set[str] = set()
    retry: set[str] = set()
    rejected: set[str] = set()
    reasons: list[str] = []
    for event, item in zip(batch, items, strict=True):
        result = next(iter(item.values()), None) if isinstance(item, dict) and item else None
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int):
            retry.add(event.id)
        elif 200 <= status < 300 or status == 409:
            delivered.add(event.id)
        elif status in (429, 503) or status >= 500:
            retry.add(event.id)
        else:
            rejected.add(event.id)
            error = result.get("error") if isinstance(result, dict) else None
            kind = error.get("type") if isinstance(error, dict) else None
            reasons.append(f"{status} {kind or 'error'}")
    return Partial(
        delivered=frozenset(delivered),
        retry=frozenset(retry),
        rejected=frozenset(rejected),
        reason=short("; ".join(dict.fromkeys(reasons))),
    )


class ElasticSink:
    """Ships batches to `<url>/_bulk` (Bearer token or ApiKey)."""

    def __init__(self, section: SinkSection) -> None:
        self.label = section.label
        self.max_events = section.batch_max_events
        self.max_bytes = section.batch_max_bytes
        self._url = require_url(section) + "/_bulk"
        self._index = section.index or DEFAULT_INDEX
        api_key = read_secret(section, "api_key_file")
        token = read_secret(section, "token_file")
        auth = f"ApiKey {api_key}" if api_key else (f"Bearer {token}" if token else None)
        self._http = HttpClient(section, auth_header=auth)

    def send(self, batch: Sequence[Event]) -> Delivered | Retry | Rejected | Partial:
        """POST the bulk body and sort its items into delivered / retry / rejected."""
        response = self._http.post(
            self._url, request_body(batch, self._index), content_type="application/x-ndjson"
        )
        if isinstance(response, Retry):
            return response
        outcome = classify(response)
        if not isinstance(outcome, Delivered):
            return outcome
        answer = json_or_none(response)
        if isinstance(answer, dict) and answer.get("errors") is False:
            return Delivered()
        partial = read_items(answer, batch)
        if partial is None:
            return Retry(0.0, f"unexpected _bulk answer: {short(response.text)}")
        if len(partial.delivered) == len(batch):
            return Delivered()
        return partial

    def close(self) -> None:
        """Close the HTTP session."""
        self._http.close()
