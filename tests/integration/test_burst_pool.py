"""Under a burst the daemon scans in worker processes, then returns to one process when idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.common import build_scanner
from agent.config import AgentConfig, ScanSection
from agent.scanpool import BurstPool
from agent.values import Arrival, ArrivalCause
from tests import keys
from tests.harness import (
    Setup,
    collector_events,
    findings,
    free_port,
    start_agent,
    start_collector,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def test_pool_scans_in_workers_and_stops_when_idle(tmp_path: Path) -> None:
    """Scans go to worker processes while the pool runs; after the idle time it stops and scans fall back."""
    now = [0.0]
    cfg = AgentConfig(scan=ScanSection(number_search="off"))
    fallback = build_scanner(cfg)
    pool = BurstPool(cfg, build_scanner, processes=2, idle_seconds=5.0, clock=lambda: now[0])
    planted = keys.pem(keys.cached_rsa(2048))
    target = tmp_path / "dump.bin"
    target.write_bytes(keys.plant(planted.data))
    try:
        pool.start(fallback.settings.chunk_bytes)
        assert pool.active
        # workers take a second or more to start: meanwhile scans stay here and never wait
        assert not pool.ready
        early = pool.scan(Arrival(path=str(target), cause=ArrivalCause.SWEEP), fallback)
        assert [f.fingerprint for f in early.key_material] == [planted.fingerprint]
        assert pool.wait_ready(timeout=120)
        result = pool.scan(Arrival(path=str(target), cause=ArrivalCause.SWEEP), fallback)
        assert [f.fingerprint for f in result.key_material] == [planted.fingerprint]
        now[0] = 4.0
        pool.stop_if_idle()
        assert pool.active
        now[0] = 10.0
        pool.stop_if_idle()
        assert not pool.active
        again = pool.scan(Arrival(path=str(target), cause=ArrivalCause.SWEEP), fallback)
        assert [f.fingerprint for f in again.key_material] == [planted.fingerprint]
    finally:
        pool.stop()


def test_daemon_burst_is_scanned_completely_with_worker_processes(tmp_path: Path) -> None:
    """A burst of 300 dumps starts the worker pool; every file is scanned and every key quarantined."""
    setup = Setup(root=tmp_path / "eg", port=free_port(), settle_seconds=0.2)
    collector = start_collector(setup)
    agent = start_agent(setup)
    planted = keys.pem(keys.cached_rsa(2048))
    with_keys = set()
    try:
        burst = setup.drop / "burst"
        burst.mkdir()
        for i in range(300):
            path = burst / f"core.{i}"
            if i % 15 == 0:
                path.write_bytes(keys.plant(planted.data, before=20_000, after=20_000, seed=i))
                with_keys.add(str(path))
            else:
                path.write_bytes(keys.filler(64 * 1024, seed=i))

        def scanned() -> set[str]:
            return {e["path"] for e in agent.log_events() if e.get("event") == "scan.file_scanned"}

        wait_for(lambda: len(scanned()) == 300, timeout=120, what="all 300 files to be scanned")
        assert agent.saw("scanpool.workers_started")
        wait_for(
            lambda: len(findings(collector_events(setup))) == len(with_keys),
            timeout=60,
            what="every finding",
        )
        assert {e["file"]["path"] for e in findings(collector_events(setup))} == with_keys
        assert not any(Path(p).exists() for p in with_keys)
    finally:
        agent.stop()
        collector.stop()
