"""The scan-state store: which version of each inode was scanned last, so restarts skip unchanged files.

SQLite in the state folder (`scan-state.db`), keyed by (device, inode), holding
size, mtime_ns, path, result and scanned_at. A version is "unchanged" only
when device, inode, size and mtime_ns all match: a new file that reuses an
inode number has another mtime (or size), and is scanned. One connection,
shared by the scan workers under a lock (writes are tiny; WAL keeps readers
off the writer's back).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import EgressGuardError
from agent.values import FileIdentity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scanned (
    device     INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    scanned_at REAL    NOT NULL,
    PRIMARY KEY (device, inode)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS scanned_path ON scanned (path);
CREATE TABLE IF NOT EXISTS scanning (
    device     INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    PRIMARY KEY (device, inode)
) WITHOUT ROWID;
"""


class ScanStateError(EgressGuardError):
    """The scan-state database could not be opened or written."""


def identity_of(path: str, st: os.stat_result) -> FileIdentity:
    """The FileIdentity of a stat result (kept as a name for the stage's callers)."""
    return FileIdentity.of(path, st)


class ScanState:
    """(device, inode) -> the version last scanned and what the scan found."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread off: scan workers share it, serialised by self._lock
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ScanStateError(
                f"cannot open the scan-state database {path}: {exc}",
                hint="check that agent.state_dir exists and is writable by the agent; "
                "deleting scan-state.db only costs one full rescan",
            ) from None
        self._closed = False

    def unchanged(self, identity: FileIdentity) -> bool:
        """True when this exact version (device, inode, size, mtime_ns) was scanned already."""
        row = self._query(
            "SELECT size, mtime_ns FROM scanned WHERE device = ? AND inode = ?",
            (identity.device, identity.inode),
        )
        return row is not None and (row[0], row[1]) == (identity.size, identity.mtime_ns)

    def result(self, identity: FileIdentity) -> str | None:
        """What the last scan of this exact version found, or None if it was not scanned."""
        row = self._query(
            "SELECT result FROM scanned WHERE device = ? AND inode = ? AND size = ? AND mtime_ns = ?",
            (identity.device, identity.inode, identity.size, identity.mtime_ns),
        )
        return None if row is None else str(row[0])

    def record(self, identity: FileIdentity, result: str) -> None:
        """Remember that this version was scanned, and with what result."""
        self._write(
            "INSERT INTO scanned (device, inode, size, mtime_ns, path, result, scanned_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, inode) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, path = excluded.path, "
            "result = excluded.result, scanned_at = excluded.scanned_at",
            (
                identity.device,
                identity.inode,
                identity.size,
                identity.mtime_ns,
                identity.path,
                result,
                time.time(),
            ),
        )

    def begin(self, identity: FileIdentity) -> int:
        """Note that this version is being scanned; how many scans of it began and never ended.

        A row outlives a scan only when the process died during it (a crash in a parser,
        an OOM kill): the count is what lets the daemon stop rescanning a file that kills it.
        """
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT size, mtime_ns, attempts FROM scanning WHERE device = ? AND inode = ?",
                    (identity.device, identity.inode),
                ).fetchone()
                same = row is not None and (row[0], row[1]) == (identity.size, identity.mtime_ns)
                attempts = int(row[2]) + 1 if same else 1
                self._db.execute(
                    "INSERT INTO scanning (device, inode, size, mtime_ns, attempts) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device, inode) DO UPDATE SET "
                    "size = excluded.size, mtime_ns = excluded.mtime_ns, attempts = excluded.attempts",
                    (identity.device, identity.inode, identity.size, identity.mtime_ns, attempts),
                )
            except sqlite3.Error as exc:
                raise self._error("write", exc) from None
        return attempts

    def end(self, identity: FileIdentity) -> None:
        """The scan begun for this inode ended (whatever it found)."""
        self._write(
            "DELETE FROM scanning WHERE device = ? AND inode = ?", (identity.device, identity.inode)
        )

    def forget(self, identity_or_path: FileIdentity | str) -> None:
        """Drop what is known about an inode (or every inode last seen at a path)."""
        if isinstance(identity_or_path, str):
            self._write("DELETE FROM scanned WHERE path = ?", (identity_or_path,))
        else:
            self._write(
                "DELETE FROM scanned WHERE device = ? AND inode = ?",
                (identity_or_path.device, identity_or_path.inode),
            )

    def __len__(self) -> int:
        row = self._query("SELECT COUNT(*) FROM scanned", ())
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def _query(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            try:
                row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise self._error("read", exc) from None
        return row

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, args)
            except sqlite3.Error as exc:
                raise self._error("write", exc) from None

    def _error(self, what: str, exc: sqlite3.Error) -> ScanStateError:
        return ScanStateError(
            f"cannot {what} the scan-state database {self._path}: {exc}",
            hint="a full disk or a damaged file; deleting scan-state.db only costs one full rescan",
        )
