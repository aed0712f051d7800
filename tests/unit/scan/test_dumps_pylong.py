"""RSA keys held as CPython ints (30-bit digits): found from p and n anywhere in a stream, look-alikes not."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from agent.scan import keymath
from agent.scan.dumps import NumberSearch
from tests import cores, keys

TYPE_POINTER = 0x00007F3A12345678  # PyLong_Type's address in some process


def pyint(value: int, *, tagged: bool = False) -> bytes:
    """A CPython int object: refcnt, type, size (3.11) or lv_tag (3.12+), 30-bit digits."""
    digits = []
    while value:
        digits.append(value & (2**30 - 1))
        value >>= 30
    size = len(digits) << 3 if tagged else len(digits)
    body = struct.pack("<QQQ", 1, TYPE_POINTER, size) + np.array(digits, dtype="<u4").tobytes()
    return body + bytes(-len(body) % 16)


def heap(*parts: bytes, gap: int = 4096) -> bytes:
    """Objects separated by junk: random bytes, pointers and small integers."""
    out = bytearray()
    for part in parts:
        out += os.urandom(gap // 2) + struct.pack("<4Q", 0, 0x31, TYPE_POINTER, 7) + part
        out += np.arange(gap // 8, dtype="<u8").tobytes()
    return bytes(out)


def _numbers(bits: int) -> tuple[int, int, int, int, str]:
    key = keys.cached_rsa(bits)
    nums = key.private_numbers()
    n, e = nums.public_numbers.n, nums.public_numbers.e
    return n, nums.p, nums.q, nums.d, keymath.rsa_fingerprint(n, e)


def _found(
    data: bytes, chunk: int = cores.CHUNK, overlap: int = cores.OVERLAP
) -> list[tuple[str, str | None, bool]]:
    return [
        (f.format, f.fingerprint, f.exponent_assumed)
        for f in cores.scan_numbers(data, chunk=chunk, overlap=overlap).findings
    ]


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
@pytest.mark.parametrize("tagged", [False, True], ids=["3.11", "3.12"])
def test_key_held_as_python_ints_is_found(bits: int, tagged: bool) -> None:
    n, p, q, d, fingerprint = _numbers(bits)
    data = heap(
        pyint(p, tagged=tagged),
        pyint(q, tagged=tagged),
        pyint(n, tagged=tagged),
        pyint(d, tagged=tagged),
    )
    assert _found(data) == [("rsa-numbers-pylong", fingerprint, False)]


def test_exponent_is_assumed_without_d() -> None:
    n, p, _, _, fingerprint = _numbers(2048)
    assert _found(heap(pyint(n), pyint(p))) == [("rsa-numbers-pylong", fingerprint, True)]


def test_ints_of_one_key_megabytes_and_windows_apart_are_paired() -> None:
    """CPython keeps ints of different sizes in different pools: p and n can be far apart."""
    n, p, _, d, fingerprint = _numbers(2048)
    filler = os.urandom(3 << 20)
    data = heap(pyint(p)) + filler + heap(pyint(d)) + filler + heap(pyint(n))
    assert _found(data, chunk=1 << 20, overlap=64 * 1024) == [
        ("rsa-numbers-pylong", fingerprint, False)
    ]


def test_look_alikes_are_not_keys() -> None:
    """A modulus without its primes, a prime of another key, small-value arrays after a count,
    digits with a top bit set, and a negative int: nothing."""
    n, _, _, _, _ = _numbers(2048)
    _, other_p, _, _, _ = _numbers(3072)
    small = struct.pack("<Q", 40) + np.arange(1, 81, dtype="<u4").tobytes()
    wide = bytearray(pyint(n))
    wide[24 + 4 * 10 + 3] |= 0x80  # one word of the digits is not a 30-bit digit
    negative = bytearray(pyint(n))
    struct.pack_into("<q", negative, 16, -struct.unpack_from("<q", negative, 16)[0])
    data = heap(pyint(n), pyint(other_p), small, bytes(wide), bytes(negative))
    assert _found(data) == []


def test_a_window_crowded_with_fake_ints_is_bounded() -> None:
    """Thousands of int-shaped objects cost bounded work and never raise."""
    fakes = b"".join(pyint(int.from_bytes(os.urandom(64), "big") | 1) for _ in range(3000))
    search = NumberSearch()
    found = search.feed(memoryview(fakes), 0, 0, len(fakes))
    assert found == []
