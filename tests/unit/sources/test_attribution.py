"""Writer attribution from /proc: a file open for writing is found, a read-only open is not."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from agent.sources.attribution import find_writer, open_writers


def test_process_holding_a_file_open_for_writing_is_found(tmp_path: Path) -> None:
    """find_writer names this process, its executable and user while it holds the file open for writing."""
    f = tmp_path / "dump.core"
    with f.open("wb") as handle:
        handle.write(b"x")
        writer = find_writer(str(f), budget_seconds=5.0)
    assert writer is not None
    me = psutil.Process(os.getpid())
    assert writer.pid == os.getpid()
    assert writer.name == me.name()
    assert writer.executable == me.exe()
    assert writer.user == me.username()


def test_read_only_open_is_not_a_writer(tmp_path: Path) -> None:
    """A file that is only open for reading (as the scanner opens it) has no writer."""
    f = tmp_path / "dump.core"
    f.write_bytes(b"x")
    with f.open("rb"):
        assert find_writer(str(f), budget_seconds=5.0) is None
    assert open_writers([], budget_seconds=5.0).pids == {}


def test_scan_out_of_budget_says_it_is_incomplete(tmp_path: Path) -> None:
    """A /proc pass that runs out of time reports complete=False rather than a confident 'no writer'."""
    f = tmp_path / "dump.core"
    ticks = iter(range(1000000))
    scan = open_writers([str(f)], budget_seconds=0.5, clock=lambda: float(next(ticks)))
    assert not scan.complete
