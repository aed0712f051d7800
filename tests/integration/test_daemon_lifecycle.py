"""The daemon as a system service: readiness, reload, stop, catch-up, heartbeats, self-protection."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import psutil
import pytest

from tests import keys
from tests.harness import (
    CLI,
    Proc,
    Setup,
    collector_events,
    findings,
    free_port,
    start_agent,
    start_collector,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(root=tmp_path / "eg", port=free_port())


def test_systemd_notifications_follow_the_lifecycle(setup: Setup, tmp_path: Path) -> None:
    """READY=1 after start, RELOADING=1 then READY=1 on SIGHUP, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    got: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                return got

    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    with (setup.root / "agent.log").open("ab") as log:
        popen = subprocess.Popen(
            [*CLI, "--log-format", "json", "run", "--config", str(setup.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "READY=1" in drain(), what="READY=1")
        wait_for(lambda: "WATCHDOG=1" in drain(), what="a watchdog ping")
        popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "RELOADING=1" in drain(), what="RELOADING=1")
        assert got.count("READY=1") >= 1
        popen.send_signal(signal.SIGTERM)
        assert popen.wait(timeout=60) == 0
        assert "STOPPING=1" in drain()
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        sock.close()


def test_files_that_arrive_while_the_agent_is_down_are_caught_up_at_start(setup: Setup) -> None:
    """A key dropped while the agent is stopped is quarantined when it starts again; old clean files are not rescanned."""
    collector = start_collector(setup)
    agent = start_agent(setup)
    clean = setup.drop / "old-clean.bin"
    clean.write_bytes(keys.filler(10_000))
    wait_for(lambda: agent.saw("scan.file_scanned"), what="the first scan")
    assert agent.stop() == 0
    planted = keys.pem(keys.cached_rsa(2048))
    late = setup.drop / "arrived-while-down.core"
    late.write_bytes(keys.plant(planted.data))
    agent = start_agent(setup, name="agent-restarted")
    try:
        wait_for(lambda: not late.exists(), timeout=30, what="catch-up quarantine")
        wait_for(lambda: findings(collector_events(setup)), timeout=30, what="the finding")
        scanned = [
            e.get("path") for e in agent.log_events() if e.get("event") == "scan.file_scanned"
        ]
        assert str(clean) not in scanned
        assert findings(collector_events(setup))[0]["egress_guard"]["arrival"] == "catchup"
    finally:
        agent.stop()
        collector.stop()


def _scanning(setup: Setup) -> list[tuple[int, int]]:
    """(inode, attempts) of the scans the state store says began and did not end."""
    db = sqlite3.connect(setup.state / "scan-state.db", timeout=5)
    try:
        return [(int(i), int(a)) for i, a in db.execute("SELECT inode, attempts FROM scanning")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


def test_a_file_the_agent_dies_in_twice_is_reported_and_left_alone(setup: Setup) -> None:
    """A parser crash on a file would otherwise kill the agent at every restart's catch-up.

    The agent is killed (SIGKILL, as a crash ends it) while it scans one large dump,
    twice; the third start reports that file as abandoned instead of scanning it
    again, and keeps scanning other files.
    """
    collector = start_collector(setup)
    dump = setup.drop / "huge.core"
    with dump.open("wb") as out:  # random-looking memory: long enough to be caught mid-scan
        for _ in range(48):
            out.write(os.urandom(8 << 20))
    inode = dump.stat().st_ino
    for attempt in (1, 2):
        agent = start_agent(setup, name=f"agent-{attempt}")
        row = (inode, attempt)
        wait_for(lambda row=row: row in _scanning(setup), timeout=60, what=f"scan {attempt}")
        agent.kill()
    agent = start_agent(setup, name="agent-3")
    try:
        wait_for(
            lambda: agent.saw("scan.file_failed"), timeout=60, what="the abandoned file reported"
        )
        (failed,) = [e for e in agent.log_events() if e.get("event") == "scan.file_failed"]
        assert failed["path"] == str(dump) and failed["error_type"] == "engine_failed"
        assert "stopped 2 times" in failed["detail"]
        assert not [e for e in agent.log_events() if e.get("event") == "scan.file_scanned"]
        assert _scanning(setup) == []
        late = setup.drop / "after.key"
        late.write_bytes(keys.pem(keys.cached_rsa(2048)).data)
        wait_for(lambda: not late.exists(), timeout=30, what="the next key quarantined")
        errors = [
            e for e in collector_events(setup) if e["event"]["dataset"] == "egress_guard.error"
        ]
        assert any(str(dump) in e["message"] for e in errors)
    finally:
        agent.stop()
        collector.stop()


def test_heartbeats_carry_counters_and_health(setup: Setup) -> None:
    """Heartbeat events reach the collector with counters, queue depth and disk free."""
    collector = start_collector(setup)
    agent = start_agent(setup)
    try:

        def beats() -> list[dict[str, object]]:
            return [
                e
                for e in collector_events(setup)
                if e["event"]["dataset"] == "egress_guard.heartbeat"
            ]

        beat = wait_for(beats, timeout=30, what="a heartbeat")[0]
        counters = beat["egress_guard"]["counters"]  # type: ignore[index]
        health = beat["egress_guard"]["health"]  # type: ignore[index]
        assert {
            "files_seen",
            "files_scanned",
            "queue_depth",
            "outbox_depth",
            "rules_version",
        } <= set(counters)
        assert health["state_disk_free_bytes"] > 0
        assert health["agent_rss_bytes"] > 0
    finally:
        agent.stop()
        collector.stop()


def test_agent_cannot_dump_core(setup: Setup) -> None:
    """The agent holds scanned bytes in memory, so it sets its core-dump limit to zero."""
    agent: Proc = start_agent(setup)
    try:
        limits = Path(f"/proc/{agent.popen.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"]
    finally:
        agent.stop()


def test_agent_lowers_its_cpu_and_io_priority(setup: Setup) -> None:
    """nice 10 and best-effort I/O at the lowest level (never the idle class: it can starve)."""
    agent: Proc = start_agent(setup)
    try:
        proc = psutil.Process(agent.popen.pid)
        assert proc.nice() == 10
        io = proc.ionice()
        assert (io.ioclass, io.value) == (psutil.IOPRIO_CLASS_BE, 7)
    finally:
        agent.stop()
