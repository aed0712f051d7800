"""ELF core reader: PT_LOAD segments become memory regions; notes name the dumped process.

Parses the first window of the file (the scanner's head). gdb's gcore writes
the notes at the end of the file, so notes past the head are collected from
the later windows as the scan streams by (`LateNotes`), never with a second
read. Truncated or corrupt files yield what could be read plus a DUMP_CORRUPT
problem; nothing here raises.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from agent.scan.dumps.model import DumpInfo, Region, corrupt, process_of
from agent.values import ProcessInfo, ScanProblem

ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_FILE = 0x46494C45
PN_XNUM = 0xFFFF
MAX_PHDRS = 1 << 20  # more mappings than any real process has
MAX_NOTE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Layout:
    """Field layout of one ELF class/byte order."""

    order: str  # "<" | ">"
    wide: bool  # ELFCLASS64

    @property
    def word(self) -> str:
        return "Q" if self.wide else "I"

    @property
    def phentsize(self) -> int:
        return 56 if self.wide else 32


def _layout(head: bytes) -> _Layout | None:
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    return _Layout("<" if head[5] == 1 else ">", head[4] == 2)


def is_elf_core(head: bytes) -> bool:
    """True when the bytes start an ELF file of type ET_CORE."""
    lay = _layout(head)
    return lay is not None and struct.unpack_from(lay.order + "H", head, 16)[0] == ET_CORE


def parse(head: bytes, total_size: int | None) -> DumpInfo | None:
    """Regions and process of an ELF core, or None when the bytes are not an ELF core."""
    lay = _layout(head)
    if lay is None or not is_elf_core(head):
        return None
    o = lay.order
    problems: list[ScanProblem] = []
    if lay.wide:
        if len(head) < 64:
            return DumpInfo(
                kind="elf-core",
                process=None,
                regions=(),
                problems=(corrupt("ELF header truncated"),),
            )
        phoff, shoff = struct.unpack_from(o + "QQ", head, 32)
        phentsize, phnum = struct.unpack_from(o + "HH", head, 54)
    else:
        phoff, shoff = struct.unpack_from(o + "II", head, 28)
        phentsize, phnum = struct.unpack_from(o + "HH", head, 42)
    if phnum == PN_XNUM:
        # more than 65534 segments: the real count is in section header 0's sh_info
        info_at = shoff + (44 if lay.wide else 28)
        phnum = struct.unpack_from(o + "I", head, info_at)[0] if info_at + 4 <= len(head) else 0
    if phentsize < lay.phentsize or phnum > MAX_PHDRS:
        return DumpInfo(
            kind="elf-core",
            process=None,
            regions=(),
            problems=(corrupt("ELF program headers are malformed"),),
        )
    regions: list[Region] = []
    notes: list[tuple[int, int]] = []
    fmt = o + ("IIQQQQQQ" if lay.wide else "IIIIIIII")
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + lay.phentsize > len(head):
            problems.append(
                corrupt(
                    f"program headers end past the readable head ({phnum - i} of {phnum} unread)"
                )
            )
            break
        f = struct.unpack_from(fmt, head, at)
        if lay.wide:
            p_type, p_offset, p_vaddr, p_filesz = f[0], f[2], f[3], f[5]
        else:
            p_type, p_offset, p_vaddr, p_filesz = f[0], f[1], f[2], f[4]
        if p_type == PT_LOAD and p_filesz:
            regions.append(Region(file_offset=p_offset, size=p_filesz, address=p_vaddr))
        elif p_type == PT_NOTE:
            notes.append((p_offset, p_filesz))
    if total_size is not None:
        regions, missing = _clip(regions, total_size)
        if missing:
            problems.append(
                corrupt(
                    f"core is truncated: {missing} bytes of memory segments are missing", missing
                )
            )
    in_head = [(off, size) for off, size in notes if off + min(size, MAX_NOTE_BYTES) <= len(head)]
    later = [(off, size) for off, size in notes if (off, size) not in in_head]
    pid, name, executable = _read_notes(head, in_head, lay, problems)
    return DumpInfo(
        kind="elf-core",
        process=process_of(pid, name, executable),
        regions=tuple(regions),
        problems=tuple(problems),
        late_notes=LateNotes(lay, later) if later else None,
    )


@dataclass(slots=True)
class LateNotes:
    """Note segments that lie past the head, gathered from the windows as the scan passes them."""

    lay: _Layout
    spans: list[tuple[int, int]]
    _bufs: list[bytearray] = field(init=False)
    _filled: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.spans = [(off, min(size, MAX_NOTE_BYTES)) for off, size in self.spans]
        self._bufs = [bytearray(size) for _, size in self.spans]
        self._filled = [0] * len(self.spans)

    def feed(self, base: int, data: memoryview) -> None:
        """Copy what `data` (the window's own, non-overlapping bytes at `base`) holds of the notes."""
        end = base + len(data)
        for i, (off, size) in enumerate(self.spans):
            lo, hi = max(off, base), min(off + size, end)
            if lo < hi:
                self._bufs[i][lo - off : hi - off] = data[lo - base : hi - base]
                self._filled[i] += hi - lo

    def finish(self) -> tuple[ProcessInfo | None, list[ScanProblem]]:
        """The dumped process from the gathered notes, and a problem for any that never arrived."""
        problems: list[ScanProblem] = []
        pid: int | None = None
        name: str | None = None
        executable: str | None = None
        for buf, filled, (_, size) in zip(self._bufs, self._filled, self.spans, strict=True):
            if filled < size:
                problems.append(corrupt("the notes segment lies past the end of the file"))
                continue
            got = _read_notes(bytes(buf), [(0, size)], self.lay, problems)
            pid, name, executable = pid or got[0], name or got[1], executable or got[2]
        return process_of(pid, name, executable), problems


def _clip(regions: list[Region], total_size: int) -> tuple[list[Region], int]:
    out: list[Region] = []
    missing = 0
    for r in regions:
        end = min(r.file_offset + r.size, total_size)
        missing += r.size - max(0, end - r.file_offset)
        if end > r.file_offset:
            out.append(
                Region(file_offset=r.file_offset, size=end - r.file_offset, address=r.address)
            )
    return out, missing


def _read_notes(
    head: bytes, notes: list[tuple[int, int]], lay: _Layout, problems: list[ScanProblem]
) -> tuple[int | None, str | None, str | None]:
    pid: int | None = None
    name: str | None = None
    files: list[str] = []
    o = lay.order
    for offset, size in notes:
        end = offset + min(size, MAX_NOTE_BYTES)
        if end > len(head):
            problems.append(corrupt("the notes segment lies past the readable head"))
            end = len(head)
        at = offset
        while at + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(o + "III", head, at)
            desc_at = at + 12 + _align4(namesz)
            desc_end = desc_at + descsz
            if desc_end > end:
                problems.append(corrupt("a core note is truncated"))
                break
            desc = head[desc_at:desc_end]
            if ntype == NT_PRPSINFO:
                pid, name = _prpsinfo(desc, lay, pid, name)
            elif ntype == NT_PRSTATUS and pid is None:
                pid = _prstatus_pid(desc, lay)
            elif ntype == NT_FILE and not files:
                files = _file_names(desc, lay)
            at = desc_at + _align4(descsz)
    return pid, name, _executable(files, name)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _prpsinfo(
    desc: bytes, lay: _Layout, pid: int | None, name: str | None
) -> tuple[int | None, str | None]:
    # x86_64/aarch64: pr_flag is a long, uid/gid are 32-bit; i386/arm: 16-bit uid/gid
    pid_at, fname_at = (24, 40) if lay.wide else (12, 28)
    if len(desc) < fname_at + 16:
        return pid, name
    got_pid = struct.unpack_from(lay.order + "i", desc, pid_at)[0]
    fname = _cstr(desc[fname_at : fname_at + 16])
    return (got_pid if got_pid > 0 else pid), (fname or name)


def _prstatus_pid(desc: bytes, lay: _Layout) -> int | None:
    at = 32 if lay.wide else 24
    if len(desc) < at + 4:
        return None
    value = struct.unpack_from(lay.order + "i", desc, at)[0]
    return value if value > 0 else None


def _file_names(desc: bytes, lay: _Layout) -> list[str]:
    size = 8 if lay.wide else 4
    if len(desc) < 2 * size:
        return []
    count = struct.unpack_from(lay.order + lay.word, desc, 0)[0]
    names_at = 2 * size + count * 3 * size
    if count > MAX_PHDRS or names_at > len(desc):
        return []
    raw = desc[names_at:].split(b"\0")
    return [r.decode("utf-8", "replace") for r in raw[:count] if r]


def _executable(files: list[str], name: str | None) -> str | None:
    if not files:
        return None
    if name:
        # pr_fname holds at most 15 characters of the command name
        for f in files:
            if os.path.basename(f).startswith(name):
                return f
    return files[0]
