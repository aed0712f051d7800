"""Archive bombs: limits stop expansion early, report it, and memory stays bounded while streaming."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from agent.scan.unpack import Layer, Limits, layers
from agent.values import ErrorType, ScanProblem
from tests.keys import filler

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 16 * MiB
SCAN_READ = 64 * MiB  # what the scanner asks for at a time


@dataclass(frozen=True)
class Zeros:
    """A raw deflate stream of `size` zero bytes and its CRC-32 (built without compressing GiBs)."""

    deflate: bytes
    crc: int
    size: int


def zeros(size: int) -> Zeros:
    # a full flush resets the compressor, so one compressed chunk can be repeated verbatim
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(CHUNK)
    piece = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // CHUNK):
        crc = zlib.crc32(chunk, crc)
    return Zeros(piece * (size // CHUNK) + c.flush(), crc, size)


def crafted_zip(name: bytes, z: Zeros) -> bytes:
    """A one-member deflated zip around a prepared deflate stream."""
    local = struct.pack(
        "<4sHHHHHIIIHH",
        b"PK\x03\x04",
        20,
        0,
        8,
        0,
        0x21,
        z.crc,
        len(z.deflate),
        z.size,
        len(name),
        0,
    )
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        0,
        0x21,
        z.crc,
        len(z.deflate),
        z.size,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    head = local + name
    eocd = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        1,
        1,
        len(central) + len(name),
        len(head) + len(z.deflate),
        0,
    )
    return head + z.deflate + central + name + eocd


def crafted_gzip(z: Zeros) -> bytes:
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + z.deflate + struct.pack("<II", z.crc, z.size)
    )


def zstd_zeros(size: int) -> bytes:
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as w:
        for _ in range(size // CHUNK):
            w.write(bytes(CHUNK))
    return out.getvalue()


@pytest.fixture(scope="module")
def gib_zeros() -> Zeros:
    """1 GiB of zeros as deflate (about 1 MiB), shared by the tests of this module."""
    return zeros(GiB)


def drain(path: Path, limits: Limits) -> tuple[list[tuple[str, int] | ScanProblem], int]:
    """Items as (container, bytes read) or problems, and the peak traced memory while reading."""
    fd = os.open(path, os.O_RDONLY)
    out: list[tuple[str, int] | ScanProblem] = []
    tracemalloc.start()
    try:
        head = os.pread(fd, 65536, 0)
        for item in layers(str(path), fd, head, limits):
            if isinstance(item, Layer):
                total = 0
                while chunk := item.stream.read(SCAN_READ):
                    total += len(chunk)
                out.append((item.container, total))
            else:
                out.append(item)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(fd)
    return out, peak


def _git_pack_of(blob_zlib: bytes, size: int) -> bytes:
    """A one-blob git pack whose blob is the given zlib stream of `size` bytes."""
    first, size = 0x30 | (size & 15), size >> 4
    head = bytearray()
    while size:
        head.append(first | 0x80)
        first, size = size & 0x7F, size >> 7
    head.append(first)
    return b"PACK" + (2).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(head) + blob_zlib


@pytest.mark.parametrize("kind", ["zip", "gzip", "zstd", "zlib", "gitpack"])
def test_small_file_expanding_to_a_gib_is_stopped_as_a_bomb(
    tmp_path: Path, gib_zeros: Zeros, kind: str
) -> None:
    """A ~1 MiB file expanding to 1 GiB stops near the ratio limit and reports ARCHIVE_BOMB after the layer."""
    data = {
        "zip": lambda: crafted_zip(b"zeros.bin", gib_zeros),
        "gzip": lambda: crafted_gzip(gib_zeros),
        "zstd": lambda: zstd_zeros(GiB),
        # a git-style zlib stream; its Adler-32 is never reached (the limit stops it first)
        "zlib": lambda: b"\x78\x9c" + gib_zeros.deflate + b"\x00\x00\x00\x01",
        "gitpack": lambda: _git_pack_of(b"\x78\x9c" + gib_zeros.deflate + b"\x00\x00\x00\x01", GiB),
    }[kind]()
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(data)
    items, _ = drain(path, Limits())
    assert len(items) == 2
    (container, produced), problem = items
    assert isinstance(problem, ScanProblem)
    assert problem.error_type is ErrorType.ARCHIVE_BOMB
    assert problem.container == container
    assert produced <= max(200 * len(data), MiB) + 4 * MiB
    assert problem.bytes_affected >= produced


def test_total_expanded_limit_stops_the_file(tmp_path: Path, gib_zeros: Zeros) -> None:
    """With a generous ratio, the total-bytes limit still stops expansion and says so."""
    path = tmp_path / "big.gz"
    path.write_bytes(crafted_gzip(gib_zeros))
    items, _ = drain(path, Limits(max_ratio=10**6, max_expanded_bytes=64 * MiB))
    (_, produced), problem = items
    assert isinstance(problem, ScanProblem)
    assert problem.error_type is ErrorType.ARCHIVE_BOMB
    assert "max_expanded_mib" in problem.detail
    assert 64 * MiB <= produced <= 65 * MiB


def test_member_ratio_bomb_stops_that_member_only(tmp_path: Path) -> None:
    """A member over the ratio limit is cut and reported; the next member is still scanned whole."""
    path = tmp_path / "mixed.zip"
    path.write_bytes(crafted_zip(b"zeros.bin", zeros(64 * MiB)))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("after.bin", filler(2 * MiB))  # incompressible: the file-wide ratio stays low
    items, _ = drain(path, Limits())
    assert [type(i) for i in items] == [tuple, ScanProblem, tuple]
    assert items[1].error_type is ErrorType.ARCHIVE_BOMB  # type: ignore[union-attr]
    assert items[1].container == "mixed.zip!zeros.bin"  # type: ignore[union-attr]
    assert items[2] == ("mixed.zip!after.bin", 2 * MiB)


def test_nested_42_zip_style_bomb_stops_early(tmp_path: Path, gib_zeros: Zeros) -> None:
    """A zip of zips of 1 GiB zero members (256 GiB in all) stops after a few MiB with one bomb problem."""
    level0 = crafted_zip(b"0.bin", gib_zeros)
    level1 = io.BytesIO()
    with zipfile.ZipFile(level1, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(16):
            zf.writestr(f"{i}.zip", level0)
    level2 = io.BytesIO()
    with zipfile.ZipFile(level2, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(16):
            zf.writestr(f"{i}.zip", level1.getvalue())
    path = tmp_path / "42.zip"
    path.write_bytes(level2.getvalue())
    items, _ = drain(path, Limits())
    bombs = [i for i in items if isinstance(i, ScanProblem)]
    assert [b.error_type for b in bombs] == [ErrorType.ARCHIVE_BOMB]
    assert items[-1] is bombs[0]
    produced = sum(n for i in items if isinstance(i, tuple) for n in [i[1]])
    assert produced <= max(200 * path.stat().st_size, MiB)
    assert all(
        c.startswith("42.zip!0.zip!0.zip!") for c, _ in (i for i in items if isinstance(i, tuple))
    )


def test_streaming_a_gib_member_keeps_memory_bounded(tmp_path: Path, gib_zeros: Zeros) -> None:
    """A member expanding to 1 GiB, read 64 MiB at a time, is fully streamed in well under 200 MB."""
    path = tmp_path / "core.zip"
    path.write_bytes(crafted_zip(b"core.1", gib_zeros))
    items, peak = drain(path, Limits(max_ratio=10**6))
    assert items == [("core.zip!core.1", GiB)]
    assert peak < 200 * MiB
