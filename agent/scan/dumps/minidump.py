"""Windows minidump reader: memory list streams become regions; modules and misc info name the process."""

from __future__ import annotations

import struct

from agent.scan.dumps.model import DumpInfo, Region, corrupt, process_of
from agent.values import ScanProblem

SIGNATURE = b"MDMP"
MODULE_LIST = 4
MEMORY_LIST = 5
MEMORY64_LIST = 9
MISC_INFO = 15
MAX_STREAMS = 4096
MAX_RANGES = 1 << 22
MODULE_SIZE = 108


def is_minidump(head: bytes) -> bool:
    """True when the bytes start with the MDMP signature and a minidump version."""
    return len(head) >= 32 and head[:4] == SIGNATURE and head[4:6] == b"\x93\xa7"


def parse(head: bytes, total_size: int | None) -> DumpInfo | None:
    """Regions and process of a minidump, or None when the bytes are not one."""
    if not is_minidump(head):
        return None
    problems: list[ScanProblem] = []
    count, dir_rva = struct.unpack_from("<II", head, 8)
    if count > MAX_STREAMS:
        problems.append(corrupt(f"implausible stream count {count}"))
        count = 0
    regions: list[Region] = []
    pid: int | None = None
    executable: str | None = None
    for i in range(count):
        at = dir_rva + 12 * i
        if at + 12 > len(head):
            problems.append(corrupt("the stream directory lies past the readable head"))
            break
        stype, size, rva = struct.unpack_from("<III", head, at)
        if rva + size > len(head):
            problems.append(corrupt(f"stream {stype} lies past the readable head"))
            continue
        data = head[rva : rva + size]
        if stype == MEMORY_LIST:
            regions += _memory_list(data, problems)
        elif stype == MEMORY64_LIST:
            regions += _memory64_list(data, problems)
        elif stype == MODULE_LIST and executable is None:
            executable = _first_module(data, head)
        elif stype == MISC_INFO and len(data) >= 12:
            flags, proc_id = struct.unpack_from("<II", data, 4)
            if flags & 1:
                pid = proc_id
    if total_size is not None:
        kept: list[Region] = []
        missing = 0
        for r in regions:
            end = min(r.file_offset + r.size, total_size)
            missing += r.size - max(0, end - r.file_offset)
            if end > r.file_offset:
                kept.append(
                    Region(file_offset=r.file_offset, size=end - r.file_offset, address=r.address)
                )
        regions = kept
        if missing:
            problems.append(
                corrupt(f"minidump is truncated: {missing} bytes of memory are missing", missing)
            )
    name = executable.replace("\\", "/").rsplit("/", 1)[-1] if executable else None
    return DumpInfo(
        kind="minidump",
        process=process_of(pid, name, executable),
        regions=tuple(regions),
        problems=tuple(problems),
    )


def _memory_list(data: bytes, problems: list[ScanProblem]) -> list[Region]:
    if len(data) < 4:
        problems.append(corrupt("MemoryListStream is truncated"))
        return []
    n = struct.unpack_from("<I", data, 0)[0]
    if n > MAX_RANGES or 4 + 16 * n > len(data):
        problems.append(corrupt("MemoryListStream is truncated"))
        n = min(n, (len(data) - 4) // 16)
    out = []
    for i in range(n):
        start, size, rva = struct.unpack_from("<QII", data, 4 + 16 * i)
        if size:
            out.append(Region(file_offset=rva, size=size, address=start))
    return out


def _memory64_list(data: bytes, problems: list[ScanProblem]) -> list[Region]:
    if len(data) < 16:
        problems.append(corrupt("Memory64ListStream is truncated"))
        return []
    n, rva = struct.unpack_from("<QQ", data, 0)
    if n > MAX_RANGES or 16 + 16 * n > len(data):
        problems.append(corrupt("Memory64ListStream is truncated"))
        n = min(n, (len(data) - 16) // 16)
    out = []
    for i in range(n):
        start, size = struct.unpack_from("<QQ", data, 16 + 16 * i)
        if size:
            out.append(Region(file_offset=rva, size=size, address=start))
        rva += size  # Memory64 ranges are stored back to back from BaseRva
    return out


def _first_module(data: bytes, head: bytes) -> str | None:
    if len(data) < 4 + MODULE_SIZE or struct.unpack_from("<I", data, 0)[0] == 0:
        return None
    name_rva = struct.unpack_from("<I", data, 4 + 20)[0]
    if name_rva + 4 > len(head):
        return None
    length = struct.unpack_from("<I", head, name_rva)[0]
    raw = head[name_rva + 4 : name_rva + 4 + min(length, 4096)]
    return raw.decode("utf-16-le", "replace") or None
