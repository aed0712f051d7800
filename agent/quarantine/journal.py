"""The move journal: one append-only file per move in progress, fsynced before each step.

A move writes `<vault>/.journal/<id>.jsonl`: the first record holds the plan
(where the file is, which inode, how it moves, the metadata to write), each
later record names the step about to be taken. `Vault.recover()` reads the
journals left by a crash and finishes or rolls back each move by looking at
the files themselves; the last step only tells it how far the move got. A
record torn by a crash mid-write is ignored (it was never fsynced, so the step
it names was never started).

Fault injection (the only test hook): `EGRESS_GUARD_FAULT=<step>` in the
environment, read when the vault is built, makes the process SIGKILL itself
right after the journal record for that step is on disk (or, for `copying`,
after the first chunk of a copy is written).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULT_ENV = "EGRESS_GUARD_FAULT"

# the steps of a move, in order; a plan goes through a subset of them
RENAME_STEPS = ("begin", "rename", "meta", "done")
COPY_STEPS = ("begin", "copy", "commit", "meta", "unlink", "done")
FAULT_POINTS = frozenset({*RENAME_STEPS, *COPY_STEPS, "copying"})


def fsync_dir(dir_fd: int) -> None:
    """Make the directory entries created, renamed or removed in `dir_fd` durable."""
    os.fsync(dir_fd)


def fault_from_env() -> str | None:
    """The fault point named in the environment, if it is a known one."""
    value = os.environ.get(FAULT_ENV, "").strip()
    return value if value in FAULT_POINTS else None


def crash_if(fault: str | None, step: str) -> None:
    """SIGKILL this process when `step` is the injected fault point (tests only)."""
    if fault is not None and fault == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True, kw_only=True)
class Entry:
    """A move read back from its journal."""

    item_id: str
    plan: dict[str, Any]
    steps: list[str] = field(default_factory=list)

    @property
    def last_step(self) -> str:
        """The last step the move recorded before it stopped."""
        return self.steps[-1] if self.steps else "begin"


class Journal:
    """The journal folder of one vault."""

    def __init__(self, directory: Path, *, fault: str | None = None) -> None:
        self.directory = directory
        self.fault = fault

    def _path(self, item_id: str) -> Path:
        return self.directory / f"{item_id}.jsonl"

    def begin(self, item_id: str, plan: dict[str, Any]) -> int:
        """Create the journal of a new move with its plan; returns its open fd."""
        fd = os.open(
            self._path(item_id),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
            0o600,
        )
        try:
            self._write(fd, {"step": "begin", "plan": plan})
            dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fsync_dir(dfd)
            finally:
                os.close(dfd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                self._path(item_id).unlink()
            raise
        crash_if(self.fault, "begin")
        return fd

    def step(self, fd: int, name: str) -> None:
        """Record that `name` is about to happen, durably, before doing it."""
        self._write(fd, {"step": name})
        crash_if(self.fault, name)

    @staticmethod
    def _write(fd: int, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)

    def end(self, fd: int, item_id: str) -> None:
        """The move is complete (or undone): drop its journal."""
        os.close(fd)
        self.remove(item_id)

    def remove(self, item_id: str) -> None:
        """Delete a journal and make the deletion durable."""
        with contextlib.suppress(FileNotFoundError):
            self._path(item_id).unlink()
        dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fsync_dir(dfd)
        finally:
            os.close(dfd)

    def pending(self) -> list[Entry]:
        """Moves a crash left unfinished, oldest first by name."""
        entries: list[Entry] = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return entries
        for name in names:
            if not name.endswith(".jsonl"):
                continue
            entry = self._read(self.directory / name, name.removesuffix(".jsonl"))
            if entry is not None:
                entries.append(entry)
        return entries

    def _read(self, path: Path, item_id: str) -> Entry | None:
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            return None
        records: list[dict[str, Any]] = []
        for raw in lines:
            try:
                record = json.loads(raw)
            except ValueError:
                break  # torn tail: never fsynced, the step it names never started
            if isinstance(record, dict):
                records.append(record)
        if not records or not isinstance(records[0].get("plan"), dict):
            # the plan never reached the disk: nothing was touched yet
            return Entry(item_id=item_id, plan={}, steps=[])
        return Entry(
            item_id=item_id,
            plan=records[0]["plan"],
            steps=[str(r.get("step")) for r in records[1:]],
        )
