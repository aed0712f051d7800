"""Reading archives through libarchive (7-Zip, cpio, ar and .deb, RPM, CAB): the adapters `unpack` needs.

libarchive is the C library behind bsdtar; `libarchive-c` binds it with
ctypes, so it is found at run time: a host without the shared library
(Debian: libarchive13) still scans these files, as raw bytes, and says so.
libarchive reads through callbacks, so the streams handed to it here never
raise (a ctypes callback cannot pass an exception back): damage and limits
come back to the walker as a short read, and the walker's guard reports them.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from typing import Any


class EncryptedMemberError(Exception):
    """libarchive refused a member's data because it is encrypted (its message names no bytes)."""


_SONAME = "libarchive.so.13"  # Debian 11-13, Ubuntu, Fedora, Alpine


@functools.cache
def library() -> Any | None:
    """The `libarchive` module, or None when the binding or the shared library is missing."""
    # without a path libarchive-c asks ctypes.util.find_library, which forks `ldconfig -p`
    # in every process that opens its first archive (5-7 % of a sweep's CPU, with the fork)
    if "LIBARCHIVE" not in os.environ:
        try:
            ctypes.CDLL(_SONAME)
            os.environ["LIBARCHIVE"] = _SONAME
        except OSError:
            pass  # another soname, or none: libarchive-c searches as it always does
    try:
        import libarchive  # noqa: PLC0415 - optional at run time: needs the C library
    except (ImportError, OSError, AttributeError):
        return None
    return libarchive


class ReadInto:
    """A `readinto` view of a stream for libarchive's read callback (optionally seekable)."""

    def __init__(self, stream: Any, *, seekable: bool = False) -> None:
        self._stream = stream
        self._seekable = seekable

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        # a byte view: slicing libarchive-c's ctypes buffer itself copies byte by byte (40 MB/s)
        with memoryview(buffer) as view, view.cast("B") as raw:
            raw[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return self._seekable

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._stream.seek(offset, whence))

    def tell(self) -> int:
        return int(self._stream.tell())


def is_encryption_error(exc: BaseException) -> bool:
    """True when libarchive refused data or headers for being encrypted (no passphrase is tried)."""
    text = str(exc).lower()
    return "encrypt" in text or "passphrase" in text


class Blocks:
    """A member's data as a stream, from libarchive's blocks; an encrypted member raises.

    `walk` is shared by the members of one archive: after one member proved
    encrypted, libarchive calls the next members of the same solid block
    "damaged", and they are encrypted too.
    """

    def __init__(
        self, blocks: Iterator[bytes], error: type[Exception], walk: dict[str, bool]
    ) -> None:
        self._blocks = blocks
        self._error = error
        self._walk = walk
        self._pending = b""
        self._done = False

    def read(self, n: int, /) -> bytes:
        """Up to n bytes (n > 0); b'' at the end."""
        while not self._pending and not self._done:
            try:
                self._pending = bytes(next(self._blocks))
            except StopIteration:
                self._done = True
            except self._error as exc:
                if is_encryption_error(exc) or self._walk.get("encrypted"):
                    self._walk["encrypted"] = True
                    raise EncryptedMemberError("encrypted member") from None
                raise
        out, self._pending = self._pending[:n], self._pending[n:]
        return out
