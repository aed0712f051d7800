"""Shared helpers for the watcher tests: collect Arrivals from real inotify, wait with deadlines."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import WatchSection
from agent.sources.watch import Watcher
from agent.values import Arrival

SETTLE = 0.3
MAX_WAIT = 2.0


@dataclass
class Seen:
    """One delivered Arrival with the file's size and inode at delivery time."""

    arrival: Arrival
    size: int | None
    inode: int | None
    at: float


@dataclass
class Collector:
    """Thread-safe record of what the watcher delivered and reported."""

    seen: list[Seen] = field(default_factory=list)
    problems: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_arrival(self, arrival: Arrival) -> None:
        try:
            st = os.lstat(arrival.path)
            size, inode = st.st_size, st.st_ino
        except OSError:
            size = inode = None
        with self.lock:
            self.seen.append(Seen(arrival, size, inode, time.monotonic()))

    def on_problem(self, error_type: str, detail: str, root: str | None) -> None:
        with self.lock:
            self.problems.append((error_type, detail, root))

    def paths(self) -> Counter[str]:
        with self.lock:
            return Counter(s.arrival.path for s in self.seen)

    def for_path(self, path: str | Path) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.arrival.path == str(path)]

    def problem_types(self) -> set[str]:
        with self.lock:
            return {p[0] for p in self.problems}


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds or the deadline passes (then fail naming `what`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        threading.Event().wait(0.02)


@contextmanager
def watching(
    roots: Sequence[Path],
    *,
    exclude: Sequence[str] = (),
    watch_exclude: Sequence[str] = (),
    poll_seconds: float = 0.5,
    max_wait: float = MAX_WAIT,
    before_start: Callable[[], None] | None = None,
    after_start: Callable[[], None] | None = None,
) -> Iterator[tuple[Watcher, Collector]]:
    """A started Watcher over `roots` (small settle and max-wait), stopped on exit."""
    collector = Collector()
    watcher = Watcher(
        [WatchSection(path=str(r), exclude=tuple(watch_exclude)) for r in roots],
        settle_seconds=SETTLE,
        max_wait_seconds=max_wait,
        on_arrival=collector.on_arrival,
        on_problem=collector.on_problem,
        exclude=exclude,
        poll_seconds=poll_seconds,
    )
    try:
        if before_start is not None:
            before_start()
        try:
            watcher.start()
        finally:
            if after_start is not None:
                after_start()
        yield watcher, collector
    finally:
        watcher.stop()
