"""The move journal: durable records read back after a crash, torn tails ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.quarantine.journal import FAULT_ENV, Journal, fault_from_env
from agent.quarantine.vault import Vault


def test_steps_are_read_back_in_order_with_the_plan(tmp_path: Path) -> None:
    """A journal left behind yields its plan and the last step it recorded."""
    journal = Journal(tmp_path)
    fd = journal.begin("0123456789abcdef", {"plan": "copy"})
    journal.step(fd, "copy")
    journal.step(fd, "commit")
    (entry,) = journal.pending()
    assert (entry.item_id, entry.plan, entry.steps, entry.last_step) == (
        "0123456789abcdef",
        {"plan": "copy"},
        ["copy", "commit"],
        "commit",
    )


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    """A record cut short by a crash was never fsynced: the step before it is the last one."""
    journal = Journal(tmp_path)
    fd = journal.begin("0123456789abcdef", {"plan": "rename"})
    journal.step(fd, "rename")
    with (tmp_path / "0123456789abcdef.jsonl").open("ab") as f:
        f.write(b'{"step": "me')
    (entry,) = journal.pending()
    assert entry.last_step == "rename"


def test_a_journal_without_its_plan_is_rolled_back_and_removed(tmp_path: Path) -> None:
    """recover() drops a journal whose first record never reached the disk (nothing was moved)."""
    vault = Vault(tmp_path / "vault")
    (tmp_path / "vault" / ".journal" / "0123456789abcdef.jsonl").write_bytes(b'{"st')
    assert vault.recover() == ["0123456789abcdef"]
    assert list((tmp_path / "vault" / ".journal").iterdir()) == []
    assert vault.recover() == []


def test_only_known_fault_points_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """EGRESS_GUARD_FAULT names a step; anything else is ignored rather than half-applied."""

    monkeypatch.setenv(FAULT_ENV, "commit")
    assert fault_from_env() == "commit"
    monkeypatch.setenv(FAULT_ENV, "rm -rf")
    assert fault_from_env() is None
