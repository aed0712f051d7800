"""Delivery benchmark: outbox append latency (p50/p99) and events/s from outbox to a collector on loopback.

Usage: .venv/bin/python bench/delivery.py [--events N] [--batch N]
Starts a real collector process on a free 127.0.0.1 port in a temporary folder.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from agent import logs
from agent.config import SecretFile, SinkSection
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks.collector import CollectorSink

CLI = Path(__file__).resolve().parents[1] / "agent" / "cli" / "collector.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def document(i: int) -> dict:
    return {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "message": f"1 private key(s) found in /srv/dumps/app-{i}.core; file quarantined",
        "event": {"id": str(uuid.uuid4()), "dataset": "egress_guard.finding", "severity": 99},
        "agent": {"id": "bench-agent"},
        "file": {
            "path": f"/srv/dumps/app-{i}.core",
            "size": 1 << 30,
            "hash": {"sha256": "ab" * 32},
        },
        "egress_guard": {
            "findings": [{"rule": "pem_private_key", "fingerprint": "sha256:" + "cd" * 32}]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    logs.configure(level="warning")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        token = uuid.uuid4().hex
        (d / "tokens").write_text(f"{token} *\n")
        (d / "token").write_text(token)
        port = free_port()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.Popen(
            [
                sys.executable,
                str(CLI),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--db",
                str(d / "collector.db"),
                "--tokens-file",
                str(d / "tokens"),
            ],
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            deadline = time.monotonic() + 15
            while not healthy(port):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("collector did not start")
                time.sleep(0.05)
            outbox = Outbox(d / "outbox.db", sinks=("collector",))
            latencies = []
            for i in range(args.events):
                start = time.perf_counter()
                outbox.append(document(i), priority=100)
                latencies.append(time.perf_counter() - start)
            latencies.sort()
            sink = CollectorSink(
                SinkSection(
                    type="collector",
                    url=f"http://127.0.0.1:{port}",
                    token_file=SecretFile(str(d / "token")),
                    batch_max_events=args.batch,
                )
            )
            shipper = Shipper(outbox, [sink])
            start = time.perf_counter()
            shipper.start()
            ok = shipper.flush(600)
            elapsed = time.perf_counter() - start
            shipper.stop()
            outbox.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    print(
        f"outbox append latency: p50 {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1e3:.2f} ms "
        f"({args.events} events, synchronous=FULL)"
    )
    print(
        f"outbox -> collector: {args.events / elapsed:,.0f} events/s "
        f"(batch {args.batch}, loopback, {'all delivered' if ok else 'NOT all delivered'})"
    )


if __name__ == "__main__":
    main()
