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
import errno
import hashlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

Window = tuple[int, bytes, bool]  # (offset of data[0], data, is_last)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_SLACK = 4 * 1024 * 1024  # headers, a decompressor's last read beside a full window
_INT_MAX = 2**31 - 1  # mallopt takes a C int
_kept_window: int | None = None
_MIN_HOLE_EXTRA = 1024 * 1024  # a hole this much longer than two overlaps ends a window
_MAX_HOLE_PROBES = 64  # SEEK_HOLE/SEEK_DATA pairs per window before small holes are read as data
_ZEROS = memoryview(bytes(1024 * 1024))  # what a hole hashes as


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
    """The C library the interpreter runs on, when it has glibc's mallopt."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - probing: musl has none
    except (OSError, AttributeError):
        return None
    return libc


def fd_windows(fd: int, chunk: int, overlap: int) -> Iterator[Window]:
    """Overlapping windows over a file descriptor, read with pread (no shared position).

    Large holes of a sparse file are not read: a core written by the kernel
    leaves every page the process never touched as a hole, often most of the
    file. A window stops `overlap` bytes into such a hole (zeros, so a
    validator may still read past a key's end and the window owns all the data
    before the hole) and the next starts where data does; a file that ends in
    one gets a last, empty window at its end. A hole holds only zeros, which no
    key is. Small holes are read like data (windows stay large).
    """
    min_hole = 2 * overlap + _MIN_HOLE_EXTRA
    sparse = True
    pos = 0
    while True:
        cut = None
        if sparse:
            try:
                cut = _big_hole(fd, pos, pos + chunk, min_hole)
            except OSError:
                sparse = False  # no SEEK_HOLE here (a pipe, an old filesystem): read everything
        if cut is None:
            data = os.pread(fd, chunk, pos)
            last = len(data) < chunk
            if not data and pos > 0:
                return
            yield pos, data, last
            if last:
                return
            del data  # with the caller's reference gone too, its memory serves the next read
            pos += chunk - overlap
            continue
        want = cut - pos + overlap
        data = os.pread(fd, want, pos)
        after = _seek(fd, cut, os.SEEK_DATA) if len(data) == want else None
        yield pos, data, len(data) < want
        if len(data) < want:
            return  # the file shrank under us: what was read is all there is
        del data
        if after is None:  # only the hole is left: an empty window at the end covers it
            yield max(os.fstat(fd).st_size, cut + overlap), b"", True
            return
        pos = after


def _big_hole(fd: int, pos: int, limit: int, min_hole: int) -> int | None:
    """Where the first hole of at least `min_hole` bytes starting in [pos, limit) begins, else None."""
    at = pos
    for _ in range(_MAX_HOLE_PROBES):
        hole = _seek(fd, at, os.SEEK_HOLE)
        if hole is None or hole >= limit:
            return None
        data = _seek(fd, hole, os.SEEK_DATA)
        end = os.fstat(fd).st_size if data is None else data
        if end - hole >= min_hole:
            return hole
        if data is None:
            return None
        at = data
    return None  # a file of many small holes: read as it is


def _seek(fd: int, pos: int, whence: int) -> int | None:
    """lseek for SEEK_DATA / SEEK_HOLE; None when there is no data at or after `pos` (ENXIO)."""
    try:
        return os.lseek(fd, pos, whence)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise


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
        """Hash the window's own bytes `own` (at `base`) once `wanted` was true for any window.

        Bytes before `base` not hashed yet (earlier windows, a skipped hole) are read first.
        """
        if self._hasher is None:
            if not wanted:
                return
            self._hasher = hashlib.sha256()
        if self._fill(base) and self._covered == base:
            self._hasher.update(own)
            self._covered += len(own)

    def hexdigest(self, size: int) -> str | None:
        """The digest when exactly `size` bytes went in, else None (not started, or a gap)."""
        if self._hasher is None or not self._fill(size) or self._covered != size:
            return None
        return self._hasher.hexdigest()

    def _fill(self, upto: int) -> bool:
        """Hash the file from where the digest stands to `upto`; False when the file shrank."""
        assert self._hasher is not None
        while self._covered < upto:
            zeros = self._hole_at(self._covered, upto - self._covered)
            if zeros:  # a hole is hashed from memory: reading it only makes zeros
                for at in range(0, zeros, len(_ZEROS)):
                    self._hasher.update(_ZEROS[: min(len(_ZEROS), zeros - at)])
                self._covered += zeros
                continue
            piece = os.pread(self._fd, min(self._chunk, upto - self._covered), self._covered)
            if not piece:
                return False  # the digest stays incomplete, the scan says why
            self._hasher.update(piece)
            self._covered += len(piece)
        return True

    def _hole_at(self, pos: int, most: int) -> int:
        """How many bytes from `pos` (at most `most`) lie in a hole; 0 at data or without holes."""
        try:
            data = _seek(self._fd, pos, os.SEEK_DATA)
        except OSError:
            return 0
        return most if data is None else min(most, data - pos)


def file_sha256(fd: int, chunk: int) -> str:
    """Hex SHA-256 of a whole open file, read with pread in `chunk` pieces."""
    hasher = hashlib.sha256()
    for _, data, last in fd_windows(fd, chunk, 0):
        hasher.update(data)
        if last:
            break
    return hasher.hexdigest()
