"""RSA keys whose numbers each sit alone in an allocation anywhere in a stream (Go's big.Int), paired stream-wide.

The window search (`numbers`) pairs primes that lie near each other, as C
heaps allocate them. Go's allocator keeps the objects of one size class in
their own spans: in a core of a Go 1.19 process holding an RSA 2048 key from
`rsa.GenerateKey`, p and q sat 67 KiB apart and n 4 MiB away, the words of
each big.Int alone in their allocation (followed by the four spare zero words
`nat.make` reserves). A number that fills its run of good cells (`cells` or
`cells + 1` long: one stale word is allowed, as a malloc chunk's last word
can be) in little-endian limbs, odd, top bit set, is kept for the whole
stream with its lowest limb: a few hundred per size in a real core (223
prime-sized and 1,303 modulus-sized in the Go core, most of them key
generation's leftovers). A new prime is multiplied by every prime kept, and
a new modulus divided by every prime kept, in 64-bit arithmetic (the lowest
limb of n / p is n * p^-1 mod 2^64), and the results looked up among the
lowest limbs kept; only matches are multiplied out exactly. The public
exponent is proven when the lowest limb of one of its private exponents (d,
dP, dQ, alone as well) was seen; otherwise 65537 is assumed and the finding
says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.scan import keymath
from agent.scan.dumps.candidates import GO_SPARE, I64, U64, WindowCells, cells_after, run_bounds
from agent.values import KeyFinding

RULE = "rsa_number_search"
FORMAT = "rsa-numbers-le"
MAX_PER_SIZE = 4096  # numbers kept per size and stream: each new one meets all of them
MAX_EVIDENCE = 65_536  # lowest limbs of possible private exponents kept per stream
_PRODUCTS_AT_ONCE = 1 << 20  # 8 MiB of 64-bit products per numpy call
_U64_MASK = (1 << 64) - 1
_ONE, _TWO, _TOP = np.uint64(1), np.uint64(2), np.uint64(63)


@dataclass(slots=True)
class _Kept:
    """Numbers of one size kept for the stream: values, stream offsets, lowest limbs."""

    values: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lows: U64 = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    def add(self, values: list[int], offsets: list[int], lows: U64) -> None:
        self.values += values
        self.offsets += offsets
        self.lows = np.concatenate((self.lows, lows))


@dataclass(frozen=True, slots=True)
class AloneNumbers:
    """One window's numbers that fill their runs, by size in cells: offsets, lowest limbs, values."""

    by_cells: dict[int, tuple[list[int], U64, list[int]]]
    exponent_lows: list[int]


def alone_numbers(
    view: WindowCells, sizes: Sequence[int], owned_range: tuple[int, int]
) -> AloneNumbers:
    """Odd numbers of `sizes` cells alone in their allocation that start in `owned_range`.

    Alone: the number fills its run of good cells, or ends a longer run
    followed by Go's spare zero words (Go packs a size class's objects without
    headers, so a neighbour's stale words can run into a big.Int's). A run that
    touches either end of the window may be longer than it looks: left out.
    """
    starts, ends = run_bounds(view.good, view.edges)
    length = ends - starts
    room, after = cells_after(view.cells, ends, GO_SPARE)
    go_tail = room & ~after.any(axis=1)
    inside = (starts > 0) & (ends < len(view.good))
    lo, hi = (owned - view.base - view.first for owned in owned_range)
    by_cells: dict[int, tuple[list[int], U64, list[int]]] = {}
    exponent_lows: list[int] = []
    for cells in sorted(set(sizes)):
        at: I64 = np.concatenate(
            (
                starts[inside & ((length == cells) | (length == cells + 1))],
                ends[inside & go_tail & (length > cells + 1)] - cells,
            )
        )
        at = at[(8 * at >= lo) & (8 * at < hi)]
        if len(at) == 0:
            continue
        lows = view.cells[at]
        odd = (lows & _ONE).astype(bool)
        at, lows = at[odd], lows[odd]
        exponent_lows += lows.tolist()  # a private exponent need not have its top bit set
        top = ((view.cells[at + cells - 1] >> _TOP) & _ONE).astype(bool)
        at, lows = at[top], lows[top]
        if len(at) == 0:
            continue
        size = 8 * cells
        offsets = (view.first + 8 * at).tolist()
        values = [int.from_bytes(view.window[off : off + size], "little") for off in offsets]
        by_cells[cells] = ([view.base + off for off in offsets], lows, values)
    return AloneNumbers(by_cells, exponent_lows)


def _inverse(x: U64) -> U64:
    """x^-1 mod 2^64 for odd x (Newton: each step doubles the correct low bits, 3 -> 96)."""
    inv = x.copy()
    for _ in range(5):
        inv *= _TWO - x * inv
    return inv


def _matches(left: U64, right: U64, targets: U64, combine: str) -> Iterator[tuple[int, int]]:
    """(i, j) with left[i] (*|/) right[j] mod 2^64 in `targets`, in bounded batches."""
    if len(left) == 0 or len(right) == 0 or len(targets) == 0:
        return
    wanted = np.unique(targets)
    other = _inverse(right) if combine == "divide" else right
    rows = max(1, _PRODUCTS_AT_ONCE // len(right))
    for r in range(0, len(left), rows):
        prod = left[r : r + rows, None] * other[None, :]
        j = np.searchsorted(wanted, prod)
        j[j == len(wanted)] = 0
        hit_i, hit_j = np.nonzero(wanted[j] == prod)
        yield from zip((hit_i + r).tolist(), hit_j.tolist(), strict=True)


class AloneRsaKeys:
    """The stream-wide join of alone numbers: p * q = n wherever p, q and n lie."""

    def __init__(self, prime_cells: Sequence[int], *, claim: Callable[[int], bool]) -> None:
        self._prime_cells = tuple(prime_cells)
        self._claim = claim
        self._kept: dict[int, _Kept] = {}
        self._exponent_lows: set[int] = set()
        self._proven: set[int] = set()  # moduli met again (p * q and q * p, n / p and n / q)
        self.limit_reached = False

    @property
    def sizes(self) -> tuple[int, ...]:
        """Every size in cells read: primes and their moduli."""
        return tuple(sorted({*self._prime_cells, *(2 * c for c in self._prime_cells)}))

    def feed(self, numbers: AloneNumbers) -> list[KeyFinding]:
        """Keys that this window's numbers complete."""
        room = MAX_EVIDENCE - len(self._exponent_lows)
        self._exponent_lows.update(numbers.exponent_lows[: max(room, 0)])
        new: dict[int, tuple[int, int]] = {}  # size -> (first new index, count)
        for cells, (offsets, lows, values) in numbers.by_cells.items():
            kept = self._kept.setdefault(cells, _Kept())
            take = min(len(values), MAX_PER_SIZE - len(kept.values))
            if take < len(values):
                self.limit_reached = True
            if take > 0:
                new[cells] = (len(kept.values), take)
                kept.add(values[:take], offsets[:take], lows[:take])
        out: list[KeyFinding] = []
        for cells in self._prime_cells:
            primes, moduli = self._kept.get(cells), self._kept.get(2 * cells)
            if primes is None or moduli is None:
                continue
            p0, pn = new.get(cells, (len(primes.values), 0))
            m0, mn = new.get(2 * cells, (len(moduli.values), 0))
            # a new prime times any prime is a modulus kept; a new modulus over any prime is a prime
            for i, j in _matches(primes.lows[p0 : p0 + pn], primes.lows, moduli.lows, "multiply"):
                out += self._prove(primes, p0 + i, j, moduli)
            for k, j in _matches(moduli.lows[m0 : m0 + mn], primes.lows, primes.lows, "divide"):
                out += self._prove_quotient(primes, j, moduli, m0 + k)
        return out

    def _prove(self, primes: _Kept, a: int, b: int, moduli: _Kept) -> list[KeyFinding]:
        if primes.offsets[a] == primes.offsets[b]:
            return []
        n = primes.values[a] * primes.values[b]
        low = np.uint64(n & _U64_MASK)
        for k in np.flatnonzero(moduli.lows == low).tolist():
            if moduli.values[k] == n:
                return self._finding(primes, a, b, moduli, k)
        return []

    def _prove_quotient(self, primes: _Kept, a: int, moduli: _Kept, k: int) -> list[KeyFinding]:
        n, p = moduli.values[k], primes.values[a]
        if n % p:
            return []
        q_low = np.uint64((n // p) & _U64_MASK)
        for b in np.flatnonzero(primes.lows == q_low).tolist():
            if b != a and p * primes.values[b] == n:
                return self._finding(primes, a, b, moduli, k)
        return []

    def _finding(self, primes: _Kept, a: int, b: int, moduli: _Kept, k: int) -> list[KeyFinding]:
        p, q, n = primes.values[a], primes.values[b], moduli.values[k]
        if n in self._proven:
            return []
        self._proven.add(n)
        if not keymath.plausible_factors(p, q) or not self._claim(n):
            return []
        e, assumed = keymath.rsa_exponent(
            p, q, lambda secret: secret & _U64_MASK in self._exponent_lows
        )
        return [
            KeyFinding(
                rule=RULE,
                format=FORMAT,
                algorithm="rsa",
                offset=min(primes.offsets[a], primes.offsets[b]),
                validated=True,
                bits=n.bit_length(),
                fingerprint=keymath.rsa_fingerprint(n, e),
                exponent_assumed=assumed,
            )
        ]
