"""The watcher against real inotify: bursts, new folders, renames, links, copies, slow writers, exclusions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.sources import watch
from tests.integration.watch_support import MAX_WAIT, SETTLE, wait_for, watching

WRITER = r"""
import os, sys
root, worker, folders, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for d in range(folders):
    folder = os.path.join(root, f"w{worker}", f"g{d}", "deep")
    os.makedirs(folder)
    for i in range(per):
        with open(os.path.join(folder, f"f{i}.core"), "wb") as f:
            f.write(b"x" * (i + 1))
"""


def _write_burst(root: Path, *, workers: int, folders: int, per: int) -> set[str]:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(w), str(folders), str(per)])
        for w in range(workers)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    return {
        os.path.join(root, f"w{w}", f"g{d}", "deep", f"f{i}.core")
        for w in range(workers)
        for d in range(folders)
        for i in range(per)
    }


def test_burst_of_10000_files_in_100_new_folders_is_delivered_completely_and_once(
    tmp_path: Path,
) -> None:
    """10,000 files written by 4 processes into 100 freshly created nested folders: each delivered exactly once."""
    with watching([tmp_path]) as (watcher, seen):
        expected = _write_burst(tmp_path, workers=4, folders=25, per=100)
        wait_for(lambda: set(seen.paths()) >= expected, timeout=60, what="all 10,000 files")
        wait_for(lambda: watcher.stats()["pending"] == 0, timeout=10, what="nothing pending")
    counts = seen.paths()
    assert set(counts) == expected
    assert max(counts.values()) == 1
    per_version = {(s.arrival.path, s.inode) for s in seen.seen}
    assert len(per_version) == len(seen.seen) == 10_000
    assert all(s.size == int(Path(s.arrival.path).stem[1:]) + 1 for s in seen.seen)


def test_files_created_in_a_folder_before_its_watch_existed_are_delivered(tmp_path: Path) -> None:
    """Files made in a new folder in the instant before inotify watches it are found by the folder walk."""
    with watching([tmp_path]) as (_, seen):
        folder = tmp_path / "new" / "nested" / "deeper"
        folder.mkdir(parents=True)
        expected = set()
        for i in range(50):
            f = folder / f"early{i}.dmp"
            f.write_bytes(b"y" * 10)
            expected.add(str(f))
        wait_for(lambda: set(seen.paths()) >= expected, timeout=10, what="files in the new folder")
    assert max(seen.paths().values()) == 1


def test_rename_link_move_and_copy_are_delivered_in_their_final_form(tmp_path: Path) -> None:
    """Rename into place, hard link, move in from outside and cp over a file each deliver the final content."""
    root = tmp_path / "watched"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    existing = root / "copied-over.core"
    existing.write_bytes(b"old")
    with watching([root]) as (_, seen):
        tmp = root / ".renamed.core.part"
        tmp.write_bytes(b"r" * 4000)
        tmp.rename(root / "renamed.core")
        (outside / "linked.core").write_bytes(b"l" * 3000)
        os.link(outside / "linked.core", root / "linked.core")
        (outside / "moved.core").write_bytes(b"m" * 2000)
        (outside / "moved.core").rename(root / "moved.core")
        (outside / "source.core").write_bytes(b"c" * 5000)
        subprocess.run(["cp", str(outside / "source.core"), str(existing)], check=True)
        final = {
            "renamed.core": 4000,
            "linked.core": 3000,
            "moved.core": 2000,
            "copied-over.core": 5000,
        }
        wait_for(
            lambda: all(seen.for_path(root / name) for name in final),
            timeout=10,
            what="the four final files",
        )
    for name, size in final.items():
        got = seen.for_path(root / name)
        assert [s.size for s in got] == [size], name
    assert seen.for_path(root / "moved.core")[0].arrival.cause in ("moved_in", "settled")
    assert seen.for_path(root / "renamed.core")[0].arrival.cause == "moved_in"


def test_a_file_moved_out_of_the_tree_does_not_hold_up_the_arrivals_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watchdog holds a moved-out file's event to pair it with a move-in; files after it still arrive."""
    # the hold is 0.5 s in watchdog; made longer than the deadline below, a stall cannot pass
    monkeypatch.setattr(watch._MoveGrouper, "delay", 60.0)
    root = tmp_path / "watched"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    with watching([root]) as (_, seen):
        first = root / "first.core"
        first.write_bytes(b"f" * 100)
        wait_for(lambda: seen.for_path(first) != [], timeout=10, what="the first file")
        first.rename(outside / "first.core")  # moved out, as a quarantine by rename does
        part = root / ".renamed.core.part"
        part.write_bytes(b"r" * 200)
        part.rename(root / "renamed.core")
        (root / "after.core").write_bytes(b"a" * 300)
        wait_for(
            lambda: (
                seen.for_path(root / "after.core") != []
                and seen.for_path(root / "renamed.core") != []
            ),
            timeout=10,
            what="the files written after the move out",
        )
    assert [s.size for s in seen.for_path(root / "after.core")] == [300]
    # a rename inside the tree is still paired (and settles as a move, not a new file)
    assert [str(s.arrival.cause) for s in seen.for_path(root / "renamed.core")] == ["moved_in"]


SLOW = r"""
import sys, time
with open(sys.argv[1], "wb") as f:
    for i in range(10):
        f.write(b"s" * 1000)
        f.flush()
        time.sleep(0.2)
"""


def test_file_written_slowly_is_delivered_once_after_it_closes(tmp_path: Path) -> None:
    """A file growing in pieces over 2 s is not delivered while written, then once, whole."""
    target = tmp_path / "slow.core"
    with watching([tmp_path], max_wait=30.0) as (_, seen):
        proc = subprocess.Popen([sys.executable, "-c", SLOW, str(target)])
        assert proc.wait(timeout=30) == 0
        closed_at = time.monotonic()
        wait_for(lambda: seen.for_path(target) != [], timeout=10, what="the slow file")
        # anything else would have arrived well within a settle period after the close
        wait_for(lambda: time.monotonic() > closed_at + 2 * SETTLE, timeout=5, what="a settle")
    got = seen.for_path(target)
    assert [(s.size, str(s.arrival.cause)) for s in got] == [(10_000, "closed")]


def test_file_held_open_is_delivered_after_max_wait_and_again_when_it_changes(
    tmp_path: Path,
) -> None:
    """A stable file still open for writing waits for max_wait; a later change delivers the new version."""
    target = tmp_path / "held.core"
    with watching([tmp_path]) as (_, seen), target.open("wb") as handle:
        handle.write(b"h" * 100)
        handle.flush()
        opened = time.monotonic()
        wait_for(
            lambda: seen.for_path(target) != [], timeout=MAX_WAIT + 5, what="max-wait delivery"
        )
        first = seen.for_path(target)[0]
        assert first.at - opened >= MAX_WAIT - 0.2
        assert str(first.arrival.cause) == "max_wait"
        assert first.arrival.writer is not None
        assert first.arrival.writer.pid == os.getpid()
        handle.write(b"h" * 100)
        handle.flush()
        wait_for(
            lambda: len(seen.for_path(target)) == 2, timeout=MAX_WAIT + 5, what="second version"
        )
    assert [s.size for s in seen.for_path(target)] == [100, 200]


def test_excluded_files_and_folders_are_not_delivered(tmp_path: Path) -> None:
    """Global and per-watch exclusion globs keep matching files (and folders) out; others still arrive."""
    with watching([tmp_path], exclude=["*.partial"], watch_exclude=["cache/**", "cache"]) as (
        _,
        seen,
    ):
        (tmp_path / "a.partial").write_bytes(b"1")
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / "b.core").write_bytes(b"2")
        sentinel = tmp_path / "sentinel.core"
        sentinel.write_bytes(b"3")
        wait_for(lambda: seen.for_path(sentinel) != [], timeout=10, what="the sentinel")
        wait_for(
            lambda: time.monotonic() > seen.for_path(sentinel)[0].at + 2 * SETTLE,
            timeout=5,
            what="settle",
        )
    assert set(seen.paths()) == {str(sentinel)}


def test_missing_root_is_reported_and_watched_once_it_appears(tmp_path: Path) -> None:
    """A root that does not exist yet is reported as root_missing; the others work; it is picked up later."""
    present, missing = tmp_path / "present", tmp_path / "later"
    present.mkdir()
    with watching([present, missing]) as (_, seen):
        wait_for(lambda: "root_missing" in seen.problem_types(), timeout=5, what="root_missing")
        (present / "a.core").write_bytes(b"1")
        wait_for(
            lambda: seen.for_path(present / "a.core") != [], timeout=5, what="file in present root"
        )
        missing.mkdir()
        (missing / "early.core").write_bytes(b"2")
        wait_for(
            lambda: seen.for_path(missing / "early.core") != [],
            timeout=10,
            what="file in late root",
        )
        (missing / "b.core").write_bytes(b"3")
        wait_for(
            lambda: seen.for_path(missing / "b.core") != [], timeout=5, what="event in late root"
        )
    assert next(p for p in seen.problems if p[0] == "root_missing")[2] == str(missing)


def test_stop_joins_every_thread_and_is_idempotent(tmp_path: Path) -> None:
    """After stop() no watcher thread is left running, and a second stop() is harmless."""
    import threading

    with watching([tmp_path]) as (watcher, _):
        names = {t.name for t in threading.enumerate()}
        assert {"egress-guard.watch", "egress-guard.settle", "egress-guard.inotify"} <= names
        watcher.stop()
        watcher.stop()
        left = {t.name for t in threading.enumerate() if t.name.startswith("egress-guard.")}
        assert left == set()
    shutil.rmtree(tmp_path, ignore_errors=True)
