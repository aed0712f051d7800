"""Scan worker processes for bursts: started when the scan queue backs up, stopped when idle.

The YARA engines hold the GIL while they match, so scan threads share one
core. Under a burst the daemon hands scans to a pool of worker processes
(both cores busy, the watcher thread never starved); at rest the pool is
gone, so an idle agent is one small process. Workers only scan: deciding,
quarantining and reporting stay in the daemon, which owns the vault and the
outbox.

Scans go to the workers only once every worker has started and compiled its
rules (a second or more on a busy host): until then they stay in the daemon's
threads, so starting the pool never stalls the files already queued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
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


def _started() -> int:
    return os.getpid()  # runs only after the worker's initializer: its rules are compiled


def _succeeded(f: Future[int]) -> bool:
    return f.done() and not f.cancelled() and f.exception() is None


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
        self._warmups: list[Future[int]] = []
        self._ready = threading.Event()
        self._last_used = clock()
        self._chunk_bytes = 0

    @property
    def active(self) -> bool:
        """True while worker processes exist."""
        return self._pool is not None

    @property
    def ready(self) -> bool:
        """True once every worker has started: scans go to the workers from then on."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the workers are ready (or `timeout` passes); True when they are."""
        return self._ready.wait(timeout)

    def start(self, chunk_bytes: int) -> None:
        """Start the workers (idempotent); spawn, so no lock held by a daemon thread is copied."""
        if self._processes < 2:
            return  # one worker process would only add a hop to one core's work
        with self._lock:
            if self._pool is not None:
                return
            self._chunk_bytes = chunk_bytes
            pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(self._cfg, self._build, chunk_bytes),
            )
            self._pool = pool
            self._ready.clear()
            # one call per worker: each spawns a process, and completes after its initializer
            self._warmups = [pool.submit(_started) for _ in range(self._processes)]
            self._last_used = self._clock()
            started = self._clock()
        log.info("scanpool.workers_started", processes=self._processes)
        warmups = self._warmups

        def on_started(_: Future[int]) -> None:
            if self._pool is pool and all(_succeeded(f) for f in warmups):
                self._last_used = self._clock()
                self._ready.set()
                log.info("scanpool.workers_warmed", seconds=round(self._clock() - started, 2))

        for f in warmups:
            f.add_done_callback(on_started)

    def scan(self, arrival: Arrival, fallback: Scanner) -> ScanResult:
        """Scan in a worker when the pool runs, else in this thread."""
        pool = self._pool
        if pool is None or not self._ready.is_set():
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
        """Stop the workers after `idle_seconds` without a scan, or when one failed to start."""
        if self._pool is None:
            return
        if any(f.done() and not _succeeded(f) for f in self._warmups):
            log.error("scanpool.worker_failed", error_type="worker_start_failed")
            self.stop()
        elif self._clock() - self._last_used > self._idle_seconds:
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
            self._ready.clear()
            self._warmups = []
        if pool is not None:
            with contextlib.suppress(Exception):  # a broken pool may refuse a clean shutdown
                pool.shutdown(wait=True, cancel_futures=True)
