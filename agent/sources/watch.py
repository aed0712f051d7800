"""The watcher: inotify events (watchdog) -> settle -> one Arrival per complete file version.

The only module that imports watchdog. Measured behaviour it is built around
(watchdog 7.1, see DESIGN.md): a rename into a folder gives no close event;
files in a fresh subfolder often get only a synthesised "created"; a wide
event mask overflows the kernel queue in bursts, a narrow `event_filter` does
not; and on overflow watchdog only logs and rebuilds its watches. So:

- the kernel mask is narrow (create, move, close-write, delete-self), and the
  handler does nothing but append to a deque: the settle thread does the work;
- every new folder is walked after its watch is placed (the inotify race);
- IN_Q_OVERFLOW and ENOSPC (watch limit) are caught where watchdog's inotify
  reader sees them (a small InotifyFD subclass), reported through
  `on_problem`, and answered by a rescan or by polling that root;
- a file moved out of a tree (every quarantine by rename is one) must not hold
  up the events behind it: watchdog keeps each IN_MOVED_FROM 0.5 s at the head
  of a FIFO to pair it, which delayed every arrival by up to 0.5 s while
  quarantines went on (`_OvertakingQueue`);
- a missing root is reported and retried; the others are watched meanwhile.

Threads: `egress-guard.watch` (watchdog's dispatcher), `egress-guard.inotify`
(watchdog's kernel reader) and `egress-guard.settle` (ours: settle, walks,
polls, delivery). `on_arrival` and `on_problem` are called from the settle
thread only.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyEvent, InotifyFD
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.utils.delayed_queue import DelayedQueue

from agent.config import WatchSection
from agent.logs import get_logger
from agent.sources import attribution
from agent.sources.settle import Note, SettleTracker
from agent.sources.sweep import Excluder, files
from agent.values import Arrival, ProcessInfo

log = get_logger(__name__)

# the narrow mask that lost 0 of 50,000 files; modify/attrib/open events are what overflow
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]
_MAX_USER_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")

OnArrival = Callable[[Arrival], None]
OnProblem = Callable[[str, str, str | None], None]


class _ReportingInotifyFD(InotifyFD):
    """watchdog's inotify reader, plus the two signals it only logs or swallows."""

    def __init__(
        self, on_overflow: Callable[[], None], on_watch_limit: Callable[[str], None]
    ) -> None:
        super().__init__()
        self.name = "egress-guard.inotify"
        self._on_overflow = on_overflow
        self._on_watch_limit = on_watch_limit

    def add_callback(self, path: bytes, mask: Any, callback: Any, id_: Any) -> Any:
        try:
            return super().add_callback(path, mask, callback, id_)
        except OSError as exc:
            # watchdog drops ENOSPC for subfolders silently: that folder would go unwatched
            if exc.errno == errno.ENOSPC:
                self._on_watch_limit(os.fsdecode(path))
            raise

    def _add_callback(self, path: bytes, mask: Any, callback: Any, id_: Any) -> Any:
        # watchdog 7.1 adds a new folder's subfolders while walking it and again when their
        # own IN_CREATE is read (mkdir -p bursts); it then warns "Callback ... already exists",
        # which is expected here and, under warnings-as-errors, killed the reader thread
        watch = self._get_or_create_watch(path, mask)
        watch.callbacks[id_] = callback
        return watch.wd

    def handle_event(self, event: InotifyEvent) -> None:
        super().handle_event(event)  # on overflow this rebuilds the watches first
        if event.is_queue_overflow:
            self._on_overflow()


_T = TypeVar("_T")


class _OvertakingQueue(DelayedQueue[_T]):
    """watchdog's move-pairing queue, except that a held item never holds up the items behind it.

    watchdog holds each IN_MOVED_FROM for `delay` (0.5 s) so that a matching
    IN_MOVED_TO can take it out and travel as a pair, but it holds it at the
    head of one FIFO: every event behind it waited too. At 20 quarantines a
    second (each a rename out of the watched tree) arrivals ran 0.45-0.5 s
    late all the time. Here held items wait in their own FIFO: an unpaired
    moved-from (a move out of the tree, reported as a deletion, which the
    agent does not act on) comes out after its delay, everything else at once
    and in order. A pair is queued where its IN_MOVED_TO was, as before.
    """

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self._ready: deque[_T] = deque()
        self._held: deque[tuple[_T, float]] = deque()  # oldest first: one delay for all

    def put(self, element: _T, *, delay: bool = False) -> None:
        with self._not_empty:
            if delay:
                self._held.append((element, time.monotonic() + self.delay))
            else:
                self._ready.append(element)
            self._not_empty.notify()

    def get(self) -> _T | None:
        with self._not_empty:
            while not self._closed:
                now = time.monotonic()
                if self._held and self._held[0][1] <= now:
                    return self._held.popleft()[0]
                if self._ready:
                    return self._ready.popleft()
                self._not_empty.wait(self._held[0][1] - now if self._held else None)
            return None

    def clear(self) -> None:
        with self._lock:
            self._ready.clear()
            self._held.clear()

    def find(self, predicate: Callable[[_T], bool]) -> _T | None:
        with self._lock:
            for element in (*(e for e, _ in self._held), *self._ready):
                if predicate(element):
                    return element
        return None

    def remove(self, predicate: Callable[[_T], bool]) -> _T | None:
        with self._lock:
            for i, (element, _) in enumerate(self._held):
                if predicate(element):
                    del self._held[i]
                    return element
            for i, element in enumerate(self._ready):
                if predicate(element):
                    del self._ready[i]
                    return element
        return None


class _MoveGrouper(InotifyMoveEventGrouper):
    def __init__(self) -> None:
        super().__init__()
        self._queue = _OvertakingQueue(self.delay)


@dataclass
class _WatchGroup(InotifyWatchGroup):
    _move_event_grouper: InotifyMoveEventGrouper = field(default_factory=_MoveGrouper, init=False)


class _Emitter(InotifyEmitter):
    """watchdog's inotify emitter over a watch group whose move pairing stalls nothing."""

    def on_thread_start(self) -> None:
        # as InotifyEmitter.on_thread_start, with our watch group
        self._inotify = _WatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
        )


class _Observer(BaseObserver):
    """A watchdog observer over our reporting inotify reader."""

    def __init__(self, inotify_fd: _ReportingInotifyFD) -> None:
        super().__init__(_Emitter, timeout=1.0, inotify_fd=inotify_fd)
        self.name = "egress-guard.watch"
        self._inotify = inotify_fd

    def reader_alive(self) -> bool:
        """False once the inotify reader thread has died (not merely been stopped)."""
        return self._inotify.is_alive()

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify.stop()
        self._inotify.join()


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's dispatcher thread: record and wake, nothing else (keeps the queue drained)."""

    def __init__(self, root: str, push: Callable[[str, FileSystemEvent], None]) -> None:
        self._root = root
        self._push = push

    def dispatch(self, event: FileSystemEvent) -> None:
        self._push(self._root, event)


def _max_user_watches() -> str:
    try:
        return _MAX_USER_WATCHES.read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def _writers(paths: Collection[str]) -> Mapping[str, ProcessInfo]:
    scan = attribution.open_writers(paths)
    return {path: attribution.describe(min(pids)) for path, pids in scan.pids.items()}


class Watcher:
    """Watches roots recursively and calls `on_arrival` once per complete file version."""

    def __init__(
        self,
        watches: Sequence[WatchSection],
        *,
        settle_seconds: float,
        max_wait_seconds: float,
        on_arrival: OnArrival,
        on_problem: OnProblem,
        exclude: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = 10.0,
        attribute: bool = True,
    ) -> None:
        self._watches = {os.path.abspath(w.path): w for w in watches}
        self._excluders = {
            root: Excluder((*w.exclude, *exclude)) for root, w in self._watches.items()
        }
        self._on_arrival = on_arrival
        self._on_problem = on_problem
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._tracker = SettleTracker(
            settle_seconds=settle_seconds,
            max_wait_seconds=max_wait_seconds,
            clock=clock,
            writers=_writers if attribute else None,
        )
        self._events: deque[tuple[str, FileSystemEvent]] = deque()
        self._commands: deque[tuple[str, str | None]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._observer: _Observer | None = None
        self._settle_thread: threading.Thread | None = None
        self._placed: dict[str, ObservedWatch] = {}
        self._missing: set[str] = set()
        self._polling: set[str] = set()
        self._limit_reported: set[str] = set()
        self._next_maintenance = 0.0
        self._counts = {"events": 0, "overflows": 0, "rescans": 0, "watch_limit": 0}
        self._started = False
        self._stopped = False

    # -- public ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Place every watch (recursively) before returning; missing roots are retried later."""
        if self._started:
            return
        self._started = True
        inotify_fd = _ReportingInotifyFD(self._overflowed, self._limit_reached)
        inotify_fd.start()
        self._observer = _Observer(inotify_fd)
        self._observer.start()
        for root in self._watches:
            self._place(root)
        self._next_maintenance = self._clock() + self._poll_seconds
        self._settle_thread = threading.Thread(
            target=self._run, name="egress-guard.settle", daemon=False
        )
        self._settle_thread.start()

    def request_rescan(self, root: str | None = None) -> None:
        """Walk the tree(s) and deliver every regular file again (cause overflow_rescan)."""
        self._commands.append(("rescan", root))
        self._wake.set()

    def stats(self) -> dict[str, int]:
        """Counters for heartbeats: events seen, arrivals delivered, pending files, overflows, rescans."""
        return {
            "events": self._counts["events"],
            "arrivals": self._tracker.delivered_count,
            "pending": self._tracker.pending,
            "overflows": self._counts["overflows"],
            "rescans": self._counts["rescans"],
            "watch_limit": self._counts["watch_limit"],
            "polling_roots": len(self._polling),
            "missing_roots": len(self._missing),
        }

    def stop(self) -> None:
        """Stop watching and join every thread; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        # sources first: no new events while the settle thread winds down
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        self._stopping.set()
        self._wake.set()
        if self._settle_thread is not None:
            self._settle_thread.join()

    # -- watchdog-side callbacks (any thread: record and wake only) ------------------------------

    def _push(self, root: str, event: FileSystemEvent) -> None:
        self._events.append((root, event))
        self._counts["events"] += 1
        if not self._wake.is_set():
            self._wake.set()

    def _overflowed(self) -> None:
        self._commands.append(("overflow", None))
        self._wake.set()

    def _limit_reached(self, path: str) -> None:
        self._commands.append(("watch_limit", path))
        self._wake.set()

    # -- placing watches -------------------------------------------------------------------------

    def _place(self, root: str) -> bool:
        assert self._observer is not None
        section = self._watches[root]
        try:
            placed = self._observer.schedule(
                _Handler(root, self._push),
                root,
                recursive=section.recursive,
                event_filter=_EVENT_FILTER,
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._polling.add(root)  # reported through _limit_reached already
                return False
            if root not in self._missing:
                self._missing.add(root)
                self._commands.append(("missing", root))
            return False
        if not os.path.isdir(root):
            # watchdog accepts a plain file as a "root"; we watch folders only
            self._observer.unschedule(placed)
            if root not in self._missing:
                self._missing.add(root)
                self._commands.append(("missing", root))
            return False
        self._placed[root] = placed
        self._missing.discard(root)
        log.info("watch.root_placed", root=root, recursive=section.recursive)
        return True

    def _root_of(self, path: str) -> str | None:
        best: str | None = None
        for root in self._watches:
            if (path == root or path.startswith(root.rstrip("/") + "/")) and (
                best is None or len(root) > len(best)
            ):
                best = root
        return best

    # -- the settle thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self._drain_commands()
            self._drain_events()
            now = self._clock()
            if now >= self._next_maintenance:
                self._maintain()
                self._next_maintenance = now + self._poll_seconds
            for arrival in self._tracker.due():
                self._deliver(arrival)
            timeout = self._next_maintenance - now
            next_due = self._tracker.next_due()
            if next_due is not None:
                timeout = min(timeout, next_due - self._clock())
            if self._events or self._commands:
                continue
            self._wake.wait(min(max(timeout, 0.01), 1.0))

    def _deliver(self, arrival: Arrival) -> None:
        try:
            self._on_arrival(arrival)
        except Exception:  # isolation point: a failing consumer must not stop the watcher
            log.exception("watch.arrival_failed", error_type="consumer_failed", path=arrival.path)

    def _problem(self, error_type: str, detail: str, root: str | None) -> None:
        log.error("watch.problem_detected", error_type=error_type, detail=detail, root=root)
        try:
            self._on_problem(error_type, detail, root)
        except Exception:  # isolation point: reporting must not stop the watcher
            log.exception("watch.problem_failed", error_type="consumer_failed")

    def _drain_commands(self) -> None:
        rescans: set[str | None] = set()
        while self._commands:
            command, arg = self._commands.popleft()
            if command == "rescan":
                rescans.add(arg)
            elif command == "overflow":
                self._counts["overflows"] += 1
                if None not in rescans:
                    for root in self._placed:
                        self._problem(
                            "queue_overflow",
                            "the kernel dropped inotify events; rescanning this tree (raise "
                            "fs.inotify.max_queued_events if this repeats)",
                            root,
                        )
                rescans.add(None)
            elif command == "watch_limit" and arg is not None:
                self._watch_limit(arg)
            elif command == "missing" and arg is not None:
                self._problem(
                    "root_missing",
                    f"{arg} does not exist or is not a folder; retrying every "
                    f"{self._poll_seconds:g} s",
                    arg,
                )
        # several overflows or requests in one go cost one walk per tree
        if None in rescans:
            self._rescan(None)
        else:
            for one in rescans:
                self._rescan(one)

    def _watch_limit(self, path: str) -> None:
        root = self._root_of(path)
        self._counts["watch_limit"] += 1
        if root is None or root in self._limit_reported:
            return  # one report per root; it is polled from now on
        self._limit_reported.add(root)
        self._polling.add(root)
        self._problem(
            "watch_limit",
            f"inotify watch limit reached under {root} (at {path}): raise "
            f"fs.inotify.max_user_watches (now {_max_user_watches()}) with "
            "`sysctl -w fs.inotify.max_user_watches=N` and a file in /etc/sysctl.d/; "
            f"until a restart this tree is polled every {self._poll_seconds:g} s",
            root,
        )

    def _drain_events(self) -> None:
        while self._events:
            root, event = self._events.popleft()
            excluder = self._excluders[root]
            if isinstance(event, DirMovedEvent | FileMovedEvent):
                target = os.fsdecode(event.dest_path)
                note = Note.MOVED_IN
            else:
                target = os.fsdecode(event.src_path)
                note = Note.CLOSED if isinstance(event, FileClosedEvent) else Note.CREATED
            if not target or self._root_of(target) is None:
                continue
            if event.is_directory:
                if not excluder.excluded(root, target, is_dir=True):
                    self._walk(root, target, note)
            elif not excluder.excluded(root, target):
                self._tracker.note(target, note, root=root)

    def _walk(self, root: str, top: str, note: Note) -> None:
        # placed watch first, walk second: a file made before the watch existed is found here
        for path, _st in files(
            root,
            top=top,
            excluder=self._excluders[root],
            recursive=self._watches[root].recursive,
            on_problem=self._unreadable,
        ):
            self._tracker.note(path, note, root=root)

    def _unreadable(self, path: str, reason: str) -> None:
        log.warning("watch.folder_skipped", error_type="unreadable", path=path, reason=reason)

    def _rescan(self, only: str | None) -> None:
        roots = [only] if only is not None else list(self._placed) + list(self._polling)
        for root in dict.fromkeys(roots):
            if root not in self._watches:
                continue
            self._counts["rescans"] += 1
            log.info("watch.rescan_started", root=root)
            self._walk(root, root, Note.RESCAN)

    def _maintain(self) -> None:
        """Retry missing roots, notice vanished ones, poll roots past the watch limit."""
        assert self._observer is not None
        if not self._observer.reader_alive() and not self._stopping.is_set():
            # the kernel reader died: no more events will come, so every tree is polled
            for root in self._watches:
                if root not in self._polling:
                    self._polling.add(root)
                    self._problem(
                        "watch_failed",
                        f"the inotify reader stopped; {root} is polled every "
                        f"{self._poll_seconds:g} s until the agent is restarted",
                        root,
                    )
        for root, placed in list(self._placed.items()):
            if not os.path.isdir(root):
                del self._placed[root]
                self._observer.unschedule(placed)
                self._missing.add(root)
                self._commands.append(("missing", root))
        for root in list(self._missing):
            if os.path.isdir(root) and self._place(root):
                self._walk(root, root, Note.CREATED)
        for root in self._polling:
            self._walk(root, root, Note.POLL)
