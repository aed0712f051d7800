"""Windowing: overlapping windows cover every byte once, from files and from streams."""

from __future__ import annotations

import io
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.windows import fd_windows, stream_windows


def _owned(windows: list[tuple[int, bytes, bool]], overlap: int) -> bytes:
    out = b""
    for base, data, last in windows:
        own = data if last else data[: len(data) - overlap]
        assert base == len(out)
        out += own
    return out


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 5000), chunk=st.integers(20, 600), overlap=st.integers(1, 9))
def test_stream_windows_own_every_byte_exactly_once(size: int, chunk: int, overlap: int) -> None:
    """The non-overlapping parts of stream windows are the stream, in order, once."""
    data = os.urandom(size)
    windows = list(stream_windows(io.BytesIO(data), chunk, overlap))
    assert windows[-1][2] is True
    assert _owned(windows, overlap) == data


@settings(max_examples=30, deadline=None)
@given(size=st.integers(0, 5000), chunk=st.integers(20, 600), overlap=st.integers(1, 9))
def test_fd_windows_own_every_byte_exactly_once(
    tmp_path_factory: object, size: int, chunk: int, overlap: int
) -> None:
    """The non-overlapping parts of file windows are the file, in order, once."""
    data = os.urandom(size)
    path = Path(str(tmp_path_factory.mktemp("w"))) / "f"  # type: ignore[attr-defined]
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        windows = list(fd_windows(fd, chunk, overlap))
    finally:
        os.close(fd)
    assert _owned(windows, overlap) == data


def test_every_span_shorter_than_the_overlap_lies_whole_in_its_owning_window() -> None:
    """A key shorter than the overlap that starts in a window's own part is wholly inside it."""
    data = bytes(range(256)) * 40
    chunk, overlap = 1000, 100
    windows = list(stream_windows(io.BytesIO(data), chunk, overlap))
    for start in range(len(data) - overlap):
        owner = [
            w
            for w in windows
            if w[0] <= start < w[0] + (len(w[1]) if w[2] else len(w[1]) - overlap)
        ]
        assert len(owner) == 1
        base, window, _ = owner[0]
        assert window[start - base : start - base + overlap] == data[start : start + overlap]


# ---- sparse files: holes are not read ------------------------------------------------------

MiB = 1024 * 1024


def _sparse(path: Path, extents: list[tuple[int, bytes]], size: int) -> bytes:
    """A file of `size` bytes with data only at `extents` (the rest holes); its logical bytes."""
    with path.open("wb") as f:
        f.truncate(size)
        for at, data in extents:
            f.seek(at)
            f.write(data)
    image = bytearray(size)
    for at, data in extents:
        image[at : at + len(data)] = data
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.lseek(fd, extents[0][0] + len(extents[0][1]), os.SEEK_HOLE) < size, (
            "this filesystem keeps no holes: the test would prove nothing"
        )
    finally:
        os.close(fd)
    return bytes(image)


def _holes_owned(windows: list[tuple[int, bytes, bool]], overlap: int) -> bytes:
    """The file as the windows own it, skipped holes filled with zeros."""
    out = bytearray()
    for base, data, last in windows:
        assert base >= len(out)
        out += bytes(base - len(out))
        out += data if last else data[: len(data) - overlap]
    return bytes(out)


def test_fd_windows_skip_big_holes_and_own_every_data_byte(tmp_path: Path) -> None:
    """Windows read the data extents (and a little of each big hole), never the holes themselves."""
    chunk, overlap = 2 * MiB, 64 * 1024
    extents = [
        (0, os.urandom(300_000)),  # headers at 0
        (40 * MiB, os.urandom(3 * MiB)),  # longer than a window
        (41 * MiB + 5, b""),  # nothing: a no-op extent keeps the list readable
        (90 * MiB, os.urandom(100_000)),
        (90 * MiB + 200_000, os.urandom(8192)),  # after a small hole: read as data
        (200 * MiB - 4096, os.urandom(4096)),  # the last bytes of the file
    ]
    image = _sparse(tmp_path / "core", [e for e in extents if e[1]], 200 * MiB)
    fd = os.open(tmp_path / "core", os.O_RDONLY)
    try:
        windows = list(fd_windows(fd, chunk, overlap))
    finally:
        os.close(fd)
    assert windows[-1][2] is True
    assert _holes_owned(windows, overlap) == image
    read = sum(len(w[1]) for w in windows)
    assert read < 8 * MiB, f"read {read} bytes of a 200 MiB file holding 3.5 MiB of data"
    for base, data, _ in windows:
        assert data == image[base : base + len(data)]


def test_fd_windows_of_a_file_ending_in_a_hole_end_with_an_empty_window(tmp_path: Path) -> None:
    chunk, overlap = MiB, 64 * 1024
    image = _sparse(tmp_path / "f", [(0, os.urandom(5000))], 64 * MiB)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        windows = list(fd_windows(fd, chunk, overlap))
    finally:
        os.close(fd)
    assert windows[-1] == (64 * MiB, b"", True)
    assert _holes_owned(windows, overlap) == image


def test_fd_windows_where_holes_cannot_be_asked_for_read_everything() -> None:
    """procfs refuses SEEK_HOLE (EINVAL): the file is read as before."""
    fd = os.open("/proc/self/status", os.O_RDONLY)
    try:
        windows = list(fd_windows(fd, 4096, 64))
    finally:
        os.close(fd)
    assert b"Name:" in windows[0][1] and windows[-1][2] is True
