"""Writer attribution: which process has a file open for writing, read from /proc (best effort).

One pass over /proc/*/fd answers for a whole batch of paths, so the settle
thread pays for one scan per tick rather than one per file; the pass has a
time budget and reports whether it finished. Reading other users' fd tables
needs CAP_SYS_PTRACE (or root); without it only our own user's processes are
seen, which is still correct for the "is it still being written" check on
files we own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import psutil

from agent.values import ProcessInfo

_PROC = "/proc"
_WRITE_ACCESS = os.O_WRONLY | os.O_RDWR
DEFAULT_BUDGET_SECONDS = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterScan:
    """Result of one /proc pass: pids holding each path open for writing."""

    pids: dict[str, tuple[int, ...]] = field(default_factory=dict)
    complete: bool = True


def _fd_flags(pid: str, fd: str) -> int | None:
    try:
        with open(f"{_PROC}/{pid}/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"flags:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def open_writers(
    paths: Collection[str],
    *,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> WriterScan:
    """Which of `paths` some process holds open for writing (read-only opens do not count)."""
    if not paths:
        return WriterScan()
    # the kernel reports canonical paths; a configured root may go through a symlink
    wanted: dict[str, str] = {}
    for p in paths:
        wanted[p] = p
        real = os.path.realpath(p)
        if real != p:
            wanted[real] = p
    deadline = clock() + budget_seconds
    found: dict[str, list[int]] = {}
    try:
        pids = [d for d in os.listdir(_PROC) if d.isdigit()]
    except OSError:
        return WriterScan(complete=False)
    for pid in pids:
        if clock() > deadline:
            return WriterScan(pids={k: tuple(v) for k, v in found.items()}, complete=False)
        fd_dir = f"{_PROC}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # exited, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            original = wanted.get(target)
            if original is None:
                continue
            flags = _fd_flags(pid, fd)
            if flags is not None and flags & _WRITE_ACCESS:
                found.setdefault(original, []).append(int(pid))
    return WriterScan(pids={k: tuple(v) for k, v in found.items()})


def describe(pid: int) -> ProcessInfo:
    """Name, executable and user of a pid; fields it cannot read stay None."""
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return ProcessInfo(pid=pid)
    values: dict[str, str | None] = {"name": None, "exe": None, "username": None}
    for attr in values:
        try:
            values[attr] = getattr(proc, attr)() or None
        except psutil.Error:
            continue
    return ProcessInfo(
        pid=pid, name=values["name"], executable=values["exe"], user=values["username"]
    )


def find_writer(path: str, *, budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> ProcessInfo | None:
    """A process holding `path` open for writing, or None (not found within the budget)."""
    pids = open_writers([path], budget_seconds=budget_seconds).pids.get(path)
    return describe(min(pids)) if pids else None
