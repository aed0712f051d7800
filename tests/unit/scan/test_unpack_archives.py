"""7-Zip, cpio, ar (and .deb), through libarchive: members streamed, nested, bounded, damage reported.

Archives are written here with libarchive's own writer; archives from the real
tools (7z, gcab, dpkg-deb, rpmbuild) are in tests/integration/test_archive_tools.py.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path

import libarchive
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.unpack import Limits, detect
from agent.values import ErrorType
from tests.keys import filler
from tests.unit.scan.test_unpack import leaves, problems, unpack

PAYLOAD = b"core memory " + filler(200_000) + b" end"
FORMATS = {"7z": "7zip", "cpio": "cpio_newc", "ar": "ar_svr4"}


def archive(fmt: str, members: dict[str, bytes], *, flt: str | None = None) -> bytes:
    """The members in an archive of libarchive write format `fmt` (optionally filtered)."""
    out = io.BytesIO()
    with libarchive.custom_writer(out.write, fmt, filter_name=flt) as writer:
        for name, data in members.items():
            writer.add_file_from_memory(name, len(data), data)
    return out.getvalue()


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_each_archive_kind_is_detected_and_its_members_are_streamed(
    kind: str, tmp_path: Path
) -> None:
    data = archive(FORMATS[kind], {"core.1": PAYLOAD, "notes.txt": b"hello"})
    assert detect(data[:512]) == kind
    path = tmp_path / f"a.{kind}"
    path.write_bytes(data)
    items = unpack(path)
    assert problems(items) == []
    assert leaves(items) == {f"a.{kind}!core.1": PAYLOAD, f"a.{kind}!notes.txt": b"hello"}


def test_cpio_inside_gzip_and_7z_inside_zip_are_followed(tmp_path: Path) -> None:
    """An initramfs-like cpio.gz (a stream) and a 7z in a zip (random access through the zip)."""
    cpio_gz = gzip.compress(archive("cpio_newc", {"etc/key": PAYLOAD}))
    (tmp_path / "initrd.img").write_bytes(cpio_gz)
    assert leaves(unpack(tmp_path / "initrd.img")) == {"initrd.img!initrd.img!etc/key": PAYLOAD}
    seven = archive("7zip", {"dump.dmp": PAYLOAD})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.7z", seven)
    (tmp_path / "outer.zip").write_bytes(buf.getvalue())
    assert leaves(unpack(tmp_path / "outer.zip")) == {"outer.zip!inner.7z!dump.dmp": PAYLOAD}


def test_7z_inside_a_compressed_stream_is_scanned_raw_and_said(tmp_path: Path) -> None:
    """7-Zip keeps its header at the end: inside a gzip there is no random access to reach it."""
    seven = archive("7zip", {"dump.dmp": PAYLOAD})
    (tmp_path / "x.7z.gz").write_bytes(gzip.compress(seven))
    items = unpack(tmp_path / "x.7z.gz")
    assert leaves(items) == {"x.7z.gz!x.7z": seven}
    (problem,) = problems(items)
    assert problem.error_type is ErrorType.NOT_DEEP_SCANNED and "7z" in problem.detail


def test_a_7z_bomb_stops_at_the_ratio_limit(tmp_path: Path) -> None:
    """64 MiB of zeros in a few KiB of 7-Zip: the ratio limit stops it, what came before is kept."""
    data = archive("7zip", {"a.txt": b"before", "zeros": bytes(64 << 20)})
    assert len(data) < 64 * 1024
    (tmp_path / "b.7z").write_bytes(data)
    items = unpack(tmp_path / "b.7z", Limits(max_ratio=50))
    assert leaves(items)["b.7z!a.txt"] == b"before"
    assert any(p.error_type is ErrorType.ARCHIVE_BOMB for p in problems(items))
    assert sum(len(v) for v in leaves(items).values()) < 50 * len(data) + (2 << 20)


def test_member_limit_applies(tmp_path: Path) -> None:
    data = archive("ar_svr4", {f"m{i}": b"x" for i in range(20)})
    (tmp_path / "many.a").write_bytes(data)
    items = unpack(tmp_path / "many.a", Limits(max_members=5))
    assert len(leaves(items)) == 5
    assert [p.error_type for p in problems(items)] == [ErrorType.ARCHIVE_LIMIT]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_truncated_archives_report_damage_and_keep_what_was_read(kind: str, tmp_path: Path) -> None:
    data = archive(FORMATS[kind], {"first": b"A" * 5000, "second": PAYLOAD})
    path = tmp_path / f"t.{kind}"
    path.write_bytes(data[: len(data) // 2])
    items = unpack(path)
    assert any(p.error_type is ErrorType.ARCHIVE_CORRUPT for p in problems(items)), items
    if kind != "7z":  # a 7z's directory is at its end: a cut one lists nothing
        assert leaves(items)[f"t.{kind}!first"] == b"A" * 5000


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(FORMATS)),
    at=st.integers(min_value=0, max_value=4000),
    value=st.integers(min_value=0, max_value=255),
)
def test_mutated_archives_never_raise(
    kind: str, at: int, value: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Any byte changed anywhere: members, problems, never an exception."""
    data = bytearray(archive(FORMATS[kind], {"a": b"key " * 300, "b": os.urandom(500)}))
    data[at % len(data)] = value
    path = tmp_path_factory.mktemp("mut") / f"m.{kind}"
    path.write_bytes(bytes(data))
    unpack(path)  # raises nothing


def test_detect_needs_the_whole_magic() -> None:
    assert detect(b"7z\xbc\xaf\x27") is None
    assert detect(b"!<arch>") is None
    assert detect(b"07070") is None
    assert detect(b"070701" + bytes(100)) == "cpio"
    assert detect(b"\xed\xab\xee\xdb" + bytes(100)) == "rpm"
    assert detect(b"MSCF\0\0\0\0" + bytes(100)) == "cab"
