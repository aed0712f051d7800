"""RSA keys held as Python ints in a CPython process's memory (python-rsa, pycryptodome without GMP,
numbers from `private_numbers()`).

CPython stores an int as an object `{refcnt, type*, size, digit[size]}` with
30-bit digits in 32-bit words, least significant first; `size` is the digit
count up to 3.11 and `digits << 3 | sign` from 3.12. None of the byte orders
of the limb search reads that, but the digits are random-looking 8-byte cells,
so the object's digits start a run of good cells (the `size` cell before them
is a small integer). At each run's start the cell before is tested as a digit
count, and the digits as a canonical int (every word below 2^30, the top
one nonzero): anything else is dropped before a Python int is built.

A modulus and a prime of the same stream that divides it are a key (n % p ==
0, the cofactor prime); the exponent is proven when d, d mod lambda(n) or dP
of 65537 or 3 is one of the stream's ints. Cost: one gather of four cells per
run start, then work only for the few ints of key size (random data passes
the digit tests with probability 4^-18 or less); divisions come from the
stream's budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.scan import keymath
from agent.scan.dumps.candidates import WindowCells
from agent.values import KeyFinding

FORMAT = "rsa-numbers-pylong"
DIGIT_BITS = 30
MIN_DIGITS = 9  # a 256-bit EC scalar or coordinate (`ec_ints`); RSA keys start at 18
MIN_PRIME_BITS = 500  # ints paired as RSA numbers: a 512-bit prime (RSA 1024) and up
MAX_DIGITS = 280  # an 8192-bit modulus is 274 digits
MIN_MODULUS_BITS = 1020  # RSA 1024
# per window: python-ecdsa keeps ~1,000 coordinates per curve; beyond this it is a trap
MAX_LONGS = 16_384
_LEAD_CELLS = 4  # the first 8 digits, tested for every candidate at once (MIN_DIGITS >= 8)
_LOW32 = np.uint64(0xFFFFFFFF)
MAX_LONGS_PER_STREAM = 4096  # each new int is tested against those kept: bounded pairs


@dataclass(frozen=True, slots=True)
class PyLong:
    """A Python int of key size in the window: its value and where its digits are."""

    value: int
    offset: int  # stream offset of the first digit


def pylongs(view: WindowCells) -> list[PyLong]:
    """The ints of MIN_DIGITS..MAX_DIGITS digits (EC and RSA sizes) whose digits start a run of good cells.

    Runs, not islands: an island must start with bytes >= 0x80 in nearly every
    cell, and a cell of two 30-bit digits lacks one once in 64 (a 3072-bit
    modulus was missed that way).
    """
    window, base, first, cells = view.window, view.base, view.first, view.cells
    starts = view.run_starts()
    if len(starts) == 0:
        return []
    tags = cells[starts - 1]
    plain = (tags >= MIN_DIGITS) & (tags <= MAX_DIGITS)  # ob_size: 3.11 and before
    shifted = tags >> np.uint64(3)
    tagged = (
        ((tags & np.uint64(7)) == 0) & (shifted >= MIN_DIGITS) & (shifted <= MAX_DIGITS)
    )  # 3.12+
    # a size like 144 reads as 144 digits (3.11) or 18 (3.12): both are tried
    starts = np.concatenate((starts[plain], starts[tagged]))
    counts = np.concatenate((tags[plain], shifted[tagged])).astype(np.int64)
    # the first eight digits (four cells), gathered for all candidates at once: each below
    # 2^30, and five or more with one of their top six bits set (random digits: 63 in 64;
    # four of eight miss 4 times in a million, so an EC-sized int is not lost to chance)
    room = starts + _LEAD_CELLS <= len(cells)
    starts, counts = starts[room], counts[room]
    lead = np.stack([cells[starts + k] for k in range(_LEAD_CELLS)])
    halves = np.concatenate((lead & _LOW32, lead >> np.uint64(32)))
    canonical = ((halves >> np.uint64(DIGIT_BITS)) == 0).all(axis=0)
    random_looking = ((halves >> np.uint64(24)) != 0).sum(axis=0) >= 5
    lead_ok = canonical & random_looking
    out: list[PyLong] = []
    for start, count in zip(starts[lead_ok].tolist(), counts[lead_ok].tolist(), strict=True):
        at = first + 8 * start
        if at + 4 * count > len(window):
            continue
        digits = np.frombuffer(window, dtype="<u4", count=count, offset=at)
        if (digits >> np.uint32(DIGIT_BITS)).any() or digits[-1] == 0:
            continue
        # random digits have one of their top six bits set 63 times in 64; arrays of small
        # 32-bit values after a count-like cell pass the test above but not this one
        misses = (count - 1) - int(np.count_nonzero(digits[:-1] >> np.uint32(24)))
        if misses > max(3, (count - 1) // 4):
            continue
        if len(out) >= MAX_LONGS:
            break
        value = 0
        for d in digits[::-1].tolist():
            value = (value << DIGIT_BITS) | d
        out.append(PyLong(value, base + at))
    return out


class PyLongKeys:
    """RSA keys among the key-sized ints of one stream: a modulus and a prime that divides it.

    The ints of a key are not near each other: CPython's allocator puts ints of
    different sizes in different pools (p and n of one key sat 7 MB apart in a
    real core), so each int is paired with every int of the stream seen so far.
    """

    def __init__(self, *, spend: Callable[[], bool], claim: Callable[[int], bool]) -> None:
        self._spend = spend
        self._claim = claim
        self._seen: dict[int, PyLong] = {}  # by offset: overlapping windows see an int twice
        self._values: set[int] = set()
        self._by_bits: dict[int, list[PyLong]] = {}
        self.limit_reached = False

    def feed(self, longs: list[PyLong]) -> list[KeyFinding]:
        """Keys that this window's ints complete."""
        new = [
            x
            for x in longs
            if x.offset not in self._seen and x.value.bit_length() >= MIN_PRIME_BITS
        ]
        room = MAX_LONGS_PER_STREAM - len(self._seen)
        if len(new) > room:
            new, self.limit_reached = new[: max(room, 0)], True
        for x in new:
            self._seen[x.offset] = x
            self._values.add(x.value)
            self._by_bits.setdefault(x.value.bit_length(), []).append(x)
        out: list[KeyFinding] = []
        for x in new:
            bits = x.value.bit_length()
            # x as the modulus, then x as a prime: only ints of the matching size are tried
            pairs = [
                (x, p)
                for b in range((bits - 2) // 2, (bits + 2) // 2 + 1)
                for p in self._by_bits.get(b, ())
            ]
            pairs += [
                (n, x) for b in range(2 * bits - 2, 2 * bits + 3) for n in self._by_bits.get(b, ())
            ]
            for n, p in pairs:
                finding = self._try(n, p)
                if finding is not None:
                    out.append(finding)
        return out

    def _try(self, n: PyLong, p: PyLong) -> KeyFinding | None:
        bits = n.value.bit_length()
        if bits < MIN_MODULUS_BITS or n.value % 2 == 0 or p is n:
            return None
        if abs(2 * p.value.bit_length() - bits) > 2 or p.value % 2 == 0:
            return None
        if not self._spend() or n.value % p.value:
            return None
        q = n.value // p.value
        if not keymath.plausible_factors(p.value, q) or not self._claim(n.value):
            return None
        e, assumed = keymath.rsa_exponent(p.value, q, self._values.__contains__)
        return KeyFinding(
            rule="rsa_number_search",
            format=FORMAT,
            algorithm="rsa",
            offset=min(p.offset, n.offset),
            validated=True,
            bits=bits,
            fingerprint=keymath.rsa_fingerprint(n.value, e),
            exponent_assumed=assumed,
        )
