"""Kernel limits against real inotify: queue overflow and watch-limit exhaustion lose no file.

Both lower a global /proc/sys/fs/inotify setting (we run as root) for the
moment it takes to start the watcher, and restore it straight after: the
queue size is fixed when an inotify instance is created, and the watch
limit is checked only when a watch is added.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.watch_support import wait_for, watching

INOTIFY = Path("/proc/sys/fs/inotify")

BURST = r"""
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
prefix = sys.argv[3] if len(sys.argv) > 3 else "b"
for i in range(n):
    with open(os.path.join(root, f"{prefix}{i}.core"), "wb") as f:
        f.write(b"z" * 64)
"""


def _setter(name: str, value: int) -> tuple[Callable[[], None], Callable[[], None]]:
    path = INOTIFY / name
    if not os.access(path, os.W_OK):
        pytest.fail(f"{path} is not writable: these tests need root on a host kernel setting")
    original = path.read_text()
    return (lambda: path.write_text(str(value))), (lambda: path.write_text(original))


def _root_watches_in_use() -> int:
    """inotify watches held by uid 0 across the host (what max_user_watches counts for us)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != 0:
                continue
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
                    total += f.read().count(b"inotify wd:")
        except OSError:
            continue
    return total


def test_queue_overflow_is_reported_and_a_rescan_delivers_every_file(tmp_path: Path) -> None:
    """With a 2-event kernel queue, a 3,000-file burst overflows it: queue_overflow is reported and every file still arrives.

    Two writers at once: with a 16-event queue and one writer the watcher's
    reader sometimes kept up and no overflow happened (a flaky test, not a
    lost file).
    """
    lower, restore = _setter("max_queued_events", 2)
    with watching([tmp_path], before_start=lower, after_start=restore) as (watcher, seen):
        writers = [
            subprocess.Popen([sys.executable, "-c", BURST, str(tmp_path), "1500", prefix])
            for prefix in ("a", "b")
        ]
        assert [w.wait(timeout=60) for w in writers] == [0, 0]
        expected = {str(tmp_path / f"{p}{i}.core") for p in ("a", "b") for i in range(1500)}
        wait_for(
            lambda: "queue_overflow" in seen.problem_types(), timeout=10, what="overflow report"
        )
        wait_for(lambda: set(seen.paths()) >= expected, timeout=30, what="all 3,000 files")
        assert watcher.stats()["overflows"] >= 1
        assert watcher.stats()["rescans"] >= 1
    overflow = [p for p in seen.problems if p[0] == "queue_overflow"]
    assert overflow[0][2] == str(tmp_path)
    assert "rescan" in overflow[0][1]
    assert set(seen.paths()) == expected


def test_watch_limit_is_reported_with_the_sysctl_and_the_tree_is_polled(tmp_path: Path) -> None:
    """When max_user_watches runs out, watch_limit names the sysctl and its value, and files in unwatched folders still arrive."""
    folders = [tmp_path / f"d{i}" / "sub" for i in range(40)]
    for f in folders:
        f.mkdir(parents=True)
    lower, restore = _setter("max_user_watches", _root_watches_in_use() + 10)
    with watching([tmp_path], before_start=lower, after_start=restore, poll_seconds=0.3) as (
        w,
        seen,
    ):
        wait_for(
            lambda: "watch_limit" in seen.problem_types(), timeout=5, what="watch_limit report"
        )
        (_, detail, root) = next(p for p in seen.problems if p[0] == "watch_limit")
        assert root == str(tmp_path)
        assert "fs.inotify.max_user_watches" in detail
        assert "sysctl" in detail
        assert "(now " in detail
        expected = set()
        for f in folders[-10:]:
            target = f / "late.core"
            target.write_bytes(b"p" * 32)
            expected.add(str(target))
        wait_for(
            lambda: set(seen.paths()) >= expected, timeout=10, what="files in unwatched folders"
        )
        assert w.stats()["polling_roots"] == 1
    assert max(seen.paths().values()) == 1
