"""ECS JSON encoding: the event body exactly as stored and hashed, plus field helpers.

The other formats (CEF, syslog, HEC, _bulk) read their fields through these
helpers so a missing or odd-typed field degrades to "absent", never to an error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.values import Event


def encode(event: Event) -> bytes:
    """The ECS JSON document, byte for byte what the outbox hashed."""
    return event.body.encode("utf-8")


def field(document: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path (`file.hash.sha256`), or None when any step is missing."""
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def text(document: dict[str, Any], dotted: str) -> str | None:
    """A scalar field as text (lists joined with commas); None when absent."""
    value = field(document, dotted)
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, list):
        return ",".join(str(v) for v in value if not isinstance(v, dict | list)) or None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def severity(document: dict[str, Any]) -> int:
    """ECS event.severity (0-100); 0 when absent."""
    value = field(document, "event.severity")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0, min(100, int(value)))
    return 0


def timestamp(document: dict[str, Any]) -> datetime:
    """The event's @timestamp as an aware datetime (now, when absent or unparsable)."""
    raw = document.get("@timestamp")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)
