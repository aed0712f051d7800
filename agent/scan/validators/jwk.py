"""JWK and JWK sets with private members: find the JSON object around a hit, prove the key in it.

The rule anchors on a private member (`"d": "..."`); this validator looks
back (bounded) for the `{` that opens the enclosing object, matches braces
forward honouring strings, `json.loads` that object and proves it: RSA with
p and q (p*q = n, e*d = 1 mod lambda(n), CRT members) or with only n, e, d
(n is factored from e and d, bounded); EC (P-256/384/521, secp256k1) and OKP
(Ed25519/Ed448/X25519/X448) where d must derive the x (and y) given.
A JWK without a private member is never a finding.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan import keymath

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_BACK = 16 * 1024  # how far before the private member the object may open
MAX_OBJECT = 64 * 1024  # no JWK is larger (RSA-16384 with CRT members is ~12 KiB)
MAX_CANDIDATES = 16
MAX_MEMBER_CHARS = 4096
# Factoring from (e, d) costs modular exponentiations with an exponent as long as n; in
# Python that is ~0.5 s at 4096 bits and ~20 s at 16384, so keys without p and q are
# only proven up to this size (real n/e/d-only JWKs are 2048-4096 bits).
MAX_FACTOR_BITS = 4096
MAX_FACTOR_E_BITS = 64
FACTOR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}]', re.DOTALL)
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}
_OKP_SIZES = {"Ed25519": 32, "Ed448": 57, "X25519": 32, "X448": 56}


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the JWK whose private member the rule matched; () unless proven."""
    lo = max(0, hit.start - MAX_BACK)
    window = bytes(hit.data[lo : hit.start + MAX_OBJECT])
    found = _enclosing_object(window, hit.start - lo, hit.end - lo)
    if found is None:
        return ()
    start, obj = found
    try:
        key = _private_key(obj)
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        return ()
    if key is None or not keymath.private_key_consistent(key):
        return ()
    algorithm, bits, curve, fp = keymath.describe_private_key(key)
    return (
        hit.finding(
            format="jwk",
            algorithm=algorithm,
            bits=bits,
            curve=curve,
            fingerprint=fp,
            validated=True,
            offset=hit.base_offset + lo + start,
        ),
    )


def _enclosing_object(
    window: bytes, rel_start: int, rel_end: int
) -> tuple[int, dict[str, Any]] | None:
    """(offset, object) of the innermost JSON object that contains the match, if it parses."""
    pos = rel_start
    for _ in range(MAX_CANDIDATES):
        pos = window.rfind(b"{", 0, pos)
        if pos < 0:
            return None
        end = _matching_brace(window, pos)
        if end is not None and end >= rel_end:
            try:
                obj = json.loads(window[pos:end].decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                return None
            return (pos, obj) if isinstance(obj, dict) else None
    return None


def _matching_brace(window: bytes, start: int) -> int | None:
    """Offset just past the `}` that closes the `{` at `start`, skipping braces in strings."""
    depth = 0
    for token in _TOKEN.finditer(window, start):
        text = token.group()
        if text == b"{":
            depth += 1
        elif text == b"}":
            depth -= 1
            if depth == 0:
                return token.end()
    return None


def _b64int(value: object) -> int:
    return int.from_bytes(_b64(value), "big")


def _b64(value: object) -> bytes:
    if not isinstance(value, str) or len(value) > MAX_MEMBER_CHARS or not _B64URL.fullmatch(value):
        raise ValueError("not base64url")
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def _private_key(jwk: dict[str, Any]) -> PrivateKeyTypes | None:
    kty = jwk.get("kty")
    if "d" not in jwk:
        return None
    if kty == "RSA":
        return _rsa(jwk)
    if kty == "EC":
        curve = _EC_CURVES.get(str(jwk.get("crv")))
        if curve is None:
            return None
        d = _b64int(jwk["d"])
        if d <= 0 or d.bit_length() > curve.key_size:
            return None
        key = ec.derive_private_key(d, curve)
        nums = key.public_key().public_numbers()
        if (nums.x, nums.y) != (_b64int(jwk["x"]), _b64int(jwk["y"])):
            return None
        return key
    if kty == "OKP":
        crv = str(jwk.get("crv"))
        size = _OKP_SIZES.get(crv)
        d_raw = _b64(jwk["d"])
        if size is None or len(d_raw) != size:
            return None
        okp = _okp(crv, d_raw)
        raw = okp.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return okp if raw == _b64(jwk["x"]) else None
    return None


def _okp(crv: str, d: bytes) -> PrivateKeyTypes:
    if crv == "Ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(d)
    if crv == "Ed448":
        return ed448.Ed448PrivateKey.from_private_bytes(d)
    if crv == "X25519":
        return x25519.X25519PrivateKey.from_private_bytes(d)
    return x448.X448PrivateKey.from_private_bytes(d)


def _rsa(jwk: dict[str, Any]) -> PrivateKeyTypes | None:
    n, e, d = _b64int(jwk["n"]), _b64int(jwk["e"]), _b64int(jwk["d"])
    if not keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS or n % 2 == 0:
        return None
    if not (1 < e < n and 1 < d < n):
        return None
    if "p" in jwk and "q" in jwk:
        p, q = _b64int(jwk["p"]), _b64int(jwk["q"])
    else:
        factors = factor_from_exponents(n, e, d)
        if factors is None:
            return None
        p, q = factors
    if not keymath.rsa_consistent(n, e, d, p, q):
        return None
    dmp1, dmq1, iqmp = d % (p - 1), d % (q - 1), pow(q, -1, p)
    if "dp" in jwk and _b64int(jwk["dp"]) != dmp1:
        return None
    if "dq" in jwk and _b64int(jwk["dq"]) != dmq1:
        return None
    if "qi" in jwk and _b64int(jwk["qi"]) != iqmp:
        return None
    public = rsa.RSAPublicNumbers(e, n)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key(
        unsafe_skip_rsa_key_validation=True
    )


def factor_from_exponents(n: int, e: int, d: int) -> tuple[int, int] | None:
    """(p, q) from n, e, d by the standard probabilistic method, with a fixed set of bases.

    One modular exponentiation refutes a wrong (e, d) before any search, so
    hostile input costs one exponentiation; n and e are capped (MAX_FACTOR_*).
    """
    if n.bit_length() > MAX_FACTOR_BITS or e.bit_length() > MAX_FACTOR_E_BITS:
        return None
    k = e * d - 1
    if k <= 0 or pow(2, k, n) != 1:
        return None
    r, s = k, 0
    while r % 2 == 0:
        r //= 2
        s += 1
    for g in FACTOR_BASES:
        y = pow(g, r, n)
        if y in (1, n - 1):
            continue
        for _ in range(s):
            x = pow(y, 2, n)
            if x == 1:
                p = math.gcd(y - 1, n)
                return keymath.rsa_recover_from_factor(n, p)
            if x == n - 1:
                break
            y = x
    return None
