"""The scanner's reading: keys in consecutive windows, keys across a boundary, the file hash only with findings."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from functools import cache
from pathlib import Path

import pytest

from agent.scan import keymath
from agent.scan import rules as rules_mod
from agent.scan.rules import RuleSet
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS
from agent.scan.windows import keep_window_memory
from agent.values import Arrival, ArrivalCause, ScanResult
from tests import keys

CHUNK = 256 * 1024
OVERLAP = 64 * 1024


@cache
def _rules() -> RuleSet:
    return rules_mod.load("builtin", "yara-x", validators=set(VALIDATORS))


class _Allow:
    def __init__(self, *fingerprints: str) -> None:
        self._fps = set(fingerprints)

    def contains(self, fingerprint: str) -> bool:
        return fingerprint in self._fps


def _scanner(*allowed: str, number_search: str = "off") -> Scanner:
    settings = ScanSettings(chunk_bytes=CHUNK, overlap_bytes=OVERLAP, number_search=number_search)
    return Scanner(_rules(), settings, allowlist=_Allow(*allowed))


def _scan(path: Path, scanner: Scanner | None = None) -> ScanResult:
    return (scanner or _scanner()).scan(Arrival(path=str(path), cause=ArrivalCause.SWEEP))


def _at(offset: int, payload: bytes, total: int, seed: int) -> bytes:
    return (
        keys.filler(offset, seed) + payload + keys.filler(total - offset - len(payload), seed + 1)
    )


def test_keys_in_consecutive_windows_are_each_found_with_their_own_fingerprint(
    tmp_path: Path,
) -> None:
    """Keys owned by windows 1, 2 and 3 are all found once, each with its fingerprint and offset."""
    planted = [
        keys.pem(keys.cached_rsa(2048)),
        keys.der(keys.ec_key()),
        keys.pem(keys.ed25519_key()),
    ]
    step = CHUNK - OVERLAP
    offsets = [10_000, step + 20_000, 2 * step + 30_000]
    data = bytearray(keys.filler(3 * CHUNK, seed=3))
    for off, p in zip(offsets, planted, strict=True):
        data[off : off + len(p.data)] = p.data
    target = tmp_path / "dump.bin"
    target.write_bytes(bytes(data))

    result = _scan(target)

    got = sorted((f.offset, f.fingerprint) for f in result.key_material)
    assert got == sorted(zip(offsets, (p.fingerprint for p in planted), strict=True))
    assert result.bytes_scanned == len(data)


def test_a_key_across_a_window_boundary_is_found_once(tmp_path: Path) -> None:
    """A key that starts just before a window's end is found once, at its offset, by that window."""
    planted = keys.der(keys.cached_rsa(2048))
    offset = CHUNK - OVERLAP - 300  # starts in window 1's own part, ends in its overlap
    target = tmp_path / "core.77"
    target.write_bytes(_at(offset, planted.data, 2 * CHUNK, seed=5))

    result = _scan(target)

    assert [(f.offset, f.fingerprint) for f in result.key_material] == [
        (offset, planted.fingerprint)
    ]


def test_file_hash_is_computed_for_files_with_findings_only(tmp_path: Path) -> None:
    """sha256 is the whole file's hash when a key was found (allowlisted too), None when nothing was."""
    key_file = tmp_path / "with-key.bin"
    key_file.write_bytes(_at(CHUNK, keys.pem(keys.cached_rsa(2048)).data, 3 * CHUNK, seed=7))
    clean = tmp_path / "clean.bin"
    clean.write_bytes(keys.filler(3 * CHUNK, seed=9))
    test_key = keys.pem(keys.ec_key())
    allowlisted = tmp_path / "test-key.pem"
    allowlisted.write_bytes(test_key.data)

    found = _scan(key_file)
    nothing = _scan(clean)
    public = _scan(allowlisted, _scanner(test_key.fingerprint))

    assert found.key_material
    assert found.sha256 == hashlib.sha256(key_file.read_bytes()).hexdigest()
    assert not nothing.findings
    assert nothing.sha256 is None
    assert [f.allowlisted for f in public.findings] == [True]
    assert public.sha256 == hashlib.sha256(allowlisted.read_bytes()).hexdigest()


@pytest.mark.parametrize("offset", [1000, CHUNK, 5 * CHUNK - 3000])
def test_file_hash_covers_the_whole_file_wherever_the_first_key_is(
    tmp_path: Path, offset: int
) -> None:
    """The hash is the whole file's whether the first key is in window 1, a middle one or the last."""
    planted = keys.der(keys.cached_rsa(2048))
    target = tmp_path / "core.3"
    target.write_bytes(_at(offset, planted.data, 5 * CHUNK + 123, seed=17))

    result = _scan(target)

    assert [(f.offset, f.fingerprint) for f in result.key_material] == [
        (offset, planted.fingerprint)
    ]
    assert result.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


def test_file_hash_of_a_container_is_the_hash_of_its_compressed_bytes(tmp_path: Path) -> None:
    """A key inside a gzip gives the hash of the .gz file as stored (what the vault moves)."""
    planted = keys.pem(keys.cached_rsa(2048))
    target = tmp_path / "core.9.gz"
    target.write_bytes(gzip.compress(_at(3 * CHUNK, planted.data, 5 * CHUNK, seed=11)))

    result = _scan(target)

    assert [f.fingerprint for f in result.key_material] == [planted.fingerprint]
    assert result.key_material[0].container == "core.9.gz!core.9"
    assert result.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


def test_findings_are_the_same_after_the_allocator_keeps_window_memory(tmp_path: Path) -> None:
    """With freed windows reused by the allocator, consecutive files give their own findings."""
    first, second = keys.pem(keys.cached_rsa(2048)), keys.pem(keys.cached_rsa(2048, 1))
    a, b = tmp_path / "a.core", tmp_path / "b.core"
    a.write_bytes(_at(CHUNK + 5000, first.data, 4 * CHUNK, seed=13))
    b.write_bytes(_at(2 * CHUNK + 7000, second.data, 4 * CHUNK, seed=15))
    keep_window_memory(CHUNK, OVERLAP)
    scanner = _scanner()

    got_a, got_b = _scan(a, scanner), _scan(b, scanner)

    assert [(f.offset, f.fingerprint) for f in got_a.key_material] == [
        (CHUNK + 5000, first.fingerprint)
    ]
    assert [(f.offset, f.fingerprint) for f in got_b.key_material] == [
        (2 * CHUNK + 7000, second.fingerprint)
    ]


def test_a_dump_scanned_with_the_number_search_under_kept_window_memory_is_found(
    tmp_path: Path,
) -> None:
    """A dump-named file (number search on, window memory kept) still gives its keys."""
    planted = keys.pem(keys.cached_rsa(2048))
    dump = tmp_path / "core.4321"
    dump.write_bytes(_at(2 * CHUNK + 100, planted.data, 4 * CHUNK, seed=19))
    keep_window_memory(CHUNK, OVERLAP)

    result = _scan(dump, _scanner(number_search="dumps"))

    assert [(f.offset, f.fingerprint) for f in result.key_material] == [
        (2 * CHUNK + 100, planted.fingerprint)
    ]
    assert result.sha256 == hashlib.sha256(dump.read_bytes()).hexdigest()


def _limbs_heap(bits: int) -> tuple[bytes, str]:
    """n, p, q of a key (not the PEM's or DER's) as little-endian limbs in malloc chunks."""
    key = keys.cached_rsa(bits, 2)
    nums = key.private_numbers()
    out = b""
    for value, size in (
        (nums.public_numbers.n, bits // 8),
        (nums.p, bits // 16),
        (nums.q, bits // 16),
    ):
        out += struct.pack("<QQ", 0, (size + 24) | 1) + value.to_bytes(size, "little") + bytes(8)
    return out, keymath.rsa_fingerprint(nums.public_numbers.n, nums.public_numbers.e)


def test_sparse_core_keys_at_hole_edges_are_found_and_the_hash_is_the_whole_file(
    tmp_path: Path,
) -> None:
    """A kernel-style sparse core: holes are skipped, keys right at their edges are still found.

    A PEM key ends where a hole begins, a DER key starts where data resumes,
    RSA numbers sit in a heap extent; the SHA-256 is the file's (zeros of the
    holes included) and every byte counts as scanned.
    """
    pem = keys.pem(keys.cached_rsa(2048))
    der = keys.der(keys.cached_rsa(2048, 1))
    heap, heap_fp = _limbs_heap(2048)
    size = 64 * 1024 * 1024
    pem_end = 4 * 1024 * 1024
    extents = [
        (0, os.urandom(8192)),
        (pem_end - 4096 * 3, os.urandom(4096 * 3 - len(pem.data)) + pem.data),
        (20 * 1024 * 1024, der.data + os.urandom(5000)),
        (40 * 1024 * 1024, os.urandom(4096) + heap + os.urandom(4096)),
    ]
    target = tmp_path / "core.777"
    with target.open("wb") as f:
        f.truncate(size)
        for at, data in extents:
            f.seek(at)
            f.write(data)
    assert os.stat(target).st_blocks * 512 < 2 * 1024 * 1024, "no holes here: proves nothing"

    result = _scan(target, _scanner(number_search="dumps"))

    found = sorted((f.offset, f.fingerprint) for f in result.key_material)
    assert found == sorted(
        [
            (pem_end - len(pem.data), pem.fingerprint),
            (20 * 1024 * 1024, der.fingerprint),
            (40 * 1024 * 1024 + 4096 + 16 + 256 + 8 + 16, heap_fp),
        ]
    )
    assert result.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert result.bytes_scanned == size
