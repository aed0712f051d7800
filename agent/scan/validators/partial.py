"""DER private keys whose header was overwritten (freed buffers): anchored inside the body.

A freed DER buffer loses its first 16-32 bytes to allocator pointers, so the
`30 82 .. .. 02 01 00` header and often the top of n are gone. Rules anchor
on what survives: RSA's `publicExponent 65537` followed by the header of d,
and the SEC1 body (`02 01 01 04 <len> <scalar>` followed by the curve or the
public point). The key is rebuilt from what is intact: p and q give n; n with
one of p, q or dP factors; the SEC1 scalar must give the stored public point.
An intact header means the `der` validator owns the key, so nothing is
reported here (no double findings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_INT_BYTES = 1025  # 8192-bit values plus a sign byte
E_65537 = b"\x02\x03\x01\x00\x01"
_CURVE_OIDS: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
    bytes.fromhex("2b8104000a"): ec.SECP256K1(),
}
_CURVES_BY_SIZE: dict[int, tuple[ec.EllipticCurve, ...]] = {
    32: (ec.SECP256R1(), ec.SECP256K1()),
    48: (ec.SECP384R1(),),
    66: (ec.SECP521R1(),),
}


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A key rebuilt from a DER body whose header is gone, or nothing."""
    data = hit.data
    if bytes(data[hit.start : hit.start + 5]) == E_65537:
        return _rsa(hit, data)
    if bytes(data[hit.start : hit.start + 3]) == b"\x02\x01\x01":
        return _sec1(hit, data)
    return ()


def _integer(data: memoryview, at: int) -> tuple[int, int] | None:
    """(value, offset after it) of a DER INTEGER at `at`, bounded."""
    if at + 2 > len(data) or data[at] != 0x02:
        return None
    first = data[at + 1]
    if first < 0x80:
        length, body = first, at + 2
    elif first in (0x81, 0x82):
        width = first - 0x80
        if at + 2 + width > len(data):
            return None
        length = int.from_bytes(data[at + 2 : at + 2 + width], "big")
        body = at + 2 + width
    else:
        return None
    if length == 0 or length > MAX_INT_BYTES or body + length > len(data):
        return None
    return int.from_bytes(data[body : body + length], "big"), body + length


def _modulus_before(data: memoryview, anchor: int) -> tuple[int | None, bool]:
    """(n, header intact) when n's INTEGER ends exactly at the anchor."""
    for size in (129, 193, 257, 385, 513, 769, 961, 1025):
        head = 3 if size < 256 else 4
        at = anchor - size - head
        if at < 0:
            continue
        got = _integer(data, at)
        if got is not None and got[1] == anchor:
            return got[0], _header_intact(data, at)
    return None, False


def _header_intact(data: memoryview, n_at: int) -> bool:
    # PKCS#1 (and PKCS#8's inner key): SEQUENCE header, then version 0, then n
    for head in (4, 3):
        at = n_at - 3 - head
        if at >= 0 and data[at] == 0x30 and bytes(data[n_at - 3 : n_at]) == b"\x02\x01\x00":
            return True
    return False


def _rsa(hit: Hit, data: memoryview) -> Sequence[KeyFinding]:
    anchor = hit.start
    e = 65537
    n, intact = _modulus_before(data, anchor)
    if intact:
        return ()  # the `der` validator reports an intact key
    values: list[int] = []
    at = anchor + len(E_65537)
    for _ in range(6):  # d, p, q, dP, dQ, qInv: as many as survive
        got = _integer(data, at)
        if got is None:
            break
        values.append(got[0])
        at = got[1]
    d = values[0] if values else None
    p = values[1] if len(values) > 1 else None
    q = values[2] if len(values) > 2 else None
    dp = values[3] if len(values) > 3 else None
    factors = _factor(n, p, q, dp, e)
    if factors is None:
        return ()
    p, q = factors
    n = p * q
    if not keymath.rsa_consistent(n, e, d, p, q):
        return ()
    return [
        hit.finding(
            algorithm="rsa",
            bits=n.bit_length(),
            validated=True,
            fingerprint=keymath.rsa_fingerprint(n, e),
            format="der-partial-rsa",
        )
    ]


def _factor(
    n: int | None, p: int | None, q: int | None, dp: int | None, e: int
) -> tuple[int, int] | None:
    if p is not None and q is not None and p > 1 and q > 1 and (n is None or p * q == n):
        return p, q
    if n is None or n.bit_length() > keymath.MAX_RSA_BITS:
        return None
    for factor in (p, q):
        if factor is not None and (pq := keymath.rsa_recover_from_factor(n, factor)):
            return pq
    if dp is not None and 1 < dp < n:
        # r^(e*dP) = r (mod p) for every r, so p divides r^(e*dP) - r
        g = math.gcd(pow(2, e * dp, n) - 2, n)
        if 1 < g < n:
            return keymath.rsa_recover_from_factor(n, g)
    return None


def _sec1(hit: Hit, data: memoryview) -> Sequence[KeyFinding]:
    at = hit.start
    if at + 5 > len(data) or data[at + 3] != 0x04:
        return ()
    size = data[at + 4]
    if size not in _CURVES_BY_SIZE or at + 5 + size > len(data):
        return ()
    if _sec1_header_intact(data, at):
        return ()  # the `der` validator reports an intact key
    scalar = int.from_bytes(data[at + 5 : at + 5 + size], "big")
    rest = bytes(data[at + 5 + size : at + 5 + size + 160])
    curves = _CURVES_BY_SIZE[size]
    for oid, curve in _CURVE_OIDS.items():
        if rest.startswith(b"\xa0") and oid in rest[:16]:
            curves = (curve,)
    point = _stored_point(rest)
    for curve in curves:
        try:
            key = ec.derive_private_key(scalar, curve)
        except ValueError:
            continue
        mine = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        if point is not None and point != mine:
            continue
        if point is None and len(curves) > 1:
            continue  # no point and no curve: any scalar fits some curve, nothing is proven
        algorithm, bits, name, fp = keymath.describe_private_key(key)
        return [
            hit.finding(
                algorithm=algorithm,
                bits=bits,
                curve=name,
                validated=point is not None,
                fingerprint=fp,
                format="der-partial-sec1",
            )
        ]
    return ()


def _stored_point(rest: bytes) -> bytes | None:
    at = rest.find(b"\xa1")
    if at < 0 or at > 16:
        return None
    # [1] { BIT STRING { 00 04 X Y } } with short or 0x81 long lengths
    i = at + 1
    i += 2 if rest[i] == 0x81 else 1
    if rest[i : i + 1] != b"\x03":
        return None
    i += 1
    if rest[i] == 0x81:
        length = rest[i + 1]
        i += 2
    else:
        length = rest[i]
        i += 1
    if rest[i : i + 2] != b"\x00\x04" or length < 2:
        return None
    point = rest[i + 1 : i + length]
    return point if len(point) == length - 1 else None


def _sec1_header_intact(data: memoryview, at: int) -> bool:
    # ECPrivateKey ::= SEQUENCE { version 1, ... }: `30 LL` or `30 81 LL` just before
    if at >= 2 and data[at - 2] == 0x30 and data[at - 1] < 0x80:
        return True
    return at >= 3 and data[at - 3] == 0x30 and data[at - 2] == 0x81
