"""When is a file complete? The settle logic between raw events and Arrivals (pure, clock injected).

A file becomes a candidate on created / moved-in / closed / rescan / poll
notes. It is complete, and handed out once per version (device, inode, size,
mtime_ns) and path:

- CLOSED at once when a close-after-write was seen;
- SETTLED when size and mtime stayed the same for `settle_seconds` and no
  process holds it open for writing (the injected `writers` probe);
- MOVED_IN after a shorter settle, for renames and moves into the tree
  (which produce no close event);
- MAX_WAIT after `max_wait_seconds` when it never settles (still growing, or
  held open); it then lingers: a later change starts a new window and the new
  version is handed out again.

The tracker never sleeps and never reads the clock itself except through
`clock`, so tests drive it with a fake clock and a fake `stat`.
"""

from __future__ import annotations

import heapq
import itertools
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from agent.values import Arrival, ArrivalCause, ProcessInfo

#: moves and renames are atomic; the short settle only lets a racing writer show itself
MOVED_SETTLE_SECONDS = 0.25
#: attribution is skipped for a tick with more new files than this (a burst)
ATTRIBUTION_BATCH = 64
#: how many delivered versions are remembered for de-duplication
REMEMBER_VERSIONS = 200_000


class Note(StrEnum):
    """What the watcher saw about a path."""

    CREATED = "created"
    CLOSED = "closed"
    MOVED_IN = "moved_in"
    RESCAN = "rescan"
    POLL = "poll"


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one file: what "delivered once" is keyed on (with the path)."""

    device: int
    inode: int
    size: int
    mtime_ns: int


def stat_version(path: str) -> Version | None:
    """The version of a regular file, or None when it is gone, a symlink or not regular."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Version(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


StatFn = Callable[[str], Version | None]
#: given candidate paths, the writer of each path some process holds open for writing
WritersFn = Callable[[Collection[str]], Mapping[str, ProcessInfo]]


@dataclass(slots=True, kw_only=True)
class _Pending:
    path: str
    root: str | None
    cause: ArrivalCause
    first_seen: float
    changed_at: float
    version: Version | None
    settle: float
    due: float | None = None  # None: not in the heap (being checked right now)
    closed: bool = False
    forced: bool = False
    lingering: bool = False
    writer: ProcessInfo | None = None


class SettleTracker:
    """Turns notes about paths into Arrivals, each complete version once."""

    def __init__(
        self,
        *,
        settle_seconds: float,
        max_wait_seconds: float,
        clock: Callable[[], float],
        stat: StatFn = stat_version,
        writers: WritersFn | None = None,
        moved_settle_seconds: float = MOVED_SETTLE_SECONDS,
        writers_interval_seconds: float = 0.2,
        remember: int = REMEMBER_VERSIONS,
    ) -> None:
        self._settle = max(0.0, settle_seconds)
        self._max_wait = max(self._settle, max_wait_seconds)
        self._moved_settle = min(self._settle, moved_settle_seconds)
        self._clock = clock
        self._stat = stat
        self._writers = writers
        self._writers_interval = writers_interval_seconds
        self._next_writers_scan = float("-inf")
        self._remember = remember
        self._pending: dict[str, _Pending] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._delivered: OrderedDict[str, Version] = OrderedDict()
        self._unattributed: list[str] = []
        self.delivered_count = 0

    # -- input -----------------------------------------------------------------------------------

    def note(self, path: str, kind: Note, *, root: str | None = None) -> None:
        """Record what was seen about `path`; cheap (one lstat at most)."""
        now = self._clock()
        entry = self._pending.get(path)
        if entry is None:
            version = self._stat(path)
            if version is None:
                return  # gone already, or not a regular file: nothing to scan
            if kind is Note.POLL and self._delivered.get(path) == version:
                return  # a poll re-finding a version already handed out
            entry = _Pending(
                path=path,
                root=root,
                cause=_CAUSE[kind],
                first_seen=now,
                changed_at=now,
                version=version,
                settle=self._moved_settle if kind is Note.MOVED_IN else self._settle,
            )
            self._pending[path] = entry
            self._unattributed.append(path)
        if kind is Note.CLOSED:
            entry.closed = True
            self._schedule(entry, now)
        elif kind is Note.RESCAN:
            entry.forced = True
            soon = now + entry.settle
            self._schedule(entry, soon if entry.due is None else min(entry.due, soon))
        elif kind is Note.MOVED_IN:
            entry.cause = ArrivalCause.MOVED_IN
            entry.settle = self._moved_settle
            entry.lingering = False
            self._schedule(entry, now + entry.settle)
        elif entry.due is None:
            self._schedule(entry, now + entry.settle)

    # -- output ----------------------------------------------------------------------------------

    def due(self) -> list[Arrival]:
        """Arrivals for every candidate that is complete now."""
        now = self._clock()
        ready: list[_Pending] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, path = heapq.heappop(self._heap)
            entry = self._pending.get(path)
            if entry is not None and entry.due == when:
                entry.due = None
                ready.append(entry)
        arrivals: list[Arrival] = []
        quiet: list[_Pending] = []
        for entry in ready:
            self._check(entry, now, arrivals, quiet)
        self._settle_quiet(quiet, now, arrivals)
        return arrivals

    def next_due(self) -> float | None:
        """Clock time of the next scheduled check, or None when nothing is pending."""
        while self._heap:
            when, _, path = self._heap[0]
            entry = self._pending.get(path)
            if entry is not None and entry.due == when:
                return when
            heapq.heappop(self._heap)
        return None

    @property
    def pending(self) -> int:
        """Files being watched until they are complete."""
        return len(self._pending)

    # -- internals -------------------------------------------------------------------------------

    def _schedule(self, entry: _Pending, when: float) -> None:
        if entry.due == when:
            return  # already queued for that instant: one heap item per entry and time
        entry.due = when
        heapq.heappush(self._heap, (when, next(self._seq), entry.path))

    def _check(
        self, entry: _Pending, now: float, arrivals: list[Arrival], quiet: list[_Pending]
    ) -> None:
        version = self._stat(entry.path)
        if version is None:
            del self._pending[entry.path]
            return
        if version != entry.version:
            entry.version = version
            entry.changed_at = now
            if entry.lingering:
                # a change after a max-wait delivery opens a new window for the new version
                entry.lingering = False
                entry.first_seen = now
        if entry.closed:
            self._deliver(entry, ArrivalCause.CLOSED, arrivals)
            return
        if now - entry.changed_at >= entry.settle:
            if not (entry.forced or entry.lingering) and self._delivered.get(entry.path) == version:
                del self._pending[entry.path]  # seen again, unchanged: it went out already
                return
            quiet.append(entry)
        elif now - entry.first_seen >= self._max_wait and not entry.lingering:
            self._deliver_max_wait(entry, now, arrivals)
        else:
            self._schedule(entry, min(entry.changed_at + entry.settle, self._window_end(entry)))

    def _settle_quiet(self, quiet: list[_Pending], now: float, arrivals: list[Arrival]) -> None:
        """Quiet files are complete unless a process still holds them open for writing."""
        if not quiet:
            self._attribute(now, [])
            return
        held = self._attribute(now, [e.path for e in quiet])
        if held is None:
            # the /proc probe ran moments ago; look again at the next slot rather than guess
            for entry in quiet:
                self._schedule(entry, self._next_writers_scan)
            return
        for entry in quiet:
            if entry.path not in held:
                if entry.lingering and not entry.forced:
                    del self._pending[entry.path]  # closed at last, and this version went out
                else:
                    self._deliver(entry, entry.cause, arrivals)
            elif not entry.lingering and now - entry.first_seen >= self._max_wait:
                self._deliver_max_wait(entry, now, arrivals)
            elif entry.lingering:
                self._schedule(entry, now + max(entry.settle, self._writers_interval))
            else:
                self._schedule(entry, min(now + max(entry.settle, 0.05), self._window_end(entry)))

    def _attribute(self, now: float, quiet_paths: list[str]) -> set[str] | None:
        """Ask the writers probe about quiet files (and new files, when few); None = not now."""
        fresh = self._unattributed
        self._unattributed = []
        if self._writers is None:
            return set()
        if len(fresh) > ATTRIBUTION_BATCH:
            fresh = []  # a burst: attribution is best effort, completeness is not
        fresh = [p for p in fresh if p in self._pending]
        if not quiet_paths and not fresh:
            return set()
        if now < self._next_writers_scan:
            return None if quiet_paths else set()
        self._next_writers_scan = now + self._writers_interval
        found = self._writers([*quiet_paths, *fresh])
        for path, info in found.items():
            entry = self._pending.get(path)
            if entry is not None and entry.writer is None:
                entry.writer = info
        return set(found)

    def _window_end(self, entry: _Pending) -> float:
        return entry.first_seen + self._max_wait if not entry.lingering else float("inf")

    def _deliver_max_wait(self, entry: _Pending, now: float, arrivals: list[Arrival]) -> None:
        self._deliver(entry, ArrivalCause.MAX_WAIT, arrivals, keep=True)
        entry.lingering = True
        entry.first_seen = now
        self._schedule(entry, now + max(entry.settle, self._writers_interval))

    def _deliver(
        self, entry: _Pending, cause: ArrivalCause, arrivals: list[Arrival], *, keep: bool = False
    ) -> None:
        version = entry.version
        assert version is not None
        if entry.forced or self._delivered.get(entry.path) != version:
            arrivals.append(
                Arrival(path=entry.path, cause=cause, root=entry.root, writer=entry.writer)
            )
            self.delivered_count += 1
            self._delivered[entry.path] = version
            self._delivered.move_to_end(entry.path)
            if len(self._delivered) > self._remember:
                self._delivered.popitem(last=False)
        entry.forced = False
        entry.closed = False
        if not keep:
            del self._pending[entry.path]


_CAUSE = {
    Note.CREATED: ArrivalCause.SETTLED,
    Note.POLL: ArrivalCause.SETTLED,
    Note.CLOSED: ArrivalCause.CLOSED,
    Note.MOVED_IN: ArrivalCause.MOVED_IN,
    Note.RESCAN: ArrivalCause.OVERFLOW_RESCAN,
}
