"""Overlapping windows over a file or a decompressed stream, and the memory they are read into.

A window is `(offset of data[0], data, is_last)`; consecutive windows
overlap by `overlap` bytes so a key shorter than the overlap lies whole in
the window that owns its first byte. Windows are `bytes` because YARA-X's
Python binding accepts nothing else (a bytearray or memoryview is refused,
so a reused read buffer would cost a full copy per window).

Why `keep_window_memory`: with glibc's defaults a 32 MiB window is above the
mmap threshold, so every window is a fresh mapping that the kernel faults in
and zeroes page by page, then unmaps; that cost more than YARA-X's own scan.
Raising the thresholds keeps freed windows in the heap, so the next window
reuses the same, already resident pages; the scanner drops each window before
the next is read, so one window is live at a time. Only short-lived scanning
processes (sweep, burst workers) call it: they keep one window's worth of heap
between files, which the idle daemon must not. `window_memory_kept` tells
other stages (the number search keeps its window-sized buffers then too).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

Window = tuple[int, bytes, bool]  # (offset of data[0], data, is_last)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_SLACK = 4 * 1024 * 1024  # headers, a decompressor's last read beside a full window
_INT_MAX = 2**31 - 1  # mallopt takes a C int
_GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # where glibc's own sliding threshold stops (64-bit)
_kept_window: int | None = None


class Readable(Protocol):
    """A stream read forward only."""

    def read(self, n: int, /) -> bytes:
        """Up to n bytes; b'' at the end."""
        ...


def keep_window_memory(chunk_bytes: int, overlap_bytes: int) -> bool:
    """Serve window-sized allocations from the heap and keep them there; False when not glibc."""
    global _kept_window  # noqa: PLW0603 - mirrors the process-wide allocator setting
    libc = _libc()
    if libc is None:
        return False  # not glibc: windows stay correct, only slower
    window = min(chunk_bytes + overlap_bytes + _SLACK, _INT_MAX // 2)
    mmap_ok: bool = libc.mallopt(_M_MMAP_THRESHOLD, window) == 1
    # one window's worth of free heap top is kept: the next window is read into it
    trim_ok: bool = libc.mallopt(_M_TRIM_THRESHOLD, window) == 1
    _kept_window = window if mmap_ok else None
    return mmap_ok and trim_ok


def window_memory_kept() -> bool:
    """True in a process that called `keep_window_memory` (and glibc took it)."""
    return _kept_window is not None


def _libc() -> Any:
    """The C library the interpreter runs on, when it has glibc's mallopt and malloc_trim."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - probing: musl has neither
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def fd_windows(fd: int, chunk: int, overlap: int) -> Iterator[Window]:
    """Overlapping windows over a file descriptor, read with pread (no shared position)."""
    pos = 0
    while True:
        data = os.pread(fd, chunk, pos)
        last = len(data) < chunk
        if not data and pos > 0:
            return
        yield pos, data, last
        if last:
            return
        del data  # with the caller's reference gone too, its memory serves the next read
        pos += chunk - overlap


def stream_windows(stream: Readable, chunk: int, overlap: int) -> Iterator[Window]:
    """Overlapping windows over a stream that can only be read forward.

    The overlap carried from the previous window and the new reads are joined
    once (`b"".join`), not concatenated piece by piece: one copy per window.
    """
    tail = b""
    base = 0
    while True:
        parts = [tail] if tail else []
        got = len(tail)
        while got < chunk:
            piece = stream.read(chunk - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)  # b"" when nothing came
        del parts
        last = len(data) < chunk
        yield base, data, last
        if last:
            return
        tail = data[-overlap:] if overlap else b""
        base += len(data) - overlap
        del data


class LazyFileHash:
    """SHA-256 of a file scanned window by window, started by the first window that needs it.

    The windows before that one are read again from the file; from it on, each
    window's own bytes are hashed while they are in memory, so a file whose
    first window has findings (most dumps fit in one) is not read twice.
    """

    def __init__(self, fd: int, chunk: int) -> None:
        self._fd = fd
        self._chunk = chunk
        self._hasher: hashlib._Hash | None = None
        self._covered = 0

    def add(self, base: int, own: memoryview, *, wanted: bool) -> None:
        """Hash the window's own bytes `own` (at `base`) once `wanted` was true for any window."""
        if self._hasher is None:
            if not wanted:
                return
            self._hasher = hashlib.sha256()
            while self._covered < base:
                piece = os.pread(self._fd, min(self._chunk, base - self._covered), self._covered)
                if not piece:
                    return  # the file shrank: the digest stays incomplete, the scan says why
                self._hasher.update(piece)
                self._covered += len(piece)
        if self._covered == base:
            self._hasher.update(own)
            self._covered += len(own)

    def hexdigest(self, size: int) -> str | None:
        """The digest when exactly `size` bytes went in, else None (not started, or a gap)."""
        if self._hasher is None or self._covered != size:
            return None
        return self._hasher.hexdigest()


def file_sha256(fd: int, chunk: int) -> str:
    """Hex SHA-256 of a whole open file, read with pread in `chunk` pieces."""
    hasher = hashlib.sha256()
    for _, data, last in fd_windows(fd, chunk, 0):
        hasher.update(data)
        if last:
            break
    return hasher.hexdigest()
