"""ArcSight CEF encoding of an event (CEF:0), with the escaping the CEF spec requires.

Header fields escape `\\` and `|`; extension values escape `\\`, `=`, and
turn CR/LF into the two-character sequences `\\r` / `\\n`. Header fields
cannot hold line breaks at all, so they become spaces there.
"""

from __future__ import annotations

from typing import Any

from agent.report.formats.ecs import field, severity, text, timestamp
from agent.values import Event

VENDOR = "egress-guard"
PRODUCT = "egress-guard"

# (CEF key, ECS path); custom strings carry their labels in csNLabel
_EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("externalId", "event.id"),
    ("cat", "event.dataset"),
    ("act", "event.action"),
    ("outcome", "event.outcome"),
    ("dvchost", "host.name"),
    ("deviceExternalId", "agent.id"),
    ("filePath", "file.path"),
    ("fname", "file.name"),
    ("fsize", "file.size"),
    ("fileHash", "file.hash.sha256"),
    ("spid", "process.pid"),
    ("sproc", "process.name"),
    ("suser", "process.user.name"),
    ("cn1", "event.sequence"),
    ("cs2", "rule.name"),
    ("cs3", "egress_guard.quarantine.id"),
    ("cs4", "egress_guard.chain.hash"),
    ("cs5", "egress_guard.chain.prev"),
    ("msg", "message"),
)
_LABELS = {
    "cn1": "sequence",
    "cs1": "fingerprints",
    "cs2": "rules",
    "cs3": "quarantineId",
    "cs4": "chainHash",
    "cs5": "chainPrev",
}


def escape_header(value: str) -> str:
    """A CEF header field: backslash and pipe escaped, line breaks flattened."""
    escaped = value.replace("\\", "\\\\").replace("|", "\\|")
    return escaped.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def escape_extension(value: str) -> str:
    """A CEF extension value: backslash, equals sign and line breaks escaped."""
    escaped = value.replace("\\", "\\\\").replace("=", "\\=")
    return escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def cef_severity(document: dict[str, Any]) -> int:
    """ECS severity 0-100 scaled to CEF 0-10."""
    return round(severity(document) / 10)


def _fingerprints(document: dict[str, Any]) -> str | None:
    findings = field(document, "egress_guard.findings")
    if not isinstance(findings, list):
        return None
    prints = [
        str(f["fingerprint"]) for f in findings if isinstance(f, dict) and f.get("fingerprint")
    ]
    return ",".join(dict.fromkeys(prints)) or None


def encode(event: Event) -> bytes:
    """The event as one CEF line (UTF-8, no trailing newline)."""
    doc = event.document()
    version = text(doc, "agent.version") or "0"
    class_id = text(doc, "event.action") or event.dataset
    name = text(doc, "message") or event.dataset
    header = "|".join(
        [
            "CEF:0",
            escape_header(VENDOR),
            escape_header(PRODUCT),
            escape_header(version),
            escape_header(class_id),
            escape_header(name),
            str(cef_severity(doc)),
        ]
    )
    pairs: list[tuple[str, str]] = [("rt", str(int(timestamp(doc).timestamp() * 1000)))]
    fingerprints = _fingerprints(doc)
    if fingerprints:
        pairs.append(("cs1", fingerprints))
    for key, path in _EXTENSIONS:
        value = text(doc, path)
        if value is not None:
            pairs.append((key, value))
    present = {k for k, _ in pairs}
    pairs.extend((f"{k}Label", label) for k, label in _LABELS.items() if k in present)
    extension = " ".join(f"{k}={escape_extension(v)}" for k, v in pairs)
    return f"{header}|{extension}".encode()
