"""The vault against real crashes and real filesystems: SIGKILL at every step, a second fs, a full disk.

A child process quarantines one file with `EGRESS_GUARD_FAULT=<step>` and is
SIGKILLed right after that journal step; a second process runs `recover()`;
then the file must be whole in exactly one place. The second filesystem is a
tmpfs (or a loop-mounted ext2 image when tmpfs cannot be mounted).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.errors import QuarantineError
from agent.quarantine import seal
from agent.quarantine.journal import FAULT_ENV
from agent.quarantine.vault import Vault
from agent.values import FileIdentity

MARKER = b"EGRESS-GUARD-CRASH-TEST-PLAINTEXT"

_QUARANTINE = """
import hashlib, os, sys
from pathlib import Path
from agent import logs
from agent.quarantine.vault import Vault
from agent.values import FileIdentity
logs.configure(json=True)
vault_dir, path, pub = sys.argv[1:4]
st = os.lstat(path)
with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
identity = FileIdentity(path=path, device=st.st_dev, inode=st.st_ino, size=st.st_size,
                        mtime_ns=st.st_mtime_ns, uid=st.st_uid, mode=st.st_mode)
vault = Vault(Path(vault_dir), seal_public_key=Path(pub) if pub else None)
item = vault.quarantine(identity, sha256=digest, rules=("r",), findings=(), writer=None)
vault.reported(item.id)  # as the pipeline does once the finding event is in the outbox
print(item.id)
"""

_RECOVER = """
import json, sys
from pathlib import Path
from agent import logs
from agent.quarantine.vault import Vault
logs.configure(json=True)
print(json.dumps(Vault(Path(sys.argv[1])).recover()))
"""


def _run(code: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


@contextmanager
def second_filesystem(target: Path, size: str) -> Iterator[Path]:
    """Mount a separate filesystem at `target`: tmpfs, else a loop-mounted ext2 image."""
    target.mkdir(parents=True, exist_ok=True)
    tried = _sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target))
    if tried.returncode != 0:
        image = target.parent / (target.name + ".img")
        steps = [
            ("truncate", "-s", size, str(image)),
            ("mkfs.ext2", "-q", "-F", str(image)),
            ("mount", "-o", "loop", str(image), str(target)),
        ]
        for step in steps:
            result = _sh(*step)
            if result.returncode != 0:
                pytest.fail(
                    "cannot mount a second filesystem for the cross-filesystem tests "
                    f"(tmpfs: {tried.stderr.strip()}; {step[0]}: {result.stderr.strip()}); "
                    "run the tests as root on a host that allows mount"
                )
    try:
        assert os.stat(target).st_dev != os.stat(target.parent).st_dev
        yield target
    finally:
        _sh("umount", str(target))


@pytest.fixture(scope="module")
def other_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 64 MiB filesystem separate from tmp_path's, shared by this module's tests."""
    with second_filesystem(tmp_path_factory.mktemp("xfs") / "mnt", "64m") as mnt:
        yield mnt


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The security team's key pair (private, public)."""
    d = tmp_path_factory.mktemp("team")
    private, public = seal.generate_keypair()
    (d / "team.key").write_bytes(private)
    (d / "team.pub").write_bytes(public)
    return d / "team.key", d / "team.pub"


def _identity(path: Path) -> FileIdentity:
    st = os.lstat(path)
    return FileIdentity(
        path=str(path),
        device=st.st_dev,
        inode=st.st_ino,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        uid=st.st_uid,
        mode=st.st_mode,
    )


def _plaintext(vault: Vault, item_path: str, sealed: bool, private: Path) -> bytes:
    if not sealed:
        return Path(item_path).read_bytes()
    out = Path(item_path).parent.parent / "opened.bin"
    with Path(item_path).open("rb") as src, out.open("wb") as dst:
        seal.open_stream(src, dst, seal.load_private_key(private))
    data = out.read_bytes()
    out.unlink()
    return data


RENAME_STEPS = ["none", "begin", "rename", "meta", "done"]
COPY_STEPS = ["none", "begin", "copy", "copying", "commit", "meta", "unlink", "done"]
# where the file must be after recovery when the process died right after each step
IN_VAULT_AFTER = {"none", "meta", "unlink", "done"}

CASES = (
    [("rename-same-fs", s) for s in RENAME_STEPS]
    + [("copy-cross-fs", s) for s in COPY_STEPS]
    + [("sealed-same-fs", s) for s in COPY_STEPS]
    + [("sealed-cross-fs", s) for s in COPY_STEPS]
)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "fault"), CASES, ids=[f"{m}-{s}" for m, s in CASES])
def test_a_sigkill_at_any_step_leaves_the_file_whole_in_exactly_one_place(
    tmp_path: Path, other_fs: Path, team: tuple[Path, Path], mode: str, fault: str
) -> None:
    """After SIGKILL at any journal step and recover(), the file is whole at one place only."""
    private, public = team
    sealed = mode.startswith("sealed")
    base = other_fs / tmp_path.name if mode.endswith("cross-fs") else tmp_path
    vault_dir = base / "vault"
    drop = tmp_path / "drop"
    drop.mkdir()
    original = drop / "core.4242"
    data = MARKER + os.urandom(300_000) + MARKER  # several seal chunks
    original.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    child = _run(
        _QUARANTINE,
        str(vault_dir),
        str(original),
        str(public) if sealed else "",
        fault=None if fault == "none" else fault,
    )
    if fault == "none":
        assert child.returncode == 0, child.stderr
    else:
        assert child.returncode == -signal.SIGKILL, child.stderr
    recovered = _run(_RECOVER, str(vault_dir))
    assert recovered.returncode == 0, recovered.stderr
    acted = json.loads(recovered.stdout)
    assert len(acted) == (0 if fault == "none" else 1)

    vault = Vault(vault_dir)
    listed = vault.list()
    if fault in IN_VAULT_AFTER:
        assert not original.exists()
        assert len(listed) == 1
        item = listed[0]
        assert (item.sha256, item.sealed) == (digest, sealed)
        assert (
            hashlib.sha256(_plaintext(vault, item.vault_path, sealed, private)).hexdigest()
            == digest
        )
        assert sorted(os.listdir(vault_dir)) == sorted(
            [".journal", os.path.basename(item.vault_path), f"{item.id}.json"]
        )
    else:
        assert hashlib.sha256(original.read_bytes()).hexdigest() == digest
        assert listed == []
        assert os.listdir(vault_dir) == [".journal"]
    assert os.listdir(vault_dir / ".journal") == []
    # never a second copy outside the vault, never plaintext of a sealed item inside it
    assert [p.name for p in drop.iterdir()] == ([] if fault in IN_VAULT_AFTER else ["core.4242"])
    if sealed:
        for path in vault_dir.rglob("*"):
            if path.is_file():
                assert MARKER not in path.read_bytes()


def test_cross_filesystem_quarantine_copies_verifies_and_removes_the_original(
    tmp_path: Path, other_fs: Path
) -> None:
    """Across filesystems the vault holds a verified copy and the original path is empty."""
    original = tmp_path / "drop" / "heap.hprof"
    original.parent.mkdir()
    data = os.urandom(2_000_000)
    original.write_bytes(data)
    vault = Vault(other_fs / tmp_path.name / "vault")
    item = vault.quarantine(
        _identity(original),
        sha256=hashlib.sha256(data).hexdigest(),
        rules=("r",),
        findings=(),
        writer=None,
    )
    assert not original.exists()
    assert Path(item.vault_path).read_bytes() == data
    assert os.stat(item.vault_path).st_dev != os.stat(tmp_path).st_dev


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_a_full_vault_disk_leaves_the_original_in_place(
    tmp_path: Path, team: tuple[Path, Path], sealed: bool
) -> None:
    """When the vault's filesystem is full, QuarantineError is raised and nothing is lost."""
    original = tmp_path / "drop" / "vmcore"
    original.parent.mkdir()
    data = os.urandom(3_000_000)
    original.write_bytes(data)
    with second_filesystem(tmp_path / "tiny", "1m") as tiny:
        vault = Vault(tiny / "vault", seal_public_key=team[1] if sealed else None)
        with pytest.raises(QuarantineError) as err:
            vault.quarantine(
                _identity(original),
                sha256=hashlib.sha256(data).hexdigest(),
                rules=("r",),
                findings=(),
                writer=None,
            )
        assert err.value.step == "copy"
        assert err.value.hint
        assert original.read_bytes() == data
        assert vault.list() == []
        assert sorted(os.listdir(tiny / "vault")) == [".journal"]
        assert os.listdir(tiny / "vault" / ".journal") == []


def test_a_read_only_vault_leaves_the_original_in_place(tmp_path: Path) -> None:
    """A vault on a read-only mount raises QuarantineError; the original stays whole."""
    original = tmp_path / "drop" / "core.1"
    original.parent.mkdir()
    data = os.urandom(50_000)
    original.write_bytes(data)
    with second_filesystem(tmp_path / "ro", "4m") as ro:
        vault = Vault(ro / "vault")
        remount = _sh("mount", "-o", "remount,ro", str(ro))
        assert remount.returncode == 0, remount.stderr
        with pytest.raises(QuarantineError) as err:
            vault.quarantine(
                _identity(original),
                sha256=hashlib.sha256(data).hexdigest(),
                rules=("r",),
                findings=(),
                writer=None,
            )
        assert err.value.step in {"prepare", "journal"}
        assert original.read_bytes() == data
