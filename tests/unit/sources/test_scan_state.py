"""ScanState (SQLite) and catch-up: unchanged versions are skipped across a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import WatchSection
from agent.sources.catchup import catchup
from agent.sources.state import ScanState, ScanStateError, identity_of


def _identity(path: Path):  # type: ignore[no-untyped-def]
    return identity_of(str(path), os.lstat(path))


def test_recorded_version_is_unchanged_until_size_or_mtime_changes(
    state_dir: Path, tmp_path: Path
) -> None:
    """A recorded (device, inode, size, mtime) is unchanged; a write makes it changed again."""
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    state = ScanState(state_dir / "scan-state.db")
    ident = _identity(f)
    assert not state.unchanged(ident)
    state.record(ident, "clean")
    assert state.unchanged(ident)
    assert state.result(ident) == "clean"
    os.utime(f, ns=(ident.mtime_ns + 5, ident.mtime_ns + 5))
    assert not state.unchanged(_identity(f))
    state.close()
    state.close()


def test_forget_by_identity_and_by_path(state_dir: Path, tmp_path: Path) -> None:
    """forget() drops an inode by identity, or every inode last seen at a path."""
    state = ScanState(state_dir / "s.db")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    state.record(_identity(a), "clean")
    state.record(_identity(b), "keys")
    assert len(state) == 2
    state.forget(_identity(a))
    state.forget(str(b))
    assert len(state) == 0
    state.close()


def test_state_survives_a_restart(state_dir: Path, tmp_path: Path) -> None:
    """What one ScanState recorded, a new one opened on the same file still knows."""
    f = tmp_path / "f"
    f.write_bytes(b"1")
    s1 = ScanState(state_dir / "scan-state.db")
    s1.record(_identity(f), "clean")
    s1.close()
    s2 = ScanState(state_dir / "scan-state.db")
    assert s2.unchanged(_identity(f))
    s2.close()


def test_unopenable_database_is_a_scan_state_error_with_a_hint(tmp_path: Path) -> None:
    """A state path that cannot be created raises ScanStateError naming it, with a hint."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ScanStateError) as info:
        ScanState(blocker / "scan-state.db")
    assert str(blocker) in str(info.value)
    assert info.value.hint


def test_catchup_returns_only_new_and_changed_files(state_dir: Path, tmp_path: Path) -> None:
    """After a simulated restart, catch-up yields the new and the changed files, not the unchanged or excluded."""
    root = tmp_path / "drop"
    (root / "sub").mkdir(parents=True)
    same, changed = root / "same.core", root / "sub" / "changed.core"
    same.write_bytes(b"1")
    changed.write_bytes(b"2")
    state = ScanState(state_dir / "scan-state.db")
    state.record(_identity(same), "clean")
    state.record(_identity(changed), "clean")
    state.close()
    # the agent is down: one file changes, two arrive (one excluded)
    changed.write_bytes(b"22")
    (root / "sub" / "new.core").write_bytes(b"3")
    (root / "skip.tmp").write_bytes(b"4")
    state = ScanState(state_dir / "scan-state.db")
    found = list(catchup([WatchSection(path=str(root), exclude=("*.tmp",))], state))
    state.close()
    assert sorted(os.path.relpath(a.path, root) for a in found) == [
        "sub/changed.core",
        "sub/new.core",
    ]
    assert {str(a.cause) for a in found} == {"catchup"}
    assert {a.root for a in found} == {str(root)}


def test_scans_that_never_ended_are_counted_per_version_across_restarts(
    state_dir: Path, tmp_path: Path
) -> None:
    """begin() counts the scans of a version that began and did not end (the process died);
    end() clears the count; a new version of the file starts again at one."""
    f = tmp_path / "core"
    f.write_bytes(b"x" * 100)
    ident = _identity(f)
    state = ScanState(state_dir / "scan-state.db")
    assert state.begin(ident) == 1
    state.close()  # the process dies here: the row stays
    state = ScanState(state_dir / "scan-state.db")
    assert state.begin(ident) == 2
    os.utime(f, ns=(ident.mtime_ns + 5, ident.mtime_ns + 5))
    assert state.begin(_identity(f)) == 1  # another version
    state.end(_identity(f))
    assert state.begin(_identity(f)) == 1
    state.end(_identity(f))
    state.close()
