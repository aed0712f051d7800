"""`egress-guard quarantine ...`: output formats, exit codes, refusals on stderr, audit events."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest
from conftest import TeamKeys
from vaultkit import Dump, make_dump

from agent.cli import quarantine as cli
from agent.quarantine.vault import Vault
from agent.report.outbox import Outbox
from agent.values import QuarantineItem


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="egress-guard")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Vault]:
    """A config naming a state folder and a vault with restore roots."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[quarantine]\ndir = "{tmp_path / "vault"}"\nrestore_roots = ["{tmp_path / "review"}"]\n'
    )
    (tmp_path / "review").mkdir()
    return cfg, tmp_path / "state", Vault(tmp_path / "vault")


def _put(vault: Vault, dump: Dump) -> QuarantineItem:
    item = vault.quarantine(
        dump.identity, sha256=dump.sha256, rules=("r1",), findings=(), writer=None
    )
    vault.reported(item.id)
    return item


def _audits(state: Path) -> list[dict[str, object]]:
    outbox = Outbox(state / "outbox.db")
    try:
        events = outbox.pending("default", max_events=100, max_bytes=10**7)
    finally:
        outbox.close()
    return [e.document() for e in events if e.dataset == "egress_guard.audit"]


def test_list_prints_one_json_object_per_item(
    tmp_path: Path, setup: tuple[Path, Path, Vault], capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --format jsonl` prints every item as one JSON line with its metadata."""
    cfg, _, vault = setup
    items = [_put(vault, make_dump(tmp_path / "drop" / n)) for n in ("a", "b")]
    assert _main(["quarantine", "list", "--config", str(cfg), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(i.id for i in items)


def test_list_as_a_table_names_each_item(
    tmp_path: Path, setup: tuple[Path, Path, Vault], capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --format text` prints a header and one row per item with id and original path."""
    _, _, vault = setup
    item = _put(vault, make_dump(tmp_path / "drop" / "core.9"))
    assert _main(["quarantine", "list", "--dir", str(tmp_path / "vault"), "--format", "text"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["ID", "QUARANTINED"]
    assert item.id in out[1] and out[1].endswith(item.original_path)


def test_show_of_an_unknown_id_exits_1(
    setup: tuple[Path, Path, Vault], capsys: pytest.CaptureFixture[str]
) -> None:
    """An id with no item exits 1 and says so on stderr."""
    cfg, _, _ = setup
    assert _main(["quarantine", "show", "0123456789abcdef", "--config", str(cfg)]) == 1
    assert "no quarantined item" in capsys.readouterr().err


def test_restore_puts_the_file_back_and_records_an_audit_event(
    tmp_path: Path, setup: tuple[Path, Path, Vault]
) -> None:
    """A restore exits 0, writes the original bytes, and appends a success audit event."""
    cfg, state, vault = setup
    dump = make_dump(tmp_path / "drop" / "core.7")
    item = _put(vault, dump)
    assert _main(["quarantine", "restore", item.id, "--config", str(cfg)]) == 0
    assert dump.path.read_bytes() == dump.data
    (audit,) = _audits(state)
    assert audit["event"]["action"] == "quarantine-restore"  # type: ignore[index]
    assert audit["event"]["outcome"] == "success"  # type: ignore[index]
    details = audit["egress_guard"]["audit"]  # type: ignore[index]
    assert details["quarantine_id"] == item.id and details["sha256"] == dump.sha256


def test_a_refused_restore_exits_2_and_is_audited_as_a_failure(
    tmp_path: Path, setup: tuple[Path, Path, Vault], capsys: pytest.CaptureFixture[str]
) -> None:
    """Restoring outside the allowed roots exits 2 with the reason and a failure audit event."""
    cfg, state, vault = setup
    item = _put(vault, make_dump(tmp_path / "drop" / "core.8"))
    (tmp_path / "elsewhere").mkdir()
    code = _main(
        [
            "quarantine",
            "restore",
            item.id,
            "--to",
            str(tmp_path / "elsewhere"),
            "--config",
            str(cfg),
        ]
    )
    assert code == 2
    assert "outside the allowed folders" in capsys.readouterr().err
    (audit,) = _audits(state)
    assert audit["event"]["outcome"] == "failure"  # type: ignore[index]
    assert vault.show(item.id) == item


def test_sealed_export_without_the_private_key_exits_2(
    tmp_path: Path,
    setup: tuple[Path, Path, Vault],
    team_keys: TeamKeys,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exporting a sealed item needs --private-key; with it the exact bytes come out."""
    cfg, _, _ = setup
    sealed_vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public)
    dump = make_dump(tmp_path / "drop" / "core.10")
    item = _put(sealed_vault, dump)
    out = tmp_path / "review" / "case.bin"
    assert _main(["quarantine", "export", item.id, "--to", str(out), "--config", str(cfg)]) == 2
    assert "--private-key" in capsys.readouterr().err
    assert not out.exists()
    argv = ["quarantine", "export", item.id, "--to", str(out), "--config", str(cfg)]
    assert _main([*argv, "--private-key", str(team_keys.private)]) == 0
    assert out.read_bytes() == dump.data


def test_purge_removes_old_items_and_is_audited(
    tmp_path: Path, setup: tuple[Path, Path, Vault], capsys: pytest.CaptureFixture[str]
) -> None:
    """`purge --older-than 0` removes every item and records their ids in the audit event."""
    cfg, state, vault = setup
    item = _put(vault, make_dump(tmp_path / "drop" / "core.11"))
    assert _main(["quarantine", "purge", "--older-than", "0", "--config", str(cfg)]) == 0
    assert "purged 1 item" in capsys.readouterr().out
    assert vault.list() == []
    (audit,) = _audits(state)
    assert audit["egress_guard"]["audit"]["purged"] == [item.id]  # type: ignore[index]


def test_keygen_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keygen writes a 0600 private key and a public key a vault accepts; it never overwrites."""
    out = tmp_path / "keys"
    assert _main(["quarantine", "keygen", "--out", str(out)]) == 0
    assert stat.S_IMODE((out / cli.KEY_NAME).stat().st_mode) == 0o600
    assert Vault(tmp_path / "vault", seal_public_key=out / cli.PUB_NAME).sealed
    before = (out / cli.KEY_NAME).read_bytes()
    assert _main(["quarantine", "keygen", "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / cli.KEY_NAME).read_bytes() == before


def test_no_vault_folder_is_an_error_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --dir or a configured [quarantine] dir the command exits 2 and says what to pass."""
    cfg = tmp_path / "empty.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    assert _main(["quarantine", "list", "--config", str(cfg)]) == 2
    assert "--dir" in capsys.readouterr().err
