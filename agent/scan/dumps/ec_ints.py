"""EC private keys held as whole numbers by a language runtime (Python ints, Java BigIntegers and byte arrays), proven by their public point.

A scalar d is any number below the curve's order, so an int is a key only
when the x-coordinate of d*G is an int of the same stream (a chance match:
about 2^-256). Trying every key-sized int as a scalar costs one scalar
multiplication each (70 us on P-256, 1.4 ms on secp256k1), and a process
that does curve arithmetic in Python holds thousands of such ints that are
coordinates, not scalars: python-ecdsa keeps about a thousand multiples of G
per curve in use, affine (measured: 2,860 of 2,986 key-sized ints in a core
of a process with four keys). Coordinates are recognised first, cheaply: x
and y of one point satisfy y^2 = x^3 + ax + b (mod p), so each int's
x^3 + ax + b and y^2 are indexed and matched, two modular products per int
and curve. What is left, a few dozen ints, is tried as scalars within a
per-stream budget weighted by each curve's cost; a point derived before its
x was seen is remembered, so the int may come in a later window.

Where the readers find many candidate scalars (a Java heap holds thousands
of random 32-byte arrays: 2,846 key-sized numbers in the measured core of a
JVM with three keys), only numbers within `near` bytes of a recognised point
of their curve are tried, nearest first: the JDK allocates a key pair's
scalar and point together (4-35 KiB apart in the measured cores; 224 bytes
for a P-521 key in a Go core), so random numbers of another curve's size
cannot spend the budget before a key is reached.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan.dumps.openssl_ec import CURVES, Curve, curve_key_finding
from agent.values import KeyFinding

RULE = "ec_number_search"
MAX_INTS_PER_STREAM = 32_768  # python-ecdsa's tables are ~1,000 per curve; more is a trap
# scalar multiplications per stream, in P-256 units (measured with cryptography: P-256
# 70 us, P-521 430 us, P-384 720 us, secp256k1 1,430 us): 4,000 units is about 0.3 s
BUDGET = 4_000
_COST = {"secp256r1": 1, "secp521r1": 6, "secp384r1": 10, "secp256k1": 20}
# an int of 9 or more 30-bit digits (`pylong.MIN_DIGITS`) may be a 256-bit scalar or coordinate
_SLACK_BITS = 32


class Located(Protocol):
    """A number read from memory: its value and the stream offset it was read at."""

    @property
    def value(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(slots=True)
class _CurveInts:
    """The ints of one curve's size: indexed as x (x^3 + ax + b) and as y (y^2), mod p."""

    curve: Curve
    as_x: dict[int, int] = field(default_factory=dict)
    as_y: dict[int, int] = field(default_factory=dict)
    points: int = 0  # coordinate pairs seen: the curves in use are tried first
    anchors: list[int] = field(default_factory=list)  # offsets of their coordinates, sorted

    def fits(self, value: int) -> bool:
        bits = self.curve.curve.key_size
        return bits - _SLACK_BITS < value.bit_length() <= bits and value < self.curve.p

    def pair(self, value: int) -> int | None:
        """Index `value`; the other coordinate of a point it belongs to, when one was seen."""
        p, a, b = self.curve.p, self.curve.a, self.curve.b
        rhs = (value * value * value + a * value + b) % p
        square = value * value % p
        other = self.as_y.get(rhs)  # value is x, other its y
        if other is None:
            other = self.as_x.get(square)  # value is y, other its x
        self.as_x.setdefault(rhs, value)
        self.as_y.setdefault(square, value)
        if other is not None:
            self.points += 1
        return other


@functools.cache
def _generator(curve: Curve) -> frozenset[int]:
    """The coordinates of the curve's base point G (every runtime that knows the curve has them)."""
    g = ec.derive_private_key(1, curve.curve).public_key().public_numbers()
    return frozenset((g.x, g.y))


class EcIntKeys:
    """EC keys among the key-sized numbers one reader found in a stream (see the module docstring)."""

    def __init__(
        self,
        *,
        format_name: str,
        near: int | None = None,
        budget: int = BUDGET,
        found: set[str] | None = None,
    ) -> None:
        self._format = format_name
        self._near = near
        self._left = budget
        self._seen: set[int] = set()  # offsets: overlapping windows see an int twice
        self._values: set[int] = set()
        self._coordinates: set[int] = set()
        self._curves = [_CurveInts(c) for c in CURVES]
        self._offsets: dict[int, int] = {}  # value -> where it was first seen
        self._derived: dict[int, tuple[Located, Curve, ec.EllipticCurvePublicKey]] = {}
        # fingerprints reported in this stream, shared with the other EC searches: a key the
        # OpenSSL struct search proved is not reported again from its bare limbs
        self._found: set[str] = found if found is not None else set()
        self.limit_reached = False

    def feed(self, longs: Sequence[Located]) -> list[KeyFinding]:
        """Keys that this window's ints complete."""
        new = [
            (x, fitting)
            for x in longs
            if x.offset not in self._seen
            for fitting in [[c for c in self._curves if c.fits(x.value)]]
            if fitting
        ]
        room = MAX_INTS_PER_STREAM - len(self._seen)
        if len(new) > room:
            new, self.limit_reached = new[: max(room, 0)], True
        for x, fitting in new:  # the window's coordinates are all known before a scalar is tried
            self._seen.add(x.offset)
            self._values.add(x.value)
            self._offsets.setdefault(x.value, x.offset)
            for c in fitting:
                other = c.pair(x.value)
                if other is not None:
                    self._coordinates.update((x.value, other))
                    if {x.value, other} & _generator(c.curve):
                        continue  # a library's table of curve constants: no key beside it
                    bisect.insort(c.anchors, x.offset)
                    bisect.insort(c.anchors, self._offsets[other])
        out: list[KeyFinding] = []
        for x, _ in new:
            earlier = self._derived.pop(x.value, None)  # x of a point derived in a past window
            if earlier is not None:
                out += self._finding(*earlier)
        # nearest to a point of its curve first: a key's scalar is allocated with its point
        # (224 bytes to 35 KiB apart in measured cores), so a flood of random numbers of one
        # curve's size cannot spend the budget before another curve's key is tried
        tries = sorted(
            (
                (self._distance(c, x.offset), -c.points, x, c)
                for x, fitting in new
                if x.value not in self._coordinates
                for c in fitting
                if x.value < c.curve.n and self._close(c, x.offset)
            ),
            key=lambda t: t[:2],  # stable: window order among equals, as before
        )
        proven: set[int] = set()
        for _, _, x, c in tries:
            if x.value in proven:
                continue
            cost = _COST.get(c.curve.curve.name, 10)
            if self._left < cost:
                self.limit_reached = True
                return out
            self._left -= cost
            try:
                public = ec.derive_private_key(x.value, c.curve.curve).public_key()
            except ValueError:  # OpenSSL's own range check: never a key, never a crash
                continue
            px = public.public_numbers().x
            if px in self._values:
                out += self._finding(x, c.curve, public)
                proven.add(x.value)
                continue
            self._derived[px] = (x, c.curve, public)
        return out

    def _distance(self, c: _CurveInts, offset: int) -> int:
        """Bytes to the nearest recognised point of the curve (0 without a `near` limit)."""
        if self._near is None or not c.anchors:
            return 0
        i = bisect.bisect_left(c.anchors, offset)
        return min(abs(c.anchors[j] - offset) for j in (i - 1, i) if 0 <= j < len(c.anchors))

    def _close(self, c: _CurveInts, offset: int) -> bool:
        """True without a `near` limit, else when a point of the curve lies within it."""
        if self._near is None:
            return True
        i = bisect.bisect_left(c.anchors, offset)
        return any(
            abs(c.anchors[j] - offset) <= self._near for j in (i - 1, i) if 0 <= j < len(c.anchors)
        )

    def _finding(
        self, scalar: Located, curve: Curve, public: ec.EllipticCurvePublicKey
    ) -> list[KeyFinding]:
        found = curve_key_finding(
            RULE, self._format, curve, scalar.offset, public, found=self._found
        )
        return [found] if found is not None else []
