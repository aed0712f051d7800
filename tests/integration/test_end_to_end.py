"""The whole flow with real processes: inotify -> scan -> quarantine -> outbox -> collector."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from agent.quarantine.journal import FAULT_ENV
from tests import keys
from tests.harness import (
    Setup,
    collector_events,
    files_under,
    findings,
    free_port,
    leaks,
    quarantine_items,
    secret_windows,
    start_agent,
    start_collector,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(root=tmp_path / "eg", port=free_port())


def _dump_with_key() -> tuple[bytes, keys.Planted, bytes]:
    key = keys.cached_rsa(2048)
    planted = keys.pem(key)
    der = keys.der(key).data
    return keys.plant(planted.data, before=300_000, after=200_000), planted, der


def test_key_in_a_new_subfolder_is_quarantined_and_reported_once_without_leaking(
    setup: Setup,
) -> None:
    """A dump dropped into a just-created subfolder is moved to the vault and reported once, and no key bytes leak."""
    collector = start_collector(setup)
    agent = start_agent(setup)
    try:
        sub = setup.drop / "incoming" / "host-42"
        sub.mkdir(parents=True)
        dump, planted, der = _dump_with_key()
        target = sub / "core.4242"
        target.write_bytes(dump)
        sha = hashlib.sha256(dump).hexdigest()

        wait_for(lambda: not target.exists(), timeout=30, what="the dump to leave the drop folder")
        events = wait_for(
            lambda: findings(collector_events(setup)), timeout=30, what="the finding event"
        )
        time.sleep(1.0)  # let any duplicate delivery land before counting
        events = findings(collector_events(setup))
        assert len(events) == 1
        ev = events[0]
        assert ev["event"]["action"] == "key-material-quarantined"
        assert ev["file"]["hash"]["sha256"] == sha
        assert ev["file"]["path"] == str(target)
        assert [f["fingerprint"] for f in ev["egress_guard"]["findings"]] == [planted.fingerprint]
        assert ev["threat"]["technique"]["id"] == ["T1552.004"]

        items = quarantine_items(setup)
        assert len(items) == 1
        assert items[0]["original_path"] == str(target)
        assert items[0]["sha256"] == sha
        vault_copy = Path(items[0]["vault_path"])
        assert hashlib.sha256(vault_copy.read_bytes()).hexdigest() == sha
    finally:
        assert agent.stop() == 0
        collector.stop()
    windows = secret_windows(planted.data, der)
    checked = 0
    for path in files_under(setup.root):
        if setup.vault in path.parents:
            continue  # the vault holds the quarantined dump itself, by design
        blob = path.read_bytes()
        checked += 1
        assert not leaks(blob, windows), f"key bytes leaked into {path}"
    assert checked >= 4  # logs, outbox, collector db, config at least


def test_clean_file_is_left_alone_and_produces_no_finding(setup: Setup) -> None:
    """A file without key material stays where it is and causes no finding event."""
    collector = start_collector(setup)
    agent = start_agent(setup)
    try:
        clean = setup.drop / "notes.txt"
        clean.write_bytes(
            keys.filler(50_000)
            + b"-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n"
        )
        wait_for(lambda: agent.saw("scan.file_scanned"), what="the clean file to be scanned")
        time.sleep(0.5)
        assert clean.exists()
        assert findings(collector_events(setup)) == []
    finally:
        agent.stop()
        collector.stop()


def test_collector_down_then_up_delivers_the_event_once(setup: Setup) -> None:
    """Events found while the collector is down arrive once it comes up, exactly once."""
    agent = start_agent(setup)
    collector = None
    try:
        dump, planted, _ = _dump_with_key()
        (setup.drop / "core.1").write_bytes(dump)
        wait_for(lambda: agent.saw("quarantine.file_moved"), timeout=30, what="quarantine")
        time.sleep(1.0)  # a few failed delivery attempts
        collector = start_collector(setup)
        wait_for(
            lambda: findings(collector_events(setup)),
            timeout=30,
            what="delivery after the collector came up",
        )
        time.sleep(1.5)
        got = findings(collector_events(setup))
        assert len(got) == 1
        assert got[0]["egress_guard"]["findings"][0]["fingerprint"] == planted.fingerprint
    finally:
        agent.stop()
        if collector is not None:
            collector.stop()


def test_file_written_slowly_is_scanned_once_after_it_is_complete(setup: Setup) -> None:
    """A file written in pieces over two seconds is scanned once, after its last byte."""
    collector = start_collector(setup)
    agent = start_agent(setup)
    try:
        dump, _planted, _ = _dump_with_key()
        target = setup.drop / "slow.core"
        pieces = [dump[i : i + len(dump) // 8] for i in range(0, len(dump), len(dump) // 8)]
        with target.open("wb") as fh:
            for piece in pieces:
                fh.write(piece)
                fh.flush()
                time.sleep(2.0 / len(pieces))
        wait_for(lambda: findings(collector_events(setup)), timeout=30, what="the finding")
        time.sleep(1.0)
        scans = [
            e
            for e in agent.log_events()
            if e.get("event") == "scan.file_scanned" and e.get("path") == str(target)
        ]
        assert len(scans) == 1
        got = findings(collector_events(setup))
        assert len(got) == 1
        assert got[0]["file"]["size"] == len(dump)
    finally:
        agent.stop()
        collector.stop()


def test_bad_config_is_refused_at_start_with_key_and_reason(setup: Setup) -> None:
    """A config with a typo is refused before anything starts, naming the key."""
    setup.extra = "[outbox]\nmax_mb = 3\n"
    setup.config.write_text(
        setup.config.read_text().replace("[outbox]\n", "[outbox]\nmax_mb = 3\n", 1)
    )
    agent = start_agent(setup, wait=False)
    wait_for(lambda: agent.popen.poll() is not None, what="the agent to refuse the config")
    assert agent.popen.returncode == 2
    assert "unknown key `outbox.max_mb`, did you mean `max_mib`?" in agent.log_text()


def test_broken_rules_on_reload_keep_the_old_rules_and_unreadable_files_do_not_stop_the_agent(
    setup: Setup, tmp_path: Path
) -> None:
    """SIGHUP with a broken rule file keeps the old rules; an unreadable file is an error event; the agent keeps scanning."""
    rules_dir = tmp_path / "local-rules"
    rules_dir.mkdir()
    (rules_dir / "local.yar").write_text(
        'rule local_ok { meta: validator = "pem" strings: $a = "LOCAL-MARKER" condition: $a }\n'
    )
    setup.rules = str(rules_dir)
    setup.write_config()
    collector = start_collector(setup)
    agent = start_agent(setup)
    try:
        (rules_dir / "local.yar").write_text("rule broken { condition: $nope }\n")
        agent.signal(signal.SIGHUP)
        wait_for(lambda: agent.saw("rules.reload_rolled_back"), what="the reload to be rolled back")
        if os.geteuid() != 0:
            unreadable = setup.drop / "secret.core"
            unreadable.write_bytes(b"x" * 100)
            unreadable.chmod(0)
        dump, _planted, _ = _dump_with_key()
        (setup.drop / "after-reload.core").write_bytes(dump)
        wait_for(
            lambda: findings(collector_events(setup)),
            timeout=30,
            what="a finding after the failed reload",
        )
        assert agent.popen.poll() is None
        audits = [
            e for e in collector_events(setup) if e["event"]["dataset"] == "egress_guard.audit"
        ]
        assert any(
            e["event"]["action"] == "rules-reload" and e["event"]["outcome"] == "failure"
            for e in audits
        )
    finally:
        agent.stop()
        collector.stop()


def test_agent_killed_after_a_quarantine_reports_the_item_at_restart(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL right after a move finished, before its finding event was written: the restarted
    agent's recovery audit names the item (path, sha256, rules), so no quarantine goes unreported."""
    collector = start_collector(setup)
    monkeypatch.setenv(FAULT_ENV, "done")  # the vault's last journal step, before the event
    agent = start_agent(setup)
    try:
        dump, _planted, _ = _dump_with_key()
        target = setup.drop / "core.777"
        target.write_bytes(dump)
        agent.popen.wait(timeout=60)
        assert agent.popen.returncode == -signal.SIGKILL
        assert not target.exists()
        assert not findings(collector_events(setup))  # the event never left
        monkeypatch.delenv(FAULT_ENV)
        agent = start_agent(setup, name="agent-restarted")

        def recovered() -> list[dict[str, object]]:
            return [
                e
                for e in collector_events(setup)
                if e["event"]["dataset"] == "egress_guard.audit"
                and e["event"]["action"] == "quarantine-recovered"
            ]

        wait_for(recovered, timeout=30, what="the recovery audit event")
        (event,) = recovered()
        (item,) = event["egress_guard"]["audit"]["items"]
        assert item["path"] == str(target)
        assert item["sha256"] == hashlib.sha256(dump).hexdigest()
        assert item["rules"] and item["findings"]
        assert [q["id"] for q in quarantine_items(setup)] == [item["id"]]
    finally:
        agent.stop()
        collector.stop()
