"""EC keys as little-endian limbs, each number alone in a malloc chunk (nettle/GMP, Go): found near their point."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from agent.scan.dumps import NumberSearch, candidates, limbs
from tests import cores

CURVES = [ec.SECP256R1(), ec.SECP384R1(), ec.SECP256K1()]


def chunk(value: int, limbs_: int) -> bytes:
    """A glibc malloc chunk holding the number's limbs: size header, limbs, zero padding."""
    body = value.to_bytes(8 * limbs_, "little")
    size = (8 + len(body) + 15) // 16 * 16
    return struct.pack("<QQ", 0, size | 1) + body + bytes(size - 8 - len(body))


def heap(*parts: bytes, gap: int = 1024) -> bytes:
    out = bytearray()
    for part in parts:
        out += np.arange(gap // 8, dtype="<u8").tobytes() + part
    return bytes(out + np.arange(gap // 8, dtype="<u8").tobytes())


def _key(curve: ec.EllipticCurve) -> tuple[int, int, int, str]:
    """A fresh key whose limbs look random by the reader's rule (all but ~1 in 10^6 do)."""
    n = _limbs(curve)
    for _ in range(20):
        key = ec.generate_private_key(curve)
        nums = key.private_numbers()
        values = (nums.private_value, nums.public_numbers.x, nums.public_numbers.y)
        cells = [np.frombuffer(v.to_bytes(8 * n, "little"), dtype="<u8") for v in values]
        top_limbs = all(v >> (64 * (n - 1)) for v in values)  # P-521's is 0 one time in 512
        # a limb whose second or fourth 16-bit word is 0 or 0xffff is "weak" and ends a run
        # beside a header or Go's spare zeros (the readers lose such a number 1 time in 8,000)
        weak = any(
            ((int(w) >> shift) + 1) & 0xFFFF <= 1
            for c in cells
            for w in c[: 8 if n == 9 else n]
            for shift in (16, 48)
        )
        if (
            top_limbs
            and not weak
            and all(np.count_nonzero(c & np.uint64(0x8080808080808080)) >= n - 2 for c in cells)
        ):
            break
    fp = keymath.fingerprint(key.public_key())
    return nums.private_value, nums.public_numbers.x, nums.public_numbers.y, fp


def _limbs(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 63) // 64


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_scalar_and_point_in_chunks_of_their_own_are_a_key(curve: ec.EllipticCurve) -> None:
    d, x, y, fingerprint = _key(curve)
    n = _limbs(curve)
    data = heap(chunk(x, n), chunk(y, n), chunk(d, n))
    found = cores.scan_numbers(data).findings
    assert [(f.format, f.curve, f.fingerprint) for f in found] == [
        ("ec-numbers-le", curve.name, fingerprint)
    ]


def test_runs_are_read_by_size_and_text_is_not() -> None:
    """Runs of exactly 4 and 6 cells; not 5, not 8 and a small cell in a C heap (P-521 is read
    only as Go holds it: a 64-byte random value before the next chunk's size field looks the
    same), not text."""
    values = [
        int.from_bytes(os.urandom(32), "little") | 1 << 255,
        int.from_bytes(os.urandom(48), "little") | 1 << 383,
    ]
    p521 = int.from_bytes(os.urandom(64), "little") | (0x1AB << 512)
    data = heap(
        chunk(values[0], 4),
        chunk(values[1], 6),
        chunk(p521, 9),
        chunk(int.from_bytes(os.urandom(40), "little") | 1 << 319, 5),
        struct.pack("<QQ", 0, 0x31) + b"the quick brown fox jumps over the lazy dog!....",
    )
    cells = np.frombuffer(data, dtype="<u8")
    good = candidates.CellClassifier().classify(cells).copy()
    view = candidates.WindowCells(memoryview(data), 0, 0, cells, good, candidates.run_edges(good))
    found, crowded = limbs.limb_numbers(view)
    assert sorted(x.value for x in found) == sorted(values)
    assert not crowded


def go_int(value: int, words: int, *, stale: int = 0) -> bytes:
    """A big.Int's words as Go holds them, after `stale` random words of the previous object."""
    return os.urandom(8 * stale) + value.to_bytes(8 * words, "little") + bytes(32)


@pytest.mark.parametrize(
    "curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=lambda c: c.name
)
def test_go_big_ints_are_read_after_a_neighbours_stale_words(curve: ec.EllipticCurve) -> None:
    """Go packs a size class's objects without headers: x, y and d end longer runs of good
    cells, followed by the spare zero words (P-521 with its small ninth limb before them)."""
    d, x, y, fingerprint = _key(curve)
    n = _limbs(curve)
    data = heap(go_int(x, n, stale=2), go_int(y, n), go_int(d, n, stale=5))
    found = cores.scan_numbers(data).findings
    assert [(f.format, f.curve, f.fingerprint) for f in found] == [
        ("ec-numbers-le", curve.name, fingerprint)
    ]


def test_look_alikes_are_not_keys() -> None:
    """A scalar without its point, a point without its scalar, another key's scalar beside a
    point, and a scalar a megabyte from its point: nothing."""
    d1, _, _, _ = _key(ec.SECP256R1())
    _, x2, y2, _ = _key(ec.SECP256R1())
    d3, x3, y3, _ = _key(ec.SECP256R1())
    assert cores.scan_numbers(heap(chunk(d1, 4))).findings == []
    assert cores.scan_numbers(heap(chunk(x2, 4), chunk(y2, 4), chunk(d1, 4))).findings == []
    far = heap(chunk(d3, 4)) + os.urandom(1 << 20) + heap(chunk(x3, 4), chunk(y3, 4))
    assert cores.scan_numbers(far).findings == []


def test_a_window_crowded_with_limb_runs_is_bounded_and_said() -> None:
    """Thousands of 32-byte random chunks: read up to the cap, the limit noted, no key."""
    data = heap(
        *(chunk(int.from_bytes(os.urandom(32), "little"), 4) for _ in range(10_000)), gap=16
    )
    search = NumberSearch()
    assert search.feed(memoryview(data), 0, 0, len(data)) == []
    assert any("EC-sized limb runs" in p.detail for p in search.problems)
