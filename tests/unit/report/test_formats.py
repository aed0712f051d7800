"""Formats and request bodies: CEF escaping, RFC 5424 frames, HEC envelopes, _bulk NDJSON, HTTP status mapping."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.report.chain import canonical, seal
from agent.report.formats import cef, ecs, rfc5424
from agent.report.sinks._http import retry_after
from agent.report.sinks.collector import request_body as collector_body
from agent.report.sinks.elastic import read_items
from agent.report.sinks.elastic import request_body as bulk_body
from agent.report.sinks.hec import envelope
from agent.values import Event

RFC5424 = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[[^\]]*\]) (.*)$", re.DOTALL)


def event(**extra: Any) -> Event:
    document: dict[str, Any] = {
        "@timestamp": "2024-05-01T10:00:00.123Z",
        "message": "1 private key(s) found in /srv/a|b=c.core; file quarantined",
        "event": {
            "id": "2f1c7a4e-0000-4000-8000-000000000001",
            "dataset": "egress_guard.finding",
            "action": "key-material-quarantined",
            "severity": 99,
            "sequence": 7,
        },
        "host": {"name": "dbg-01"},
        "agent": {"id": "agent-1", "version": "0.1.0"},
        "file": {"path": "C:\\dumps\\a=b.dmp", "name": "a=b.dmp", "hash": {"sha256": "ab" * 32}},
        "egress_guard": {"findings": [{"fingerprint": "sha256:" + "cd" * 32}]},
        **extra,
    }
    sealed = seal(document, None)
    return Event(
        id=document["event"]["id"],
        dataset="egress_guard.finding",
        sequence=7,
        body=canonical(sealed),
    )


def test_cef_header_escapes_pipe_and_backslash() -> None:
    """CEF header fields escape | and \\ and flatten line breaks."""
    assert cef.escape_header("a|b\\c\nd") == "a\\|b\\\\c d"


def test_cef_extension_escapes_equals_backslash_and_newlines() -> None:
    """CEF extension values escape = and \\ and encode CR/LF as \\r / \\n; pipes stay."""
    assert cef.escape_extension("a=b\\c\nd\re|f") == "a\\=b\\\\c\\nd\\re|f"


def test_cef_line_has_seven_header_fields_and_mapped_extensions() -> None:
    """A finding renders as CEF:0 with vendor, product, version, class, name, severity 0-10."""
    line = cef.encode(event()).decode()
    header = re.split(r"(?<!\\)\|", line, maxsplit=7)
    assert header[:7] == [
        "CEF:0",
        "egress-guard",
        "egress-guard",
        "0.1.0",
        "key-material-quarantined",
        "1 private key(s) found in /srv/a\\|b=c.core; file quarantined",
        "10",
    ]
    ext = header[7]
    assert "externalId=2f1c7a4e-0000-4000-8000-000000000001" in ext
    assert "filePath=C:\\\\dumps\\\\a\\=b.dmp" in ext
    assert "cs1=sha256:" + "cd" * 32 in ext and "cs1Label=fingerprints" in ext
    assert "cn1=7" in ext and "rt=1714557600123" in ext


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_cef_extension_value_round_trips(value: str) -> None:
    """Unescaping an escaped extension value gives the value back (newlines normalised)."""
    escaped = cef.escape_extension(value)
    assert re.search(r"(?<!\\)(?:\\\\)*=", escaped) is None
    out = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), escaped)
    assert out == value.replace("\r\n", "\n")


def test_rfc5424_message_fields_and_octet_counting() -> None:
    """The frame is `LEN SP <PRI>1 TS HOST APP PROCID MSGID [SD] MSG` with LEN the byte count."""
    ev = event()
    frame = rfc5424.frame(rfc5424.message(ev, ecs.encode(ev), procid="42"))
    length, _, msg = frame.partition(b" ")
    assert int(length) == len(msg)
    m = RFC5424.match(msg.decode())
    assert m is not None
    pri, ts, host, app, procid, msgid, sd, body = m.groups()
    assert int(pri) == 10 * 8 + 2  # authpriv, crit for severity 99
    assert (ts, host, app, procid, msgid) == (
        "2024-05-01T10:00:00.123Z",
        "dbg-01",
        "egress-guard",
        "42",
        "egress_guard.finding",
    )
    assert sd == f'[egress_guard@32473 eventId="{ev.id}" sequence="7"]'
    assert json.loads(body) == ev.document()


def test_rfc5424_utf8_message_starts_with_bom_and_param_values_escape() -> None:
    """Non-ASCII MSG gets the UTF-8 BOM; SD-PARAM values escape \" \\ and ]."""
    ev = event()
    msg = rfc5424.message(ev, "clé".encode())
    assert msg.endswith(b"\xef\xbb\xbfcl\xc3\xa9")
    assert rfc5424.escape_param('a"b\\c]') == 'a\\"b\\\\c\\]'


def test_syslog_severity_mapping() -> None:
    """ECS severity maps onto syslog: 99 crit, 73 err, 47 warning, 21 notice, 0 info."""
    assert [rfc5424.syslog_severity({"event": {"severity": s}}) for s in (99, 73, 47, 21, 0)] == [
        2,
        3,
        4,
        5,
        6,
    ]


def test_collector_body_is_the_stored_bodies_verbatim() -> None:
    """The collector request is {"events": [...]} built from the stored bytes."""
    a, b = event(), event()
    body = collector_body([a, b])
    assert json.loads(body) == {"events": [a.document(), b.document()]}
    assert a.body.encode() in body


def test_hec_envelope_has_documented_fields() -> None:
    """A HEC envelope carries time (epoch s), host, source, sourcetype, index and event."""
    ev = event()
    env = json.loads(envelope(ev, sourcetype="egress_guard", index="sec", source="egress-guard"))
    assert env == {
        "time": 1714557600.123,
        "host": "dbg-01",
        "source": "egress-guard",
        "sourcetype": "egress_guard",
        "index": "sec",
        "event": ev.document(),
    }


def test_bulk_body_is_ndjson_create_actions_with_event_ids() -> None:
    """_bulk body: create action with _index and _id, then the document, newline-terminated."""
    a, b = event(), event()
    lines = bulk_body([a, b], "logs-x").decode().split("\n")
    assert lines[-1] == ""
    assert json.loads(lines[0]) == {"create": {"_index": "logs-x", "_id": a.id}}
    assert json.loads(lines[1]) == a.document()
    assert len(lines) == 5


def test_bulk_items_conflict_is_delivered_others_rejected_or_retried() -> None:
    """Item 409 counts as delivered, 429 as retry, 400 as rejected."""
    batch = [
        Event(id=i, dataset="d", sequence=n, body="{}") for n, i in enumerate(["a", "b", "c", "d"])
    ]
    answer = {
        "errors": True,
        "items": [
            {"create": {"_id": "a", "status": 201}},
            {"create": {"_id": "b", "status": 409, "error": {"type": "version_conflict"}}},
            {"create": {"_id": "c", "status": 429}},
            {"create": {"_id": "d", "status": 400, "error": {"type": "mapper_parsing_exception"}}},
        ],
    }
    partial = read_items(answer, batch)
    assert partial is not None
    assert partial.delivered == {"a", "b"} and partial.retry == {"c"} and partial.rejected == {"d"}
    assert "mapper_parsing_exception" in partial.reason


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After accepts delta-seconds and HTTP-dates; junk means no hint."""
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 01 May 2024 10:00:30 GMT", now=1714557600.0) == 30.0
    assert retry_after("soon") == 0.0
    assert retry_after(None) == 0.0


def test_gzip_round_trip_is_what_the_collector_accepts() -> None:
    """gzip-compressed bodies decompress to the same JSON."""
    body = collector_body([event()])
    assert gzip.decompress(gzip.compress(body)) == body
