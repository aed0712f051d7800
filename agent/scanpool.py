"""Scan worker processes for bursts: started when the scan queue backs up, stopped when idle.

The YARA engines hold the GIL while they match, so scan threads share one
core. Under a burst the daemon hands scans to a pool of worker processes
(both cores busy, the watcher thread never starved); at rest the pool is
gone, so an idle agent is one small process. Workers only scan: deciding,
quarantining and reporting stay in the daemon, which owns the vault and the
outbox.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from agent.config import AgentConfig
from agent.logs import get_logger
from agent.scan.scanner import Scanner
from agent.scan.windows import keep_window_memory
from agent.values import Arrival, ScanResult

log = get_logger("agent.scanpool")

_worker_scanner: Scanner | None = None


def _init(cfg: AgentConfig, build: Callable[[AgentConfig], Scanner], chunk_bytes: int) -> None:
    global _worker_scanner  # noqa: PLW0603 - one compiled rule set per worker process
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # workers hold scanned bytes too
    scanner = build(cfg)
    scanner.settings = dataclasses.replace(scanner.settings, chunk_bytes=chunk_bytes)
    # workers live for one burst: their heap may stay at its peak, the idle daemon's may not
    keep_window_memory(chunk_bytes, scanner.settings.overlap_bytes)
    _worker_scanner = scanner


def _scan(arrival: Arrival) -> ScanResult:
    assert _worker_scanner is not None
    return _worker_scanner.scan(arrival)


class BurstPool:
    """A lazily started process pool; `scan` falls back to the caller's scanner when absent."""

    def __init__(
        self,
        cfg: AgentConfig,
        build: Callable[[AgentConfig], Scanner],
        *,
        processes: int,
        idle_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._build = build
        self._processes = processes
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._last_used = clock()
        self._chunk_bytes = 0

    @property
    def active(self) -> bool:
        """True while worker processes exist."""
        return self._pool is not None

    def start(self, chunk_bytes: int) -> None:
        """Start the workers (idempotent); spawn, so no lock held by a daemon thread is copied."""
        if self._processes < 2:
            return  # one worker process would only add a hop to one core's work
        with self._lock:
            if self._pool is not None:
                return
            self._chunk_bytes = chunk_bytes
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(self._cfg, self._build, chunk_bytes),
            )
            self._last_used = self._clock()
        log.info("scanpool.workers_started", processes=self._processes)

    def scan(self, arrival: Arrival, fallback: Scanner) -> ScanResult:
        """Scan in a worker when the pool runs, else in this thread."""
        pool = self._pool
        if pool is None:
            return fallback.scan(arrival)
        self._last_used = self._clock()
        try:
            return pool.submit(_scan, arrival).result()
        except (BrokenProcessPool, RuntimeError) as exc:
            # a worker died (OOM killer, a crash in a native library): scan here instead
            log.error("scanpool.worker_failed", error_type="worker_died", reason=type(exc).__name__)
            self.stop()
            return fallback.scan(arrival)

    def stop_if_idle(self) -> None:
        """Stop the workers after `idle_seconds` without a scan."""
        if self._pool is not None and self._clock() - self._last_used > self._idle_seconds:
            self.stop()
            log.info("scanpool.workers_stopped", reason="idle")

    def reconfigure(self, cfg: AgentConfig) -> None:
        """New rules or config: the next burst starts workers with them."""
        self._cfg = cfg
        self.stop()

    def stop(self) -> None:
        """Stop the workers; scans in flight finish first."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):  # a broken pool may refuse a clean shutdown
                pool.shutdown(wait=True, cancel_futures=True)
