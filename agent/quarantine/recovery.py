"""Settling a move a crash interrupted: finish it when the item was committed, else roll it back.

The decision looks at the files, not only at the journal's last step: the
data file under its final vault name means the move was committed (a rename
is atomic; a copy gets that name only after its sha256 was verified), so
recovery finishes it (metadata, root-only mode, and for a copy the unlink of
the original when its name still holds the scanned inode). Anything less is
rolled back: partial copies are deleted and the original was never touched.
"""

from __future__ import annotations

import os
from typing import Any

from agent.quarantine import items
from agent.quarantine.moves import DIR_FLAGS, lock_down, lstat_at, put_back, same_inode, unlink_at
from agent.values import QuarantineItem


def settle(plan: dict[str, Any], vfd: int) -> str:
    """Finish or roll back the move described by `plan`; returns "finished" or "rolled_back"."""
    item = items.from_json(plan["item"])
    try:
        dfd = os.open(plan["src_dir"] or ".", DIR_FLAGS)
    except OSError:
        dfd = -1  # the original's folder is gone: only the vault side can be settled
    try:
        return _settle(plan, item, vfd, dfd)
    finally:
        if dfd >= 0:
            os.close(dfd)


def _settle(plan: dict[str, Any], item: QuarantineItem, vfd: int, dfd: int) -> str:
    name, final, tmp = str(plan["name"]), os.path.basename(item.vault_path), f".tmp-{item.id}"
    meta = item.id + items.META_SUFFIX
    device, inode = int(plan["device"]), int(plan["inode"])
    original = lstat_at(name, dfd) if dfd >= 0 else None
    original_is_scanned = original is not None and same_inode(original, device, inode)
    moved = lstat_at(final, vfd)
    if (
        moved is not None
        and plan["plan"] == "rename"
        and (not same_inode(moved, device, inode) or original_is_scanned)
    ):
        # a put-back was under way, or a foreign inode was renamed in: give it back
        unlink_at(meta, vfd)
        if original_is_scanned:
            os.unlink(final, dir_fd=vfd)
            os.fsync(vfd)
        elif dfd >= 0:
            put_back(final, vfd, name, dfd)
        return "rolled_back"
    if moved is None:
        # never committed: the original is untouched; drop partial copies
        for leftover in (tmp, meta):
            unlink_at(leftover, vfd)
        os.fsync(vfd)
        return "rolled_back"
    if lstat_at(meta, vfd) is None:
        items.write_meta(vfd, item)
    fd = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=vfd)
    try:
        lock_down(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    if (
        plan["plan"] == "copy"
        and original is not None
        and original_is_scanned
        and original.st_size == int(plan["size"])
        and original.st_mtime_ns == int(plan["mtime_ns"])
    ):
        os.unlink(name, dir_fd=dfd)  # the verified copy is committed: the original goes
        os.fsync(dfd)
    unlink_at(tmp, vfd)
    os.fsync(vfd)
    return "finished"
