"""Composition root for `egress-guard run`: threads, queue, signals, reload, shutdown.

Threads (named, non-daemon): the watcher's own, `egress-guard.scan-N` workers
pulling from one bounded queue, and the shipper. Signal handlers only record
the signal; the main loop acts on it (TERM/INT: shut down, HUP: reload).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import queue
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from agent import config as config_mod
from agent.config import AgentConfig
from agent.errors import EgressGuardError, OutboxFull, QuarantineError
from agent.logs import get_logger
from agent.pipeline import handle
from agent.quarantine.vault import Vault
from agent.report.event import (
    PRIORITY,
    AgentIdentity,
    audit_document,
    error_document,
    heartbeat_document,
    load_identity,
)
from agent.report.outbox import Outbox
from agent.report.shipper import Shipper
from agent.report.sinks import build_sinks
from agent.scan.scanner import Scanner
from agent.scanpool import BurstPool
from agent.sources.catchup import catchup
from agent.sources.state import ScanState, identity_of
from agent.sources.watch import Watcher
from agent.values import (
    Arrival,
    ArrivalCause,
    ErrorType,
    FileIdentity,
    Outcome,
    ScanProblem,
    ScanResult,
)

log = get_logger("agent.daemon")

PR_SET_DUMPABLE = 4
_STOP = object()  # sentinel that ends a scan worker
MAX_RESCANS = 20
MAX_SCAN_ATTEMPTS = 2  # scans of one version the process may die in before it is left alone
PURGE_INTERVAL_SECONDS = 3600.0  # a file that keeps changing is scanned at most this often in a row


def notify(message: str) -> None:
    """sd_notify without a dependency: one datagram to $NOTIFY_SOCKET, if systemd gave one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError as exc:
        log.warning("daemon.notify_failed", error_type="notify_failed", reason=exc.strerror)


def protect_self(cfg: AgentConfig) -> None:
    """No core dumps of the agent (it holds scanned bytes), lower CPU and I/O priority."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except OSError:
        log.warning("daemon.protect_failed", error_type="prctl_failed")
    proc = psutil.Process()
    with contextlib.suppress(psutil.Error, OSError):
        proc.nice(max(proc.nice(), cfg.agent.nice))
    with contextlib.suppress(psutil.Error, OSError, AttributeError):
        if cfg.agent.ionice_idle:
            proc.ionice(psutil.IOPRIO_CLASS_IDLE)
        else:
            # best effort at the lowest level: the idle class waits for every other
            # reader, so a host whose disk never rests would delay quarantine without end
            proc.ionice(psutil.IOPRIO_CLASS_BE, 7)


@dataclass(slots=True)
class Counters:
    """What heartbeats report; guarded by the daemon's lock."""

    files_seen: int = 0
    files_scanned: int = 0
    files_with_keys: int = 0
    files_quarantined: int = 0
    quarantine_failures: int = 0
    scan_errors: int = 0
    rescans_requested: int = 0
    queue_full: int = 0
    outbox_full: int = 0
    bytes_scanned: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Daemon:
    """The running agent."""

    def __init__(self, cfg: AgentConfig, build_scanner: Callable[[AgentConfig], Scanner]) -> None:
        self.cfg = cfg
        self._build_scanner = build_scanner
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._signals: list[int] = []
        self.counters = Counters()
        state_dir = cfg.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.agent: AgentIdentity = load_identity(state_dir, cfg.agent.id)
        self.scanner = build_scanner(cfg)
        workers = cfg.scan.workers or max(1, os.cpu_count() or 1)
        self._fit_memory(workers)
        self.vault = (
            Vault(
                Path(cfg.quarantine.dir),
                seal_public_key=Path(cfg.quarantine.seal_public_key)
                if cfg.quarantine.seal_public_key
                else None,
                restore_roots=cfg.quarantine.restore_roots,
                host=self.agent.host_name,
            )
            if cfg.quarantine.dir
            else None
        )
        sinks = build_sinks(cfg.sink)
        self.outbox = Outbox(
            state_dir / "outbox.db",
            max_bytes=cfg.outbox.max_mib * 1024 * 1024,
            sinks=[s.label for s in sinks] or ["default"],
        )
        self.shipper = Shipper(
            self.outbox,
            sinks,
            retry_min_seconds=cfg.outbox.retry_min_seconds,
            retry_max_seconds=cfg.outbox.retry_max_seconds,
            on_error=self.publish,
        )
        self.state = ScanState(state_dir / "scan-state.db")
        self.queue: queue.Queue[object] = queue.Queue(maxsize=cfg.scan.queue_size)
        self._queued: set[str] = set()
        self._rescan_counts: dict[str, int] = {}
        self._timers: list[threading.Timer] = []
        self._overflowed_roots: set[str | None] = set()
        self.watcher = Watcher(
            cfg.watch,
            settle_seconds=cfg.scan.settle_seconds,
            max_wait_seconds=cfg.scan.max_wait_seconds,
            on_arrival=self.enqueue,
            on_problem=self._watch_problem,
            exclude=cfg.scan.exclude,
        )
        self.pool = BurstPool(cfg, build_scanner, processes=workers)
        self._workers = [
            threading.Thread(target=self._work, name=f"egress-guard.scan-{i}")
            for i in range(workers)
        ]

    def _fit_memory(self, workers: int) -> None:
        """Shrink the scan window so all workers fit in `agent.memory_limit_mib`.

        Each worker holds about three windows at once (the window, the engine's
        view, the number search's arrays); the limit is a budget, not an rlimit,
        because numpy and the YARA engines fail badly when an allocation is refused.
        """
        budget = self.cfg.agent.memory_limit_mib * 1024 * 1024 // 2  # half for everything else
        settings = self.scanner.settings
        per_worker = budget // max(workers, 1) // 3
        floor = max(4 * 1024 * 1024, 3 * settings.overlap_bytes)
        chunk = max(floor, min(settings.chunk_bytes, per_worker))
        if chunk != settings.chunk_bytes:
            self.scanner.settings = dataclasses.replace(settings, chunk_bytes=chunk)
            log.info("daemon.window_resized", chunk_mib=chunk // (1024 * 1024), workers=workers)

    # -- events -----------------------------------------------------------------------

    def publish(self, doc: dict[str, Any]) -> None:
        """Store an event durably in the outbox, then let the shipper know."""
        try:
            self.outbox.append(doc, priority=PRIORITY.get(doc["event"]["dataset"], 0))
        except OutboxFull:
            with self._lock:
                self.counters.outbox_full += 1
            log.error(
                "outbox.event_failed",
                error_type="outbox_full",
                dataset=doc["event"]["dataset"],
                hint="the collector is unreachable and the outbox is full; raise outbox.max_mib",
            )
            return
        except EgressGuardError as exc:
            log.error("outbox.event_failed", error_type="outbox_error", reason=exc.message)
            return
        self.shipper.wake()

    def _recovered_items(self, ids: list[str]) -> list[dict[str, Any]]:
        """What the vault holds of settled moves: the finding event of each may never have left."""
        assert self.vault is not None
        out: list[dict[str, Any]] = []
        for item_id in ids:
            try:
                item = self.vault.show(item_id)
            except (OSError, QuarantineError):
                continue  # rolled back: the file is still at its path and will be scanned again
            out.append(
                {
                    "id": item.id,
                    "path": item.original_path,
                    "sha256": item.sha256,
                    "rules": list(item.rules),
                    "findings": list(item.findings),
                }
            )
        return out

    def _audit(
        self, action: str, message: str, outcome: Outcome = Outcome.SUCCESS, **details: Any
    ) -> None:
        self.publish(
            audit_document(
                self.agent, action=action, message=message, outcome=outcome, details=details
            )
        )

    # -- arrivals --------------------------------------------------------------------

    def enqueue(self, arrival: Arrival) -> None:
        """Called by the watcher: queue a file, or ask for a rescan when the queue is full."""
        with self._lock:
            self.counters.files_seen += 1
            if arrival.path in self._queued:
                return
            self._queued.add(arrival.path)
        try:
            self.queue.put_nowait(arrival)
        except queue.Full:
            with self._lock:
                self._queued.discard(arrival.path)
                self.counters.queue_full += 1
                self._overflowed_roots.add(arrival.root)
            log.warning("daemon.queue_full", path=arrival.path, error_type="queue_full")

    def _watch_problem(self, error_type: str, detail: str, root: str | None) -> None:
        log.error("watch.problem_detected", error_type=error_type, detail=detail, root=root)
        with self._lock:
            self.counters.rescans_requested += 1
        self.publish(
            error_document(
                self.agent, error_type=error_type, message=detail, details={"root": root}
            )
        )

    def _later(self, seconds: float, arrival: Arrival) -> None:
        timer = threading.Timer(seconds, self.enqueue, args=(arrival,))
        timer.name = "egress-guard.retry"
        timer.daemon = True  # a pending retry must not hold up shutdown; catch-up covers it
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Arrival)
            with self._lock:
                self._queued.discard(item.path)
            # isolation point: one file's unexpected failure must never stop a scan worker
            try:
                self._process(item)
            except Exception as exc:
                with self._lock:
                    self.counters.scan_errors += 1
                log.exception(
                    "scan.file_failed",
                    path=item.path,
                    error_type="internal",
                    exception=type(exc).__name__,
                )

    def _process(self, arrival: Arrival) -> None:
        # a version already scanned (a rescan, a catch-up, a file restored after review)
        # is not scanned again; any write makes a new version
        try:
            st = os.lstat(arrival.path)
        except OSError:
            return
        identity = identity_of(arrival.path, st)
        if arrival.cause is not ArrivalCause.RETRY and self.state.unchanged(identity):
            return
        # a scan that began and never ended means the process died in it: after
        # MAX_SCAN_ATTEMPTS such deaths the version is reported and left alone, so one
        # file that crashes a parser cannot keep the daemon in a restart loop
        attempts = self.state.begin(identity)
        if attempts > MAX_SCAN_ATTEMPTS:
            self._abandon(arrival, identity, attempts - 1)
            return
        scanner = self.scanner  # one reference read: a reload swaps it atomically
        result = self.pool.scan(arrival, scanner)
        self.state.end(identity)
        outcome = handle(result, vault=self.vault, agent=self.agent, publish=self.publish)
        with self._lock:
            self.counters.files_scanned += 1
            self.counters.bytes_scanned += result.bytes_scanned
            if result.failed:
                self.counters.scan_errors += 1
            if result.key_material:
                self.counters.files_with_keys += 1
            if outcome.record is not None and outcome.record.quarantine_id:
                self.counters.files_quarantined += 1
            if outcome.retry:
                self.counters.quarantine_failures += 1
        if outcome.rescan:
            n = self._rescan_counts.get(arrival.path, 0) + 1
            self._rescan_counts[arrival.path] = n
            if n <= MAX_RESCANS:
                self._later(
                    self.cfg.scan.settle_seconds,
                    Arrival(
                        path=arrival.path,
                        cause=ArrivalCause.RETRY,
                        root=arrival.root,
                        writer=arrival.writer,
                    ),
                )
            return
        self._rescan_counts.pop(arrival.path, None)
        if outcome.retry:
            self._later(
                self.cfg.quarantine.retry_seconds,
                Arrival(
                    path=arrival.path,
                    cause=ArrivalCause.RETRY,
                    root=arrival.root,
                    writer=arrival.writer,
                ),
            )
            return
        if result.identity is not None:
            label = "keys" if result.key_material else "clean"
            self.state.record(result.identity, label)

    def _abandon(self, arrival: Arrival, identity: FileIdentity, deaths: int) -> None:
        problem = ScanProblem(
            error_type=ErrorType.ENGINE_FAILED,
            stage="scan",
            detail=(
                f"the agent stopped {deaths} times while scanning this version of the file "
                "(a crash in a parser, or a kill); it is not scanned again until it changes: "
                "move it somewhere safe and check it by hand"
            ),
        )
        failed = ScanResult(
            arrival=arrival,
            identity=None,
            sha256=None,
            problems=(problem,),
            rules_version=self.scanner.rules.version,
        )
        handle(failed, vault=self.vault, agent=self.agent, publish=self.publish)
        with self._lock:
            self.counters.scan_errors += 1
        self.state.record(identity, "abandoned")
        self.state.end(identity)

    # -- lifecycle -------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)  # the main loop acts; a handler only records
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop.set()

    def reload(self) -> None:
        """Rebuild config and rules aside; swap on success, keep the old ones on any error."""
        notify("RELOADING=1")
        source = self.cfg.source
        try:
            new_cfg = config_mod.load(source) if source else self.cfg
            new_scanner = self._build_scanner(new_cfg)
        except EgressGuardError as exc:
            log.error("rules.reload_rolled_back", error_type="reload_failed", reason=str(exc))
            self._audit(
                "rules-reload",
                f"reload refused, previous rules stay active: {exc.message}",
                Outcome.FAILURE,
                reason=str(exc),
            )
        else:
            self.scanner = new_scanner
            self.cfg = new_cfg
            self._fit_memory(len(self._workers))
            self.pool.reconfigure(new_cfg)
            log.info("rules.reload_completed", version=new_scanner.rules.version)
            self._audit(
                "rules-reload", "rules and config reloaded", version=new_scanner.rules.version
            )
        notify("READY=1")

    def enforce_retention(self) -> None:
        """Purge vault items older than `quarantine.retention_days`, with an audit event."""
        days = self.cfg.quarantine.retention_days
        if self.vault is None or days is None:
            return
        try:
            purged = self.vault.purge(older_than_days=days)
        except EgressGuardError as exc:
            log.error("quarantine.purge_failed", error_type="purge_failed", reason=exc.message)
            return
        if purged:
            self._audit(
                "quarantine-purge",
                f"retention: purged {len(purged)} item(s) older than {days} days",
                ids=purged,
            )

    def heartbeat(self) -> None:
        """Counters and host health."""
        with self._lock:
            counters: dict[str, Any] = {
                f.name: getattr(self.counters, f.name)
                for f in dataclasses.fields(self.counters)
                if f.name != "extra"
            }
        counters["queue_depth"] = self.queue.qsize()
        counters["outbox_depth"] = self.outbox.depth()
        counters["rules_version"] = self.scanner.rules.version
        counters.update({f"watch_{k}": v for k, v in self.watcher.stats().items()})
        proc = psutil.Process()
        health: dict[str, Any] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "agent_rss_bytes": proc.memory_info().rss,
            "agent_cpu_seconds": sum(proc.cpu_times()[:2]),
        }
        volumes = {"state": str(self.cfg.state_dir)}
        if self.cfg.quarantine.dir:
            volumes["quarantine"] = self.cfg.quarantine.dir
        for name, path in volumes.items():
            with contextlib.suppress(OSError):
                health[f"{name}_disk_free_bytes"] = psutil.disk_usage(path).free
        self.publish(heartbeat_document(self.agent, counters=counters, health=health))

    def run(self) -> int:
        """Start everything, loop until told to stop, shut down in order."""
        protect_self(self.cfg)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        if self.vault is not None:
            recovered = self.vault.recover()
            if recovered:
                self._audit(
                    "quarantine-recovered",
                    f"settled {len(recovered)} quarantine move(s) a stop interrupted",
                    ids=recovered,
                    items=self._recovered_items(recovered),
                )
        self.shipper.start()
        for t in self._workers:
            t.start()
        self.watcher.start()
        self._audit(
            "agent-start",
            "egress-guard started",
            rules_version=self.scanner.rules.version,
            watches=[w.path for w in self.cfg.watch],
        )
        log.info(
            "daemon.agent_started",
            watches=[w.path for w in self.cfg.watch],
            rules=self.scanner.rules.version,
            agent_id=self.agent.id,
        )
        notify("READY=1")
        # files that arrived or changed while the agent was down
        for arrival in catchup(self.cfg.watch, self.state, exclude=self.cfg.scan.exclude):
            if self._stop.is_set():
                break
            self._put_blocking(arrival)
        next_beat = time.monotonic() + self.cfg.agent.heartbeat_seconds
        next_purge = time.monotonic()
        while not self._stop.is_set():
            self._stop.wait(1.0)
            notify("WATCHDOG=1")
            # a backed-up queue means a burst: scan in worker processes until it is idle again
            if self.queue.qsize() > 2 * len(self._workers):
                self.pool.start(self.scanner.settings.chunk_bytes)
            self.pool.stop_if_idle()
            while self._signals:
                if self._signals.pop(0) == signal.SIGHUP:
                    self.reload()
            with self._lock:
                overflowed, self._overflowed_roots = self._overflowed_roots, set()
            if overflowed and self.queue.qsize() < self.queue.maxsize // 2:
                for root in overflowed:
                    self.watcher.request_rescan(root)
            elif overflowed:
                with self._lock:
                    self._overflowed_roots |= overflowed
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.cfg.agent.heartbeat_seconds
                self.heartbeat()
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
                self.enforce_retention()
        return self.shutdown()

    def _put_blocking(self, arrival: Arrival) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(arrival, timeout=0.5)
            except queue.Full:
                continue
            with self._lock:
                self._queued.add(arrival.path)
            return

    def shutdown(self, deadline_seconds: float = 20.0) -> int:
        """The shutdown order, written once."""
        notify("STOPPING=1")
        log.info("daemon.shutdown_started")
        # 1. stop sources first: nothing new may arrive while we drain
        self.watcher.stop()
        # 2. workers finish the file in hand; files still queued are found by catch-up at start
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._workers:
            self.queue.put(_STOP)
        for t in self._workers:
            t.join(timeout=deadline_seconds)
        self.pool.stop()
        for timer in self._timers:
            timer.cancel()
        # 3. the stop event goes into the outbox before the final flush so it ships too
        self._audit("agent-stop", "egress-guard stopped")
        # 4. flush the shipper within the deadline; anything left stays durable in the outbox
        self.shipper.flush(deadline_seconds / 2)
        self.shipper.stop()
        # 5. close the stores last: the shipper may still have been reading them
        self.outbox.close()
        self.state.close()
        log.info("daemon.agent_stopped")
        return 0
