"""The quarantine vault: moves the scanned inode out of reach, atomically, crash-safely, optionally sealed.

Layout of the vault folder (0700, owned by the agent's user, root in production):

    <id>.data | <id>.sealed   the file (0400); `.sealed` is encrypted to the team key
    <id>.json                 its metadata (0400, see items.py)
    .journal/<id>.jsonl       a move in progress (see journal.py)
    .tmp-<id>                 a copy being written (never plaintext when sealing)

Two ways in. Same filesystem and no sealing: one rename through directory
fds (the inode moves, nothing is copied). Otherwise: stream a copy (encrypted
when sealing) into `.tmp-<id>` while hashing the plaintext, fsync, compare
with the scanned sha256, rename into place, write the metadata, and only then
unlink the original if its name still holds the scanned inode. Either way the
opened file must be the scanned inode (device, inode, size, mtime), else
FileChanged: the pipeline rescans instead of moving a file nobody scanned.
Any failure leaves the original where it was and the vault without the item.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import QuarantineError
from agent.logs import get_logger
from agent.quarantine import items, moves, recovery, release, seal
from agent.quarantine.items import ItemNotFound
from agent.quarantine.journal import Entry, Journal, fault_from_env
from agent.quarantine.moves import FileChanged
from agent.values import FileIdentity, ProcessInfo, QuarantineItem

__all__ = ["FileChanged", "ItemNotFound", "Vault"]

log = get_logger(__name__)


class Vault:
    """A quarantine folder: quarantine, recover, list, show, restore, export, purge."""

    def __init__(
        self,
        directory: Path,
        *,
        seal_public_key: Path | None = None,
        restore_roots: Sequence[str] = (),
        host: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.seal_key = seal.load_public_key(Path(seal_public_key)) if seal_public_key else None
        self.restore_roots = tuple(os.path.realpath(r) for r in restore_roots)
        self.host = host
        # read once: the fault point is fixed for the life of the vault (tests only)
        self._fault = fault_from_env()
        self._journal = Journal(self.directory / ".journal", fault=self._fault)
        with contextlib.suppress(OSError):
            self._prepare()  # a vault not yet writable fails per file, with the reason

    @property
    def sealed(self) -> bool:
        """True when files are encrypted to the team key on the way in."""
        return self.seal_key is not None

    def _prepare(self) -> None:
        for d in (self.directory, self.directory / ".journal"):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = d.lstat()
            if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != 0o700:
                d.chmod(0o700)

    def _open_dir(self) -> int:
        return os.open(self.directory, moves.DIR_FLAGS)

    # -- in --------------------------------------------------------------------------

    def quarantine(
        self,
        identity: FileIdentity,
        *,
        sha256: str,
        rules: tuple[str, ...],
        findings: tuple[dict[str, Any], ...],
        writer: ProcessInfo | None,
    ) -> QuarantineItem:
        """Move the scanned inode into the vault (FileChanged when it is not that inode anymore)."""
        try:
            self._prepare()
            vfd = self._open_dir()
        except OSError as exc:
            raise moves.failed("prepare", exc, None) from None
        src_dir, name = os.path.split(identity.path)
        try:
            dfd = os.open(src_dir or ".", moves.DIR_FLAGS)
        except OSError:
            os.close(vfd)
            raise FileChanged(f"the folder of {identity.path} is gone", step="open") from None
        try:
            fd = self._open_scanned(name, dfd, identity)
            try:
                item = self._new_item(
                    identity, sha256=sha256, rules=rules, findings=findings, writer=writer
                )
                self._move(item, identity, fd=fd, dfd=dfd, vfd=vfd)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
            os.close(vfd)
        return item

    @staticmethod
    def _open_scanned(name: str, dfd: int, identity: FileIdentity) -> int:
        try:
            # O_NOFOLLOW: a symlink planted in place of the file is never followed;
            # O_NONBLOCK: a FIFO planted there cannot hang the agent
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd
            )
        except OSError as exc:
            raise FileChanged(
                f"cannot open {identity.path} as the scanned file ({exc.strerror})", step="open"
            ) from None
        st = os.fstat(fd)
        if not (
            stat.S_ISREG(st.st_mode)
            and moves.same_inode(st, identity.device, identity.inode)
            and st.st_size == identity.size
            and st.st_mtime_ns == identity.mtime_ns
        ):
            os.close(fd)
            raise FileChanged(f"{identity.path} is not the scanned file anymore")
        return fd

    def _new_item(
        self,
        identity: FileIdentity,
        *,
        sha256: str,
        rules: tuple[str, ...],
        findings: tuple[dict[str, Any], ...],
        writer: ProcessInfo | None,
    ) -> QuarantineItem:
        item_id = items.new_id()
        return QuarantineItem(
            id=item_id,
            original_path=identity.path,
            vault_path=str(self.directory / f"{item_id}.{'sealed' if self.sealed else 'data'}"),
            size=identity.size,
            sha256=sha256,
            quarantined_at=items.now_iso(),
            owner_uid=identity.uid,
            mode=stat.S_IMODE(identity.mode),
            mtime_ns=identity.mtime_ns,
            sealed=self.sealed,
            rules=tuple(rules),
            findings=tuple(findings),
            writer=writer,
            host=self.host,
        )

    def _move(
        self, item: QuarantineItem, identity: FileIdentity, *, fd: int, dfd: int, vfd: int
    ) -> None:
        same_fs = os.fstat(vfd).st_dev == identity.device
        plan = {
            # sealing never renames: the plaintext must not land in the vault, not even briefly
            "plan": "rename" if same_fs and not self.sealed else "copy",
            "src_dir": os.path.dirname(identity.path),
            "name": os.path.basename(identity.path),
            "device": identity.device,
            "inode": identity.inode,
            "size": identity.size,
            "mtime_ns": identity.mtime_ns,
            "item": items.to_json(item),
        }
        try:
            jfd = self._journal.begin(item.id, plan)
        except OSError as exc:
            raise moves.failed("journal", exc, item.id) from None
        move = moves.Move(
            journal=self._journal,
            jfd=jfd,
            fd=fd,
            dfd=dfd,
            vfd=vfd,
            item=item,
            ident=identity,
            seal_key=self.seal_key,
        )
        try:
            if plan["plan"] == "rename":
                moves.by_rename(move)
            else:
                moves.by_copy(move, self._fault)
        except moves.Stuck:
            os.close(jfd)
            raise
        except BaseException:
            os.close(jfd)
            # the move undid its own steps; a journal we cannot remove is settled by recover()
            with contextlib.suppress(OSError):
                self._journal.remove(item.id)
            raise
        # the item is whole in the vault. The journal stays until reported() says the
        # finding event is in the outbox: a crash in between leaves it for recover(), whose
        # audit event then names the item, so no quarantine goes unreported
        with contextlib.suppress(OSError):
            self._journal.step(jfd, "done")
        os.close(jfd)

    def reported(self, item_id: str) -> None:
        """The finding event of a quarantined item is durable: its journal can go."""
        try:
            self._journal.remove(item_id)
        except OSError as exc:
            # harmless: recover() finds the item whole and reports it once more
            log.warning("quarantine.journal_kept", id=item_id, error_type=type(exc).__name__)

    # -- recovery --------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Finish or roll back moves a crash interrupted; returns the ids acted on."""
        acted: list[str] = []
        for entry in self._journal.pending():
            try:
                outcome = self._recover_one(entry)
            except (OSError, QuarantineError, KeyError, TypeError, ValueError) as exc:
                # one damaged journal must not keep the others (or the agent) from starting;
                # it stays on disk for a person to look at
                log.error(
                    "quarantine.recovery_failed",
                    id=entry.item_id,
                    error_type=type(exc).__name__,
                )
                continue
            log.info(
                "quarantine.move_recovered",
                id=entry.item_id,
                outcome=outcome,
                last_step=entry.last_step,
            )
            acted.append(entry.item_id)
        return acted

    def _recover_one(self, entry: Entry) -> str:
        if not entry.plan:
            self._journal.remove(entry.item_id)
            return "rolled_back"
        vfd = self._open_dir()
        try:
            outcome = recovery.settle(entry.plan, vfd)
        finally:
            os.close(vfd)
        self._journal.remove(entry.item_id)
        return outcome

    # -- out ---------------------------------------------------------------------------

    def list(self) -> list[QuarantineItem]:
        """Every item in the vault, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise moves.failed("list", exc, None) from None
        ids = sorted(
            n.removesuffix(items.META_SUFFIX)
            for n in names
            if n.endswith(items.META_SUFFIX)
            and items.ITEM_ID.fullmatch(n.removesuffix(items.META_SUFFIX))
        )
        found: list[QuarantineItem] = []
        vfd = self._open_dir()
        try:
            for item_id in ids:
                with contextlib.suppress(ItemNotFound):  # purged while listing
                    found.append(items.read_meta(vfd, item_id))
        finally:
            os.close(vfd)
        found.sort(key=lambda i: (i.quarantined_at, i.id))
        return found

    def show(self, item_id: str) -> QuarantineItem:
        """One item's metadata (ItemNotFound when there is none)."""
        items.check_id(item_id)
        try:
            vfd = self._open_dir()
        except FileNotFoundError:
            raise ItemNotFound(
                f"no quarantined item {item_id} (no vault at {self.directory})",
                step="lookup",
                item_id=item_id,
                hint="pass the vault folder with --dir or [quarantine] dir",
            ) from None
        try:
            return items.read_meta(vfd, item_id)
        finally:
            os.close(vfd)

    def restore(
        self, item_id: str, *, to: Path | None = None, private_key: Path | None = None
    ) -> Path:
        """Put an item back (original path by default) and remove it from the vault."""
        item = self.show(item_id)
        target = release.resolve_target(Path(to) if to else Path(item.original_path), item)
        release.check_roots(target, item, self.restore_roots)
        release.write_out(item, target, private_key=private_key, restore=True)
        self._remove(item)
        log.info("quarantine.file_restored", id=item.id, path=str(target))
        return target

    def export(self, item_id: str, *, to: Path, private_key: Path | None = None) -> Path:
        """Write a plaintext copy of an item (0600) for analysis; the item stays in the vault."""
        item = self.show(item_id)
        target = release.resolve_target(Path(to), item)
        release.write_out(item, target, private_key=private_key, restore=False)
        log.info("quarantine.file_exported", id=item.id, path=str(target))
        return target

    def purge(self, *, older_than_days: float) -> builtins.list[str]:
        """Delete items quarantined more than `older_than_days` ago; returns their ids."""
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        purged: builtins.list[str] = []
        for item in self.list():
            if items.parse_time(item.quarantined_at) < cutoff:
                self._remove(item)
                purged.append(item.id)
                log.info("quarantine.item_purged", id=item.id)
        return purged

    def _remove(self, item: QuarantineItem) -> None:
        try:
            vfd = self._open_dir()
            try:
                # data first: a crash in between leaves metadata pointing at nothing, never
                # an unlisted file holding a key
                moves.unlink_at(os.path.basename(item.vault_path), vfd)
                moves.unlink_at(item.id + items.META_SUFFIX, vfd)
                os.fsync(vfd)
            finally:
                os.close(vfd)
        except OSError as exc:
            raise moves.failed("remove", exc, item.id) from None
