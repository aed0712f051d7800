"""The reference collector's HTTP(S) front: auth, limits, parsing, and its background threads.

    POST /v1/events   Authorization: Bearer <token>; body {"events": [...]}, gzip allowed
                      200 {"accepted": n, "duplicates": m} | 400 malformed | 401 bad token
                      | 403 agent not allowed for the token | 411 | 413 too large (bodies up
                      to 4x the limit are drained first so the client reads the status)
                      | 503 store down
    GET  /v1/health   200 {"status": "ok"} (no auth; for readiness checks)

Request threads are daemonic (a stuck client cannot hold shutdown). Two named
non-daemon threads run beside them: `egress-guard.collector.checks` raises
`agent-silent` alerts, `egress-guard.collector.forward` hands stored events
to the `forward` callable (built by the CLI from the sinks) until it returns
without raising, so forwarding is at least once across SIEM outages.
"""

from __future__ import annotations

import hmac
import json
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.collector.store import Store
from agent.config import CollectorSection, SecretFile
from agent.errors import CollectorError, ConfigError
from agent.logs import get_logger

log = get_logger(__name__)

Forward = Callable[[list[dict[str, Any]]], None]
_FORWARD_BATCH = 500
_FORWARD_RETRY_MAX_SECONDS = 60.0
_DRAIN_FACTOR = 4


@dataclass(frozen=True, slots=True)
class Token:
    """One accepted bearer token and the agent id it may speak for (None: any agent)."""

    secret: str
    agent_id: str | None


def parse_tokens(text: str) -> list[Token]:
    """Lines `token agent-id`, `token *` or a bare `token`; `#` comments and blanks skipped."""
    tokens: list[Token] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        agent = parts[1] if len(parts) > 1 and parts[1] != "*" else None
        tokens.append(Token(parts[0], agent))
    return tokens


class Tokens:
    """The tokens file, re-read when it changes (rotation without restart)."""

    def __init__(self, source: SecretFile) -> None:
        self._path = Path(source.path)
        self._stamp: tuple[int, int] | None = None
        self._tokens: list[Token] = []
        self._lock = threading.Lock()
        self._load()
        if not self._tokens:
            raise CollectorError(
                f"the tokens file {self._path} holds no token",
                hint="add lines `TOKEN AGENT-ID` (or `TOKEN *` for any agent)",
            )

    def _load(self) -> None:
        try:
            st = self._path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            tokens = parse_tokens(self._path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            if self._stamp is None:
                raise CollectorError(
                    f"cannot read the tokens file {self._path}: {exc}",
                    hint="check collector.tokens_file",
                ) from None
            return  # keep the tokens we have; a half-written file must not lock agents out
        self._tokens, self._stamp = tokens, stamp

    def match(self, header: str | None) -> Token | None:
        """The token a `Bearer ...` header presents, compared in constant time."""
        if not header or not header.startswith("Bearer "):
            return None
        presented = header.removeprefix("Bearer ").strip().encode("utf-8")
        with self._lock:
            self._load()
            found = None
            for token in self._tokens:
                if hmac.compare_digest(token.secret.encode("utf-8"), presented):
                    found = token
        return found


class BadRequest(Exception):  # noqa: N818 - an HTTP answer, not an error of ours
    """A request refused with a 4xx status; the message is safe to send back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_body(raw: bytes, encoding: str | None, limit: int) -> list[dict[str, Any]]:
    """The batch's events, validated; raises BadRequest (400/413/415)."""
    if encoding and encoding.lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise BadRequest(400, "body is not valid gzip") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise BadRequest(413, "decompressed body exceeds the size limit")
    elif encoding and encoding.lower() != "identity":
        raise BadRequest(415, f"unsupported content-encoding {encoding[:40]!r}")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "body is not valid JSON") from None
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise BadRequest(400, 'expected {"events": [...]}')
    for i, doc in enumerate(events):
        event = doc.get("event") if isinstance(doc, dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise BadRequest(400, f"events[{i}] has no event.id")
        if not isinstance(event.get("dataset"), str):
            raise BadRequest(400, f"events[{i}] has no event.dataset")
    return events


def _agent_of(doc: dict[str, Any]) -> str | None:
    agent = doc.get("agent")
    value = agent.get("id") if isinstance(agent, dict) else None
    return value if isinstance(value, str) else None


def _check_agent(token: Token, events: list[dict[str, Any]]) -> None:
    """A token bound to one agent may only deliver that agent's events (403 otherwise)."""
    if token.agent_id is not None and {_agent_of(d) for d in events} - {token.agent_id}:
        raise BadRequest(403, "token is not valid for the agent id in the events")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "egress-guard-collector"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to structlog at debug, not to stderr as text."""
        log.debug("collector.request_handled", line=format % args)

    def _answer(self, status: int, payload: dict[str, Any], *, close: bool = False) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "5")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _drain(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return
            remaining -= len(chunk)

    def do_GET(self) -> None:
        """Health only."""
        if self.path == "/v1/health":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        """One batch of events."""
        collector = self.server.collector
        if self.path != "/v1/events":
            self._answer(404, {"error": "not found"}, close=True)
            return
        token = collector.tokens.match(self.headers.get("Authorization"))
        if token is None:
            log.warning("collector.request_failed", error_type="unauthorized")
            self._answer(401, {"error": "missing or unknown bearer token"}, close=True)
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._answer(411, {"error": "Content-Length required"}, close=True)
            return
        length = int(length_text)
        if length > collector.max_request_bytes:
            log.warning("collector.request_failed", error_type="too_large", bytes=length)
            if length <= _DRAIN_FACTOR * collector.max_request_bytes:
                # read and discard, so the client sees the 413 instead of a broken pipe
                # (the shipper then splits the batch); far larger bodies are cut off
                self._drain(length)
            self._answer(413, {"error": "request too large"}, close=True)
            return
        raw = self.rfile.read(length)
        try:
            events = decode_body(
                raw, self.headers.get("Content-Encoding"), collector.max_request_bytes
            )
            _check_agent(token, events)
        except BadRequest as exc:
            log.warning("collector.request_failed", error_type=f"http_{exc.status}")
            self._answer(exc.status, {"error": str(exc)}, close=True)
            return
        try:
            result = collector.ingest(events)
        except CollectorError:
            log.exception("collector.batch_failed", error_type="store")
            self._answer(503, {"error": "store unavailable, retry"}, close=True)
            return
        self._answer(200, {"accepted": result[0], "duplicates": result[1]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    collector: Collector


class Collector:
    """The reference collector: an HTTP(S) server over a Store, plus checks and forwarding."""

    def __init__(
        self,
        section: CollectorSection,
        *,
        forward: Forward | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if section.tokens_file is None:
            raise CollectorError(
                "the collector needs a tokens file (no anonymous ingestion)",
                hint="set collector.tokens_file or pass --tokens-file",
            )
        host, _, port = section.listen.rpartition(":")
        if not host or not port.isdigit():
            raise CollectorError(
                f"bad listen address {section.listen!r}", hint="use HOST:PORT, e.g. 127.0.0.1:8765"
            )
        self.section = section
        self.max_request_bytes = section.max_request_mib * 2**20
        self.tokens = Tokens(section.tokens_file)
        self._forward = forward
        self._clock = clock
        self._stop = threading.Event()
        self._forward_wake = threading.Event()
        self.store = Store(Path(section.db))
        try:
            self._server = _Server((host.strip("[]"), int(port)), _Handler)
        except OSError as exc:
            self.store.close()
            raise CollectorError(
                f"cannot listen on {section.listen}: {exc.strerror}",
                hint="pick a free port in collector.listen or --listen",
            ) from None
        self._server.collector = self
        if section.tls_cert_file:
            self._wrap_tls(section)
        self._threads: list[threading.Thread] = []

    def _wrap_tls(self, section: CollectorSection) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(section.tls_cert_file or "", section.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            self._server.server_close()
            self.store.close()
            raise ConfigError(
                [f"`collector.tls_cert_file` / `tls_key_file`: cannot load: {exc}"]
            ) from None
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def ingest(self, events: list[dict[str, Any]]) -> tuple[int, int]:
        """Store a validated batch; returns (accepted, duplicates)."""
        result = self.store.ingest(events, self._clock())
        for doc in result.alerts:
            log.warning(
                "collector.alert_raised",
                action=doc["event"]["action"],
                agent_id=doc["egress_guard"]["collector"]["agent_id"],
            )
        if result.accepted:
            log.info(
                "collector.batch_stored", accepted=result.accepted, duplicates=result.duplicates
            )
            self._forward_wake.set()
        return result.accepted, result.duplicates

    def start(self) -> None:
        """Serve in the background; start the check and forward threads."""
        workers: list[tuple[str, Callable[[], None]]] = [
            ("egress-guard.collector.http", self._server.serve_forever),
            ("egress-guard.collector.checks", self._check_loop),
        ]
        if self._forward is not None:
            workers.append(("egress-guard.collector.forward", self._forward_loop))
        for name, target in workers:
            thread = threading.Thread(target=target, name=name, daemon=False)
            thread.start()
            self._threads.append(thread)
        log.info("collector.server_started", listen=self.section.listen, port=self.port)

    def _check_loop(self) -> None:
        timeout = self.section.heartbeat_timeout_seconds
        interval = max(0.2, min(timeout / 4, 5.0))
        while not self._stop.wait(interval):
            try:
                alerts = self.store.check_silence(self._clock(), timeout)
            except Exception:  # isolation point: a failed check must not end the checks
                log.exception("collector.check_failed", error_type="unexpected")
                continue
            for doc in alerts:
                log.warning(
                    "collector.alert_raised",
                    action="agent-silent",
                    agent_id=doc["egress_guard"]["collector"]["agent_id"],
                )
            if alerts:
                self._forward_wake.set()

    def _forward_loop(self) -> None:
        assert self._forward is not None
        delay = 1.0
        while not self._stop.is_set():
            rows = self.store.unforwarded(_FORWARD_BATCH)
            if not rows:
                self._forward_wake.wait(1.0)
                self._forward_wake.clear()
                continue
            try:
                self._forward([doc for _, doc in rows])
            except Exception as exc:  # noqa: BLE001 - isolation point: a SIEM outage must not end forwarding
                log.warning("collector.forward_failed", error_type=type(exc).__name__)
                self._stop.wait(delay)
                delay = min(delay * 2, _FORWARD_RETRY_MAX_SECONDS)
                continue
            delay = 1.0
            self.store.mark_forwarded([rowid for rowid, _ in rows])

    def stop(self) -> None:
        """Stop serving, end the threads, close the store."""
        self._stop.set()
        self._forward_wake.set()
        self._server.shutdown()
        for thread in self._threads:
            thread.join()
        self._server.server_close()
        self.store.close()
        log.info("collector.server_stopped")
