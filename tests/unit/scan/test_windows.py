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
