"""RSA keys whose numbers sit alone in their allocations far apart (Go's big.Int): the stream-wide join."""

from __future__ import annotations

import os

import numpy as np
import pytest

from agent.scan import keymath
from agent.scan.dumps import NumberSearch, alone
from agent.values import ErrorType, KeyFinding
from tests import cores, keys

PAIR_DISTANCE = 64 * 1024  # the window search pairs primes this close (NumberSearch default)


def go_int(value: int, words: int, *, stale: int = 0) -> bytes:
    """A big.Int's words as Go holds them: little-endian, then the four spare zero words.

    `stale` random words before them: the previous object of the size class
    (Go packs them without headers) left its last words random.
    """
    return os.urandom(8 * stale) + value.to_bytes(8 * words, "little") + bytes(32)


def far_apart(*parts: bytes, gap: int = PAIR_DISTANCE + 4096) -> bytes:
    """Parts `gap` bytes apart in pointer-like filler (bad cells: never part of a number)."""
    filler = np.arange(gap // 8, dtype="<u8").tobytes()
    return filler + b"".join(part + filler for part in parts)


def _rsa(bits: int) -> tuple[int, int, int, int, str]:
    """n, d, p, q and the fingerprint of a session key whose limbs the readers never cut.

    A limb whose second or fourth 16-bit word is 0 or 0xffff ends a run of good
    cells beside a header or Go's spare zeros: about 1 number in 8,000 would be
    lost that way, so such keys are skipped here (the tests are about the join).
    """
    for index in range(8):
        nums = keys.cached_rsa(bits, index).private_numbers()
        n = nums.public_numbers.n
        values = (n, nums.d, nums.p, nums.q)
        if not any(_weak_limb(v) for v in values):
            break
    return n, nums.d, nums.p, nums.q, keymath.rsa_fingerprint(n, 65537)


def _weak_limb(value: int) -> bool:
    words = value.to_bytes((value.bit_length() + 63) // 64 * 8, "little")
    return any(
        (int.from_bytes(words[i + k : i + k + 2], "little") + 1) & 0xFFFF <= 1
        for i in range(0, len(words), 8)
        for k in (2, 6)
    )


def _search(data: bytes, **kwargs: int) -> tuple[list[KeyFinding], NumberSearch]:
    search = NumberSearch(**kwargs)
    return list(search.feed(memoryview(data), 0, 0, len(data))), search


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
def test_primes_and_modulus_far_apart_are_a_key_with_e_proven(bits: int) -> None:
    """p, q and n each alone, further apart than the window search pairs: one key, e from d."""
    n, d, p, q, fp = _rsa(bits)
    w = bits // 64
    data = far_apart(go_int(p, w // 2), go_int(d, w), go_int(q, w // 2, stale=3), go_int(n, w))
    found, _ = _search(data)
    assert [(f.format, f.bits, f.fingerprint, f.exponent_assumed) for f in found] == [
        ("rsa-numbers-le", bits, fp, False)
    ]


def test_without_d_the_exponent_is_assumed() -> None:
    n, _, p, q, fp = _rsa(2048)
    found, _ = _search(far_apart(go_int(n, 32), go_int(q, 16), go_int(p, 16)))
    assert [(f.fingerprint, f.exponent_assumed) for f in found] == [(fp, True)]


def test_numbers_in_different_windows_are_joined_once() -> None:
    """p in the first window, q and n in a later one (a 1 MiB window, 64 KiB overlap): one key."""
    n, d, p, q, fp = _rsa(2048)
    data = far_apart(go_int(p, 16), go_int(d, 32), gap=256 * 1024) + far_apart(
        go_int(q, 16), go_int(n, 32), gap=1 << 20
    )
    result = cores.scan_numbers(data, chunk=1 << 20, overlap=64 * 1024)
    assert [(f.fingerprint, f.exponent_assumed) for f in result.findings] == [(fp, False)]


def test_a_key_found_near_and_far_is_reported_once() -> None:
    """The same key's numbers close together (window search) and again far apart: one finding."""
    n, d, p, q, fp = _rsa(2048)
    data = go_int(n, 32) + go_int(p, 16) + go_int(q, 16) + far_apart(go_int(d, 32), go_int(p, 16))
    found, _ = _search(data)
    assert [f.fingerprint for f in found] == [fp]


def test_look_alikes_are_not_keys() -> None:
    """Unrelated alone numbers beside a modulus, halves of two keys, a modulus off by two: nothing."""
    n1, _, p1, _, _ = _rsa(1024)
    n2, _, p2, q2, _ = _rsa(2048)
    rand = [int.from_bytes(os.urandom(128), "little") | 1 | 1 << 1023 for _ in range(40)]
    assert _search(far_apart(*(go_int(r, 16) for r in rand), go_int(n2, 32)))[0] == []
    assert _search(far_apart(go_int(p1, 8), go_int(q2, 16), go_int(n1, 16)))[0] == []
    assert _search(far_apart(go_int(p2, 16), go_int(q2, 16), go_int(n2 + 2, 32)))[0] == []


def test_a_flood_of_alone_numbers_is_capped_and_said() -> None:
    """More numbers of one size than the stream keeps: bounded, the limit noted, no crash."""
    values = (int.from_bytes(os.urandom(64), "little") | 1 | 1 << 511 for _ in range(5000))
    data = b"".join(go_int(v, 8) for v in values)
    found, search = _search(data)
    assert found == []
    assert any(
        p.error_type is ErrorType.HIT_LIMIT and "alone in their allocations" in p.detail
        for p in search.problems
    )


def test_inverse_mod_2_64() -> None:
    x = np.array([1, 3, 0xFFFFFFFFFFFFFFFF, 0x123456789ABCDEF1], dtype=np.uint64)
    assert ((alone._inverse(x) * x) == np.uint64(1)).all()


def test_a_product_of_numbers_that_are_not_prime_is_not_a_key() -> None:
    """p * q = n with p and q multiples of 3 (a bignum library's scratch, say): not an RSA key."""

    def composite() -> int:
        x = int.from_bytes(os.urandom(128), "little") | 1 << 1023 | 1 << 1022
        x -= x % 3
        return x if x % 2 else x + 3

    p, q = composite(), composite()
    assert _search(far_apart(go_int(p, 16), go_int(q, 16), go_int(p * q, 32)))[0] == []
