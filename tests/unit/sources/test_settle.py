"""SettleTracker with a fake clock, a fake file table and a fake writers probe: no sleeps."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sources.settle import Note, SettleTracker, Version
from agent.values import ArrivalCause, ProcessInfo

SETTLE = 1.0
MAX_WAIT = 10.0


class World:
    """A clock, files (path -> Version) and the set of paths held open for writing."""

    def __init__(self) -> None:
        self.now = 0.0
        self.files: dict[str, Version] = {}
        self.held: set[str] = set()
        self._inode = 100

    def clock(self) -> float:
        return self.now

    def stat(self, path: str) -> Version | None:
        return self.files.get(path)

    def writers(self, paths: Collection[str]) -> Mapping[str, ProcessInfo]:
        return {p: ProcessInfo(pid=42, name="writer") for p in paths if p in self.held}

    def write(self, path: str, size: int) -> None:
        old = self.files.get(path)
        if old is None:
            self._inode += 1
            inode = self._inode
        else:
            inode = old.inode
        self.files[path] = Version(1, inode, size, int(self.now * 1e9) + 1)

    def tracker(self, **kw: float) -> SettleTracker:
        return SettleTracker(
            settle_seconds=kw.get("settle", SETTLE),
            max_wait_seconds=kw.get("max_wait", MAX_WAIT),
            clock=self.clock,
            stat=self.stat,
            writers=self.writers,
            writers_interval_seconds=0.0,
        )


def run(
    world: World, tracker: SettleTracker, until: float, step: float = 0.1
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    while world.now < until:
        out += [(a.path, str(a.cause)) for a in tracker.due()]
        world.now = round(world.now + step, 6)
    out += [(a.path, str(a.cause)) for a in tracker.due()]
    return out


def test_closed_file_is_delivered_at_once() -> None:
    """A file closed after writing is complete at once, with cause closed."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 10)
    t.note("/d/a", Note.CLOSED, root="/d")
    arrivals = t.due()
    assert [(a.path, a.cause, a.root) for a in arrivals] == [("/d/a", ArrivalCause.CLOSED, "/d")]
    assert t.pending == 0


def test_created_file_waits_for_the_settle_period() -> None:
    """A created file with no close event is delivered only after size and mtime were quiet for settle_seconds."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 10)
    t.note("/d/a", Note.CREATED)
    assert run(w, t, until=0.9) == []
    assert run(w, t, until=1.2) == [("/d/a", "settled")]


def test_growing_file_is_not_delivered_until_it_stops_growing() -> None:
    """A file whose size keeps changing is held back, then delivered once after it goes quiet."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 1)
    t.note("/d/a", Note.CREATED)
    seen: list[tuple[str, str]] = []
    for i in range(2, 40):  # grows every 0.2 s for ~7.6 s (< max wait)
        seen += run(w, t, until=w.now + 0.2)
        w.write("/d/a", i)
    assert seen == []
    assert run(w, t, until=w.now + 1.5) == [("/d/a", "settled")]
    assert run(w, t, until=w.now + 30) == []


def test_stable_file_held_open_is_delivered_after_max_wait_and_again_when_it_changes() -> None:
    """A quiet file still open for writing waits for max_wait, then is redelivered only when it changes."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 5)
    w.held.add("/d/a")
    t.note("/d/a", Note.CREATED)
    assert run(w, t, until=9.8) == []
    assert run(w, t, until=10.3) == [("/d/a", "max_wait")]
    assert run(w, t, until=15.0) == []  # unchanged: not again
    w.write("/d/a", 8)
    got = run(w, t, until=26.0)
    assert got == [("/d/a", "max_wait")]
    w.held.clear()
    t.note("/d/a", Note.CLOSED)  # closed at last, same version: nothing new
    assert run(w, t, until=30.0) == []
    assert t.pending == 0


def test_file_that_never_settles_is_delivered_at_max_wait() -> None:
    """A file that changes constantly is delivered with cause max_wait rather than never."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 1)
    t.note("/d/a", Note.CREATED)
    got: list[tuple[str, str]] = []
    size = 1
    while w.now < 10.5:
        size += 1
        w.write("/d/a", size)
        got += run(w, t, until=w.now + 0.3)
    assert got == [("/d/a", "max_wait")]


def test_moved_in_file_is_delivered_after_a_short_settle() -> None:
    """A file renamed into place is delivered with cause moved_in, well before settle_seconds."""
    w = World()
    t = w.tracker(settle=5.0)
    w.write("/d/final", 3)
    t.note("/d/final", Note.MOVED_IN)
    assert run(w, t, until=0.5) == [("/d/final", "moved_in")]


def test_same_version_seen_twice_is_delivered_once() -> None:
    """A created note arriving after the close of the same version does not deliver it again."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    t.note("/d/a", Note.CLOSED)
    t.note("/d/a", Note.CREATED)
    assert run(w, t, until=5.0) == [("/d/a", "closed")]
    t.note("/d/a", Note.CREATED)
    t.note("/d/a", Note.POLL)
    assert run(w, t, until=10.0) == []


def test_new_version_of_a_delivered_file_is_delivered() -> None:
    """Copying over a delivered file (a new size/mtime) delivers the new version."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    t.note("/d/a", Note.CLOSED)
    assert len(t.due()) == 1
    w.now = 1.0
    w.write("/d/a", 9)
    t.note("/d/a", Note.CLOSED)
    assert run(w, t, until=2.0) == [("/d/a", "closed")]
    assert t.delivered_count == 2


def test_rescan_delivers_a_version_again() -> None:
    """A rescan note delivers every file, even versions handed out before (the consumer may have dropped them)."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    t.note("/d/a", Note.CLOSED)
    assert len(t.due()) == 1
    t.note("/d/a", Note.RESCAN)
    assert run(w, t, until=2.0) == [("/d/a", "overflow_rescan")]


def test_repeated_rescans_of_a_pending_file_deliver_it_once() -> None:
    """Rescan notes piling onto a file that is already waiting to settle deliver it once."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    t.note("/d/a", Note.CREATED)
    t.note("/d/a", Note.RESCAN)
    t.note("/d/a", Note.RESCAN)
    assert run(w, t, until=3.0) == [("/d/a", "settled")]
    assert t.pending == 0


def test_vanished_file_is_dropped() -> None:
    """A candidate deleted before it settles is forgotten, not delivered."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    t.note("/d/a", Note.CREATED)
    del w.files["/d/a"]
    assert run(w, t, until=3.0) == []
    assert t.pending == 0
    t.note("/d/gone", Note.CLOSED)  # never existed as a regular file
    assert t.due() == []


def test_writer_found_for_a_new_file_is_attached_to_its_arrival() -> None:
    """The process holding a new file open is named in the Arrival's writer."""
    w = World()
    t = w.tracker()
    w.write("/d/a", 7)
    w.held.add("/d/a")
    t.note("/d/a", Note.CREATED)
    assert t.due() == []  # first tick: attribution
    w.held.clear()
    t.note("/d/a", Note.CLOSED)
    (arrival,) = t.due()
    assert arrival.writer == ProcessInfo(pid=42, name="writer")


def test_next_due_tells_when_to_look_again() -> None:
    """next_due is the settle deadline of the oldest candidate, and None when idle."""
    w = World()
    t = w.tracker()
    assert t.next_due() is None
    w.write("/d/a", 1)
    t.note("/d/a", Note.CREATED)
    assert t.next_due() == SETTLE


step = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3), st.integers(1, 50)),
    st.tuples(
        st.sampled_from(["created", "closed", "moved", "poll"]), st.integers(0, 3), st.just(0)
    ),
    st.tuples(st.just("wait"), st.just(0), st.integers(1, 30)),
    st.tuples(st.just("hold"), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("release"), st.integers(0, 3), st.just(0)),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(step, max_size=40))
def test_no_version_is_delivered_twice_and_every_quiet_file_is_delivered(
    steps: list[tuple[str, int, int]],
) -> None:
    """Whatever the order of events, each (path, version) goes out at most once and every file ends up delivered."""
    w = World()
    t = w.tracker()
    delivered: list[tuple[str, Version]] = []
    notes = {
        "created": Note.CREATED,
        "closed": Note.CLOSED,
        "moved": Note.MOVED_IN,
        "poll": Note.POLL,
    }

    def tick() -> None:
        for a in t.due():
            v = w.files[a.path]
            delivered.append((a.path, v))

    for kind, n, arg in steps:
        path = f"/d/f{n}"
        if kind == "write":
            w.write(path, arg)
            t.note(path, Note.CREATED)
        elif kind in notes and path in w.files:
            t.note(path, notes[kind])
        elif kind == "wait":
            for _ in range(arg):
                w.now = round(w.now + 0.1, 6)
                tick()
        elif kind == "hold":
            w.held.add(path)
        elif kind == "release":
            w.held.discard(path)
        tick()
    w.held.clear()
    for _ in range(int((MAX_WAIT + SETTLE) * 10) + 10):
        w.now = round(w.now + 0.1, 6)
        tick()
    assert len(delivered) == len(set(delivered))
    final = {(p, v) for p, v in w.files.items()}
    assert final <= set(delivered)
