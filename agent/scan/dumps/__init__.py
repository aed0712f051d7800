"""Memory dumps: recognise ELF cores and minidumps, map offsets to addresses, find keys held as numbers.

    inspect(head, total_size)  first window -> DumpInfo (kind, process, regions, problems) | None
    is_dump_name(name)         dump-like file names: the number search runs on them
    NumberSearch               RSA keys as bare numbers (p * q = n; limbs, and CPython ints
                               in `pylong`) in the windows fed to it, and across the whole
                               stream for numbers alone in their allocations (`alone`); EC keys as Python ints,
                               JDK arrays and bare limbs (`pylong`, `java`, `limbs`, proven
                               in `ec_ints`);
                               with the dump's address map also EC keys held by OpenSSL
                               (`openssl_ec`); with an inventory registered primes and EC scalars

Readers never raise on hostile bytes: a truncated or corrupt dump yields what
could be read plus a DUMP_CORRUPT problem, and the file is still scanned as bytes.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from agent.scan.dumps import elf, minidump
from agent.scan.dumps.model import DumpInfo, Region

if TYPE_CHECKING:
    from agent.scan.dumps.numbers import NumberSearch

__all__ = ["DumpInfo", "NumberSearch", "Region", "inspect", "is_dump_name"]


def __getattr__(name: str) -> Any:
    # numpy (about 15 MB) loads with the number search, on the first dump, not at start:
    # an idle daemon that has seen no dump stays small
    if name == "NumberSearch":
        return preload()
    raise AttributeError(name)


def preload() -> Any:
    """Import the number search (and numpy) now; a sweep does it once before forking its workers."""
    # the search does integer array work only, never BLAS: without this, numpy's OpenBLAS
    # starts a thread per core whose spinning cost 4 % of a sweep's CPU (perf, 2 cores)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from agent.scan.dumps.numbers import NumberSearch  # noqa: PLC0415

    return NumberSearch


_DUMP_NAME = re.compile(
    r"""^(?:
        core(?:\.\d+)?                      # core, core.1234
      | core\.[^/]+                         # core.<comm>.<uid>.<bootid>.<pid>.<time>[.zst]
      | .+\.(?:core|dmp|mdmp|hdmp|mem|vmem|raw|lime|hprof|vmss|vmsn|dump|crash)
    )(?:\.(?:zst|zstd|gz|xz|lz4|bz2))?$""",
    re.IGNORECASE | re.VERBOSE,
)


def inspect(head: bytes, total_size: int | None) -> DumpInfo | None:
    """Recognise a dump from its first bytes (the first scan window); None for anything else."""
    return elf.parse(head, total_size) or minidump.parse(head, total_size)


def is_dump_name(name: str) -> bool:
    """Dump-like file names (core, core.1234, systemd-coredump names, *.dmp, *.core, *.mem, ...)."""
    return bool(_DUMP_NAME.match(name.rsplit("/", 1)[-1]))
