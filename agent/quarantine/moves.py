"""The two ways a scanned inode enters the vault: one rename, or a verified (sealed) copy.

Each function takes a `Move` (the open directory and file descriptors, the
journal and the item to create), records every step in the journal before
taking it, and on failure undoes its own steps so the original stays where it
was. When undoing fails too it raises `Stuck`, and the journal is kept for
`Vault.recover()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric import x25519

from agent.errors import QuarantineError
from agent.logs import get_logger
from agent.quarantine import items, seal
from agent.quarantine.journal import Journal, crash_if
from agent.values import FileIdentity, QuarantineItem

log = get_logger(__name__)

_COPY_CHUNK = 1024 * 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FileChanged(QuarantineError):  # noqa: N818 - the pipeline matches this name; it states the condition
    """The file at the path is no longer the scanned inode or content; rescan it, nothing moved."""

    def __init__(self, message: str, *, step: str = "identity") -> None:
        super().__init__(
            message, step=step, hint="the file changed after it was scanned; it will be rescanned"
        )


class Stuck(QuarantineError):  # noqa: N818 - states the condition, like FileChanged
    """A failed move could not undo itself: its journal stays for `recover()` to settle."""


_HINTS = {
    "prepare": "check that [quarantine] dir exists, is writable and on a mounted filesystem",
    "journal": "the vault is not writable (read-only or full); the original was left in place",
    "copy": "the vault filesystem is full or failing; the original was left in place",
    "commit": "the vault filesystem is failing; the original was left in place",
    "rename": "the file's folder is not writable; the original was left in place",
    "meta": "the vault is not writable or full; the original was left in place",
    "unlink": "the original's folder is read-only; the copy was removed, the original stays",
}


def failed(step: str, exc: OSError, item_id: str | None) -> QuarantineError:
    """A QuarantineError for an OS failure at `step` (the message carries no file bytes)."""
    return QuarantineError(
        f"quarantine failed at step {step}: {exc.strerror or type(exc).__name__}",
        step=step,
        item_id=item_id,
        hint=_HINTS.get(step, "the original was left in place; it will be retried"),
    )


def same_inode(st: os.stat_result, device: int, inode: int) -> bool:
    """True when `st` describes that inode on that device."""
    return st.st_dev == device and st.st_ino == inode


def lstat_at(name: str, dir_fd: int) -> os.stat_result | None:
    """lstat of `name` in a folder, None when it is absent."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def unlink_at(name: str, dir_fd: int) -> None:
    """Remove `name` from a folder when present."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def lock_down(fd: int) -> None:
    """Make an item file root-only: a user who could read the dump before cannot read it here."""
    if os.geteuid() == 0:
        os.fchown(fd, 0, 0)
    os.fchmod(fd, 0o400)


def put_back(final: str, vfd: int, name: str, dfd: int) -> None:
    """Move a vault entry back to its original name, never replacing a file there."""
    # link, not rename: link never replaces a file created at the original name meanwhile
    try:
        os.link(final, name, src_dir_fd=vfd, dst_dir_fd=dfd, follow_symlinks=False)
    except FileExistsError:
        name = f"{name}.egress-guard-{final}"
        os.link(final, name, src_dir_fd=vfd, dst_dir_fd=dfd, follow_symlinks=False)
    os.fsync(dfd)
    os.unlink(final, dir_fd=vfd)
    os.fsync(vfd)


def _copy_hash(src: BinaryIO, dst: BinaryIO, on_chunk: Callable[[], None]) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(_COPY_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
        on_chunk()
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """One move in progress: open descriptors, its journal, and the item it creates."""

    journal: Journal
    jfd: int  # the move's journal file
    fd: int  # the scanned file, opened without following symlinks
    dfd: int  # the original's folder
    vfd: int  # the vault folder
    item: QuarantineItem
    ident: FileIdentity
    seal_key: x25519.X25519PublicKey | None = None

    @property
    def name(self) -> str:
        """The original's name in its folder."""
        return os.path.basename(self.ident.path)

    @property
    def final(self) -> str:
        """The item's data file name in the vault."""
        return os.path.basename(self.item.vault_path)

    def unchanged(self) -> bool:
        """The open file still has the scanned size and mtime."""
        after = os.fstat(self.fd)
        return after.st_size == self.ident.size and after.st_mtime_ns == self.ident.mtime_ns


def by_rename(m: Move) -> None:
    """Same filesystem, not sealed: rename the inode into the vault through directory fds."""
    ident = m.ident
    try:
        m.journal.step(m.jfd, "rename")
        current = lstat_at(m.name, m.dfd)
        if current is None or not same_inode(current, ident.device, ident.inode):
            raise FileChanged(f"{ident.path} was replaced after it was scanned")
        os.rename(m.name, m.final, src_dir_fd=m.dfd, dst_dir_fd=m.vfd)
    except OSError as exc:
        raise failed("rename", exc, m.item.id) from None
    try:
        moved = lstat_at(m.final, m.vfd)
        if moved is None or not same_inode(moved, ident.device, ident.inode) or not m.unchanged():
            # lost a race between the check and the rename, or the writer is still writing
            put_back(m.final, m.vfd, m.name, m.dfd)
            raise FileChanged(f"{ident.path} changed while it was being moved")
        os.fsync(m.fd)
        os.fsync(m.vfd)
        os.fsync(m.dfd)
        m.journal.step(m.jfd, "meta")
        items.write_meta(m.vfd, m.item)
        lock_down(m.fd)
        os.fsync(m.fd)
    except OSError as exc:
        try:
            unlink_at(m.item.id + items.META_SUFFIX, m.vfd)
            put_back(m.final, m.vfd, m.name, m.dfd)
        except OSError:
            raise Stuck(
                f"quarantine of {ident.path} stopped half-way ({exc.strerror})",
                step="meta",
                item_id=m.item.id,
                hint="the file is in the vault without metadata; the agent's next start settles it",
            ) from None
        raise failed("meta", exc, m.item.id) from None


def _copy_in(m: Move, tmp: str, on_chunk: Callable[[], None]) -> str:
    """Stream the open file into `tmp` (encrypted when sealing); the plaintext's sha256."""
    tfd = os.open(tmp, _NEW_FILE, 0o400, dir_fd=m.vfd)
    with os.fdopen(tfd, "wb") as out, os.fdopen(os.dup(m.fd), "rb") as src:
        lock_down(out.fileno())
        if m.seal_key is not None:
            digest = seal.seal_stream(src, out, m.seal_key, on_chunk=on_chunk)
        else:
            digest = _copy_hash(src, out, on_chunk)
        seal.fsync_file(out)
    return digest


def _verify(m: Move, digest: str) -> None:
    if digest != m.item.sha256 or not m.unchanged():
        raise FileChanged(f"{m.ident.path} changed after it was scanned", step="verify")


def by_copy(m: Move, fault: str | None) -> None:
    """Across filesystems or when sealing: copy, verify, commit, then unlink the original."""
    ident, tmp = m.ident, f".tmp-{m.item.id}"
    fired = False

    def on_chunk() -> None:
        nonlocal fired
        if not fired:
            fired = True
            crash_if(fault, "copying")

    step = "copy"
    original_gone = False
    try:
        m.journal.step(m.jfd, "copy")
        # the digest is of the bytes copied, so an edit after the scan cannot slip through
        _verify(m, _copy_in(m, tmp, on_chunk))
        step = "commit"
        m.journal.step(m.jfd, "commit")
        os.rename(tmp, m.final, src_dir_fd=m.vfd, dst_dir_fd=m.vfd)
        os.fsync(m.vfd)
        step = "meta"
        m.journal.step(m.jfd, "meta")
        items.write_meta(m.vfd, m.item)
        step = "unlink"
        m.journal.step(m.jfd, "unlink")
        current = lstat_at(m.name, m.dfd)
        if current is not None and same_inode(current, ident.device, ident.inode):
            os.unlink(m.name, dir_fd=m.dfd)
            original_gone = True
            with contextlib.suppress(OSError):
                os.fsync(m.dfd)  # the unlink is done: the vault copy must stay whatever happens
        else:
            # the name was replaced after the copy: what is there now is a new arrival
            log.warning("quarantine.original_replaced", id=m.item.id, path=ident.path)
    except BaseException as exc:
        if original_gone:
            raise
        _undo_copy(m, tmp, step)
        if isinstance(exc, OSError):
            raise failed(step, exc, m.item.id) from None
        raise


def _undo_copy(m: Move, tmp: str, step: str) -> None:
    try:
        for leftover in (tmp, m.final, m.item.id + items.META_SUFFIX):
            unlink_at(leftover, m.vfd)
        os.fsync(m.vfd)
    except OSError:
        raise Stuck(
            f"quarantine of {m.ident.path} stopped half-way and could not be undone",
            step=step,
            item_id=m.item.id,
            hint="the original is in place; the agent's next start removes the partial copy",
        ) from None
