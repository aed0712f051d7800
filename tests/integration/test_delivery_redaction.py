"""No 16-byte window of a generated key's DER or PEM reaches the outbox, the collector, a sink output or stdout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent.config import SinkSection
from agent.report.formats import cef, rfc5424
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks.elastic import request_body as bulk_body
from agent.report.sinks.hec import envelope
from agent.report.sinks.jsonl import JsonlSink
from agent.values import KeyFinding
from tests import keys
from tests.integration.test_collector_process import (
    collector_cli,
    document,
    shipper_for,
    start_collector,
    stop_collector,
)

WINDOW = 16


def windows(data: bytes) -> set[bytes]:
    return {data[i : i + WINDOW] for i in range(len(data) - WINDOW + 1)}


def leaks(secret_windows: set[bytes], haystack: bytes) -> bool:
    return not secret_windows.isdisjoint(windows(haystack))


def test_key_bytes_never_reach_any_output(tmp_path: Path) -> None:
    """Events about real keys carry fingerprints only: outbox, collector DB, JSONL, CEF, syslog, HEC, _bulk and CLI output are clean."""
    material: set[bytes] = set()
    findings = []
    for key, fmt in ((keys.cached_rsa(2048), "pkcs8"), (keys.ec_key(ec.SECP384R1()), "sec1")):
        pem, der = keys.pem(key), keys.der(key)
        material |= windows(pem.data) | windows(der.data)
        findings.append(
            KeyFinding(
                rule="pem_private_key",
                format=fmt,
                algorithm="rsa",
                offset=4096,
                validated=True,
                bits=2048,
                fingerprint=pem.fingerprint,
            ).to_json()
        )
    assert leaks(
        material, b"core" + keys.pem(keys.cached_rsa(2048)).data[100:140] + b"dump"
    )  # the probe works

    running = start_collector(tmp_path)
    try:
        outbox = Outbox(tmp_path / "outbox.db", sinks=("collector", "jsonl"))
        events = []
        for i in range(5):
            doc = document()
            doc["file"] = {"path": f"/srv/dumps/app-{i}.core", "hash": {"sha256": "ab" * 32}}
            doc["egress_guard"] = {"findings": findings}
            events.append(outbox.append(doc, priority=100))
        shipper = shipper_for(outbox, running, tmp_path)
        jsonl = JsonlSink(SinkSection(type="jsonl", path=str(tmp_path / "events.jsonl")))
        both = Shipper(
            outbox, [*shipper.sinks, jsonl], retry_min_seconds=0.05, retry_max_seconds=0.5
        )
        both.start()
        try:
            assert both.flush(20)
        finally:
            both.stop()
        outbox.close()
        printed = subprocess.run(
            collector_cli("events", "--db", str(running.db)),
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    finally:
        stop_collector(running)

    outputs = {
        "collector events stdout": printed,
        "jsonl sink": (tmp_path / "events.jsonl").read_bytes(),
        "cef": b"".join(cef.encode(e) for e in events),
        "syslog": b"".join(rfc5424.frame(rfc5424.message(e, cef.encode(e))) for e in events),
        "hec": b"".join(
            envelope(e, sourcetype="s", index=None, source="egress-guard") for e in events
        ),
        "bulk": bulk_body(events, "logs"),
    }
    for db in tmp_path.glob("*.db*"):
        outputs[db.name] = db.read_bytes()
    assert {"outbox.db", "collector.db"} <= set(outputs)
    assert all(
        e.document()["egress_guard"]["findings"][0]["fingerprint"].startswith("sha256:")
        for e in events
    )
    assert [name for name, data in outputs.items() if leaks(material, data)] == []
    assert len(printed.splitlines()) == 5
