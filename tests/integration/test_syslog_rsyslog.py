"""A real rsyslog receives RFC 5424 octet-counted messages over TCP and TLS, as ECS JSON and as CEF."""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import SinkSection
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks.syslog import SyslogSink
from tests.integration.test_collector_process import document, free_port, wait_for

RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="256k"
       defaultNetstreamDriverCAFile="{cert}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" address="127.0.0.1" port="{tls}"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="parsed" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
*.* action(type="omfile" file="{out}" template="parsed")
"""


@dataclass
class Rsyslog:
    tcp: int
    tls: int
    out: Path
    ca: Path


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away server certificate for 127.0.0.1, made at test time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    cert, key = self_signed(tmp_path)
    work = tmp_path / "rsyslog-work"
    work.mkdir()
    out = tmp_path / "received.jsonl"
    tcp, tls = free_port(), free_port()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=work, cert=cert, key=key, tcp=tcp, tls=tls, out=out))
    proc = subprocess.Popen(
        [binary, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (listening(tcp) and listening(tls)) or proc.poll() is not None, what="rsyslog"
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        yield Rsyslog(tcp, tls, out, cert)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stderr:
                proc.stderr.close()


def received(out: Path) -> list[dict[str, str]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_rsyslog_receives_json_and_cef_messages(
    rsyslog: Rsyslog, tmp_path: Path, tls: bool
) -> None:
    """Every event arrives parsed as RFC 5424: PRI, APP-NAME, MSGID = dataset, SD with the id, JSON or CEF message."""
    port = rsyslog.tls if tls else rsyslog.tcp
    outbox = Outbox(tmp_path / "outbox.db", sinks=("json", "cef"))
    docs = [document() for _ in range(3)]
    for d in docs:
        d["event"]["severity"] = 73
        d["message"] = f"key found in /srv/dumps/{uuid.uuid4().hex}|x=y.core"
    events = [outbox.append(d) for d in docs]
    sinks = [
        SyslogSink(
            SinkSection(
                type="syslog",
                name=fmt,
                host="127.0.0.1",
                port=port,
                tls=tls,
                ca_file=str(rsyslog.ca),
                message_format=fmt,
            )
        )
        for fmt in ("json", "cef")
    ]
    shipper = Shipper(outbox, sinks, retry_min_seconds=0.05, retry_max_seconds=0.5)
    shipper.start()
    try:
        assert shipper.flush(20)
    finally:
        shipper.stop()
    outbox.close()
    wait_for(lambda: len(received(rsyslog.out)) >= 6, what="rsyslog to write 6 messages")
    lines = received(rsyslog.out)
    assert len(lines) == 6
    for line in lines:
        assert (line["pri"], line["app"], line["msgid"]) == (
            "83",
            "egress-guard",
            "egress_guard.finding",
        )
    as_json = [json.loads(line["msg"]) for line in lines if line["msg"].lstrip().startswith("{")]
    assert as_json == [e.document() for e in events]
    cef = [line for line in lines if line["msg"].lstrip().startswith("CEF:0|")]
    assert len(cef) == 3
    for line, ev in zip(cef, events, strict=True):
        assert f'eventId="{ev.id}"' in line["sd"]
        assert f"externalId={ev.id}" in line["msg"]
        # the name header field escapes the pipe; the msg extension escapes the equals sign
        assert "\\|x=y.core|7|" in line["msg"]
        assert "|x\\=y.core " in line["msg"]
