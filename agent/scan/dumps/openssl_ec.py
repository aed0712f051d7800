"""EC private keys in a process's memory, found through OpenSSL's BIGNUMs and proven by their points.

A process that uses OpenSSL (C, Python `cryptography`, nginx, Node, ...)
holds an EC key as numbers: the private scalar in a BIGNUM flagged as secret
(BN_FLG_SECURE when generated, BN_FLG_CONSTTIME when decoded from a file), the
public point as BIGNUMs X, Y, Z. A scalar alone is any 32 bytes, so it is
never reported on its own; it is a key when the point it generates is in the
same memory. Measured on gcore cores of Python processes (OpenSSL 3): a
generated P-256 key keeps its point in Jacobian coordinates in Montgomery
form (X far from the scalar), P-384 Jacobian in plain form, secp256k1 affine
in Montgomery form; decoded keys keep theirs affine and plain.

The search, per window of an ELF core or minidump (it follows pointers, so it
needs the dump's address map):
1. BIGNUM structs `{BN_ULONG *d; int top; int dmax; int neg; int flags;}`
   with top = 4, 6 or 9 limbs (256-, 384-, 521-bit values), top <= dmax <= 64,
   neg = 0 and small flags; their limbs are read where the pointer lands in
   this window (a struct and limbs in different windows are not followed).
2. Each secret one below a curve's order is a candidate scalar d: Q = d*G is
   computed (one scalar multiplication, budgeted per stream).
3. d is a key when some BIGNUM of the window is Q's x, affine or as X = x*Z^2
   for another BIGNUM Z of the window, in plain or Montgomery form (R =
   2^(64*limbs)). A chance match has probability about 2^-256.
Cost: two passes over the window's cells (a range test on the struct's
second cell) and a scalar multiplication per secret BIGNUM of a curve's size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec

from agent.logs import get_logger
from agent.scan import keymath
from agent.scan.dumps.model import DumpInfo
from agent.values import KeyFinding

log = get_logger("agent.scan.dumps")

RULE = "openssl_ec_bignum"
BN_FLG_CONSTTIME = 0x04
BN_FLG_SECURE = 0x08
MAX_FLAGS = 0x40  # BN_FLG_* bits in use stay below this
MAX_STRUCTS_PER_WINDOW = 100_000  # the struct cell is rare; a window full of it is junk
MAX_POINT_CHECKS = 2_000  # scalar multiplications per stream
MAX_Z_CANDIDATES = 64  # public BIGNUMs nearest a scalar tried as its point's Z


@dataclass(frozen=True, slots=True)
class _Curve:
    curve: ec.EllipticCurve
    p: int  # field prime
    n: int  # group order
    limbs: int

    @property
    def montgomery(self) -> int:
        return pow(2, 64 * self.limbs, self.p)


_P256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
_P384 = 2**384 - 2**128 - 2**96 + 2**32 - 1
_P521 = 2**521 - 1
_K256 = 2**256 - 2**32 - 977
CURVES: tuple[_Curve, ...] = (
    _Curve(
        ec.SECP256R1(), _P256, 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, 4
    ),
    _Curve(
        ec.SECP256K1(), _K256, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141, 4
    ),
    _Curve(
        ec.SECP384R1(),
        _P384,
        int(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
            "581a0db248b0a77aecec196accc52973",
            16,
        ),
        6,
    ),
    _Curve(
        ec.SECP521R1(),
        _P521,
        int(
            "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "fffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb"
            "6fb71e91386409",
            16,
        ),
        9,
    ),
)
_LIMBS = frozenset(c.limbs for c in CURVES)
_LIMB_LIST = np.array(sorted(_LIMBS), dtype=np.uint64)
_MAX_DMAX = 64  # limbs a BIGNUM of a key-sized value has room for (dmax >= top)
# second struct cell: top | dmax << 32. One range test on the whole cell keeps those with
# dmax in [min limbs, _MAX_DMAX] (any top); the few kept are then tested field by field
_CELL_LOW = np.uint64(min(_LIMBS) << 32)
_CELL_SPAN = np.uint64(((_MAX_DMAX + 1) << 32) - 1 - (min(_LIMBS) << 32))
_BLOCK_CELLS = 32768  # the block's two scratch arrays stay in the CPU cache
_LOW32 = np.uint64(0xFFFFFFFF)
_HIGH = np.uint64(32)


@dataclass(frozen=True, slots=True)
class BigNum:
    """One BIGNUM of the window: its value, limb count, whether it is private, where its limbs are."""

    value: int
    limbs: int
    private: bool  # BN_FLG_SECURE or BN_FLG_CONSTTIME: OpenSSL marks secret values so
    offset: int  # stream offset of the limbs


def bignums(window: memoryview, base: int, memory: DumpInfo) -> list[BigNum]:
    """BIGNUMs of 4, 6 or 9 limbs whose struct and limbs both lie in this window."""
    first = (-base) % 8
    count = max(0, (len(window) - first) // 8)
    if count < 3:
        return []
    cells = np.frombuffer(window, dtype="<u8", count=count, offset=first)
    idx = _struct_cells(cells)
    out: list[BigNum] = []
    end = base + len(window)
    flags = (cells[idx + 1] >> _HIGH).tolist()
    for i, pointer, flag in zip(idx.tolist(), cells[idx - 1].tolist(), flags, strict=True):
        limbs = int(cells[i]) & 0xFFFFFFFF
        at = memory.offset_of(pointer)
        if at is None or at < base or at + 8 * limbs > end:
            continue
        raw = window[at - base : at - base + 8 * limbs]
        private = bool(flag & (BN_FLG_SECURE | BN_FLG_CONSTTIME))
        out.append(BigNum(int.from_bytes(raw, "little"), limbs, private, at))
    return out


def _struct_cells(cells: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Indices i of BIGNUM-like structs' second cells (top in 4/6/9, top <= dmax <= 64, neg = 0)."""
    n = len(cells)
    scratch = np.empty(min(n, _BLOCK_CELLS), dtype=np.uint64)
    hit = np.empty(min(n, _BLOCK_CELLS), dtype=np.bool_)
    found: list[npt.NDArray[np.int64]] = []
    total = 0
    for s in range(1, n - 1, _BLOCK_CELLS):
        e = min(n - 1, s + _BLOCK_CELLS)
        t, h = scratch[: e - s], hit[: e - s]
        np.subtract(cells[s:e], _CELL_LOW, out=t)  # wraps below the range
        np.less_equal(t, _CELL_SPAN, out=h)
        where = np.flatnonzero(h) + s
        if len(where) == 0:
            continue
        second, third = cells[where], cells[where + 1]
        top, dmax = second & _LOW32, second >> _HIGH
        neg, flags = third & _LOW32, third >> _HIGH
        keep = np.isin(top, _LIMB_LIST) & (top <= dmax) & (neg == 0) & (flags < MAX_FLAGS)
        where = where[keep]
        if len(where):
            found.append(where)
            total += len(where)
            if total >= MAX_STRUCTS_PER_WINDOW:
                break
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(found)[:MAX_STRUCTS_PER_WINDOW]


class EcKeySearch:
    """EC keys held by OpenSSL in the windows of one dump stream."""

    def __init__(self, memory: DumpInfo, *, max_point_checks: int = MAX_POINT_CHECKS) -> None:
        self._memory = memory
        self._checks_left = max_point_checks
        self._found: set[str] = set()
        self.limit_reached = False

    def feed(self, window: memoryview, base: int) -> list[KeyFinding]:
        """Keys proven in this window; each key once per stream, by whichever window proves it.

        (Not only the window owning the scalar: its point may sit in the overlap before it.)
        """
        numbers = bignums(window, base, self._memory)
        if not any(b.private for b in numbers):
            return []
        values: dict[int, set[int]] = {}
        public: dict[int, list[BigNum]] = {}
        for b in numbers:
            values.setdefault(b.limbs, set()).add(b.value)
            if not b.private:
                public.setdefault(b.limbs, []).append(b)
        for group in public.values():
            group.sort(key=lambda b: b.offset)
        out: list[KeyFinding] = []
        for b in numbers:
            if not b.private:
                continue
            for curve in CURVES:
                if curve.limbs != b.limbs or not 0 < b.value < curve.n:
                    continue
                if self._checks_left <= 0:
                    self.limit_reached = True
                    return out
                self._checks_left -= 1
                zs = _nearest(public.get(b.limbs, []), b.offset)
                finding = self._prove(b, curve, values[b.limbs], zs)
                if finding is not None:
                    out.append(finding)
                    break
        return out

    def _prove(
        self, scalar: BigNum, curve: _Curve, values: set[int], zs: list[int]
    ) -> KeyFinding | None:
        public = ec.derive_private_key(scalar.value, curve.curve).public_key()
        if not _point_in(public.public_numbers().x, curve, values, zs):
            return None
        fingerprint = keymath.fingerprint(public)
        if fingerprint in self._found:
            return None
        self._found.add(fingerprint)
        log.debug("dumps.key_found", curve=curve.curve.name, offset=scalar.offset)
        return KeyFinding(
            rule=RULE,
            format="ec-bignum-le",
            algorithm="ec",
            offset=scalar.offset,
            validated=True,
            bits=curve.curve.key_size,
            curve=curve.curve.name,
            fingerprint=fingerprint,
        )


def _nearest(group: list[BigNum], offset: int) -> list[int]:
    """Values of the public BIGNUMs (sorted by offset) nearest `offset`: the point's Z candidates.

    A point's Z was allocated with the key (304 bytes from the scalar for P-256, 3.5 KiB
    for P-384 in the measured cores); its X may be anywhere, so X is any BIGNUM.
    """
    i = bisect.bisect_left([b.offset for b in group], offset)
    half = MAX_Z_CANDIDATES // 2
    return [b.value for b in group[max(0, i - half) : i + half]]


def _point_in(x: int, curve: _Curve, values: set[int], zs: list[int]) -> bool:
    """True when the window holds Q's x: affine, or Jacobian X = x * Z^2 for a Z near the scalar."""
    p, r = curve.p, curve.montgomery
    r_inv = pow(r, -1, p)
    for to_form, from_form in ((1, 1), (r, r_inv)):
        if x * to_form % p in values:
            return True
        for z in zs:
            z_plain = z * from_form % p
            if z_plain and x * z_plain * z_plain * to_form % p in values:
                return True
    return False
