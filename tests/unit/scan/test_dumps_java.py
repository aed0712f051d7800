"""Java arrays in a heap (HotSpot layout): key-sized int[] magnitudes and byte[] scalars, and the EC keys they hold."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from agent.scan.dumps import candidates, java
from tests import cores

KLASS = 0x0000817A  # a compressed class pointer


def int_array(value: int, *, compressed: bool = True) -> bytes:
    """A BigInteger magnitude: int[] with the most significant int first, each int little-endian."""
    n = (value.bit_length() + 31) // 32
    body = np.frombuffer(value.to_bytes(4 * n, "big"), dtype=">u4").astype("<u4").tobytes()
    return _array(n, body, compressed)


def byte_array(data: bytes, *, compressed: bool = True) -> bytes:
    return _array(len(data), data, compressed)


def _array(length: int, body: bytes, compressed: bool) -> bytes:
    if compressed:  # mark, klass | length, elements
        head = struct.pack("<QII", 1, KLASS, length)
    else:  # mark, klass, length | padding, elements
        head = struct.pack("<QQQ", 1, 0x00007F0012345678, length)
    out = head + body
    return out + bytes(-len(out) % 8)


def jheap(*objects: bytes, gap: int = 2048) -> bytes:
    """Objects between small-valued junk, as a young generation holds them."""
    out = bytearray()
    for obj in objects:
        out += np.arange(gap // 8, dtype="<u8").tobytes() + obj
    return bytes(out + np.arange(gap // 8, dtype="<u8").tobytes())


def _numbers(data: bytes) -> list[tuple[int, int]]:
    cells = np.frombuffer(data, dtype="<u8", count=len(data) // 8)
    good = candidates.CellClassifier().classify(cells).copy()
    edges = candidates.run_edges(good)
    found = java.java_numbers(candidates.WindowCells(memoryview(data), 0, 0, cells, good, edges))
    return [(x.value, x.offset) for x in found]


def _key(curve: ec.EllipticCurve) -> tuple[int, int, int, str]:
    """A fresh key whose arrays look random by the reader's rule, as all but about one in
    10^6 do: the tests never flake; the tolerance has a test of its own."""
    size = (curve.key_size + 7) // 8
    for _ in range(20):
        key = ec.generate_private_key(curve)
        nums = key.private_numbers()
        x, y, d = nums.public_numbers.x, nums.public_numbers.y, nums.private_value
        arrays = [(_magnitude(v), True) for v in (x, y)] + [(d.to_bytes(size, "little"), False)]
        if all(_looks_random(raw, magnitude) for raw, magnitude in arrays):
            break
    return d, x, y, keymath.fingerprint(key.public_key())


def _magnitude(value: int) -> bytes:
    n = (value.bit_length() + 31) // 32
    return np.frombuffer(value.to_bytes(4 * n, "big"), dtype=">u4").astype("<u4").tobytes()


def _looks_random(raw: bytes, magnitude: bool) -> bool:
    """The reader's rule (java.py): few words below 2^24, few cells without a high byte."""
    words = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<u4")
    body = words[1:] if magnitude else words
    cells = np.frombuffer(raw[: len(raw) // 8 * 8], dtype="<u8")
    lows = int(np.count_nonzero((cells & np.uint64(0x8080808080808080)) == 0))
    return int(np.count_nonzero(body < 1 << 24)) <= max(2, len(body) // 8) and lows <= 2


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=str)
def test_magnitudes_and_scalars_are_read(compressed: bool, curve: ec.EllipticCurve) -> None:
    d, x, y, _ = _key(curve)
    size = (curve.key_size + 7) // 8
    data = jheap(
        int_array(x, compressed=compressed),
        int_array(y, compressed=compressed),
        byte_array(d.to_bytes(size, "little"), compressed=compressed),
    )
    values = {v for v, _ in _numbers(data)}
    # a 521-bit coordinate below 2^512 has 16 ints, not 17: one time in 512
    assert {d} <= values
    assert {v for v in (x, y) if v.bit_length() > 32 * ((curve.key_size - 1) // 32)} <= values


def test_look_alikes_are_not_numbers() -> None:
    """int[8] of small values, a byte[32] of text, a magnitude with a leading zero int,
    and a random run behind a length of 9: nothing."""
    small = int_array(0) + _array(8, np.arange(8, dtype="<u4").tobytes(), True)
    text = byte_array(b"the quick brown fox jumps over t")
    lead_zero = _array(8, bytes(4) + os.urandom(28), True)
    odd = _array(9, os.urandom(36), True)
    assert _numbers(jheap(small, text, lead_zero, odd)) == []


def test_jdk_key_beside_its_point_is_found_and_alone_is_not() -> None:
    """The scalar as a little-endian byte[] near its point's BigIntegers is a key; the scalar
    with no point in memory, and random byte[32] arrays beside a point, are not."""
    d, x, y, fingerprint = _key(ec.SECP256R1())
    decoys = [byte_array(os.urandom(32)) for _ in range(50)]
    data = jheap(*decoys, int_array(x), int_array(y), byte_array(d.to_bytes(32, "little")))
    found = cores.scan_numbers(data).findings
    assert [(f.format, f.curve, f.fingerprint) for f in found] == [
        ("ec-numbers-java", "secp256r1", fingerprint)
    ]
    lonely = jheap(*decoys, byte_array(d.to_bytes(32, "little")))
    assert cores.scan_numbers(lonely).findings == []
    _, x2, y2, _ = _key(ec.SECP256R1())
    assert cores.scan_numbers(jheap(*decoys, int_array(x2), int_array(y2))).findings == []


def test_a_scalar_far_from_any_point_of_its_curve_is_not_tried() -> None:
    """Java numbers are tried only near a point (the heap holds thousands of random arrays):
    a scalar megabytes from its point is beyond `JAVA_EC_NEAR`, documented, not a key."""
    d, x, y, _ = _key(ec.SECP256R1())
    far = jheap(byte_array(d.to_bytes(32, "little")), gap=2 << 20) + jheap(
        int_array(x), int_array(y)
    )
    assert cores.scan_numbers(far).findings == []


def test_a_heap_crowded_with_fake_arrays_is_bounded() -> None:
    """Thousands of random key-sized arrays beside a real point: bounded work, no key, no raise."""
    _, x, y, _ = _key(ec.SECP256R1())
    fakes = [byte_array(os.urandom(32)) for _ in range(3000)]
    fakes += [int_array(int.from_bytes(os.urandom(32), "big") | (1 << 255)) for _ in range(3000)]
    data = b"".join(fakes[:3000]) + int_array(x) + int_array(y) + b"".join(fakes[3000:])
    result = cores.scan_numbers(data)  # pytest-timeout fails a hang
    assert result.findings == []


def test_a_521_bit_magnitude_with_one_small_int_is_read() -> None:
    """Its first int is below 2^9; one more small int (6 % of P-521 coordinates) is still allowed."""
    words = [
        0x1AB,
        0x00123456,
        *(int.from_bytes(os.urandom(4), "big") | 1 << 31 for _ in range(15)),
    ]
    value = int.from_bytes(b"".join(w.to_bytes(4, "big") for w in words), "big")
    assert value in {v for v, _ in _numbers(jheap(int_array(value)))}
