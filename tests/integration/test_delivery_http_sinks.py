"""HTTP sinks against a tiny HTTP server on 127.0.0.1: HEC with indexer ack, Elasticsearch _bulk, status mapping, TLS."""

from __future__ import annotations

import gzip
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.config import SecretFile, SinkSection
from agent.report.outbox import Outbox
from agent.report.sinks import Partial
from agent.report.sinks.collector import CollectorSink
from agent.report.sinks.elastic import ElasticSink
from agent.report.sinks.hec import HecSink
from agent.values import Delivered, Event, Rejected, Retry
from tests.integration.test_collector_process import document
from tests.integration.test_syslog_rsyslog import self_signed


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fake:
    """Records requests; `answer(path, body)` -> (status, headers, json payload)."""

    answer: Callable[[str, bytes], tuple[int, dict[str, str], Any]]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_http() -> Iterator[Callable[..., Fake]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def make(
        answer: Callable[[str, bytes], tuple[int, dict[str, str], Any]],
        tls: tuple[Path, Path] | None = None,
    ) -> Fake:
        fake = Fake(answer)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                fake.seen.append(Seen(self.path, dict(self.headers.items()), raw))
                status, headers, payload = fake.answer(self.path, raw)
                body = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        scheme = "http"
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        thread = threading.Thread(target=server.serve_forever, name="fake-http")
        thread.start()
        servers.append((server, thread))
        fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        return fake

    yield make
    for server, thread in servers:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def batch(tmp_path: Path) -> list[Event]:
    outbox = Outbox(tmp_path / "o.db")
    events = [outbox.append(document()) for _ in range(3)]
    outbox.close()
    return events


@pytest.fixture
def token(tmp_path: Path) -> SecretFile:
    (tmp_path / "token").write_text("s3cret\n")
    return SecretFile(str(tmp_path / "token"))


def test_hec_posts_envelopes_and_waits_for_indexer_ack(
    fake_http: Callable[..., Fake], batch: list[Event], token: SecretFile
) -> None:
    """HEC gets newline-separated envelopes with Splunk auth and channel; delivery waits for ack true."""
    polls = {"n": 0}

    def answer(path: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        if path == "/services/collector/event":
            return 200, {}, {"text": "Success", "code": 0, "ackId": 7}
        polls["n"] += 1
        return 200, {}, {"acks": {"7": polls["n"] >= 2}}

    fake = fake_http(answer)
    sink = HecSink(
        SinkSection(
            type="hec", url=fake.url, token_file=token, ack=True, channel="chan-1", index="sec"
        )
    )
    try:
        assert sink.send(batch) == Delivered()
    finally:
        sink.close()
    post, *acks = fake.seen
    assert post.path == "/services/collector/event"
    assert post.headers["Authorization"] == "Splunk s3cret"
    assert post.headers["X-Splunk-Request-Channel"] == "chan-1"
    assert post.headers["Content-Encoding"] == "gzip"
    envelopes = [json.loads(line) for line in post.body.split(b"\n")]
    assert [e["event"] for e in envelopes] == [e.document() for e in batch]
    assert {tuple(sorted(e)) for e in envelopes} == {
        ("event", "host", "index", "source", "sourcetype", "time")
    }
    assert [json.loads(a.body) for a in acks] == [{"acks": [7]}, {"acks": [7]}]


def test_elastic_bulk_body_and_item_results(
    fake_http: Callable[..., Fake], batch: list[Event], token: SecretFile
) -> None:
    """_bulk gets NDJSON create actions; a 409 item is delivered, a 400 item rejected."""

    def answer(_path: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        ids = [json.loads(line)["create"]["_id"] for line in body.splitlines()[::2]]
        statuses = [201, 409, 400]
        return (
            200,
            {},
            {
                "errors": True,
                "items": [
                    {"create": {"_id": i, "status": s}} for i, s in zip(ids, statuses, strict=True)
                ],
            },
        )

    fake = fake_http(answer)
    sink = ElasticSink(SinkSection(type="elastic", url=fake.url, token_file=token, index="logs-eg"))
    try:
        outcome = sink.send(batch)
    finally:
        sink.close()
    assert isinstance(outcome, Partial)
    assert outcome.delivered == {batch[0].id, batch[1].id} and outcome.rejected == {batch[2].id}
    (seen,) = fake.seen
    assert seen.path == "/_bulk"
    assert seen.headers["Content-Type"] == "application/x-ndjson"
    assert seen.headers["Authorization"] == "Bearer s3cret"
    lines = seen.body.decode().split("\n")
    assert json.loads(lines[0]) == {"create": {"_index": "logs-eg", "_id": batch[0].id}}
    assert json.loads(lines[1]) == batch[0].document() and lines[-1] == ""


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Delivered()),
        (429, {"Retry-After": "7"}, Retry(7.0, 'HTTP 429: {"error": "x"}')),
        (503, {}, Retry(0.0, 'HTTP 503: {"error": "x"}')),
        (400, {}, Rejected('HTTP 400: {"error": "x"}', 400)),
    ],
)
def test_collector_sink_maps_status_codes(
    fake_http: Callable[..., Fake],
    batch: list[Event],
    token: SecretFile,
    status: int,
    headers: dict[str, str],
    expected: object,
) -> None:
    """2xx is delivered, 429/503 retry (honouring Retry-After), other 4xx rejected."""
    fake = fake_http(
        lambda _p, _b: (status, headers, {"error": "x"} if status != 200 else {"accepted": 3})
    )
    sink = CollectorSink(SinkSection(type="collector", url=fake.url, token_file=token, gzip=False))
    try:
        assert sink.send(batch) == expected
    finally:
        sink.close()
    assert fake.seen[0].headers["Authorization"] == "Bearer s3cret"
    assert json.loads(fake.seen[0].body) == {"events": [e.document() for e in batch]}


def test_tls_is_verified_against_the_configured_ca(
    fake_http: Callable[..., Fake], batch: list[Event], token: SecretFile, tmp_path: Path
) -> None:
    """With ca_file the sink trusts the server; without it the unknown certificate is refused (retry)."""
    cert, key = self_signed(tmp_path)
    fake = fake_http(lambda _p, _b: (200, {}, {"accepted": 3}), tls=(cert, key))
    trusted = CollectorSink(
        SinkSection(type="collector", url=fake.url, token_file=token, ca_file=str(cert))
    )
    untrusted = CollectorSink(SinkSection(type="collector", url=fake.url, token_file=token))
    try:
        assert trusted.send(batch) == Delivered()
        refused = untrusted.send(batch)
    finally:
        trusted.close()
        untrusted.close()
    assert isinstance(refused, Retry) and "TLS" in refused.reason
    assert len(fake.seen) == 1
