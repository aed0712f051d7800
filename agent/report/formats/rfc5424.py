"""RFC 5424 syslog messages with RFC 6587 octet-counting framing (also used over RFC 5425 TLS).

`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`: PRI from the
facility and the event's ECS severity, MSGID = the dataset, structured data
carries the event id and sequence so a SIEM can de-duplicate without parsing
the message.
"""

from __future__ import annotations

from typing import Any

from agent.report.formats.ecs import severity, text, timestamp
from agent.values import Event

FACILITY_AUTHPRIV = 10  # security/authorization messages (private)
SD_ID = "egress_guard@32473"  # 32473: the enterprise number RFC 5612 reserves for examples
_BOM = b"\xef\xbb\xbf"
_NIL = "-"


def syslog_severity(document: dict[str, Any]) -> int:
    """ECS severity 0-100 mapped onto syslog 0-7 (critical findings are `crit`)."""
    sev = severity(document)
    if sev >= 90:
        return 2
    if sev >= 73:
        return 3
    if sev >= 47:
        return 4
    if sev >= 21:
        return 5
    return 6


def _header_field(value: str | None, max_len: int) -> str:
    """PRINTUSASCII without spaces (RFC 5424 §6), truncated; NILVALUE when empty."""
    if not value:
        return _NIL
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)
    return cleaned[:max_len] or _NIL


def escape_param(value: str) -> str:
    """An SD-PARAM value: `"`, `\\` and `]` escaped with a backslash (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def message(
    event: Event,
    payload: bytes,
    *,
    app_name: str = "egress-guard",
    procid: str | None = None,
    facility: int = FACILITY_AUTHPRIV,
) -> bytes:
    """One RFC 5424 message (without framing) carrying `payload` as MSG."""
    doc = event.document()
    pri = facility * 8 + syslog_severity(doc)
    ts = timestamp(doc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sd = f'[{SD_ID} eventId="{escape_param(event.id)}" sequence="{event.sequence}"]'
    header = " ".join(
        [
            f"<{pri}>1",
            ts,
            _header_field(text(doc, "host.name"), 255),
            _header_field(app_name, 48),
            _header_field(procid, 128),
            _header_field(event.dataset, 32),
            sd,
        ]
    )
    body = payload if payload.isascii() else _BOM + payload
    return header.encode("ascii") + b" " + body


def frame(msg: bytes) -> bytes:
    """RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`."""
    return str(len(msg)).encode("ascii") + b" " + msg
