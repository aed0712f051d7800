"""Scan one file: open it safely, unpack it, match rules window by window, validate each hit.

Files of any size are read in windows of `chunk_bytes` that overlap by
`overlap_bytes` (larger than the largest key encoding), so memory stays
bounded and a key across a window boundary is still found. A hit is handled
only by the window whose non-overlapping part holds it, so nothing is
reported twice. Compressed members stream through the same loop.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from agent.logs import get_logger
from agent.scan import dumps, unpack
from agent.scan.inventory import Inventory
from agent.scan.rules import RuleSet
from agent.scan.validators import VALIDATORS, Hit
from agent.scan.windows import (
    LazyFileHash,
    Window,
    fd_windows,
    file_sha256,
    stream_windows,
    window_memory_kept,
)
from agent.values import (
    Arrival,
    ErrorType,
    FileIdentity,
    KeyFinding,
    ProcessInfo,
    ScanProblem,
    ScanResult,
)

log = get_logger("agent.scan")

HEAD_BYTES = 64 * 1024


class Allowlist(Protocol):
    """Fingerprints of public test keys (their private halves are published)."""

    def contains(self, fingerprint: str) -> bool:
        """True when the key is a known public test key."""
        ...


class _NoAllowlist:
    def contains(self, fingerprint: str) -> bool:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    """How to scan: window sizes, limits, when to run the number search."""

    chunk_bytes: int = 32 * 1024 * 1024
    overlap_bytes: int = 1024 * 1024
    number_search: str = "dumps"  # dumps | all | off
    max_hits_per_file: int = 2000
    report_unvalidated: bool = False
    limits: unpack.Limits = field(default_factory=unpack.Limits)


@dataclass(slots=True)
class _FileState:
    """Mutable accumulator for one file's scan (never leaves this module)."""

    findings: list[KeyFinding] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    hits: int = 0
    bytes_scanned: int = 0
    process: ProcessInfo | None = None
    hit_limit_noted: bool = False
    file_hash: LazyFileHash | None = None  # the raw file's bytes as scanned (not members)


def _open_nofollow(path: str) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        # O_NOATIME keeps the scan from touching atime (a forensic trace); needs ownership
        return os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        return os.open(path, flags)


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def identity_of(path: str, st: os.stat_result) -> FileIdentity:
    """The FileIdentity of a stat result (kept as a name for the stage's callers)."""
    return FileIdentity.of(path, st)


class Scanner:
    """Scans files with one compiled rule set; safe to share between threads."""

    def __init__(
        self,
        rules: RuleSet,
        settings: ScanSettings | None = None,
        *,
        inventory: Inventory | None = None,
        allowlist: Allowlist | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.settings = settings or ScanSettings()
        self.inventory = inventory or Inventory()
        self.allowlist: Allowlist = allowlist or _NoAllowlist()
        self._clock = clock

    # -- public -----------------------------------------------------------------

    def scan(self, arrival: Arrival) -> ScanResult:
        """Scan one file; every failure becomes a ScanProblem, never an exception."""
        started = self._clock()
        path = arrival.path
        try:
            fd = _open_nofollow(path)
        except OSError as exc:
            return self._unreadable(arrival, exc, started)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                problem = ScanProblem(
                    error_type=ErrorType.NOT_REGULAR,
                    stage="open",
                    detail="not a regular file; only regular files are scanned",
                )
                return ScanResult(arrival=arrival, identity=None, sha256=None, problems=(problem,))
            identity = identity_of(path, st)
            state = _FileState()
            self._scan_fd(fd, identity, state)
            findings = self._finalise(state.findings)
            sha256: str | None = None
            changed = _changed(st, os.fstat(fd))
            if findings and not changed:
                # the hash goes in the event and lets the vault verify its copy; a file with no
                # finding is never moved or reported, so it is never hashed
                if state.file_hash is not None:
                    sha256 = state.file_hash.hexdigest(st.st_size)
                if sha256 is None:  # a container, or findings only after unpacking
                    sha256 = file_sha256(fd, self.settings.chunk_bytes)
                changed = _changed(st, os.fstat(fd))
            if changed:
                state.problems.append(
                    ScanProblem(
                        error_type=ErrorType.CHANGED_DURING_SCAN,
                        stage="scan",
                        detail="the file changed while it was scanned; it will be scanned again",
                    )
                )
        except OSError as exc:
            return self._unreadable(arrival, exc, started)
        finally:
            os.close(fd)
        return ScanResult(
            arrival=arrival,
            identity=identity,
            sha256=sha256,
            findings=findings,
            problems=tuple(state.problems),
            rules_version=self.rules.version,
            bytes_scanned=state.bytes_scanned,
            dumped_process=state.process,
            duration_seconds=self._clock() - started,
        )

    def scan_bytes(self, data: bytes, *, name: str = "<memory>") -> tuple[KeyFinding, ...]:
        """Scan an in-memory buffer (rule self-tests); same windows, validators and dedup."""
        state = _FileState()
        self._scan_windows(iter([(0, data, True)]), container=None, name=name, state=state)
        return self._finalise(state.findings)

    # -- internals --------------------------------------------------------------

    def _unreadable(self, arrival: Arrival, exc: OSError, started: float) -> ScanResult:
        if exc.errno == errno.ELOOP:
            kind, detail = ErrorType.SYMLINK, "is a symbolic link; links are never followed"
        elif exc.errno == errno.ENOENT:
            kind, detail = ErrorType.VANISHED, "the file disappeared before it could be scanned"
        else:
            kind = ErrorType.UNREADABLE
            detail = f"cannot read: {exc.strerror}; check the agent's permissions"
        problem = ScanProblem(error_type=kind, stage="open", detail=detail)
        return ScanResult(
            arrival=arrival,
            identity=None,
            sha256=None,
            problems=(problem,),
            rules_version=self.rules.version,
            duration_seconds=self._clock() - started,
        )

    def _scan_fd(self, fd: int, identity: FileIdentity, state: _FileState) -> None:
        s = self.settings
        head = os.pread(fd, HEAD_BYTES, 0)
        kind = unpack.detect(head)
        name = os.path.basename(identity.path)
        if kind is not None:
            opened = False
            for item in unpack.layers(identity.path, fd, head, s.limits):
                if isinstance(item, ScanProblem):
                    state.problems.append(item)
                    continue
                opened = True
                self._scan_windows(
                    stream_windows(item.stream, s.chunk_bytes, s.overlap_bytes),
                    container=item.container,
                    name=item.container.rsplit("!", 1)[-1],
                    state=state,
                )
            if opened:
                return
        # a plain file, or a container that could not be opened: its raw bytes are scanned
        state.file_hash = LazyFileHash(fd, s.chunk_bytes)
        self._scan_windows(
            fd_windows(fd, s.chunk_bytes, s.overlap_bytes),
            container=None,
            name=name,
            state=state,
            total_size=identity.size,
        )

    def _wants_numbers(self, name: str, info: dumps.DumpInfo | None) -> bool:
        mode = self.settings.number_search
        if mode == "all":
            return True
        if mode == "off":
            return False
        return info is not None or dumps.is_dump_name(name)

    def _scan_windows(
        self,
        windows: Iterator[Window],
        *,
        container: str | None,
        name: str,
        state: _FileState,
        total_size: int | None = None,
    ) -> None:
        overlap = self.settings.overlap_bytes
        info: dumps.DumpInfo | None = None
        numbers: dumps.NumberSearch | None = None
        first = True
        stream_findings: list[KeyFinding] = []
        file_hash = state.file_hash if container is None else None
        keeps = False  # a finding _finalise will keep was seen in this stream
        any_kept = self.settings.report_unvalidated
        covered = 0  # stream offset up to which windows' own bytes were scanned
        for base, data, last in windows:
            if first:
                first = False
                info = dumps.inspect(data, total_size)
                if info is not None:
                    state.problems.extend(info.problems)
                    if state.process is None and info.process is not None:
                        state.process = info.process
                if self._wants_numbers(name, info):
                    numbers = dumps.NumberSearch(
                        inventory=self.inventory, keep_buffers=window_memory_kept(), memory=info
                    )
            own_end = len(data) if last else len(data) - overlap
            # a hole the windows skipped (see fd_windows) counts: its bytes are known zeros
            state.bytes_scanned += own_end + max(0, base - covered)
            covered = base + own_end
            view = memoryview(data)
            if info is not None and info.late_notes is not None:
                with view[:own_end] as own:
                    info.late_notes.feed(base, own)
            try:
                matches = self.rules.compiled.scan(data)
            except Exception as exc:  # noqa: BLE001 - an engine failure on one window must not stop the file
                state.problems.append(
                    ScanProblem(
                        error_type=ErrorType.ENGINE_FAILED,
                        stage="match",
                        detail=f"rule engine failed on a window: {type(exc).__name__}",
                        container=container,
                    )
                )
                matches = []
            for match in matches:
                validator = VALIDATORS.get(str(match.meta.get("validator", "")))
                if validator is None:
                    continue
                for start, length in match.spots(base):
                    if start >= own_end:
                        continue  # the next window owns it
                    if state.hits >= self.settings.max_hits_per_file:
                        self._note_hit_limit(state, container)
                        break
                    state.hits += 1
                    hit = Hit(
                        rule=match.rule,
                        meta=match.meta,
                        data=view,
                        start=start,
                        end=start + length,
                        base_offset=base,
                        container=container,
                    )
                    stream_findings.extend(self._validate(validator, hit, state))
            if numbers is not None:
                try:
                    stream_findings.extend(
                        replace(f, container=container)
                        for f in numbers.feed(view, base, base, base + own_end)
                    )
                except Exception as exc:  # noqa: BLE001 - a number-search bug must not lose the file
                    numbers = None
                    state.problems.append(
                        ScanProblem(
                            error_type=ErrorType.VALIDATOR_FAILED,
                            stage="number_search",
                            detail=f"number search failed: {type(exc).__name__}",
                            container=container,
                        )
                    )
            if file_hash is not None:
                # started by the first finding _finalise will keep, so a clean file is never hashed
                keeps = keeps or any(f.validated or any_kept for f in stream_findings)
                with view[:own_end] as own:
                    file_hash.add(base, own, wanted=keeps)
            view.release()
            # drop the window before the next is read: one window is live at a time, and
            # the allocator hands its memory to the next one (see windows.keep_window_memory)
            del data, view
        if numbers is not None:
            state.problems.extend(numbers.problems)
        if info is not None and info.late_notes is not None:
            process, problems = info.late_notes.finish()
            state.problems.extend(problems)
            if state.process is None:
                state.process = process
        if info is not None and info.regions:
            stream_findings = [
                replace(f, address=info.address_of(f.offset)) if f.address is None else f
                for f in stream_findings
            ]
        state.findings.extend(stream_findings)

    def _note_hit_limit(self, state: _FileState, container: str | None) -> None:
        if not state.hit_limit_noted:
            state.hit_limit_noted = True
            state.problems.append(
                ScanProblem(
                    error_type=ErrorType.HIT_LIMIT,
                    stage="validate",
                    detail=(
                        f"more than {self.settings.max_hits_per_file} rule hits; the rest were "
                        "not validated (raise scan.max_hits_per_file to go further)"
                    ),
                    container=container,
                )
            )

    def _validate(
        self,
        validator: Callable[[Hit], Sequence[KeyFinding]],
        hit: Hit,
        state: _FileState,
    ) -> Sequence[KeyFinding]:
        try:
            return validator(hit)
        except Exception as exc:  # noqa: BLE001 - isolation point: a validator bug loses one hit, not the file
            log.warning(
                "scan.validator_failed",
                rule=hit.rule,
                offset=hit.offset,
                error_type="validator_failed",
                exception=type(exc).__name__,
            )
            state.problems.append(
                ScanProblem(
                    error_type=ErrorType.VALIDATOR_FAILED,
                    stage="validate",
                    detail=f"validator for rule {hit.rule} failed: {type(exc).__name__}",
                    container=hit.container,
                )
            )
            return ()

    def _finalise(self, raw: list[KeyFinding]) -> tuple[KeyFinding, ...]:
        """Name, allowlist and de-duplicate findings: one per key per container."""
        merged: dict[tuple[str | None, str], KeyFinding] = {}
        for f in raw:
            if not f.validated and not self.settings.report_unvalidated:
                continue
            known = self.inventory.by_fingerprint(f.fingerprint)
            if known is not None:
                f = replace(f, inventory_name=known.name, allowlisted=False)  # noqa: PLW2901
            elif f.fingerprint is not None and self.allowlist.contains(f.fingerprint):
                f = replace(f, allowlisted=True)  # noqa: PLW2901
            key = f.fingerprint if f.fingerprint else f"{f.rule}@{f.offset}"
            slot = (f.container, key)
            seen = merged.get(slot)
            if seen is None:
                merged[slot] = f
            else:
                first = seen if seen.offset <= f.offset else f
                merged[slot] = replace(first, occurrences=seen.occurrences + f.occurrences)
        return tuple(sorted(merged.values(), key=lambda f: (f.container or "", f.offset)))
