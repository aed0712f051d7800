"""Getting an item out of the vault: restore (back where it belongs) and export (a copy to analyse).

Both write a temporary file beside the target, verify the sha256 recorded at
quarantine time (decrypting a sealed item with the team's private key), and
then hard-link it to the target name: a link never replaces an existing file,
so a restore cannot overwrite anything, even a file created a moment before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from agent.errors import QuarantineError
from agent.quarantine import seal
from agent.values import QuarantineItem

_CHUNK = 1024 * 1024


def resolve_target(target: Path, item: QuarantineItem) -> Path:
    """The file to write: `target`, or the original's name inside `target` when it is a folder."""
    if target.is_dir():
        target = target / os.path.basename(item.original_path)
    # the folder is resolved (symlinks in it are the admin's choice); the name itself is not
    return Path(os.path.realpath(target.parent)) / target.name


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_roots(target: Path, item: QuarantineItem, roots: tuple[str, ...]) -> None:
    """Refuse a restore outside the allowed roots (when any are set) and the original's folder."""
    if not roots:
        return
    allowed = (*roots, os.path.realpath(os.path.dirname(item.original_path)))
    folder = str(target.parent)
    if not any(_within(folder, root) for root in allowed):
        raise QuarantineError(
            f"refusing to restore item {item.id} to {target}: outside the allowed folders",
            step="restore_target",
            item_id=item.id,
            hint="restore into the original folder or one of [quarantine] restore_roots: "
            + ", ".join(allowed),
        )


def _refuse_existing(target: Path, item: QuarantineItem) -> QuarantineError:
    return QuarantineError(
        f"refusing to overwrite {target}",
        step="restore_target",
        item_id=item.id,
        hint="move the existing file away or pass --to with a new path",
    )


def write_out(
    item: QuarantineItem, target: Path, *, private_key: Path | None, restore: bool
) -> None:
    """Write the item's plaintext to `target`, verified; original mode/owner/mtime on restore."""
    if os.path.lexists(target):
        raise _refuse_existing(target, item)
    key = None
    if item.sealed:
        if private_key is None:
            raise seal.SealError(
                f"item {item.id} is sealed to the security team's key",
                step="open_seal",
                item_id=item.id,
                hint="pass the team's X25519 private key with --private-key FILE",
            )
        key = seal.load_private_key(private_key)
    try:
        src_fd = os.open(item.vault_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise QuarantineError(
            f"cannot open the vault file of item {item.id}: {exc.strerror}",
            step="read_item",
            item_id=item.id,
            hint="check the vault folder; `quarantine show` prints the item's vault_path",
        ) from None
    try:
        dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(src_fd)
        raise QuarantineError(
            f"cannot open the target folder {target.parent}: {exc.strerror}",
            step="restore_target",
            item_id=item.id,
            hint="create the folder first or pass --to with an existing folder",
        ) from None
    tmp = f".egress-guard-{item.id}-{secrets.token_hex(4)}.tmp"
    try:
        _write_verified(item, src_fd, dfd, tmp, key, restore=restore)
        try:
            os.link(tmp, target.name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileExistsError:
            raise _refuse_existing(target, item) from None
        os.fsync(dfd)
    except OSError as exc:
        raise QuarantineError(
            f"cannot write {target}: {exc.strerror}",
            step="write_out",
            item_id=item.id,
            hint="check free space and permissions of the target folder",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        os.close(dfd)
        os.close(src_fd)


def _write_verified(
    item: QuarantineItem,
    src_fd: int,
    dfd: int,
    tmp: str,
    key: x25519.X25519PrivateKey | None,
    *,
    restore: bool,
) -> None:
    out_fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
    )
    with os.fdopen(out_fd, "wb") as out, os.fdopen(os.dup(src_fd), "rb") as src:
        if key is not None:
            digest = seal.open_stream(src, out, key)
        else:
            h = hashlib.sha256()
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
            digest = h.hexdigest()
        if digest != item.sha256:
            raise QuarantineError(
                f"item {item.id} does not match the sha256 recorded when it was quarantined",
                step="verify",
                item_id=item.id,
                hint="the vault file was altered; nothing was written",
            )
        if restore:
            if os.geteuid() == 0:
                os.fchown(out.fileno(), item.owner_uid, -1)
            os.fchmod(out.fileno(), item.mode & 0o7777)
        out.flush()
        os.utime(out.fileno(), ns=(item.mtime_ns, item.mtime_ns))
        seal.fsync_file(out)
