"""Item metadata on disk: `<id>.json` beside each quarantined file, written atomically, mode 0400.

The metadata is a `QuarantineItem` as JSON: paths, owner, mode, times, size,
sha256, rules, findings (already free of key bytes), writer, host, sealed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from agent.errors import QuarantineError
from agent.values import ProcessInfo, QuarantineItem

ITEM_ID = re.compile(r"[0-9a-f]{16}")
META_SUFFIX = ".json"


def new_id() -> str:
    """A short random item id: 16 hex characters."""
    return secrets.token_hex(8)


def now_iso() -> str:
    """RFC 3339 UTC time with milliseconds, as in events."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """The time an item was quarantined, as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_id(item_id: str) -> str:
    """Refuse ids that are not ours (they become file names)."""
    if not ITEM_ID.fullmatch(item_id):
        raise ItemNotFound(
            f"no quarantined item {item_id!r}: ids are 16 hex characters",
            step="lookup",
            item_id=None,
            hint="`egress-guard quarantine list` shows the ids",
        )
    return item_id


class ItemNotFound(QuarantineError):  # noqa: N818 - names the condition, like FileNotFoundError
    """No item with that id is in the vault."""


def to_json(item: QuarantineItem) -> dict[str, Any]:
    """The metadata document of an item."""
    doc = dataclasses.asdict(item)
    doc["rules"] = list(item.rules)
    doc["findings"] = [dict(f) for f in item.findings]
    doc["writer"] = dataclasses.asdict(item.writer) if item.writer else None
    return doc


def from_json(doc: dict[str, Any]) -> QuarantineItem:
    """An item from its metadata document (QuarantineError when it is not one)."""
    try:
        writer = doc.get("writer")
        return QuarantineItem(
            id=str(doc["id"]),
            original_path=str(doc["original_path"]),
            vault_path=str(doc["vault_path"]),
            size=int(doc["size"]),
            sha256=str(doc["sha256"]),
            quarantined_at=str(doc["quarantined_at"]),
            owner_uid=int(doc["owner_uid"]),
            mode=int(doc["mode"]),
            mtime_ns=int(doc["mtime_ns"]),
            sealed=bool(doc["sealed"]),
            rules=tuple(str(r) for r in doc.get("rules", ())),
            findings=tuple(dict(f) for f in doc.get("findings", ())),
            writer=ProcessInfo(**writer) if isinstance(writer, dict) else None,
            host=str(doc.get("host", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise QuarantineError(
            f"damaged item metadata ({type(exc).__name__})",
            step="read_meta",
            hint="inspect the .json file in the vault; the data file beside it is intact",
        ) from None


def write_meta(vault_fd: int, item: QuarantineItem) -> None:
    """Write `<id>.json` (0400) atomically and durably in the vault folder."""
    final = item.id + META_SUFFIX
    tmp = f".meta-{item.id}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=vault_fd)  # left by a crash: it was never renamed into place
    data = json.dumps(to_json(item), indent=2, sort_keys=True).encode() + b"\n"
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o400,
        dir_fd=vault_fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=vault_fd)
        raise
    os.close(fd)
    os.rename(tmp, final, src_dir_fd=vault_fd, dst_dir_fd=vault_fd)
    os.fsync(vault_fd)


def read_meta(vault_fd: int, item_id: str) -> QuarantineItem:
    """The metadata of one item (ItemNotFound when absent)."""
    try:
        fd = os.open(
            item_id + META_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=vault_fd
        )
    except FileNotFoundError:
        raise ItemNotFound(
            f"no quarantined item {item_id}",
            step="lookup",
            item_id=item_id,
            hint="`egress-guard quarantine list` shows the ids",
        ) from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise QuarantineError(
            f"damaged metadata for item {item_id}",
            step="read_meta",
            item_id=item_id,
            hint="inspect the .json file in the vault; the data file beside it is intact",
        )
    return from_json(doc)
