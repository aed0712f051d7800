"""Containers: open gzip, zip (nested), xz, bz2, zstd, lz4, zlib, tar, git packs and, through
libarchive, 7-Zip, cpio, ar, RPM, CAB and zips that cannot be seeked; stream their members.

The scanner reads a file's first bytes, asks `detect(head)`, and for a
container iterates `layers(...)`: each leaf member comes as a `Layer` whose
stream decompresses on demand, so no member is materialised in memory or on
disk (key material is never copied anywhere). Nested containers are found by
peeking at each member's first bytes and opened up to `Limits.max_depth`.

Bombs and damage become `ScanProblem`s, never exceptions. Every byte a
decompressor produces, at any depth (re-reads of a nested zip included), is
charged to the file's budget; a stream that crosses a limit ends early and
its problem is yielded right after its layer. What was decompressed before a
corruption is still scanned: the layer comes first, the problem after it.

Why one module of ~860 lines: the five walkers (zip, tar, git packs,
libarchive's formats, single streams) share the private wrappers that count
and guard bytes, and the zstd frame walker (the decoder ends silently on a
truncated stream) belongs with them; splitting would turn those wrappers into
a public surface. What needs none of them is elsewhere: the reading of a git
pack's entries in `gitpack`, the adapters to libarchive's callbacks in
`archive_io`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol, Self, cast

import lz4.frame
import zstandard

from agent.scan import archive_io
from agent.scan.archive_io import ReadInto
from agent.scan.gitpack import PackEntry, PackSource
from agent.values import ErrorType, ScanProblem

MiB = 1024 * 1024
_PEEK_BYTES = 512  # the tar magic sits at 257
_READ_MAX = 4 * MiB  # one inner read; zipfile and gzip hold ~3 copies of what one read returns
_RATIO_GRACE_BYTES = MiB  # below this no ratio is a bomb: small members of zeros are common
_LABEL_MAX = 200
_TAR_META_MAX = MiB  # pax / GNU long-name headers are read into memory by tarfile
_BZ2_MAGICS = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")
_SUFFIXES = (
    (".tgz", ".tar"),
    (".txz", ".tar"),
    (".tbz2", ".tar"),
    (".tbz", ".tar"),
    (".tzst", ".tar"),
    (".gzip", ""),
    (".gz", ""),
    (".xz", ""),
    (".bz2", ""),
    (".zstd", ""),
    (".zst", ""),
    (".lz4", ""),
)


class Readable(Protocol):
    """A stream of decompressed bytes."""

    def read(self, n: int, /) -> bytes:
        """Up to n bytes; b'' at the end."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds that turn an archive bomb into a reported problem instead of an outage."""

    max_depth: int = 4
    max_members: int = 10000
    max_expanded_bytes: int = 20 * 1024**3
    max_ratio: int = 200


@dataclass(frozen=True, slots=True)
class Layer:
    """One leaf stream to scan: a member (or the decompressed body) and its path in the container."""

    container: str
    stream: Readable


# containers libarchive reads (see archive_io): kind -> (libarchive format, filter, needs seeking)
_ARCHIVES: dict[str, tuple[str, str, bool]] = {
    "7z": ("7zip", "none", True),  # the header is at the end: no streaming
    "cpio": ("cpio", "none", False),  # initramfs, RPM payloads
    "ar": ("ar", "none", False),  # .deb packages, static libraries
    "rpm": ("cpio", "all", False),  # the rpm filter skips the package header; cpio follows
    "cab": ("cab", "none", False),  # Windows cabinets
    # a zip with no random access (inside a compressed stream or a tar: a .jar in a support
    # bundle's tar.gz) is read forward from its local headers; with random access, zipfile
    "zip": ("zip", "none", False),
}
_ARCHIVE_MAGICS = (
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"070701", "cpio"),  # newc
    (b"070702", "cpio"),  # newc with checksums
    (b"070707", "cpio"),  # portable ASCII (odc)
    (b"!<arch>\n", "ar"),
    (b"\xed\xab\xee\xdb", "rpm"),
    (b"MSCF\0\0\0\0", "cab"),
)
_ARCHIVE_BLOCK = 1024 * 1024  # libarchive's output per read: larger blocks, fewer Python calls

# the second byte of a zlib header with a 32 KiB window, for each compression level class;
# with 0x78 first each makes the header a multiple of 31, as RFC 1950 requires
_ZLIB_LEVELS = frozenset((0x01, 0x5E, 0x9C, 0xDA))


def detect(head: bytes) -> str | None:
    """The container kind by magic bytes, or None for a plain file."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"  # LZ4 frame: systemd-coredump before it moved to zstd
    if (
        head[:3] == b"BZh"
        and len(head) >= 10
        and 0x31 <= head[3] <= 0x39
        and head[4:10] in _BZ2_MAGICS
    ):
        return "bz2"
    if head[257:262] == b"ustar":
        return "tar"
    for magic, kind in _ARCHIVE_MAGICS:
        if head.startswith(magic):
            return kind
    if head[:4] == b"PACK" and head[4:8] in (b"\0\0\0\x02", b"\0\0\0\x03"):
        return "gitpack"  # .git/objects/pack/*.pack: what a clone or `git gc` leaves
    if len(head) >= 2 and head[0] == 0x78 and head[1] in _ZLIB_LEVELS:
        return "zlib"  # a bare zlib stream: git's loose objects (.git/objects/xx/...)
    return None


def layers(path: str, fd: int, head: bytes, limits: Limits) -> Iterator[Layer | ScanProblem]:
    """Leaf streams of a container file, depth-first; problems instead of exceptions."""
    kind = detect(head)
    if kind is None:
        return
    label = _label(os.path.basename(path))
    try:
        size = os.fstat(fd).st_size
    except OSError:
        size = len(head)
    budget = _Budget(limits, size)
    source = io.BufferedReader(_FdReader(fd), buffer_size=256 * 1024)
    try:
        if kind == "zip":
            yield from _zip(label, source, 1, budget)
        elif kind in _ARCHIVES:
            yield from _archive(kind, label, ReadInto(source, seekable=True), 1, budget)
        elif kind == "tar":
            yield from _tar(label, source, 1, budget)
        elif kind == "gitpack":
            yield from _gitpack(label, source, 1, budget, size=size)
        else:
            yield from _stream(kind, label, source, 1, budget, size=size)
    except Exception as exc:  # noqa: BLE001 - isolation point: a bug or an unforeseen library error on hostile input ends this file's unpacking, never the scan
        if budget.stop is None:
            yield _problem(ErrorType.ARCHIVE_CORRUPT, f"unpacking stopped: {_why(exc)}", label)
    if budget.stop is not None:
        yield budget.stop


def _problem(kind: ErrorType, detail: str, container: str, affected: int = 0) -> ScanProblem:
    return ScanProblem(
        error_type=kind, stage="unpack", detail=detail, container=container, bytes_affected=affected
    )


def _why(exc: BaseException) -> str:
    """A bounded, printable description of a library error (names, never data)."""
    text = _label(str(exc))[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _label(name: str) -> str:
    """A member name as users see it: printable, escaped, bounded (never used as a path)."""
    out: list[str] = []
    for ch in name:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a non-UTF-8 byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    text = "".join(out)
    if len(text) > _LABEL_MAX:
        text = text[:120] + "..." + text[-(_LABEL_MAX - 123) :]
    return text


def _inner_name(label: str) -> str:
    """The name of a single compressed stream's content: the last member without its suffix."""
    base = label.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    lower = base.lower()
    for suffix, replacement in _SUFFIXES:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base


class _Budget:
    """One file's allowance: expanded bytes, overall ratio, member count."""

    def __init__(self, limits: Limits, compressed_size: int) -> None:
        self.limits = limits
        self.expanded = 0
        self.members = 0
        self.stop: ScanProblem | None = None  # set when the whole file must stop unpacking
        self.compressed_size = compressed_size
        self._overall_cap = max(limits.max_ratio * max(compressed_size, 1), _RATIO_GRACE_BYTES)

    def allowance(self) -> int:
        """Bytes that may still be produced before a file-wide limit is crossed."""
        cap = min(self.limits.max_expanded_bytes, self._overall_cap)
        return max(cap - self.expanded, 0)

    def charge(self, n: int, container: str) -> None:
        """Count produced bytes; crossing a file-wide limit stops the whole file."""
        self.expanded += n
        if self.stop is not None:
            return
        if self.expanded > self.limits.max_expanded_bytes:
            mib = self.limits.max_expanded_bytes // MiB
            self.stop = _problem(
                ErrorType.ARCHIVE_BOMB,
                f"expands to more than {mib} MiB in total (scan.max_expanded_mib): "
                "the rest was not unpacked",
                container,
                self.expanded,
            )
        elif self.expanded > self._overall_cap:
            self.stop = _problem(
                ErrorType.ARCHIVE_BOMB,
                f"expands more than {self.limits.max_ratio}x the file size "
                "(scan.max_expansion_ratio): the rest was not unpacked",
                container,
                self.expanded,
            )

    def admit(self, container: str) -> bool:
        """Count one member; False (and stop) past the member limit."""
        self.members += 1
        if self.members > self.limits.max_members and self.stop is None:
            self.stop = _problem(
                ErrorType.ARCHIVE_LIMIT,
                f"more than {self.limits.max_members} members (scan.max_archive_members): "
                "the rest were not unpacked",
                container,
            )
        return self.stop is None


class _Guard:
    """A decompressed stream that counts its bytes, enforces the limits and never raises."""

    def __init__(
        self,
        inner: Readable,
        budget: _Budget,
        container: str,
        *,
        compressed: Callable[[], int] | None = None,
        end_check: Callable[[], str | None] | None = None,
        tap: Callable[[bytes], None] | None = None,
    ) -> None:
        self.problem: ScanProblem | None = None
        self.produced = 0
        self._inner = inner
        self._budget = budget
        self._container = container
        self._compressed = compressed  # None: not a decompressor (a tar member), nothing charged
        self._end_check = end_check
        self._tap = tap
        self._read1: Callable[[int], bytes] | None = getattr(inner, "read1", None)
        self._done = False

    def read(self, n: int, /) -> bytes:
        """Up to n bytes; b'' at the end, at a limit, or at damage (then `problem` says which)."""
        if self._done or self._budget.stop is not None:
            return b""
        want = min(n, _READ_MAX) if n > 0 else MiB
        if self._compressed is not None:
            member_left = self._member_cap() - self.produced
            want = max(1, min(want, self._budget.allowance() + 1, member_left + 1))
        try:
            # read1 returns what one decode step produced, so damage found by the next step
            # cannot discard bytes already decoded (BufferedReader.read would drop them)
            data = self._read1(want) if self._read1 is not None else self._inner.read(want)
        except archive_io.EncryptedMemberError:
            self._done = True
            if self._budget.stop is None:
                self.problem = _problem(
                    ErrorType.ENCRYPTED_MEMBER,
                    "encrypted archive member: its content cannot be scanned",
                    self._container,
                )
            return b""
        except Exception as exc:  # noqa: BLE001 - isolation point: decompressors raise many types on hostile input (zlib.error, EOFError, LZMAError, ZstdError, BadZipFile, tarfile errors); all mean damage
            self._done = True
            if self._budget.stop is None:
                self.problem = _problem(
                    ErrorType.ARCHIVE_CORRUPT,
                    f"damaged after {self.produced} bytes ({_why(exc)}); the bytes before it "
                    "were scanned",
                    self._container,
                    self.produced,
                )
            return b""
        if not data:
            self._done = True
            reason = self._end_check() if self._end_check else None
            if reason and self._budget.stop is None:
                self.problem = _problem(ErrorType.ARCHIVE_CORRUPT, reason, self._container)
            return b""
        self.produced += len(data)
        if self._tap is not None:
            self._tap(data)
        if self._compressed is not None:
            self._budget.charge(len(data), self._container)
            if self.produced > self._member_cap() and self._budget.stop is None:
                self._done = True
                self.problem = _problem(
                    ErrorType.ARCHIVE_BOMB,
                    f"member expands more than {self._budget.limits.max_ratio}x its compressed "
                    "size (scan.max_expansion_ratio): the rest was not unpacked",
                    self._container,
                    self.produced,
                )
        return data

    def _member_cap(self) -> int:
        assert self._compressed is not None
        return max(self._budget.limits.max_ratio * self._compressed(), _RATIO_GRACE_BYTES)


class _Peeked:
    """A stream whose first bytes were already read to detect its kind."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int, /) -> bytes:
        if self._head:
            size = n if n > 0 else len(self._head)
            out, self._head = self._head[:size], self._head[size:]
            return out
        return self._rest.read(n)


class _Counted:
    """The compressed side of a stream: counts what the decompressor consumed."""

    def __init__(self, source: Readable, tap: Callable[[bytes], None] | None = None) -> None:
        self.consumed = 0
        self._source = source
        self._tap = tap

    def read(self, n: int = -1, /) -> bytes:
        data = self._source.read(n if n > 0 else MiB)
        self.consumed += len(data)
        if self._tap is not None:
            self._tap(data)
        return data


class _FdReader(io.RawIOBase):
    """The outer file, read with pread so the scanner's own reads are never disturbed."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view:
            got = os.preadv(self._fd, [view.cast("B")], self._pos)  # straight into the buffer
        self._pos += got
        return got

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: os.fstat(self._fd).st_size}
        self._pos = max(base[whence] + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos


class _SeekableMember:
    """A zip member opened as a zip: seeks re-decompress, so their cost is charged too."""

    def __init__(self, member: IO[bytes], budget: _Budget, container: str) -> None:
        self._member = member
        self._budget = budget
        self._container = container

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._member.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        before = self._member.tell()
        after = self._member.seek(offset, whence)
        # a backward seek restarts decompression from the start of the member
        self._budget.charge(after if after < before else after - before, self._container)
        return after

    def read(self, n: int = -1, /) -> bytes:
        if self._budget.stop is not None:
            return b""
        data = self._member.read(n if n >= 0 else MiB)
        self._budget.charge(len(data), self._container)
        return data


def _member(
    label: str,
    guard: _Guard,
    depth: int,
    budget: _Budget,
    reopen: Callable[[], IO[bytes]] | None = None,
    *,
    size: int | None = None,
) -> Iterator[Layer | ScanProblem]:
    """One member: a leaf layer, or a nested container walked one level deeper.

    `size` is the member's stored size when its container records it; a
    compressed stream inside is then held to the ratio against that whole size.
    """
    head = b""
    while len(head) < _PEEK_BYTES:
        piece = guard.read(_PEEK_BYTES - len(head))
        if not piece:
            break
        head += piece
    kind = detect(head)
    stream = _Peeked(head, guard)
    seekable_zip = kind == "zip" and reopen is not None
    if kind is not None and depth >= budget.limits.max_depth:
        yield _problem(
            ErrorType.ARCHIVE_LIMIT,
            f"{kind} nested deeper than {budget.limits.max_depth} levels "
            "(scan.max_archive_depth): scanned as raw bytes",
            label,
        )
        kind = None
    elif kind in _ARCHIVES and _ARCHIVES[kind][2] and reopen is None:
        yield _problem(
            ErrorType.NOT_DEEP_SCANNED,
            f"{kind} inside a compressed stream (no random access): scanned as raw bytes",
            label,
        )
        kind = None
    elif kind in _ARCHIVES and not seekable_zip and archive_io.library() is None:
        yield _no_libarchive(kind, label)
        kind = None
    if kind is None:
        yield Layer(label, stream)
    elif seekable_zip:
        assert reopen is not None
        yield from _zip(label, _SeekableMember(reopen(), budget, label), depth + 1, budget)
    elif kind in _ARCHIVES:
        if reopen is not None:
            source = ReadInto(_SeekableMember(reopen(), budget, label), seekable=True)
        else:
            source = ReadInto(stream)
        yield from _archive(kind, label, source, depth + 1, budget)
    elif kind == "tar":
        yield from _tar(label, stream, depth + 1, budget)
    elif kind == "gitpack":
        yield from _gitpack(label, stream, depth + 1, budget, size=size)
    else:
        yield from _stream(kind, label, stream, depth + 1, budget, size=size)
    if guard.problem is not None:
        yield guard.problem


def _stream(
    kind: str, label: str, source: Readable, depth: int, budget: _Budget, *, size: int | None
) -> Iterator[Layer | ScanProblem]:
    """A single compressed stream (gzip, xz, bz2, zstd, lz4, zlib); its content is one member."""
    inner = f"{label}!{_inner_name(label)}"
    if not budget.admit(inner):
        return
    frames = _ZstdFrames() if kind == "zstd" else None
    counted = _Counted(source, frames.feed if frames else None)
    raw = cast(IO[bytes], counted)
    decoder: Readable
    if kind == "gzip":
        decoder = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "xz":
        decoder = lzma.LZMAFile(raw)  # noqa: SIM115 - lives as long as the generator; owns no fd
    elif kind == "bz2":
        decoder = bz2.BZ2File(raw)
    elif kind == "lz4":
        decoder = lz4.frame.LZ4FrameFile(raw, mode="rb")
    elif kind == "zlib":
        decoder = _ZlibReader(raw)
    else:
        decoder = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=False
        )
    end_check = frames.end_problem if frames else None
    # the ratio is judged against the whole compressed size when known: a long run of zeros
    # early in a legitimate core must not look like a bomb before the rest has been read
    compressed = _const(size) if size else (lambda: counted.consumed)
    guard = _Guard(decoder, budget, inner, compressed=compressed, end_check=end_check)
    yield from _member(inner, guard, depth, budget)


class _ZlibReader:
    """A zlib stream read forward (the standard library has a decoder, not a reader)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._decoder = zlib.decompressobj()

    def read(self, n: int, /) -> bytes:
        """Up to n bytes (n > 0); b'' at the stream's end; EOFError when the input stops first."""
        d = self._decoder
        while True:
            if d.eof:
                return b""
            data = d.unconsumed_tail or self._raw.read(256 * 1024)
            if not data:
                raise EOFError("the zlib stream ended before its end marker")
            out = d.decompress(data, n)
            if out:
                return out


def _zip(label: str, fileobj: object, depth: int, budget: _Budget) -> Iterator[Layer | ScanProblem]:
    """A zip archive (needs random access); members in file order so seeks run forward."""
    try:
        archive = zipfile.ZipFile(cast(IO[bytes], fileobj))
    except Exception as exc:  # noqa: BLE001 - isolation point: a broken directory is damage, whatever zipfile raises
        if budget.stop is None:
            yield _problem(ErrorType.ARCHIVE_CORRUPT, f"zip not readable: {_why(exc)}", label)
        return
    with archive:
        infos = sorted(
            (i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.header_offset
        )
        for info in infos:
            child = f"{label}!{_label(info.filename)}"
            if not budget.admit(child):
                return
            if info.flag_bits & 0x1:
                yield _problem(
                    ErrorType.ENCRYPTED_MEMBER,
                    "encrypted zip member: its content cannot be scanned",
                    child,
                    info.compress_size,
                )
                continue
            try:
                member = archive.open(info)
            except Exception as exc:  # noqa: BLE001 - isolation point: bad local header or unsupported method
                if budget.stop is not None:
                    return
                unsupported = isinstance(exc, NotImplementedError)
                yield _problem(
                    ErrorType.NOT_DEEP_SCANNED if unsupported else ErrorType.ARCHIVE_CORRUPT,
                    f"member not readable: {_why(exc)}",
                    child,
                    info.compress_size,
                )
                continue
            crc = _Crc(info.CRC)
            # zipfile checks the CRC inside the read that reaches the end and then drops that
            # read's bytes; checking it here keeps them scanned and still reports the damage
            if hasattr(member, "_expected_crc"):
                setattr(member, "_expected_crc", None)  # noqa: B010 - private attribute, on purpose
            with member:
                guard = _Guard(
                    member,
                    budget,
                    child,
                    compressed=_const(info.compress_size),
                    end_check=crc.end_problem,
                    tap=crc.update,
                )
                yield from _member(
                    child, guard, depth, budget, _opener(archive, info), size=info.file_size
                )
            if budget.stop is not None:
                return


class _Crc:
    """The CRC-32 of a zip member's bytes, compared with the directory at the end."""

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def end_problem(self) -> str | None:
        if self._value == self._expected:
            return None
        return "bad CRC-32: the member is damaged; its bytes were scanned"


def _const(value: int) -> Callable[[], int]:
    return lambda: value


def _opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized pax / long-name headers, which tarfile would read whole into memory."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        obj = super().frombuf(buf, encoding, errors)
        meta = (
            tarfile.XHDTYPE,
            tarfile.XGLTYPE,
            tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK,
        )
        if obj.type in meta and obj.size > _TAR_META_MAX:
            raise tarfile.HeaderError("oversized metadata header")
        return obj


def _no_libarchive(kind: str, label: str) -> ScanProblem:
    return _problem(
        ErrorType.NOT_DEEP_SCANNED,
        f"{kind} archive scanned as raw bytes: libarchive is not installed "
        "(Debian: apt-get install libarchive13)",
        label,
    )


def _archive(
    kind: str, label: str, source: ReadInto, depth: int, budget: _Budget
) -> Iterator[Layer | ScanProblem]:
    """An archive libarchive reads (7-Zip, cpio, ar, RPM, CAB): members in stored order.

    Members of solid archives have no compressed size of their own, so each is
    held to the ratio against the whole file's size (the file-wide budget too).
    """
    lib = archive_io.library()
    if lib is None:
        yield _no_libarchive(kind, label)
        return
    fmt, flt, _ = _ARCHIVES[kind]
    whole = _const(budget.compressed_size)
    walk: dict[str, bool] = {}
    try:
        with lib.stream_reader(
            source, format_name=fmt, filter_name=flt, block_size=256 * 1024
        ) as archive:
            for entry in archive:
                if not entry.isfile:
                    continue
                child = f"{label}!{_label(entry.pathname or '?')}"
                if not budget.admit(child):
                    return
                blocks = archive_io.Blocks(entry.get_blocks(_ARCHIVE_BLOCK), lib.ArchiveError, walk)
                guard = _Guard(blocks, budget, child, compressed=whole)
                yield from _member(child, guard, depth, budget, size=entry.size)
                if budget.stop is not None:
                    return
    except lib.ArchiveError as exc:
        if budget.stop is not None:
            return
        if archive_io.is_encryption_error(exc) or walk.get("encrypted"):
            yield _problem(
                ErrorType.ENCRYPTED_MEMBER,
                f"encrypted {kind} archive: its names and contents cannot be scanned",
                label,
            )
        else:
            yield _problem(ErrorType.ARCHIVE_CORRUPT, f"{kind} archive damaged: {_why(exc)}", label)


def _tar(
    label: str, source: Readable, depth: int, budget: _Budget
) -> Iterator[Layer | ScanProblem]:
    """A tar stream read forward only (members are streamed in order)."""
    try:
        # closed by the `with` below; open itself may fail on a bad first header
        archive = tarfile.open(  # noqa: SIM115
            fileobj=cast(IO[bytes], source), mode="r|", tarinfo=_BoundedTarInfo
        )
    except Exception as exc:  # noqa: BLE001 - isolation point: whatever tarfile raises on a bad first header is damage
        if budget.stop is None:
            yield _problem(ErrorType.ARCHIVE_CORRUPT, f"tar not readable: {_why(exc)}", label)
        return
    with archive:
        while True:
            try:
                info = archive.next()
            except Exception as exc:  # noqa: BLE001 - isolation point: a bad header ends the walk, the members before it were scanned
                if budget.stop is None:
                    yield _problem(ErrorType.ARCHIVE_CORRUPT, f"tar damaged: {_why(exc)}", label)
                return
            if info is None:
                return
            if not info.isreg():
                continue
            child = f"{label}!{_label(info.name)}"
            if not budget.admit(child):
                return
            member = archive.extractfile(info)
            if member is None:
                continue
            # a GNU sparse member reads as zeros where it has holes: a 5 KiB tar can hold a 60 GB
            # member (Go's archive/tar test data), so it is held to the ratio of what it stores
            sparse = cast(list[tuple[int, int]], info.sparse or [])  # typeshed says int
            stored = sum(n for _, n in sparse) if info.issparse() else None
            guard = _Guard(
                member, budget, child, compressed=None if stored is None else _const(stored)
            )
            yield from _member(child, guard, depth, budget, size=info.size)
            if budget.stop is not None or guard.problem is not None:
                return  # a member cut short means the tar stream itself is broken


_GIT_BLOB, _GIT_OFS_DELTA, _GIT_REF_DELTA = 3, 6, 7
_GIT_TYPES = frozenset((1, 2, 3, 4, _GIT_OFS_DELTA, _GIT_REF_DELTA))


def _gitpack(
    label: str, source: Readable, depth: int, budget: _Budget, *, size: int | None
) -> Iterator[Layer | ScanProblem]:
    """A git pack read forward: every whole blob is a member, named by its offset in the pack.

    Each object is a small header and a zlib stream. Commits, trees, tags and
    deltas (copy/insert instructions against another object, which cut a
    file's bytes into pieces of at most 127) are decompressed past, charged to
    the budget but not scanned. `git verify-pack -v` maps an offset to the
    object's id.
    """
    src = PackSource(source)
    head = src.exact(12)
    if len(head) < 12:
        yield _problem(ErrorType.ARCHIVE_CORRUPT, "git pack shorter than its header", label)
        return
    compressed = _const(size) if size else (lambda: src.consumed)
    for _ in range(int.from_bytes(head[8:12], "big")):
        at = src.consumed
        kind, _size = src.object_header()
        if kind not in _GIT_TYPES:
            yield _problem(
                ErrorType.ARCHIVE_CORRUPT,
                f"git pack damaged at offset {at}: bad object type",
                label,
            )
            return
        if kind == _GIT_OFS_DELTA:
            src.varint()
        elif kind == _GIT_REF_DELTA:
            src.exact(20)
        body = PackEntry(src)
        if kind == _GIT_BLOB:
            child = f"{label}!blob@{at}"
            if not budget.admit(child):
                return
            guard = _Guard(body, budget, child, compressed=compressed)
            yield from _member(child, guard, depth, budget)
        else:
            guard = _Guard(body, budget, f"{label}@{at}", compressed=compressed)
        while guard.read(_READ_MAX):
            pass  # what the scanner did not read (or a skipped object): the next header follows
        if budget.stop is not None or guard.problem is not None:
            if guard.problem is not None and kind != _GIT_BLOB:
                yield guard.problem
            return


class _ZstdFrames:
    """Walks zstd frame and block headers in the compressed bytes to notice truncation.

    zstandard's stream reader ends silently when the input stops inside a
    frame; a truncated systemd-coredump file must still be reported as damaged.
    """

    def __init__(self) -> None:
        self._state = "magic"
        self._buf = bytearray()
        self._skip = 0
        self._checksum = False
        self._frames = 0
        self._bad = False

    def feed(self, data: bytes) -> None:
        """Advance over more compressed bytes (any chunking)."""
        pos, end = 0, len(data)
        while pos < end and not self._bad:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            need = {"magic": 4, "skippable": 4, "descriptor": 1, "block": 3}[self._state]
            take = min(need - len(self._buf), end - pos)
            self._buf += data[pos : pos + take]
            pos += take
            if len(self._buf) == need:
                self._advance(bytes(self._buf))
                self._buf.clear()

    def _advance(self, field: bytes) -> None:
        value = int.from_bytes(field, "little")
        if self._state == "magic":
            if value == 0xFD2FB528:
                self._state = "descriptor"
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._state = "skippable"
            else:
                self._bad = True  # the decoder reports this one itself
        elif self._state == "skippable":
            self._skip, self._state = value, "magic"
        elif self._state == "descriptor":
            single = bool(value & 0x20)
            self._checksum = bool(value & 0x04)
            fcs = (1 if single else 0, 2, 4, 8)[value >> 6]
            self._skip = (0 if single else 1) + (0, 1, 2, 4)[value & 0x03] + fcs
            self._state = "block"
        else:
            block_type = (value >> 1) & 0x3
            self._skip = 1 if block_type == 1 else value >> 3
            if value & 0x1:  # last block of the frame
                self._skip += 4 if self._checksum else 0
                self._frames += 1
                self._state = "magic"

    def end_problem(self) -> str | None:
        """Why the stream is incomplete at its end, or None when it ended on a frame boundary."""
        if self._bad or (self._state == "magic" and not self._buf and not self._skip):
            return None if self._frames or self._bad else "zstd stream holds no complete frame"
        return "zstd stream ends inside a frame (truncated); the bytes before it were scanned"
