"""Syslog sink: RFC 5424 messages, octet-counted (RFC 6587) over TCP or TLS (RFC 5425).

The message is the ECS JSON body or its CEF rendering. Plain syslog has no
application acknowledgement: a batch counts as delivered once the kernel took
every byte, and a connection the peer closed is detected (and reopened)
before the next batch is written, which narrows but does not close the
window in which a dying receiver can lose a batch.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
from collections.abc import Callable, Sequence

from agent.config import SinkSection
from agent.errors import DeliveryError
from agent.report.formats import cef, ecs, rfc5424
from agent.values import Delivered, Event, Retry

_ENCODERS: dict[str, Callable[[Event], bytes]] = {"json": ecs.encode, "cef": cef.encode}


class SyslogSink:
    """Writes framed RFC 5424 messages to one TCP/TLS syslog receiver."""

    def __init__(self, section: SinkSection) -> None:
        if not section.host or section.port is None:
            raise DeliveryError(
                f"sink {section.label} needs host and port",
                sink=section.label,
                hint="set host and port in the syslog [[sink]]",
            )
        self.label = section.label
        self.max_events = section.batch_max_events
        self.max_bytes = section.batch_max_bytes
        self._host = section.host
        self._port = section.port
        self._timeout = section.timeout_seconds
        self._app_name = section.app_name
        self._encode = _ENCODERS.get(section.message_format, ecs.encode)
        self._context: ssl.SSLContext | None = None
        if section.tls:
            self._context = ssl.create_default_context(cafile=section.ca_file)
            self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._sock: socket.socket | None = None

    def render(self, batch: Sequence[Event]) -> bytes:
        """The framed bytes for a batch (what goes on the wire)."""
        procid = str(os.getpid())
        return b"".join(
            rfc5424.frame(
                rfc5424.message(e, self._encode(e), app_name=self._app_name, procid=procid)
            )
            for e in batch
        )

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self._host, self._port), timeout=self._timeout)
        if self._context is None:
            return raw
        try:
            return self._context.wrap_socket(raw, server_hostname=self._host)
        except (OSError, ssl.SSLError):
            raw.close()
            raise

    def _peer_closed(self, sock: socket.socket) -> bool:
        """True when the receiver hung up (readable with EOF) since the last batch."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ssl.SSLError):
            return True

    def send(self, batch: Sequence[Event]) -> Delivered | Retry:
        """Write the framed batch; any socket or TLS failure is a retry on a new connection."""
        data = self.render(batch)
        try:
            if self._sock is not None and self._peer_closed(self._sock):
                self._drop()
            if self._sock is None:
                self._sock = self._connect()
            self._sock.sendall(data)
        except ssl.SSLCertVerificationError:
            self._drop()
            return Retry(0.0, "TLS certificate verification failed")
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            return Retry(0.0, f"syslog connection failed: {type(exc).__name__}")
        return Delivered()

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already gone; nothing to release
                self._sock.close()
            self._sock = None

    def close(self) -> None:
        """Close the connection."""
        self._drop()
