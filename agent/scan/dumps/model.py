"""Values the dump readers produce: memory regions of a dump and what the dump says about itself."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol

from agent.values import ErrorType, ProcessInfo, ScanProblem

STAGE = "dumps"


@dataclass(frozen=True, slots=True)
class Region:
    """A span of the file that holds process memory at `address`."""

    file_offset: int
    size: int
    address: int


class LateParts(Protocol):
    """Parts of a dump's own description that lie past the head (gcore writes notes last)."""

    def feed(self, base: int, data: memoryview) -> None:
        """Take what a window's own bytes at `base` hold of those parts."""
        ...

    def finish(self) -> tuple[ProcessInfo | None, list[ScanProblem]]:
        """The process they name, and problems for parts that never arrived."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DumpInfo:
    """What a dump says about itself: its kind, the dumped process and its memory regions."""

    kind: str  # "elf-core" | "minidump"
    process: ProcessInfo | None
    regions: tuple[Region, ...]
    problems: tuple[ScanProblem, ...] = ()
    late_notes: LateParts | None = field(default=None, compare=False)
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _order: tuple[Region, ...] = field(init=False, repr=False, compare=False)
    _addresses: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _by_address: tuple[Region, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # sorted once so address_of is a bisect, not a walk over thousands of mappings
        order = tuple(sorted(self.regions, key=lambda r: r.file_offset))
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_starts", tuple(r.file_offset for r in order))
        by_address = tuple(sorted(self.regions, key=lambda r: r.address))
        object.__setattr__(self, "_by_address", by_address)
        object.__setattr__(self, "_addresses", tuple(r.address for r in by_address))

    def offset_of(self, address: int) -> int | None:
        """The file offset holding a memory address, when the dump holds that address."""
        i = bisect.bisect_right(self._addresses, address) - 1
        for r in self._by_address[max(0, i - 2) : i + 1][::-1]:
            if r.address <= address < r.address + r.size:
                return r.file_offset + (address - r.address)
        return None

    def address_of(self, offset: int) -> int | None:
        """The memory address of a file offset, when the offset is inside a region."""
        i = bisect.bisect_right(self._starts, offset) - 1
        # regions never overlap in a sane dump; a corrupt one may, so look a few back
        for r in self._order[max(0, i - 2) : i + 1][::-1]:
            if r.file_offset <= offset < r.file_offset + r.size:
                return r.address + (offset - r.file_offset)
        return None


def corrupt(detail: str, bytes_affected: int = 0) -> ScanProblem:
    """A DUMP_CORRUPT problem: the file is still scanned as bytes."""
    return ScanProblem(
        error_type=ErrorType.DUMP_CORRUPT,
        stage=STAGE,
        detail=detail,
        bytes_affected=bytes_affected,
    )


def process_of(pid: int | None, name: str | None, executable: str | None) -> ProcessInfo | None:
    """A ProcessInfo when anything is known, else None."""
    if pid is None and not name and not executable:
        return None
    return ProcessInfo(pid=pid, name=name or None, executable=executable or None)
