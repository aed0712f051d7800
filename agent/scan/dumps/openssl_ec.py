"""EC and EdDSA/ECDH private keys in a process's memory, found through OpenSSL's structs, proven by their public halves.

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
Ed25519, X25519, Ed448 and X448 keys live in an ECX_KEY struct: a pointer to
the private bytes, their length and the key type, with the public key stored
inline just before; a key is one whose private bytes give that public key.
Cost: four passes over the window's cells (a range test on each struct's
second cell) and one scalar multiplication per candidate.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448, x25519

from agent.logs import get_logger
from agent.scan import keymath
from agent.scan.dumps.model import DumpInfo
from agent.values import KeyFinding

log = get_logger("agent.scan.dumps")

RULE = "openssl_ec_bignum"
RULE_ECX = "openssl_ecx_key"
BN_FLG_CONSTTIME = 0x04
BN_FLG_SECURE = 0x08
MAX_FLAGS = 0x40  # BN_FLG_* bits in use stay below this
MAX_STRUCTS_PER_WINDOW = 100_000  # the struct cell is rare; a window full of it is junk
MAX_POINT_CHECKS = 2_000  # scalar multiplications per stream
MAX_Z_CANDIDATES = 64  # public BIGNUMs nearest a scalar tried as its point's Z


@dataclass(frozen=True, slots=True)
class Curve:
    """A named curve's constants, for the searches of keys held as numbers."""

    curve: ec.EllipticCurve
    p: int  # field prime
    n: int  # group order
    limbs: int
    a: int  # y^2 = x^3 + a*x + b (mod p)
    b: int

    @property
    def montgomery(self) -> int:
        return pow(2, 64 * self.limbs, self.p)


_P256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
_P384 = 2**384 - 2**128 - 2**96 + 2**32 - 1
_P521 = 2**521 - 1
_K256 = 2**256 - 2**32 - 977
CURVES: tuple[Curve, ...] = (
    Curve(
        ec.SECP256R1(),
        _P256,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        4,
        -3,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    ),
    Curve(
        ec.SECP256K1(),
        _K256,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
        4,
        0,
        7,
    ),
    Curve(
        ec.SECP384R1(),
        _P384,
        int(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
            "581a0db248b0a77aecec196accc52973",
            16,
        ),
        6,
        -3,
        int(
            "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a"
            "c656398d8a2ed19d2a85c8edd3ec2aef",
            16,
        ),
    ),
    Curve(
        ec.SECP521R1(),
        _P521,
        int(
            "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
            16,
        ),
        9,
        -3,
        int(
            "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef1"
            "09e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b50"
            "3f00",
            16,
        ),
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
    private: bool  # flagged BN_FLG_SECURE or BN_FLG_CONSTTIME, as OpenSSL flags secret values
    offset: int  # stream offset of the limbs


def window_cells(window: memoryview, base: int) -> npt.NDArray[np.uint64]:
    """The window's 8-byte-aligned cells (structs are aligned in the process's memory)."""
    first = (-base) % 8
    count = max(0, (len(window) - first) // 8)
    cells: npt.NDArray[np.uint64] = np.frombuffer(window, dtype="<u8", count=count, offset=first)
    return cells


def bignums(
    window: memoryview, base: int, cells: npt.NDArray[np.uint64], memory: DumpInfo
) -> list[BigNum]:
    """BIGNUMs of 4, 6 or 9 limbs whose struct and limbs both lie in this window."""
    if len(cells) < 3:
        return []
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


# OpenSSL 3 ECX_KEY: {libctx*, propq*, haspubkey:1, pubkey[57], privkey*, keylen, type, refs, ...}:
# the public key starts 63 bytes before the privkey pointer (measured); 1.1.1 has no keylen
_ECX_TYPES: dict[int, tuple[int, str]] = {
    0: (32, "x25519"),
    1: (56, "x448"),
    2: (32, "ed25519"),
    3: (57, "ed448"),
}
_ECX_SIZES = np.array([_ECX_TYPES[k][0] for k in sorted(_ECX_TYPES)], dtype=np.uint64)
_ECX_PUBLIC_BEFORE = 80  # bytes before the privkey pointer searched for the public key
_KEYLEN_LOW, _KEYLEN_SPAN = np.uint64(32), np.uint64(57 - 32)
_MAX_REFS = 1 << 20


@dataclass(frozen=True, slots=True)
class EcxKey:
    """An OpenSSL ECX_KEY whose private bytes generate the public key stored beside them."""

    algorithm: str
    offset: int  # stream offset of the private bytes
    public: (
        ed25519.Ed25519PublicKey
        | x25519.X25519PublicKey
        | ed448.Ed448PublicKey
        | x448.X448PublicKey
    )


def ecx_keys(
    window: memoryview,
    base: int,
    cells: npt.NDArray[np.uint64],
    memory: DumpInfo,
    spend: Callable[[], bool] = lambda: True,
) -> list[EcxKey]:
    """ECX_KEY structs in this window whose private bytes (also in it) give their public key.

    `spend` is asked before each derivation (a scalar multiplication); False stops the search.
    """
    if len(cells) < 3:
        return []
    first = (-base) % 8
    idx = _blocks(cells, _KEYLEN_LOW, _KEYLEN_SPAN, _ecx_fields)
    out: list[EcxKey] = []
    end = base + len(window)
    for i, pointer, meta in zip(
        idx.tolist(), cells[idx - 1].tolist(), cells[idx + 1].tolist(), strict=True
    ):
        size, algorithm = _ECX_TYPES[meta & 0xFFFFFFFF]
        at = memory.offset_of(pointer)
        if at is None or at < base or at + size > end:
            continue
        if not spend():
            break
        public = _ecx_public(algorithm, bytes(window[at - base : at - base + size]))
        if public is None:
            continue
        pointer_at = first + 8 * (i - 1)
        stored = window[max(0, pointer_at - _ECX_PUBLIC_BEFORE) : pointer_at]
        if public.public_bytes_raw() in bytes(stored):
            out.append(EcxKey(algorithm, at, public))
    return out


def _ecx_public(
    algorithm: str, private: bytes
) -> (
    ed25519.Ed25519PublicKey
    | x25519.X25519PublicKey
    | ed448.Ed448PublicKey
    | x448.X448PublicKey
    | None
):
    try:
        if algorithm == "ed25519":
            return ed25519.Ed25519PrivateKey.from_private_bytes(private).public_key()
        if algorithm == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(private).public_key()
        if algorithm == "ed448":
            return ed448.Ed448PrivateKey.from_private_bytes(private).public_key()
        return x448.X448PrivateKey.from_private_bytes(private).public_key()
    except ValueError:
        return None


def _ecx_fields(
    second: npt.NDArray[np.uint64], third: npt.NDArray[np.uint64]
) -> npt.NDArray[np.bool_]:
    """keylen, then type (low half) and reference count (high half) agreeing with it."""
    kind, refs = third & _LOW32, third >> _HIGH
    ok: npt.NDArray[np.bool_] = (kind <= 3) & (refs >= 1) & (refs <= _MAX_REFS)
    ok &= second == _ECX_SIZES[np.minimum(kind, 3).astype(np.intp)]
    return ok


def _bignum_fields(
    second: npt.NDArray[np.uint64], third: npt.NDArray[np.uint64]
) -> npt.NDArray[np.bool_]:
    """top in 4/6/9, top <= dmax, neg = 0, small flags."""
    top, dmax = second & _LOW32, second >> _HIGH
    neg, flags = third & _LOW32, third >> _HIGH
    ok: npt.NDArray[np.bool_] = (
        np.isin(top, _LIMB_LIST) & (top <= dmax) & (neg == 0) & (flags < MAX_FLAGS)
    )
    return ok


def _struct_cells(cells: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Indices i of BIGNUM-like structs' second cells (top in 4/6/9, top <= dmax <= 64, neg = 0)."""
    return _blocks(cells, _CELL_LOW, _CELL_SPAN, _bignum_fields)


def _blocks(
    cells: npt.NDArray[np.uint64],
    low: np.uint64,
    span: np.uint64,
    fields: Callable[[npt.NDArray[np.uint64], npt.NDArray[np.uint64]], npt.NDArray[np.bool_]],
) -> npt.NDArray[np.int64]:
    """Indices i (1 <= i < n-1) with low <= cells[i] <= low + span and `fields(cells[i], cells[i+1])`.

    The range test runs over the window in cache-sized blocks; `fields` only on what it kept.
    """
    n = len(cells)
    scratch = np.empty(min(n, _BLOCK_CELLS), dtype=np.uint64)
    hit = np.empty(min(n, _BLOCK_CELLS), dtype=np.bool_)
    found: list[npt.NDArray[np.int64]] = []
    total = 0
    for s in range(1, n - 1, _BLOCK_CELLS):
        e = min(n - 1, s + _BLOCK_CELLS)
        t, h = scratch[: e - s], hit[: e - s]
        np.subtract(cells[s:e], low, out=t)  # wraps below the range
        np.less_equal(t, span, out=h)
        where = np.flatnonzero(h) + s
        if len(where) == 0:
            continue
        where = where[fields(cells[where], cells[where + 1])]
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

    def __init__(
        self,
        memory: DumpInfo,
        *,
        max_point_checks: int = MAX_POINT_CHECKS,
        found: set[str] | None = None,
    ) -> None:
        self._memory = memory
        self._checks_left = max_point_checks
        # fingerprints reported in this stream, shared with the other EC searches
        self._found: set[str] = found if found is not None else set()
        self.limit_reached = False

    def feed(self, window: memoryview, base: int) -> list[KeyFinding]:
        """Keys proven in this window; each key once per stream, by whichever window proves it.

        (Not only the window owning the scalar: its point may sit in the overlap before it.)
        """
        cells = window_cells(window, base)
        out = self._ecx(window, base, cells)
        numbers = bignums(window, base, cells, self._memory)
        if not any(b.private for b in numbers):
            return out
        values: dict[int, set[int]] = {}
        public: dict[int, list[BigNum]] = {}
        for b in numbers:
            values.setdefault(b.limbs, set()).add(b.value)
            if not b.private:
                public.setdefault(b.limbs, []).append(b)
        for group in public.values():
            group.sort(key=lambda b: b.offset)
        offsets = {limbs: [b.offset for b in group] for limbs, group in public.items()}
        for b in numbers:
            if not b.private:
                continue
            for curve in CURVES:
                if curve.limbs != b.limbs or not 0 < b.value < curve.n:
                    continue
                if not self._spend():
                    return out
                zs = _nearest(public.get(b.limbs, []), offsets.get(b.limbs, []), b.offset)
                finding = self._prove(b, curve, values[b.limbs], zs)
                if finding is not None:
                    out.append(finding)
                    break
        return out

    def _spend(self) -> bool:
        """Take one scalar multiplication from the stream's budget; False when it is spent."""
        if self._checks_left <= 0:
            self.limit_reached = True
            return False
        self._checks_left -= 1
        return True

    def _ecx(
        self, window: memoryview, base: int, cells: npt.NDArray[np.uint64]
    ) -> list[KeyFinding]:
        out: list[KeyFinding] = []
        for key in ecx_keys(window, base, cells, self._memory, self._spend):
            fingerprint = keymath.fingerprint(key.public)
            if fingerprint in self._found:
                continue
            self._found.add(fingerprint)
            log.debug("dumps.key_found", algorithm=key.algorithm, offset=key.offset)
            out.append(
                KeyFinding(
                    rule=RULE_ECX,
                    format="okp-openssl",
                    algorithm=key.algorithm,
                    offset=key.offset,
                    validated=True,
                    fingerprint=fingerprint,
                )
            )
        return out

    def _prove(
        self, scalar: BigNum, curve: Curve, values: set[int], zs: list[int]
    ) -> KeyFinding | None:
        try:
            public = ec.derive_private_key(scalar.value, curve.curve).public_key()
        except ValueError:  # OpenSSL's own range check: never a key, never a crash
            return None
        if not _point_in(public.public_numbers().x, curve, values, zs):
            return None
        return curve_key_finding(
            RULE, "ec-bignum-le", curve, scalar.offset, public, found=self._found
        )


def curve_key_finding(
    rule: str,
    fmt: str,
    curve: Curve,
    offset: int,
    public: ec.EllipticCurvePublicKey,
    *,
    found: set[str],
) -> KeyFinding | None:
    """The finding of a proven EC key, once per stream (`found` holds the fingerprints seen)."""
    fingerprint = keymath.fingerprint(public)
    if fingerprint in found:
        return None
    found.add(fingerprint)
    log.debug("dumps.key_found", curve=curve.curve.name, offset=offset)
    return KeyFinding(
        rule=rule,
        format=fmt,
        algorithm="ec",
        offset=offset,
        validated=True,
        bits=curve.curve.key_size,
        curve=curve.curve.name,
        fingerprint=fingerprint,
    )


def _nearest(group: list[BigNum], offsets: list[int], offset: int) -> list[int]:
    """Values of the public BIGNUMs (sorted, with their `offsets`) nearest `offset`: Z candidates.

    A point's Z was allocated with the key (304 bytes from the scalar for P-256, 3.5 KiB
    for P-384 in the measured cores); its X may be anywhere, so X is any BIGNUM.
    """
    i = bisect.bisect_left(offsets, offset)
    half = MAX_Z_CANDIDATES // 2
    return [b.value for b in group[max(0, i - half) : i + half]]


def _point_in(x: int, curve: Curve, values: set[int], zs: list[int]) -> bool:
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
