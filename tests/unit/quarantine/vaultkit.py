"""Helpers for the vault tests: files with known content and the identity a scan recorded."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from agent.values import FileIdentity


def identity_of(path: Path) -> FileIdentity:
    """The identity the scan stage would have recorded for `path` now."""
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


@dataclass(frozen=True)
class Dump:
    """A file as scanned: where, its identity, its bytes and their sha256."""

    path: Path
    identity: FileIdentity
    data: bytes
    sha256: str


MARKER = b"EGRESS-GUARD-TEST-PLAINTEXT-MARKER"


def make_dump(path: Path, size: int = 200_000) -> Dump:
    """A dump-like file: random bytes with a marker that must never show up in a sealed vault."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = MARKER + os.urandom(size) + MARKER
    path.write_bytes(data)
    os.chmod(path, 0o640)
    return Dump(
        path=path, identity=identity_of(path), data=data, sha256=hashlib.sha256(data).hexdigest()
    )
