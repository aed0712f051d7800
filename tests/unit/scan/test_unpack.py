"""Containers: every format opens, nesting is followed, names are escaped, damage is reported."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.unpack import Layer, Limits, detect, layers
from agent.values import ErrorType, ScanProblem
from tests.keys import filler

PAYLOAD = b"core memory " + filler(300_000) + b" end"


def unpack(path: Path, limits: Limits | None = None) -> list[tuple[str, bytes] | ScanProblem]:
    """Every item layers() yields, each layer drained the way the scanner drains it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, 65536, 0)
        out: list[tuple[str, bytes] | ScanProblem] = []
        for item in layers(str(path), fd, head, limits or Limits()):
            if isinstance(item, Layer):
                parts = []
                while chunk := item.stream.read(1 << 20):
                    parts.append(chunk)
                out.append((item.container, b"".join(parts)))
            else:
                out.append(item)
        return out
    finally:
        os.close(fd)


def leaves(items: list[tuple[str, bytes] | ScanProblem]) -> dict[str, bytes]:
    return dict(i for i in items if isinstance(i, tuple))


def problems(items: list[tuple[str, bytes] | ScanProblem]) -> list[ScanProblem]:
    return [i for i in items if isinstance(i, ScanProblem)]


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zstd_frames(*parts: bytes) -> bytes:
    c = zstandard.ZstdCompressor()
    return b"".join(c.compress(p) for p in parts)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (gzip.compress(b"x"), "gzip"),
        (zip_bytes({"a": b"x"}), "zip"),
        (lzma.compress(b"x"), "xz"),
        (bz2.compress(b"x"), "bz2"),
        (zstd_frames(b"x"), "zstd"),
        (lz4.frame.compress(b"x"), "lz4"),
        (zlib.compress(b"x", 1), "zlib"),
        (zlib.compress(b"x"), "zlib"),
        (zlib.compress(b"x", 9), "zlib"),
        (b"x = 1\n", None),  # text that starts with 'x'
        (tar_bytes({"a": b"x"}), "tar"),
        (b"\x7fELF" + bytes(600), None),
        (b"BZh9 not really bzip2 at all", None),
        (tar_bytes({"BZh5-not-bzip2.txt": b"x"}), "tar"),
        (b"", None),
    ],
)
def test_detect_names_container_by_magic(data: bytes, kind: str | None) -> None:
    """detect() names each container kind by its magic bytes and None for anything else."""
    assert detect(data) == kind


@pytest.mark.parametrize(
    ("name", "data", "inner"),
    [
        ("core.1234.gz", gzip.compress(PAYLOAD), "core.1234.gz!core.1234"),
        ("dump.xz", lzma.compress(PAYLOAD), "dump.xz!dump"),
        ("dump.bz2", bz2.compress(PAYLOAD), "dump.bz2!dump"),
        ("core.sshd.zst", zstd_frames(PAYLOAD), "core.sshd.zst!core.sshd"),
        # systemd-coredump before zstd (RHEL 8): core.<comm>.<uid>.<boot>.<pid>.<time>.lz4
        (
            "core.app.0.b1.77.1700000000.lz4",
            lz4.frame.compress(PAYLOAD),
            "core.app.0.b1.77.1700000000.lz4!core.app.0.b1.77.1700000000",
        ),
        # a git loose object: .git/objects/<2 hex>/<38 hex>, zlib of "blob <size>\0" + content
        ("0123456789abcdef", zlib.compress(PAYLOAD), "0123456789abcdef!0123456789abcdef"),
    ],
)
def test_single_stream_yields_decompressed_body_under_inner_name(
    tmp_path: Path, name: str, data: bytes, inner: str
) -> None:
    """A single compressed stream yields its body named as the file without its suffix."""
    items = unpack(write(tmp_path, name, data))
    assert items == [(inner, PAYLOAD)]


def test_multi_member_gzip_and_multi_frame_zstd_yield_all_parts(tmp_path: Path) -> None:
    """Concatenated gzip members and zstd frames (as systemd-coredump writes) are read whole."""
    gz = unpack(write(tmp_path, "a.gz", gzip.compress(b"first ") + gzip.compress(b"second")))
    zst = unpack(write(tmp_path, "b.zst", zstd_frames(b"first ", b"second")))
    assert gz == [("a.gz!a", b"first second")]
    assert zst == [("b.zst!b", b"first second")]


def test_zip_yields_every_member_for_each_compression_method(tmp_path: Path) -> None:
    """Stored, deflated, bzip2 and lzma zip members are all streamed under their names."""
    items: dict[str, bytes] = {}
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        data = zip_bytes({f"m{method}/a.bin": PAYLOAD, f"m{method}/b.txt": b"hello"}, method)
        items |= leaves(unpack(write(tmp_path, f"z{method}.zip", data)))
    assert items == {
        f"z{m}.zip!m{m}/{n}": d
        for m in (0, 8, 12, 14)
        for n, d in (("a.bin", PAYLOAD), ("b.txt", b"hello"))
    }


def test_tar_gz_with_many_members_yields_each_member_in_order(tmp_path: Path) -> None:
    """A tar.gz is unpacked through both layers and every regular member is yielded in order."""
    members = {f"var/crash/core.{i}": filler(2000, seed=i) for i in range(60)}
    items = unpack(write(tmp_path, "bundle.tar.gz", gzip.compress(tar_bytes(members))))
    got = [(c, d) for c, d in (i for i in items if isinstance(i, tuple))]
    assert got == [(f"bundle.tar.gz!bundle.tar!{n}", d) for n, d in members.items()]
    assert problems(items) == []


def test_nested_zip_three_levels_deep_is_followed(tmp_path: Path) -> None:
    """A zip in a zip in a zip is opened down to its leaf, with the full member path."""
    inner = zip_bytes({"keys/id_rsa": PAYLOAD})
    middle = zip_bytes({"inner.zip": inner, "note.txt": b"n"}, zipfile.ZIP_STORED)
    outer = zip_bytes({"sub/middle.zip": middle})
    items = unpack(write(tmp_path, "outer.zip", outer))
    assert leaves(items) == {
        "outer.zip!sub/middle.zip!inner.zip!keys/id_rsa": PAYLOAD,
        "outer.zip!sub/middle.zip!note.txt": b"n",
    }
    assert problems(items) == []


def test_gz_member_of_zip_is_named_like_the_user_sees_it(tmp_path: Path) -> None:
    """A gzip core inside a zip bundle shows as bundle.zip!logs/core.1234.gz!core.1234."""
    data = zip_bytes({"logs/core.1234.gz": gzip.compress(PAYLOAD)})
    items = unpack(write(tmp_path, "bundle.zip", data))
    assert items == [("bundle.zip!logs/core.1234.gz!core.1234", PAYLOAD)]


def test_gzip_of_zstd_and_zstd_core_in_tar_are_both_unpacked(tmp_path: Path) -> None:
    """A gzip of a zstd stream, and a zstd core inside a tar, reach the decompressed core."""
    gz_zst = unpack(write(tmp_path, "core.zst.gz", gzip.compress(zstd_frames(PAYLOAD))))
    tar = tar_bytes({"coredump/core.app.1000.zst": zstd_frames(PAYLOAD)})
    in_tar = unpack(write(tmp_path, "cores.tar", tar))
    assert gz_zst == [("core.zst.gz!core.zst!core", PAYLOAD)]
    assert in_tar == [("cores.tar!coredump/core.app.1000.zst!core.app.1000", PAYLOAD)]


def test_hostile_tar_member_names_are_escaped_and_bounded(tmp_path: Path) -> None:
    """Newlines, ../, non-UTF-8 bytes and huge names appear escaped, printable and bounded."""
    names = ["evil\nname", "../../etc/passwd", "bad\udcff\udcfebytes", "x" * 5000, "rtl\u202etxt"]
    items = unpack(write(tmp_path, "h.tar", tar_bytes(dict.fromkeys(names, b"d"))))
    got = sorted(leaves(items))
    assert all(c.isprintable() and len(c) <= len("h.tar!") + 200 for c in got)
    assert "h.tar!evil\\x0aname" in got
    assert "h.tar!../../etc/passwd" in got
    assert "h.tar!bad\\xff\\xfebytes" in got
    assert "h.tar!rtl\\u202etxt" in got
    assert any("..." in c and c.startswith("h.tar!xxx") for c in got)


def test_non_utf8_zip_member_name_is_escaped(tmp_path: Path) -> None:
    """Raw control and high bytes in a zip member name (no UTF-8 flag) come out printable."""
    data = zip_bytes({"AAAAAAAA": b"payload"}, zipfile.ZIP_STORED)
    data = data.replace(b"AAAAAAAA", b"a\x01\x0a\xff\xfe/\x1bz")  # local header and directory
    items = unpack(write(tmp_path, "n.zip", data))
    [(container, body)] = items  # type: ignore[misc]
    assert body == b"payload"
    assert container.isprintable()
    assert "\\x01\\x0a" in container


def test_encrypted_zip_member_is_reported_not_skipped(tmp_path: Path) -> None:
    """An encrypted member yields ENCRYPTED_MEMBER; the other members are still scanned."""
    data = bytearray(zip_bytes({"secret.key": b"s" * 100, "plain.txt": b"p"}, zipfile.ZIP_STORED))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 6] |= 0x01  # general purpose bit 0: encrypted
    data[central + 8] |= 0x01
    items = unpack(write(tmp_path, "enc.zip", bytes(data)))
    assert leaves(items) == {"enc.zip!plain.txt": b"p"}
    [problem] = problems(items)
    assert problem.error_type is ErrorType.ENCRYPTED_MEMBER
    assert problem.container == "enc.zip!secret.key"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("t.gz", gzip.compress(PAYLOAD)),
        ("t.xz", lzma.compress(PAYLOAD)),
        ("t.bz2", bz2.compress(PAYLOAD, compresslevel=1)),
        ("t.zst", zstd_frames(PAYLOAD)),
        ("t.lz4", lz4.frame.compress(PAYLOAD, block_size=lz4.frame.BLOCKSIZE_MAX64KB)),
        ("t", zlib.compress(PAYLOAD)),
    ],
)
def test_truncated_stream_scans_what_came_before_then_reports_corruption(
    tmp_path: Path, name: str, data: bytes
) -> None:
    """A truncated stream yields its readable prefix first, then ARCHIVE_CORRUPT after it."""
    items = unpack(write(tmp_path, name, data[: len(data) * 2 // 3]))
    assert len(items) == 2
    container, body = items[0]  # type: ignore[misc]
    assert isinstance(items[1], ScanProblem)
    assert items[1].error_type is ErrorType.ARCHIVE_CORRUPT
    assert items[1].container == container
    assert PAYLOAD.startswith(body)
    assert len(body) > len(PAYLOAD) // 3


def test_zip_with_bad_crc_yields_data_then_corruption(tmp_path: Path) -> None:
    """A zip member whose CRC does not match is scanned, then reported as corrupt."""
    data = bytearray(zip_bytes({"a.bin": PAYLOAD}, zipfile.ZIP_STORED))
    data[data.index(b"core memory") + 3] ^= 0xFF
    items = unpack(write(tmp_path, "crc.zip", bytes(data)))
    assert [type(i) for i in items] == [tuple, ScanProblem]
    assert len(items[0][1]) == len(PAYLOAD)  # type: ignore[index]
    assert items[1].error_type is ErrorType.ARCHIVE_CORRUPT  # type: ignore[union-attr]


def test_zip_without_directory_yields_only_a_problem(tmp_path: Path) -> None:
    """A zip cut before its central directory cannot be opened: one problem, no layer."""
    data = zip_bytes({"a.bin": PAYLOAD})
    items = unpack(write(tmp_path, "cut.zip", data[: len(data) // 2]))
    [problem] = items
    assert isinstance(problem, ScanProblem)
    assert problem.error_type is ErrorType.ARCHIVE_CORRUPT
    assert problem.container == "cut.zip"


def test_truncated_tar_reports_corruption_after_the_partial_member(tmp_path: Path) -> None:
    """A tar cut inside a member yields the members before it and a corruption problem."""
    data = tar_bytes({"a": b"A" * 5000, "b": PAYLOAD})
    items = unpack(write(tmp_path, "cut.tar", data[: len(data) // 2]))
    assert leaves(items)["cut.tar!a"] == b"A" * 5000
    assert [p.error_type for p in problems(items)] == [ErrorType.ARCHIVE_CORRUPT]


def test_oversized_pax_header_is_refused_not_read_into_memory(tmp_path: Path) -> None:
    """A pax header claiming megabytes of metadata is damage, not something to buffer."""
    header = tarfile.TarInfo("PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 64 * 1024 * 1024
    data = header.tobuf(format=tarfile.USTAR_FORMAT) + bytes(4 * 1024 * 1024)
    items = unpack(write(tmp_path, "pax.tar", data))
    [problem] = items
    assert isinstance(problem, ScanProblem)
    assert problem.error_type is ErrorType.ARCHIVE_CORRUPT


def test_nesting_past_max_depth_is_scanned_raw_and_reported(tmp_path: Path) -> None:
    """A container deeper than max_depth is reported as ARCHIVE_LIMIT and scanned as raw bytes."""
    inner = zip_bytes({"leaf.txt": b"leaf"}, zipfile.ZIP_STORED)
    outer = zip_bytes({"inner.zip": inner})
    items = unpack(write(tmp_path, "o.zip", outer), Limits(max_depth=1))
    assert leaves(items) == {"o.zip!inner.zip": inner}
    [problem] = problems(items)
    assert problem.error_type is ErrorType.ARCHIVE_LIMIT
    assert problem.container == "o.zip!inner.zip"


def test_member_limit_stops_unpacking_with_a_problem(tmp_path: Path) -> None:
    """Past max_members the walk stops and the last item is an ARCHIVE_LIMIT problem."""
    data = zip_bytes({f"m{i}": b"x" for i in range(20)})
    items = unpack(write(tmp_path, "many.zip", data), Limits(max_members=5))
    assert len(leaves(items)) == 5
    assert isinstance(items[-1], ScanProblem)
    assert items[-1].error_type is ErrorType.ARCHIVE_LIMIT


class _Unseekable(io.RawIOBase):
    """An output zipfile cannot seek back into: it writes data descriptors after each member."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # a buffer (typing.Buffer is 3.12)
        chunk = memoryview(b).tobytes()
        self.data += chunk
        return len(chunk)


def test_zip_inside_gzip_is_read_forward_from_its_local_headers(tmp_path: Path) -> None:
    """A zip inside a gzip stream has no random access: its members are read in stored order."""
    inner = zip_bytes({"k.pem": b"key" * 100, "notes.txt": b"n"})
    items = unpack(write(tmp_path, "b.zip.gz", gzip.compress(inner)))
    assert leaves(items) == {"b.zip.gz!b.zip!k.pem": b"key" * 100, "b.zip.gz!b.zip!notes.txt": b"n"}
    assert problems(items) == []


def test_jar_inside_a_tar_gz_is_unpacked(tmp_path: Path) -> None:
    """A support bundle (tar.gz) holding a .jar (a zip): tar members have no random access."""
    jar = zip_bytes({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "certs/k.der": b"d" * 64})
    bundle = gzip.compress(tar_bytes({"app/lib/app.jar": jar}))
    items = unpack(write(tmp_path, "bundle.tgz", bundle))
    assert leaves(items)["bundle.tgz!bundle.tar!app/lib/app.jar!certs/k.der"] == b"d" * 64


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_streamed_zip_with_data_descriptors_is_read(tmp_path: Path, method: int) -> None:
    """A zip written to a pipe (sizes after each member, stored or deflated) inside a gzip."""
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", method) as archive:
        archive.writestr("a", b"x" * 1000)
        archive.writestr("b", b"y" * 10)
    items = unpack(write(tmp_path, "p.zip.gz", gzip.compress(bytes(out.data))))
    assert leaves(items) == {"p.zip.gz!p.zip!a": b"x" * 1000, "p.zip.gz!p.zip!b": b"y" * 10}


def test_streamed_zip_encrypted_member_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    """Read forward, an encrypted member is still an ENCRYPTED_MEMBER problem, not a silent skip."""
    data = bytearray(zip_bytes({"secret.key": b"s" * 100, "plain.txt": b"p"}, zipfile.ZIP_STORED))
    data[data.index(b"PK\x03\x04") + 6] |= 0x01
    data[data.index(b"PK\x01\x02") + 8] |= 0x01
    items = unpack(write(tmp_path, "enc.zip.gz", gzip.compress(bytes(data))))
    assert leaves(items)["enc.zip.gz!enc.zip!plain.txt"] == b"p"
    [problem] = problems(items)
    assert problem.error_type is ErrorType.ENCRYPTED_MEMBER


def test_streamed_zip_truncated_or_a_bomb_ends_with_a_problem(tmp_path: Path) -> None:
    """A truncated zip in a gzip: what came before, then corruption; a bomb: the ratio limit."""
    whole = zip_bytes({"a": os.urandom(5000), "b": b"k" * 100})
    items = unpack(write(tmp_path, "t.zip.gz", gzip.compress(whole[:3000])))
    assert ErrorType.ARCHIVE_CORRUPT in [p.error_type for p in problems(items)]
    bomb = zip_bytes({"zeros": bytes(64 << 20)})
    items = unpack(write(tmp_path, "bomb.zip.gz", gzip.compress(bomb)))
    assert [p.error_type for p in problems(items)] == [ErrorType.ARCHIVE_BOMB]


def _sparse_tar(tmp_path: Path, apparent: int, data: dict[int, bytes]) -> Path:
    """A GNU tar (`tar -S`) of a sparse file: `apparent` bytes, data only at the given offsets."""
    sparse = tmp_path / "sparse.core"
    with sparse.open("wb") as f:
        f.truncate(apparent)
        for at, chunk in data.items():
            f.seek(at)
            f.write(chunk)
    out = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-S", "-cf", str(out), "-C", str(tmp_path), sparse.name], check=True)
    return out


def test_sparse_tar_member_of_holes_is_a_bomb_not_gigabytes_of_zeros(tmp_path: Path) -> None:
    """A 10 KiB tar whose sparse member reads as 8 GiB of zeros: stopped at the ratio, said."""
    tar = _sparse_tar(tmp_path, 8 << 30, {4 << 20: b"x" * 4096})
    assert tar.stat().st_size < 64 * 1024
    items = unpack(tar)
    assert [p.error_type for p in problems(items)] == [ErrorType.ARCHIVE_BOMB]
    assert sum(len(b) for b in leaves(items).values()) <= 2 << 20


def test_sparse_tar_member_with_its_data_is_read_whole(tmp_path: Path) -> None:
    """A sparse core in a tar (1 MiB of data in 64 MiB): read whole, the data where it was."""
    tail = filler(4096)
    tar = _sparse_tar(tmp_path, 64 << 20, {0: filler(1 << 20), (64 << 20) - 4096: tail})
    items = unpack(tar)
    assert problems(items) == []
    body = leaves(items)["sparse.tar!sparse.core"]
    assert len(body) == 64 << 20 and body.endswith(tail)


def test_plain_file_yields_nothing(tmp_path: Path) -> None:
    """A file that is not a container yields no layer and no problem."""
    assert unpack(write(tmp_path, "core", b"\x7fELF" + filler(1000))) == []


MAGICS = [
    b"\x1f\x8b\x08",
    b"PK\x03\x04",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
    b"BZh91AY&SY",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
]


@settings(max_examples=50, deadline=None)
@given(magic=st.sampled_from(MAGICS), rest=st.binary(max_size=2048), tar=st.booleans())
def test_random_bytes_after_a_container_magic_never_raise(
    tmp_path_factory: pytest.TempPathFactory, magic: bytes, rest: bytes, tar: bool
) -> None:
    """Garbage after any container magic gives layers and problems, never an exception."""
    data = magic + rest
    if tar:
        data = data.ljust(262, b"\0")[:257] + b"ustar\x0000" + data[265:]
    path = tmp_path_factory.mktemp("fuzz") / "f.bin"
    path.write_bytes(data)
    for item in unpack(path, Limits(max_expanded_bytes=8 << 20)):
        assert isinstance(item, tuple | ScanProblem)


def test_valid_header_with_random_deflate_body_never_raises(tmp_path: Path) -> None:
    """A well-formed gzip header followed by a corrupted deflate body yields a problem."""
    good = gzip.compress(PAYLOAD)
    bad = good[:10] + bytes(b ^ 0x5A for b in good[10:200]) + good[200:]
    items = unpack(write(tmp_path, "bad.gz", bad))
    assert problems(items)[-1].error_type is ErrorType.ARCHIVE_CORRUPT


# ---- git packs -----------------------------------------------------------------------------


def _git_object(kind: int, body: bytes, prefix: bytes = b"") -> bytes:
    """A pack entry: type and inflated size (git's varint), an optional delta base, zlib body."""
    size = len(body)
    first = (kind << 4) | (size & 15)
    size >>= 4
    head = bytearray()
    while size:
        head.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    head.append(first)
    return bytes(head) + prefix + zlib.compress(body)


def _git_pack(*objects: bytes) -> tuple[bytes, list[int]]:
    """A version 2 pack of the given entries, its SHA-1 trailer, and each entry's offset."""
    out = bytearray(b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big"))
    offsets = []
    for obj in objects:
        offsets.append(len(out))
        out += obj
    return bytes(out + hashlib.sha1(out).digest()), offsets


def test_git_pack_yields_each_whole_blob_by_offset_and_skips_the_rest(tmp_path: Path) -> None:
    """Blobs are members named by their offset; commits, trees and deltas are read past, unscanned."""
    second = b"second blob " * 5000
    pack, at = _git_pack(
        _git_object(1, b"tree 0000\nauthor ci\n\nadd key\n"),
        _git_object(3, PAYLOAD),
        _git_object(2, b"100644 deploy.key\0" + bytes(20)),
        _git_object(6, b"\x10\x20\x90\x05copy", prefix=b"\x81\x05"),  # OFS_DELTA, base 261 back
        _git_object(7, b"\x10\x20\x04insr", prefix=bytes(20)),  # REF_DELTA
        _git_object(3, second),
    )
    assert detect(pack) == "gitpack"
    items = unpack(write(tmp_path, "pack-1.pack", pack))
    assert items == [(f"pack-1.pack!blob@{at[1]}", PAYLOAD), (f"pack-1.pack!blob@{at[5]}", second)]


def test_git_pack_cut_short_keeps_the_blobs_before_and_reports_damage(tmp_path: Path) -> None:
    pack, at = _git_pack(_git_object(3, PAYLOAD), _git_object(3, b"x" * 100_000))
    items = unpack(write(tmp_path, "pack-2.pack", pack[: at[1] + 20]))
    assert items[0] == (f"pack-2.pack!blob@{at[0]}", PAYLOAD)
    assert isinstance(items[-1], ScanProblem)
    assert items[-1].error_type is ErrorType.ARCHIVE_CORRUPT


def test_git_pack_with_a_bad_object_type_stops_with_damage(tmp_path: Path) -> None:
    pack, _ = _git_pack(_git_object(3, PAYLOAD), b"\x05" + zlib.compress(b"?"))  # type 0 is invalid
    items = unpack(write(tmp_path, "pack-3.pack", pack))
    assert items[0][0].endswith("blob@12")  # type: ignore[index]
    assert isinstance(items[-1], ScanProblem)
    assert "bad object type" in items[-1].detail


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_git_packs_never_raise(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Flipped, cut or random bytes in a pack give members and problems, never an exception."""
    pack, _ = _git_pack(
        _git_object(1, b"commit body"),
        _git_object(3, PAYLOAD[:5000]),
        _git_object(6, b"\x10\x20\x90\x05copy", prefix=b"\x81\x05"),
        _git_object(3, b"tail blob"),
    )
    mutated = bytearray(pack)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(12, len(mutated) - 1))
        mutated[at] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(12, len(mutated)))
    path = tmp_path_factory.mktemp("pack") / "pack-f.pack"
    path.write_bytes(bytes(mutated[:cut]))
    for item in unpack(path):
        assert isinstance(item, ScanProblem) or item[0].startswith("pack-f.pack!blob@")
