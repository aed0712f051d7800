"""A real collector process on 127.0.0.1: shipping, CLI read-back, hostile requests, gap/chain/silence alerts."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import SecretFile, SinkSection
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks.collector import CollectorSink

CLI = Path(__file__).resolve().parents[2] / "agent" / "cli" / "collector.py"
LAUNCH = "import runpy, sys; sys.argv[0] = 'egress-guard'; runpy.run_path(sys.argv[1], run_name='__main__')"


def collector_cli(*args: str) -> list[str]:
    """argv running `egress-guard collector ARGS` in a fresh interpreter."""
    return [sys.executable, "-c", LAUNCH.replace("sys.argv[1]", repr(str(CLI))), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    db: Path
    token: str

    def request(
        self, body: bytes, *, token: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            all_headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
            conn.request("POST", "/v1/events", body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/v1/health")
            response = conn.getresponse()
            response.read()
            return response.status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def cli(self, *args: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            collector_cli(*args, "--db", str(self.db), "--format", "jsonl"),
            capture_output=True,
            check=True,
            timeout=30,
        )
        return [json.loads(line) for line in out.stdout.splitlines()]


def start_collector(
    tmp_path: Path, *, extra_config: str = "", port: int | None = None, token: str | None = None
) -> Running:
    """A collector process on 127.0.0.1 accepting `token` (a fresh one when not given)."""
    port = port or free_port()
    token = token or uuid.uuid4().hex
    (tmp_path / "tokens").write_text(f"{token} *\nbound-token agent-bound\n")
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\nlisten = "127.0.0.1:{port}"\ndb = "{tmp_path / "collector.db"}"\n'
        f'tokens_file = "{tmp_path / "tokens"}"\nmax_request_mib = 1\n{extra_config}'
    )
    proc = subprocess.Popen(collector_cli("serve", "--config", str(config)), stderr=subprocess.PIPE)
    running = Running(proc, port, tmp_path / "collector.db", token)
    wait_for(lambda: running.healthy() or proc.poll() is not None, what="collector start")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return running


def stop_collector(running: Running) -> None:
    running.proc.send_signal(signal.SIGTERM)
    try:
        running.proc.wait(timeout=15)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
        if running.proc.stderr:
            running.proc.stderr.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Running]:
    running = start_collector(tmp_path)
    yield running
    stop_collector(running)
    assert running.proc.returncode == 0


def document(dataset: str = "egress_guard.finding", agent: str = "agent-1") -> dict[str, Any]:
    return {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "message": "test event",
        "event": {"id": str(uuid.uuid4()), "dataset": dataset},
        "agent": {"id": agent},
    }


def shipper_for(outbox: Outbox, running: Running, tmp_path: Path) -> Shipper:
    (tmp_path / "agent-token").write_text(running.token + "\n")
    sink = CollectorSink(
        SinkSection(
            type="collector",
            url=f"http://127.0.0.1:{running.port}",
            token_file=SecretFile(str(tmp_path / "agent-token")),
            batch_max_events=7,
        )
    )
    return Shipper(outbox, [sink], retry_min_seconds=0.05, retry_max_seconds=0.5)


def test_shipped_events_are_stored_once_and_printed_as_received(
    collector: Running, tmp_path: Path
) -> None:
    """Events shipped from an outbox reach the collector once and `collector events` prints them verbatim."""
    outbox = Outbox(tmp_path / "outbox.db", sinks=("collector",))
    sent = [outbox.append(document()) for _ in range(20)]
    shipper = shipper_for(outbox, collector, tmp_path)
    shipper.start()
    try:
        assert shipper.flush(20)
    finally:
        shipper.stop()
    assert outbox.depth() == 0
    outbox.close()
    printed = (
        subprocess.run(
            # the real entry point once, to prove the COMMANDS wiring; elsewhere the faster launcher
            [sys.executable, "-m", "agent.cli", "collector", "events", "--db", str(collector.db)],
            capture_output=True,
            check=True,
            timeout=30,
        )
        .stdout.decode()
        .splitlines()
    )
    assert printed == [e.body for e in sent]
    (agent,) = collector.cli("agents")
    assert (agent["agent_id"], agent["last_sequence"], agent["gaps"], agent["chain"]) == (
        "agent-1",
        20,
        0,
        "ok",
    )


def test_hostile_requests_get_4xx_and_the_collector_keeps_serving(collector: Running) -> None:
    """Malformed JSON, wrong shape, bad token, foreign agent, oversize and bad gzip are refused; service goes on."""
    good = json.dumps({"events": [document()]}).encode()
    assert collector.request(b"{not json")[0] == 400
    assert collector.request(b'{"events": [{"event": {}}]}')[0] == 400
    assert collector.request(good, token="wrong")[0] == 401
    assert collector.request(good, token="bound-token")[0] == 403
    assert collector.request(b"x" * (2 * 2**20))[0] == 413
    assert collector.request(b"not gzip", headers={"Content-Encoding": "gzip"})[0] == 400
    bound = json.dumps({"events": [document(agent="agent-bound")]}).encode()
    assert collector.request(
        gzip.compress(bound), token="bound-token", headers={"Content-Encoding": "gzip"}
    ) == (200, {"accepted": 1, "duplicates": 0})
    assert collector.request(good) == (200, {"accepted": 1, "duplicates": 0})
    assert collector.request(good) == (200, {"accepted": 0, "duplicates": 1})
    assert collector.proc.poll() is None


def test_gap_and_tampered_event_raise_collector_alerts(collector: Running, tmp_path: Path) -> None:
    """An event deleted from the outbox and another altered in it are reported as sequence-gap and chain-broken."""
    outbox = Outbox(tmp_path / "outbox.db", sinks=("collector",))
    events = [outbox.append(document()) for _ in range(6)]
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        db.execute("DELETE FROM events WHERE seq = 3")
        db.execute("DELETE FROM deliveries WHERE seq = 3")
        altered = events[4].body.replace('"test event"', '"nothing happened"')
        db.execute("UPDATE events SET body = ? WHERE seq = 5", (altered,))
    shipper = shipper_for(outbox, collector, tmp_path)
    shipper.start()
    try:
        assert shipper.flush(20)
    finally:
        shipper.stop()
    outbox.close()
    alerts = [
        e for e in collector.cli("events") if e["event"]["dataset"] == "egress_guard.collector"
    ]
    assert sorted(
        (a["event"]["action"], a["egress_guard"]["collector"]["sequence"]) for a in alerts
    ) == [("chain-broken", 5), ("sequence-gap", 4)]
    (agent,) = collector.cli("agents")
    assert (agent["gaps"], agent["missing"], agent["chain"]) == (1, [[3, 3]], "broken")


def test_silent_agent_is_alerted_and_everything_is_forwarded(tmp_path: Path) -> None:
    """No heartbeat for heartbeat_timeout_seconds stores an agent-silent alert; events and alerts reach the forward sink."""
    forwarded = tmp_path / "forwarded.jsonl"
    running = start_collector(
        tmp_path,
        extra_config=(
            f'heartbeat_timeout_seconds = 1.0\n[[collector.sink]]\ntype = "jsonl"\npath = "{forwarded}"\n'
        ),
    )
    try:
        outbox = Outbox(tmp_path / "outbox.db", sinks=("collector",))
        outbox.append(document("egress_guard.heartbeat", agent="quiet-agent"))
        shipper = shipper_for(outbox, running, tmp_path)
        shipper.start()
        try:
            assert shipper.flush(20)
        finally:
            shipper.stop()
        outbox.close()

        def silent_alert() -> bool:
            # read the WAL database directly: spawning the CLI per poll is slow
            with contextlib.closing(sqlite3.connect(running.db)) as db:
                rows = db.execute(
                    "SELECT body FROM events WHERE dataset = 'egress_guard.collector'"
                )
                return any(json.loads(b)["event"]["action"] == "agent-silent" for (b,) in rows)

        wait_for(silent_alert, timeout=20, what="agent-silent alert")
        (agent,) = running.cli("agents")
        assert agent["health"] == "silent"

        def forwarded_actions() -> list[str]:
            lines = forwarded.read_text().splitlines() if forwarded.exists() else []
            return [json.loads(line)["event"].get("action", "") for line in lines]

        wait_for(lambda: len(forwarded_actions()) >= 2, what="forwarding to the jsonl sink")
        assert sorted(forwarded_actions()) == ["", "agent-silent"]
    finally:
        stop_collector(running)
