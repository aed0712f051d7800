"""`egress-guard sweep PATH...` and `egress-guard scan FILE`: the engine over existing files.

Exit 0 when nothing was found, 1 when key material was found, 2 on error.
`--format jsonl` prints one finding event per line on stdout; logs and the
progress line go to stderr. Files are scanned largest first by `--jobs`
worker processes, so one huge dump does not finish last.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import stat
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.cli.common import EXIT_ERROR, EXIT_FOUND, EXIT_OK, build_scanner, load_config
from agent.logs import get_logger
from agent.pipeline import Processed, VaultLike, handle
from agent.quarantine.vault import Vault
from agent.report.event import AgentIdentity, load_identity
from agent.scan import dumps
from agent.scan.scanner import Scanner
from agent.scan.windows import keep_window_memory
from agent.sources.sweep import walk
from agent.values import Action, Arrival, ErrorType, ScanResult

log = get_logger("agent.sweep")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `sweep` and `scan`."""
    for name, help_text in (
        ("sweep", "scan files and folders once (incident response)"),
        ("scan", "scan one file"),
    ):
        p = sub.add_parser(name, help=help_text)
        if name == "sweep":
            p.add_argument("paths", nargs="+", metavar="PATH")
            p.add_argument("--jobs", type=int, default=0, help="worker processes (default: CPUs)")
        else:
            p.add_argument("paths", nargs=1, metavar="FILE")
        p.add_argument("--config", help="agent config (default: built-in rules, report only)")
        p.add_argument("--dry-run", action="store_true", help="report only, never quarantine")
        p.add_argument("--quarantine", metavar="DIR", help="quarantine files with keys into DIR")
        p.add_argument("--format", choices=("text", "jsonl"), default="text")
        p.add_argument("--engine", choices=("yara-x", "yara"), help="override [scan] engine")
        p.add_argument(
            "--show-allowlisted",
            action="store_true",
            help="also print files holding only public test keys (informational)",
        )
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
        p.set_defaults(func=_run, jobs_default=1 if name == "scan" else 0)


@dataclass(slots=True)
class _Totals:
    files: int = 0
    bytes: int = 0
    found_files: int = 0
    allowlisted_files: int = 0
    errors: int = 0
    quarantined: int = 0
    not_deep_scanned: int = 0
    started: float = field(default_factory=time.monotonic)


# -- worker processes ---------------------------------------------------------------

_worker_scanner: Scanner | None = None


def _worker_init(scanner: Scanner) -> None:
    global _worker_scanner  # noqa: PLW0603 - one compiled rule set per worker process
    _worker_scanner = scanner


def _worker_scan(batch: list[Arrival]) -> list[ScanResult]:
    assert _worker_scanner is not None
    return [_worker_scanner.scan(arrival) for arrival in batch]


def _batches(arrivals: list[tuple[int, Arrival]]) -> Iterator[list[Arrival]]:
    """The sweep's work units, largest first: a file alone, small ones by the dozen.

    A task costs the pool about a millisecond of pickling and wake-ups in the parent,
    which shares the CPUs with the workers: one task per small file made the parent
    a quarter of a sweep's CPU on a tree of binaries.
    """
    batch: list[Arrival] = []
    held = 0
    for size, arrival in arrivals:
        if size >= _SMALL_FILE:
            yield [arrival]
            continue
        batch.append(arrival)
        held += size
        if len(batch) >= _BATCH_FILES or held >= _BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


# -- the command -----------------------------------------------------------------------


def _not_one_file(path: str) -> str | None:
    """Why `scan PATH` cannot scan PATH, or None when it is one regular file."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{exc.strerror.lower() if exc.strerror else 'cannot stat'}"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link; links are never followed (scan its target by name)"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder; use `egress-guard sweep` for folders"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    return None


def _arrivals(paths: list[str], exclude: list[str], totals: _Totals) -> list[tuple[int, Arrival]]:
    def problem(path: str, reason: str) -> None:
        totals.errors += 1
        log.error("sweep.path_failed", path=path, error_type="unreadable", reason=reason)

    present = []
    for path in paths:
        if os.path.lexists(path):
            present.append(path)
        else:
            problem(path, "no such file or directory")
    out: list[tuple[int, Arrival]] = []
    for arrival in walk(present, exclude=exclude, on_problem=problem):
        try:
            size = os.lstat(arrival.path).st_size
        except OSError:
            size = 0
        out.append((size, arrival))
    out.sort(key=lambda t: -t[0])  # largest first
    return out


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    scanner = build_scanner(cfg, engine=args.engine)
    # a one-shot process: keep freed windows for the next one (inherited by forked workers)
    keep_window_memory(scanner.settings.chunk_bytes, scanner.settings.overlap_bytes)
    agent = load_identity(Path(cfg.agent.state_dir), cfg.agent.id) if args.config else _ephemeral()
    vault: VaultLike | None = None
    qdir = args.quarantine or (cfg.quarantine.dir if args.config else None)
    if qdir and not args.dry_run:
        vault = Vault(
            Path(qdir),
            seal_public_key=Path(cfg.quarantine.seal_public_key)
            if cfg.quarantine.seal_public_key
            else None,
            restore_roots=cfg.quarantine.restore_roots,
            host=agent.host_name,
        )
    if args.command == "scan":
        refusal = _not_one_file(args.paths[0])
        if refusal:
            print(f"egress-guard: error: {args.paths[0]}: {refusal}", file=sys.stderr)
            return EXIT_ERROR
    totals = _Totals()
    arrivals = _arrivals(list(args.paths), list(args.exclude), totals)
    jobs = args.jobs if getattr(args, "jobs", 0) else (os.cpu_count() or 1)
    if args.command == "scan":
        jobs = 1
    progress = _Progress(len(arrivals), sum(s for s, _ in arrivals))
    sequence = 0

    def publish(doc: dict[str, Any]) -> None:
        nonlocal sequence
        if doc["event"]["dataset"] != "egress_guard.finding":
            return
        sequence += 1
        doc["event"]["sequence"] = sequence
        if args.format == "jsonl":
            sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
            sys.stdout.flush()

    for result in _results(arrivals, scanner, jobs):
        outcome = handle(
            result,
            vault=vault,
            agent=agent,
            publish=_filtered(publish, result, args.show_allowlisted),
            dry_run=args.dry_run,
        )
        _count(outcome, totals)
        if args.format == "text":
            _print_text(outcome, args.show_allowlisted)
        progress.advance(result.bytes_scanned, totals.found_files)
    progress.close()
    _summary(totals)
    if totals.found_files:
        return EXIT_FOUND
    return EXIT_ERROR if totals.errors else EXIT_OK


def _filtered(publish: Any, result: ScanResult, show_allowlisted: bool) -> Any:
    if result.key_material or show_allowlisted:
        return publish
    return lambda _doc: None


_BATCH_FILES = 32
# compressed files expand: a batch of a few MB could hold minutes of work and finish last
_SMALL_FILE = 256 * 1024
_BATCH_BYTES = 2 * 1024 * 1024
_PRELOAD_BYTES = 256 * 1024 * 1024  # a sweep this large will meet a dump, or barely notice


def _results(
    arrivals: list[tuple[int, Arrival]], scanner: Scanner, jobs: int
) -> Iterator[ScanResult]:
    if jobs <= 1 or len(arrivals) <= 1:
        for _, arrival in arrivals:
            yield scanner.scan(arrival)
        return
    # fork: the parent holds no threads here, and forkserver needs a socket folder
    # that an unprivileged responder may not be able to create. Forked workers inherit
    # the parent's scanner (initargs are not pickled under fork), so the rules are
    # compiled and the allowlist loaded once, not once per worker; the parent has not
    # scanned, so no engine scanning state is copied (each worker makes its own).
    if scanner.settings.number_search != "off" and sum(s for s, _ in arrivals) >= _PRELOAD_BYTES:
        dumps.preload()  # numpy once in the parent, not once per worker (0.15 s of CPU each)
    # what the parent holds is never freed: the workers' collections skip it, and their
    # reference counting does not copy its pages
    gc.freeze()
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(scanner,)
    ) as pool:
        pending: set[Future[list[ScanResult]]] = set()
        queue = _batches(arrivals)
        for batch in queue:
            pending.add(pool.submit(_worker_scan, batch))
            if len(pending) >= jobs * 4:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield from fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(_worker_scan, nxt))


def _count(outcome: Processed, totals: _Totals) -> None:
    result = outcome.result
    totals.files += 1
    totals.bytes += result.bytes_scanned
    if (
        result.failed
        and result.problems
        and result.problems[0].error_type not in (ErrorType.VANISHED,)
    ):
        totals.errors += 1
    if result.key_material:
        totals.found_files += 1
    elif any(f.allowlisted for f in result.findings):
        totals.allowlisted_files += 1
    if outcome.record is not None and outcome.record.quarantine_id:
        totals.quarantined += 1
    totals.not_deep_scanned += sum(
        p.bytes_affected for p in result.problems if p.error_type is ErrorType.NOT_DEEP_SCANNED
    )


def _print_text(outcome: Processed, show_allowlisted: bool) -> None:
    result = outcome.result
    if result.failed:
        p = result.problems[0] if result.problems else None
        if p is not None and p.error_type is not ErrorType.VANISHED:
            print(f"{result.arrival.path}: ERROR {p.detail}")
        return
    shown = result.findings if show_allowlisted else result.key_material
    if not shown:
        return
    action = ""
    if outcome.record is not None and outcome.record.quarantine_id:
        action = f"  [quarantined as {outcome.record.quarantine_id}]"
    elif outcome.verdict is not None and outcome.verdict.action is Action.QUARANTINE:
        action = f"  [NOT quarantined: {outcome.record.error if outcome.record else '?'}]"
    print(f"{result.arrival.path}: FOUND {len(shown)} key(s){action}")
    proc = result.dumped_process
    if proc is not None:
        exe = f", {proc.executable}" if proc.executable else ""
        print(f"  dumped process: {proc.name or '?'} (pid {proc.pid or '?'}{exe})")
    for f in shown:
        size = f"{f.bits}" if f.bits else (f.curve or "")
        where = f" in {f.container}" if f.container else ""
        addr = f" address 0x{f.address:x}" if f.address is not None else ""
        tags = [t for t, on in (("allowlisted", f.allowlisted), ("encrypted", f.encrypted)) if on]
        if f.inventory_name:
            tags.append(f"inventory: {f.inventory_name}")
        tag_text = f" ({', '.join(tags)})" if tags else ""
        print(
            f"  {f.algorithm} {size} {f.format} at offset {f.offset}{addr}{where} "
            f"{f.fingerprint or 'no fingerprint'}{tag_text}"
        )


def _summary(t: _Totals) -> None:
    secs = max(time.monotonic() - t.started, 1e-6)
    line = (
        f"scanned {t.files} file(s), {t.bytes / 1e6:.1f} MB in {secs:.1f} s "
        f"({t.bytes / 1e6 / secs:.0f} MB/s): {t.found_files} with key material, "
        f"{t.quarantined} quarantined, {t.allowlisted_files} with public test keys only, "
        f"{t.errors} error(s)"
    )
    if t.not_deep_scanned:
        line += f"; {t.not_deep_scanned / 1e6:.1f} MB not deep-scanned (see events)"
    print(line, file=sys.stderr)


class _Progress:
    """A one-line progress display, only when stderr is a terminal."""

    def __init__(self, files: int, total_bytes: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.files = files
        self.total = total_bytes
        self.done_files = 0
        self.done_bytes = 0
        self.started = time.monotonic()

    def advance(self, nbytes: int, findings: int) -> None:
        self.done_files += 1
        self.done_bytes += nbytes
        if not self.enabled:
            return
        rate = self.done_bytes / max(time.monotonic() - self.started, 1e-6) / 1e6
        sys.stderr.write(
            f"\r{self.done_files}/{self.files} files  {self.done_bytes / 1e6:.0f}/"
            f"{self.total / 1e6:.0f} MB  {rate:.0f} MB/s  {findings} with keys "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _ephemeral() -> AgentIdentity:
    import socket  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    from agent import __version__  # noqa: PLC0415

    return AgentIdentity(
        id=f"sweep-{uuid.uuid4()}",
        version=__version__,
        host_name=socket.gethostname(),
        host_id="",
        os_name="linux",
        os_kernel=os.uname().release,
    )


__all__ = ["register"]
