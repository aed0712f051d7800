"""The vault on one filesystem: moves the scanned inode, refuses changed files, restores safely."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import TeamKeys
from vaultkit import MARKER, Dump, make_dump

from agent.errors import QuarantineError
from agent.quarantine import items, seal
from agent.quarantine.vault import FileChanged, ItemNotFound, Vault
from agent.values import QuarantineItem

FINDINGS = ({"rule": "pem_private_key", "format": "pem", "fingerprint": "sha256:00"},)


def _quarantine(vault: Vault, dump: Dump) -> QuarantineItem:
    """Quarantine as the pipeline does: move, then acknowledge that the event is durable."""
    item = vault.quarantine(
        dump.identity,
        sha256=dump.sha256,
        rules=("pem_private_key",),
        findings=FINDINGS,
        writer=None,
    )
    vault.reported(item.id)
    return item


def _vault_files(vault_dir: Path) -> list[Path]:
    return [p for p in vault_dir.rglob("*") if p.is_file()]


def test_quarantine_moves_the_scanned_inode_into_the_vault(tmp_path: Path) -> None:
    """On one filesystem the very inode that was scanned is renamed into the vault, whole."""
    dump = make_dump(tmp_path / "drop" / "core.1")
    vault = Vault(tmp_path / "vault", host="debug-1")
    item = _quarantine(vault, dump)
    assert not dump.path.exists()
    moved = Path(item.vault_path)
    assert moved.stat().st_ino == dump.identity.inode
    assert moved.read_bytes() == dump.data
    assert (item.original_path, item.size, item.sha256, item.sealed, item.host) == (
        str(dump.path),
        len(dump.data),
        dump.sha256,
        False,
        "debug-1",
    )
    assert item.mode == 0o640
    assert vault.list() == [item]
    assert vault.show(item.id) == item


def test_vault_folder_and_item_files_are_root_only(tmp_path: Path) -> None:
    """The vault folder is 0700 and each item's data and metadata are 0400, owned by root."""
    (tmp_path / "vault").mkdir(mode=0o755)
    vault = Vault(tmp_path / "vault")
    item = _quarantine(vault, make_dump(tmp_path / "drop" / "a.dmp"))
    assert stat.S_IMODE((tmp_path / "vault").stat().st_mode) == 0o700
    for path in (Path(item.vault_path), tmp_path / "vault" / f"{item.id}.json"):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o400
        assert st.st_uid == os.geteuid() == 0


def test_metadata_beside_the_item_holds_what_was_found_and_no_bytes(tmp_path: Path) -> None:
    """The metadata file records the finding descriptions and never the file's content."""
    dump = make_dump(tmp_path / "drop" / "b.dmp")
    item = _quarantine(Vault(tmp_path / "vault"), dump)
    meta = (tmp_path / "vault" / f"{item.id}.json").read_bytes()
    doc = json.loads(meta)
    assert doc["findings"] == [dict(f) for f in FINDINGS]
    assert doc["rules"] == ["pem_private_key"]
    assert MARKER not in meta


def test_a_sealed_vault_never_holds_the_plaintext(tmp_path: Path, team_keys: TeamKeys) -> None:
    """With a team key the file is copied in encrypted and the original is removed."""
    dump = make_dump(tmp_path / "drop" / "c.dmp", size=300_000)
    vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public)
    item = _quarantine(vault, dump)
    assert item.sealed and item.vault_path.endswith(".sealed")
    assert not dump.path.exists()
    for path in _vault_files(tmp_path / "vault"):
        assert MARKER not in path.read_bytes()


def test_a_replaced_file_is_not_moved(tmp_path: Path) -> None:
    """A different inode at the scanned path raises FileChanged and nothing moves."""
    dump = make_dump(tmp_path / "drop" / "d.dmp")
    replacement = tmp_path / "drop" / "d.new"
    replacement.write_bytes(dump.data)
    os.utime(replacement, ns=(dump.identity.mtime_ns, dump.identity.mtime_ns))
    replacement.replace(dump.path)
    vault = Vault(tmp_path / "vault")
    with pytest.raises(FileChanged):
        _quarantine(vault, dump)
    assert dump.path.read_bytes() == dump.data
    assert vault.list() == []
    assert _vault_files(tmp_path / "vault") == []


def test_a_planted_symlink_is_never_followed_or_moved(tmp_path: Path) -> None:
    """A symlink put in place of the scanned file raises FileChanged; link and target stay."""
    dump = make_dump(tmp_path / "drop" / "e.dmp")
    secret = tmp_path / "etc-shadow"
    secret.write_bytes(b"root:x:0:0")
    dump.path.unlink()
    dump.path.symlink_to(secret)
    vault = Vault(tmp_path / "vault")
    with pytest.raises(FileChanged):
        _quarantine(vault, dump)
    assert dump.path.is_symlink()
    assert secret.read_bytes() == b"root:x:0:0"
    assert _vault_files(tmp_path / "vault") == []


@pytest.mark.parametrize("sealed", [False, True], ids=["rename", "sealed-copy"])
def test_a_file_grown_after_the_scan_is_not_moved(
    tmp_path: Path, team_keys: TeamKeys, sealed: bool
) -> None:
    """A file appended to after its scan raises FileChanged and stays in place."""
    dump = make_dump(tmp_path / "drop" / "f.dmp")
    with dump.path.open("ab") as f:
        f.write(b"more")
    vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public if sealed else None)
    with pytest.raises(FileChanged):
        _quarantine(vault, dump)
    assert dump.path.read_bytes() == dump.data + b"more"
    assert _vault_files(tmp_path / "vault") == []


def test_content_edited_in_place_is_caught_by_the_hash(tmp_path: Path, team_keys: TeamKeys) -> None:
    """Same inode, size and mtime but other bytes: the copy's sha256 differs, nothing moves."""
    dump = make_dump(tmp_path / "drop" / "g.dmp")
    with dump.path.open("r+b") as f:
        f.seek(100)
        f.write(
            bytes([dump.data[100] ^ 0xFF])
        )  # always another byte (b"X" was one in 256 times the same)
    os.utime(dump.path, ns=(dump.identity.mtime_ns, dump.identity.mtime_ns))
    vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public)
    with pytest.raises(FileChanged) as err:
        _quarantine(vault, dump)
    assert err.value.step == "verify"
    assert dump.path.exists()
    assert _vault_files(tmp_path / "vault") == []


def test_a_vanished_file_raises_file_changed(tmp_path: Path) -> None:
    """A file deleted between scan and move is reported as changed, not as a vault failure."""
    dump = make_dump(tmp_path / "drop" / "h.dmp")
    dump.path.unlink()
    with pytest.raises(FileChanged):
        _quarantine(Vault(tmp_path / "vault"), dump)


def test_restore_puts_the_exact_file_back_with_its_mode_and_mtime(tmp_path: Path) -> None:
    """Restore writes the original bytes, mode and mtime back and removes the item."""
    dump = make_dump(tmp_path / "drop" / "i.dmp")
    vault = Vault(tmp_path / "vault")
    item = _quarantine(vault, dump)
    assert vault.restore(item.id) == dump.path
    st = dump.path.stat()
    assert dump.path.read_bytes() == dump.data
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, dump.identity.mtime_ns)
    assert vault.list() == []
    assert _vault_files(tmp_path / "vault") == []


def test_restore_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing file at the target is never replaced; the item stays in the vault."""
    dump = make_dump(tmp_path / "drop" / "j.dmp")
    vault = Vault(tmp_path / "vault")
    item = _quarantine(vault, dump)
    dump.path.write_bytes(b"new file")
    with pytest.raises(QuarantineError, match="refusing to overwrite"):
        vault.restore(item.id)
    assert dump.path.read_bytes() == b"new file"
    assert vault.show(item.id) == item


def test_restore_refuses_targets_outside_the_allowed_roots(tmp_path: Path) -> None:
    """With restore_roots set, only those folders and the original's folder are allowed."""
    dump = make_dump(tmp_path / "drop" / "k.dmp")
    (tmp_path / "review").mkdir()
    (tmp_path / "elsewhere").mkdir()
    vault = Vault(tmp_path / "vault", restore_roots=[str(tmp_path / "review")])
    item = _quarantine(vault, dump)
    with pytest.raises(QuarantineError, match="outside the allowed folders") as err:
        vault.restore(item.id, to=tmp_path / "elsewhere")
    assert err.value.step == "restore_target"
    with pytest.raises(QuarantineError, match="outside the allowed folders"):
        vault.restore(item.id, to=tmp_path / "review" / ".." / "elsewhere" / "x")
    assert vault.restore(item.id, to=tmp_path / "review") == tmp_path / "review" / "k.dmp"
    assert (tmp_path / "review" / "k.dmp").read_bytes() == dump.data


def test_restore_into_the_original_folder_is_allowed_with_roots(tmp_path: Path) -> None:
    """The original's own folder is always an allowed restore target."""
    dump = make_dump(tmp_path / "drop" / "l.dmp")
    vault = Vault(tmp_path / "vault", restore_roots=[str(tmp_path / "review")])
    item = _quarantine(vault, dump)
    assert vault.restore(item.id, to=tmp_path / "drop" / "l.released") == (
        tmp_path / "drop" / "l.released"
    )


def test_sealed_restore_needs_the_right_private_key(
    tmp_path: Path, team_keys: TeamKeys, other_keys: TeamKeys
) -> None:
    """A sealed item opens only with the team's private key, to the exact bytes."""
    dump = make_dump(tmp_path / "drop" / "m.dmp", size=150_000)
    vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public)
    item = _quarantine(vault, dump)
    with pytest.raises(seal.SealError, match="sealed to the security team's key"):
        vault.restore(item.id)
    with pytest.raises(seal.SealError, match="wrong private key"):
        vault.restore(item.id, private_key=other_keys.private)
    assert not dump.path.exists()
    assert [p.name for p in dump.path.parent.iterdir()] == []  # no partial plaintext left
    assert vault.restore(item.id, private_key=team_keys.private) == dump.path
    assert dump.path.read_bytes() == dump.data


def test_export_writes_a_private_copy_and_keeps_the_item(
    tmp_path: Path, team_keys: TeamKeys
) -> None:
    """Export decrypts to a new 0600 file and the sealed item stays in the vault."""
    dump = make_dump(tmp_path / "drop" / "n.dmp")
    vault = Vault(tmp_path / "vault", seal_public_key=team_keys.public)
    item = _quarantine(vault, dump)
    out = vault.export(item.id, to=tmp_path / "case-42.bin", private_key=team_keys.private)
    assert out.read_bytes() == dump.data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert vault.show(item.id) == item
    with pytest.raises(QuarantineError, match="refusing to overwrite"):
        vault.export(item.id, to=out, private_key=team_keys.private)


def test_a_tampered_vault_file_is_not_restored(tmp_path: Path) -> None:
    """An unsealed item whose bytes no longer match its sha256 is refused; nothing is written."""
    dump = make_dump(tmp_path / "drop" / "o.dmp")
    vault = Vault(tmp_path / "vault")
    item = _quarantine(vault, dump)
    data_file = Path(item.vault_path)
    data_file.chmod(0o600)
    with data_file.open("r+b") as f:
        f.write(b"tampered")
    with pytest.raises(QuarantineError, match="does not match the sha256"):
        vault.restore(item.id)
    assert list((tmp_path / "drop").iterdir()) == []


def test_purge_deletes_only_items_older_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """purge(older_than_days) removes old items (data and metadata) and keeps recent ones."""
    vault = Vault(tmp_path / "vault")
    monkeypatch.setattr(items, "now_iso", lambda: "2020-01-01T00:00:00.000Z")
    old = _quarantine(vault, make_dump(tmp_path / "drop" / "old.dmp"))
    monkeypatch.undo()
    recent = _quarantine(vault, make_dump(tmp_path / "drop" / "new.dmp"))
    assert vault.purge(older_than_days=30) == [old.id]
    assert vault.list() == [recent]
    assert not Path(old.vault_path).exists()
    assert vault.purge(older_than_days=30) == []


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "0123456789ABCDEF", "0123"])
def test_show_refuses_ids_that_are_not_vault_ids(tmp_path: Path, bad: str) -> None:
    """Ids become file names: anything but 16 lower-case hex characters is not found."""
    with pytest.raises(ItemNotFound):
        Vault(tmp_path / "vault").show(bad)


def test_show_of_an_unknown_id_is_item_not_found(tmp_path: Path) -> None:
    """A well-formed id with no item raises ItemNotFound with a hint."""
    with pytest.raises(ItemNotFound) as err:
        Vault(tmp_path / "vault").show("0123456789abcdef")
    assert err.value.hint
