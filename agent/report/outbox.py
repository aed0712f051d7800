"""The durable outbox: every event is committed to SQLite before anyone is told it exists.

One database per agent (WAL, synchronous=FULL) shared by the daemon and the
`egress-guard` CLI: `append` takes the write lock (BEGIN IMMEDIATE), assigns
the next sequence number, links the event into the hash chain and commits,
all in one transaction, so several processes appending never leave a gap or
fork the chain. Each event waits in `deliveries` once per sink and the row is
deleted only when every sink acknowledged it; a poison event goes to
`dead_letters` (kept, never retried forever).

Size policy: the stored event bodies are kept under `max_bytes`. When an
event does not fit, lower-priority events and old heartbeats are evicted
first; when it still does not fit (or the disk itself is full) `OutboxFull`
is raised and counted, and the next heartbeat or error event carries the
counts under `egress_guard.outbox.dropped`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import OutboxError, OutboxFull
from agent.logs import get_logger
from agent.report.chain import canonical, seal
from agent.values import Event

log = get_logger(__name__)

HEARTBEAT = "egress_guard.heartbeat"
# datasets whose documents report the drop counters (the operator reads them there)
_REPORTS_DROPS = frozenset({HEARTBEAT, "egress_guard.error"})
_SQLITE_FULL = 13
_BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    priority INTEGER NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_aside_at TEXT NOT NULL,
    PRIMARY KEY (sink, id)
);
"""


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "full" in str(exc)


class Outbox:
    """SQLite outbox: append (sequence + chain + durable commit), pending, ack, set_aside."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 256 * 2**20,
        sinks: Sequence[str] = ("default",),
    ) -> None:
        if not sinks:
            raise OutboxError(
                "an outbox needs at least one sink label",
                hint="pass the labels of the configured sinks ([[sink]] name or type)",
            )
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.sinks = tuple(dict.fromkeys(sinks))
        self._lock = threading.Lock()
        self._unreported: Counter[str] = Counter()  # drops not yet persisted in meta
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # the outbox lists file paths and findings: readable by the agent's user only
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            # Debian builds zero every freed page: on a full disk that turns an ack into
            # megabytes of WAL writes and the ack fails; bodies hold no key bytes anyway
            self._conn.execute("PRAGMA secure_delete=FAST")
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(
                f"cannot open the outbox {self.path}: {exc}",
                hint="check that agent.state_dir exists, is writable and has free space",
            ) from None

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locked) transaction, rolled back on any error."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _meta(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _persisted_drops(self, conn: sqlite3.Connection) -> Counter[str]:
        rows = conn.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped.%'").fetchall()
        return Counter({str(k).removeprefix("dropped."): int(v) for k, v in rows})

    # -- append -------------------------------------------------------------------

    def append(self, document: dict[str, Any], *, priority: int = 0) -> Event:
        """Store one event durably; returns it with its sequence and chain hash.

        Raises OutboxFull (counted) when neither the size policy nor the disk
        leaves room, OutboxError on any other storage failure.
        """
        event_part = document.get("event")
        if not isinstance(event_part, dict) or not isinstance(event_part.get("id"), str):
            raise OutboxError(
                "an event document needs event.id and event.dataset",
                hint="build documents with agent.report.event",
            )
        event_id = str(event_part["id"])
        dataset = str(event_part.get("dataset", ""))
        with self._lock:
            try:
                return self._append_locked(document, event_id, dataset, priority)
            except OutboxFull:
                self._count_drop(dataset)
                raise
            except sqlite3.Error as exc:
                if _is_disk_full(exc):
                    self._count_drop(dataset)
                    log.error("outbox.event_failed", error_type="disk_full", dataset=dataset)
                    raise OutboxFull(
                        f"the disk holding the outbox {self.path} is full; event not stored",
                        hint="free space on the filesystem of agent.state_dir",
                    ) from None
                log.error("outbox.event_failed", error_type="sqlite", dataset=dataset)
                raise OutboxError(
                    f"cannot store an event in {self.path}: {exc}",
                    hint="check the state_dir filesystem; the event was not stored",
                ) from None

    def _append_locked(
        self, document: dict[str, Any], event_id: str, dataset: str, priority: int
    ) -> Event:
        with self._write() as conn:
            sequence = int(self._meta(conn, "next_sequence") or "1")
            prev = self._meta(conn, "last_hash")
            doc = dict(document)
            doc["event"] = {**document["event"], "sequence": sequence}
            drops = self._persisted_drops(conn) + self._unreported
            if dataset in _REPORTS_DROPS and drops:
                eg = dict(doc.get("egress_guard") or {})
                eg["outbox"] = {"dropped": dict(sorted(drops.items()))}
                doc["egress_guard"] = eg
            sealed = seal(doc, prev)
            body = canonical(sealed)
            size = len(body)
            self._make_room(conn, size, priority, dataset)
            conn.execute(
                "INSERT INTO events (seq, id, dataset, priority, body, size) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sequence, event_id, dataset, priority, body, size),
            )
            conn.executemany(
                "INSERT INTO deliveries (sink, seq) VALUES (?, ?)",
                [(sink, sequence) for sink in self.sinks],
            )
            self._set_meta(conn, "next_sequence", str(sequence + 1))
            self._set_meta(conn, "last_hash", sealed["egress_guard"]["chain"]["hash"])
            reported = dataset in _REPORTS_DROPS and bool(drops)
            if reported:
                conn.execute("DELETE FROM meta WHERE key LIKE 'dropped.%'")
        if reported:
            self._unreported.clear()
        return Event(id=event_id, dataset=dataset, sequence=sequence, body=body, priority=priority)

    def _stored_bytes(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT COALESCE(SUM(size), 0) FROM events").fetchone()
        return int(row[0])

    def _make_room(self, conn: sqlite3.Connection, size: int, priority: int, dataset: str) -> None:
        """Evict heartbeats and lower-priority events (oldest first) until `size` fits."""
        stored = self._stored_bytes(conn)
        if stored + size <= self.max_bytes:
            return
        victims = conn.execute(
            "SELECT seq, dataset, size FROM events WHERE priority < ? OR dataset = ? "
            "ORDER BY priority, seq",
            (priority, HEARTBEAT),
        ).fetchall()
        evicted: list[tuple[int, str]] = []
        for seq, victim_dataset, victim_size in victims:
            if stored + size <= self.max_bytes:
                break
            evicted.append((int(seq), str(victim_dataset)))
            stored -= int(victim_size)
        if stored + size > self.max_bytes:
            log.error("outbox.event_failed", error_type="outbox_full", dataset=dataset)
            raise OutboxFull(
                f"the outbox {self.path} is full ({self.max_bytes} bytes of pending events); "
                f"a {dataset} event was not stored",
                hint="check that the sinks are reachable (events leave once delivered) "
                "or raise outbox.max_mib",
            )
        for seq, victim_dataset in evicted:
            conn.execute("DELETE FROM deliveries WHERE seq = ?", (seq,))
            conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
            self._bump_drop(conn, victim_dataset)
        if evicted:
            log.warning("outbox.events_evicted", count=len(evicted), for_dataset=dataset)

    def _bump_drop(self, conn: sqlite3.Connection, dataset: str, count: int = 1) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
            (f"dropped.{dataset}", str(count)),
        )

    def _count_drop(self, dataset: str) -> None:
        """Count an event that could not be stored; persisted when the disk allows."""
        self._unreported[dataset] += 1
        try:
            with self._write() as conn:
                for name, count in self._unreported.items():
                    self._bump_drop(conn, name, count)
        except sqlite3.Error:
            return  # the disk is full: the count stays in memory for the next report
        self._unreported.clear()

    # -- the shipper's side ---------------------------------------------------------

    def pending(self, sink: str, *, max_events: int, max_bytes: int) -> list[Event]:
        """The oldest events not yet acknowledged by `sink`, within the batch limits.

        The first event is returned even when it alone exceeds max_bytes, so a
        large event cannot block the queue.
        """
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT e.id, e.dataset, e.seq, e.body, e.priority, e.size "
                    "FROM deliveries d JOIN events e ON e.seq = d.seq "
                    "WHERE d.sink = ? ORDER BY d.seq LIMIT ?",
                    (sink, max(1, max_events)),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(
                    f"cannot read the outbox {self.path}: {exc}",
                    hint="check the state_dir filesystem",
                ) from None
        batch: list[Event] = []
        total = 0
        for event_id, dataset, seq, body, prio, size in rows:
            if batch and total + int(size) > max_bytes:
                break
            total += int(size)
            batch.append(
                Event(id=event_id, dataset=dataset, sequence=int(seq), body=body, priority=prio)
            )
        return batch

    def _seqs(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[int]:
        seqs: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT seq FROM events WHERE id IN ({marks})", chunk)  # noqa: S608 - only placeholders
            seqs.extend(int(r[0]) for r in rows)
        return seqs

    def _release(self, conn: sqlite3.Connection, sink: str, seqs: list[int]) -> None:
        """Drop the sink's delivery rows; delete events no sink waits for any more."""
        conn.executemany(
            "DELETE FROM deliveries WHERE sink = ? AND seq = ?", [(sink, s) for s in seqs]
        )
        conn.executemany(
            "DELETE FROM events WHERE seq = ? AND NOT EXISTS "
            "(SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq)",
            [(s,) for s in seqs],
        )

    def ack(self, sink: str, ids: Sequence[str]) -> None:
        """`sink` has the events: forget them for it; delete those every sink has."""
        if not ids:
            return
        with self._lock:
            try:
                with self._write() as conn:
                    self._release(conn, sink, self._seqs(conn, ids))
            except sqlite3.Error as exc:
                # not fatal: unacked events are sent again and the receiver de-duplicates
                raise OutboxError(
                    f"cannot record an acknowledgement in {self.path}: {exc}",
                    hint="events will be sent again; check the state_dir filesystem",
                ) from None

    def set_aside(self, sink: str, ids: Sequence[str], reason: str) -> None:
        """Poison for `sink`: keep the events in dead_letters and stop retrying them."""
        if not ids:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            try:
                with self._write() as conn:
                    seqs = self._seqs(conn, ids)
                    conn.executemany(
                        "INSERT OR REPLACE INTO dead_letters "
                        "(sink, id, seq, dataset, body, reason, set_aside_at) "
                        "SELECT ?, id, seq, dataset, body, ?, ? FROM events WHERE seq = ?",
                        [(sink, reason[:500], now, s) for s in seqs],
                    )
                    self._release(conn, sink, seqs)
            except sqlite3.Error as exc:
                raise OutboxError(
                    f"cannot set events aside in {self.path}: {exc}",
                    hint="they stay pending; check the state_dir filesystem",
                ) from None

    # -- inspection ---------------------------------------------------------------

    def depth(self, sink: str | None = None) -> int:
        """Events still waiting (for any sink, or for the given sink)."""
        with self._lock:
            if sink is None:
                row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE sink = ?", (sink,)
                ).fetchone()
        return int(row[0])

    def dead_letters(self, sink: str | None = None) -> list[tuple[str, str, str]]:
        """(sink, event id, reason) of every event set aside."""
        query = "SELECT sink, id, reason FROM dead_letters"
        args: tuple[str, ...] = ()
        if sink is not None:
            query += " WHERE sink = ?"
            args = (sink,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY seq", args).fetchall()
        return [(str(s), str(i), str(r)) for s, i, r in rows]

    def dropped(self) -> dict[str, int]:
        """Events dropped per dataset and not yet reported in a heartbeat or error event."""
        with self._lock:
            try:
                persisted = self._persisted_drops(self._conn)
            except sqlite3.Error:
                persisted = Counter()
        return dict(persisted + self._unreported)

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._conn.close()
