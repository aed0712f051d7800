"""ELF core and minidump readers, dump names, and offset-to-address mapping."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan import dumps
from agent.scan.dumps.model import DumpInfo, Region
from agent.values import ErrorType
from tests import cores


def test_elf_core_gives_regions_and_the_dumped_process() -> None:
    """An ELF core yields its PT_LOAD segments and pid, name and executable from its notes."""
    core = cores.build_elf_core([(0x7F0000000000, b"A" * 5000), (0x555500000000, b"B" * 100)])
    info = dumps.inspect(core, len(core))
    assert info is not None and info.kind == "elf-core"
    assert info.process is not None
    assert (info.process.pid, info.process.name, info.process.executable) == (
        4242,
        "signer",
        "/usr/bin/signer",
    )
    assert [(r.size, r.address) for r in info.regions] == [
        (5000, 0x7F0000000000),
        (100, 0x555500000000),
    ]
    assert core[info.regions[1].file_offset] == ord("B")
    assert info.problems == ()


def test_executable_is_the_mapping_named_like_the_process() -> None:
    """The executable is the mapped file whose name matches pr_fname, not merely the first one."""
    core = cores.build_elf_core(
        [(0x1000, b"x")], fname="python3", files=("/usr/lib/ld.so", "/usr/bin/python3.11")
    )
    info = dumps.inspect(core, len(core))
    assert info is not None and info.process is not None
    assert info.process.executable == "/usr/bin/python3.11"


def test_truncated_core_keeps_what_it_has_and_notes_the_loss() -> None:
    """A truncated core still yields its regions, clipped, plus a DUMP_CORRUPT problem."""
    core = cores.build_elf_core([(0x1000, b"A" * 8192), (0x9000, b"B" * 8192)])
    cut = core[: len(core) - 6000]
    info = dumps.inspect(cut, len(cut))
    assert info is not None
    assert info.regions[-1].size == 8192 - 6000
    assert [p.error_type for p in info.problems] == [ErrorType.DUMP_CORRUPT]
    assert info.problems[0].bytes_affected == 6000


def test_core_whose_headers_lie_past_the_head_is_reported_not_raised() -> None:
    """Program headers beyond the bytes read give a DUMP_CORRUPT problem, not an exception."""
    core = bytearray(cores.build_elf_core([(0x1000, b"A" * 100)]))
    struct.pack_into("<Q", core, 32, 1 << 40)  # e_phoff far away
    info = dumps.inspect(bytes(core), len(core))
    assert info is not None and info.regions == ()
    assert info.problems and info.problems[0].error_type is ErrorType.DUMP_CORRUPT


def test_minidump_memory64_list_gives_regions_and_process() -> None:
    """A minidump's Memory64List ranges, first module and MiscInfo pid are read."""
    dump = cores.build_minidump([(0x10000, b"x" * 4096), (0x20000, b"y" * 100)])
    info = dumps.inspect(dump, len(dump))
    assert info is not None and info.kind == "minidump" and info.process is not None
    assert (info.process.pid, info.process.name) == (777, "signer.exe")
    assert [(r.address, r.size) for r in info.regions] == [(0x10000, 4096), (0x20000, 100)]
    assert dump[info.regions[1].file_offset : info.regions[1].file_offset + 100] == b"y" * 100


def test_minidump_memory_list_gives_regions() -> None:
    """A minidump's 32-bit MemoryList ranges are read with their own offsets."""
    dump = cores.build_minidump([(0x10000, b"x" * 64), (0x30000, b"z" * 32)], memory64=False)
    info = dumps.inspect(dump, len(dump))
    assert info is not None
    assert dump[info.regions[1].file_offset : info.regions[1].file_offset + 32] == b"z" * 32


def test_truncated_minidump_is_noted() -> None:
    """A minidump cut short inside its memory yields a DUMP_CORRUPT problem."""
    dump = cores.build_minidump([(0x10000, b"x" * 4096)])
    info = dumps.inspect(dump[:-1000], len(dump) - 1000)
    assert info is not None and info.problems[0].bytes_affected == 1000


def test_other_files_are_not_dumps() -> None:
    """Bytes that are neither an ELF core nor a minidump give None."""
    assert (
        dumps.inspect(b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<H", 2) + bytes(60), 100)
        is None
    )
    assert dumps.inspect(b"-----BEGIN PRIVATE KEY-----", 27) is None


def test_address_of_maps_offsets_inside_regions_only() -> None:
    """address_of maps an offset inside a region to its address and anything else to None."""
    regions = tuple(
        Region(file_offset=i * 8192, size=4096, address=0x10000 * (i + 1))
        for i in range(5000, 0, -1)
    )
    info = DumpInfo(kind="elf-core", process=None, regions=regions)
    assert info.address_of(8192 * 7 + 5) == 0x10000 * 8 + 5
    assert info.address_of(8192 * 7 + 4096) is None
    assert info.address_of(0) is None


def test_dump_names_are_recognised() -> None:
    """Core, minidump, memory image and systemd-coredump names are dump names; others are not."""
    for name in (
        "core",
        "core.1234",
        "core.python3.1000.0f3a9c.4242.1700000000000000.zst",
        "app.core",
        "x.dmp",
        "a.mdmp",
        "b.hdmp",
        "ram.mem",
        "vm.vmem",
        "disk.raw",
        "host.lime",
        "java_pid1.hprof",
    ):
        assert dumps.is_dump_name(name), name
    for name in ("notes.txt", "corefile.py", "score", "key.pem", "archive.zip"):
        assert not dumps.is_dump_name(name), name


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=0, max_size=2048), st.integers(min_value=0, max_value=1 << 20))
def test_readers_never_raise_on_mutated_headers(noise: bytes, cut: int) -> None:
    """Random bytes over a real core or minidump header never raise; a DumpInfo or None comes back."""
    for base in (
        cores.build_elf_core([(0x1000, b"A" * 64)]),
        cores.build_minidump([(0x1000, b"A" * 64)]),
    ):
        mutated = base[:8] + noise + base[8 + len(noise) :]
        data = mutated[: max(8, len(mutated) - cut % len(mutated))]
        info = dumps.inspect(data, len(data))
        assert info is None or isinstance(info, DumpInfo)


def test_notes_written_last_are_read_as_the_windows_pass() -> None:
    """gcore writes notes after the memory: they are gathered from later windows, in pieces."""
    core = cores.build_elf_core([(0x1000, b"A" * 50_000)], notes_last=True)
    info = dumps.inspect(core[:4096], len(core))
    assert info is not None and info.process is None and info.late_notes is not None
    for at in range(0, len(core), 1000):  # own spans of 1000 bytes: notes arrive in pieces
        with memoryview(core) as view:
            info.late_notes.feed(at, view[at : at + 1000])
    process, problems = info.late_notes.finish()
    assert problems == []
    assert process is not None
    assert (process.pid, process.name, process.executable) == (4242, "signer", "/usr/bin/signer")


def test_notes_cut_off_by_truncation_are_a_problem_not_a_guess() -> None:
    """A core truncated before its trailing notes names no process and says why."""
    core = cores.build_elf_core([(0x1000, b"A" * 50_000)], notes_last=True)
    cut = core[: len(core) - 100]
    info = dumps.inspect(cut[:4096], len(cut))
    assert info is not None and info.late_notes is not None
    with memoryview(cut) as view:
        info.late_notes.feed(0, view)
    process, problems = info.late_notes.finish()
    assert process is None
    assert [p.error_type for p in problems] == [ErrorType.DUMP_CORRUPT]
