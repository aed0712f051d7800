"""Delivery across failures: collector outage, shipper SIGKILLed mid-batch, outbox on a full disk."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import OutboxFull
from agent.report.outbox import Outbox
from tests.integration.test_collector_process import (
    document,
    free_port,
    shipper_for,
    start_collector,
    stop_collector,
    wait_for,
)

CHILD = r"""
import sys, threading, pathlib
from agent.config import SecretFile, SinkSection
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks.collector import CollectorSink

outbox_path, port, token_file, marker, pause_after = sys.argv[1:6]
sink = CollectorSink(SinkSection(type="collector", url=f"http://127.0.0.1:{port}",
                                 token_file=SecretFile(token_file), batch_max_events=4))

class PausingSink:
    label = sink.label
    max_events = 4
    max_bytes = 2**20
    sent = 0
    def send(self, batch):
        outcome = sink.send(batch)
        self.sent += 1
        if self.sent == int(pause_after):
            # delivered but not yet acknowledged in the outbox: the parent kills us here
            pathlib.Path(marker).touch()
            threading.Event().wait()
        return outcome
    def close(self):
        sink.close()

outbox = Outbox(pathlib.Path(outbox_path), sinks=("collector",))
shipper = Shipper(outbox, [PausingSink()], retry_min_seconds=0.05, retry_max_seconds=0.5)
shipper.start()
ok = shipper.flush(60)
shipper.stop()
outbox.close()
sys.exit(0 if ok else 3)
"""


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def stored_ids(running_db: Path) -> list[str]:
    """Ids of the agent events the collector holds (its WAL database is readable while it runs)."""
    with contextlib.closing(sqlite3.connect(running_db)) as db:
        rows = db.execute("SELECT id FROM events WHERE dataset != 'egress_guard.collector'")
        return [str(r[0]) for r in rows]


def test_events_appended_while_the_collector_is_down_arrive_once_it_is_up(tmp_path: Path) -> None:
    """A collector outage delays delivery; when it comes up every event arrives exactly once."""
    port = free_port()
    outbox = Outbox(tmp_path / "outbox.db", sinks=("collector",))
    (tmp_path / "tokens-dir").mkdir()
    ids = [outbox.append(document()).id for _ in range(30)]

    class Placeholder:
        token = "t-" + uuid.uuid4().hex

    placeholder = Placeholder()
    placeholder.port = port  # type: ignore[attr-defined]
    shipper = shipper_for(outbox, placeholder, tmp_path)  # type: ignore[arg-type]
    shipper.start()
    try:
        assert not shipper.flush(1.0)  # nobody listens: nothing can be delivered
        (tmp_path / "c").mkdir()
        # the token is known from the start: written after, the shipper's first try could
        # meet a 401 and wait out its 30 s back-off (seen once in CI)
        running = start_collector(tmp_path / "c", port=port, token=placeholder.token)
        try:
            assert shipper.flush(30)
            assert sorted(stored_ids(running.db)) == sorted(ids)
        finally:
            stop_collector(running)
    finally:
        shipper.stop()
        outbox.close()


def test_shipper_killed_between_delivery_and_ack_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL after a batch was delivered but before it was acked: on restart it is resent, de-duplicated, nothing lost."""
    running = start_collector(tmp_path)
    try:
        outbox = Outbox(tmp_path / "outbox.db", sinks=("collector",))
        ids = [outbox.append(document()).id for _ in range(40)]
        outbox.close()
        (tmp_path / "agent-token").write_text(running.token)
        marker = tmp_path / "paused"
        argv = [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "outbox.db"),
            str(running.port),
            str(tmp_path / "agent-token"),
            str(marker),
        ]
        child = subprocess.Popen([*argv, "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(marker.exists, timeout=30, what="the child to deliver three batches")
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
        before = stored_ids(running.db)
        assert len(before) == 12  # three batches of four reached the collector
        restarted = subprocess.run([*argv, "0"], check=False, capture_output=True, timeout=60)
        assert restarted.returncode == 0, restarted.stderr.decode()[-2000:]
        after = stored_ids(running.db)
        assert sorted(after) == sorted(ids)
        assert Outbox(tmp_path / "outbox.db", sinks=("collector",)).depth() == 0
    finally:
        stop_collector(running)


def test_outbox_on_a_full_disk_raises_outbox_full_counts_and_recovers(tmpfs: Path) -> None:
    """On a full filesystem append raises OutboxFull (counted); after delivery frees room, appends work and report it."""
    ballast = tmpfs / "ballast"
    ballast.write_bytes(b"\0" * 512 * 1024)  # freed later, as an operator would free space
    outbox = Outbox(tmpfs / "outbox.db", sinks=("s",))
    stored: list[str] = []
    big = {"pad": "x" * 50_000}
    with pytest.raises(OutboxFull):
        for _ in range(200):
            stored.append(outbox.append({**document(), **big}, priority=100).id)
    assert stored, "some events fit before the disk filled"
    assert outbox.dropped() == {"egress_guard.finding": 1}
    assert outbox.depth() == len(stored)  # nothing stored before the failure was lost
    ballast.unlink()
    outbox.ack("s", stored)
    beat = outbox.append(document("egress_guard.heartbeat"))
    assert beat.document()["egress_guard"]["outbox"]["dropped"] == {"egress_guard.finding": 1}
    outbox.close()
    assert json.loads(beat.body)["event"]["sequence"] == len(stored) + 1
