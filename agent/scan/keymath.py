"""Cheap, bounded arithmetic that proves a key, and the fingerprint that names it.

cryptography's own RSA key check costs seconds on a large (hostile) key, so
validators load keys with that check skipped and prove consistency here:
p * q = n, e * d = 1 mod lambda(n), CRT values. Every integer is capped.

The fingerprint is `sha256:` + hex SHA-256 of the public key's DER
SubjectPublicKeyInfo, the value `openssl pkey -pubout -outform DER | sha256sum`
prints, so a finding can be matched against any key inventory.
"""

from __future__ import annotations

import hashlib
import math

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

MAX_RSA_BITS = 16384
MIN_RSA_BITS = 512
MAX_DSA_P_BITS = 8192
MAX_DSA_Q_BITS = 512
SMALL_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


def fingerprint(public_key: PublicKeyTypes) -> str:
    """`sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def rsa_fingerprint(n: int, e: int) -> str:
    """Fingerprint of the RSA public key (n, e)."""
    return fingerprint(rsa.RSAPublicNumbers(e, n).public_key())


def rsa_consistent(
    n: int,
    e: int | None,
    d: int | None,
    p: int | None,
    q: int | None,
) -> bool:
    """True when the numbers given form one RSA key: p*q = n and e*d = 1 mod lambda(n).

    Bounded: refuses moduli outside 512..16384 bits before any big arithmetic.
    """
    if not (MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS) or n % 2 == 0:
        return False
    if p is None or q is None:
        return False
    if p <= 1 or q <= 1 or p * q != n:
        return False
    if e is None or d is None:
        return True
    if not (1 < e < n and 1 < d < n):
        return False
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    return (e * d) % lam == 1


def dsa_proven(p: int, q: int, g: int, y: int, x: int) -> dsa.DSAPublicKey | None:
    """The public key when x is the private key of (p, q, g, y): y = g^x mod p, q | p - 1.

    Bounded: a real q is 160-256 bits and p at most 3072 (FIPS 186) or 8192 (some
    tools); larger numbers are refused before g^x, which would cost seconds.
    """
    if p.bit_length() > MAX_DSA_P_BITS or q.bit_length() > MAX_DSA_Q_BITS:
        return None
    if not (1 < g < p and 0 < x < q and q > 1 and (p - 1) % q == 0 and pow(g, x, p) == y):
        return None
    return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()


def rsa_recover_from_factor(n: int, factor: int) -> tuple[int, int] | None:
    """(p, q) when `factor` divides n non-trivially, else None."""
    if factor <= 1 or factor >= n or n % factor:
        return None
    other = n // factor
    return (max(factor, other), min(factor, other))


def rsa_exponent_from_d(p: int, q: int, d: int) -> int | None:
    """e = d^-1 mod lambda(n), when d is invertible."""
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    try:
        e = pow(d, -1, lam)
    except ValueError:
        return None
    return e


def probably_prime(x: int, rounds: int = 4) -> bool:
    """Miller-Rabin with fixed bases: cheap filter for candidate primes from memory."""
    if x < 2:
        return False
    for sp in (2, *SMALL_PRIMES):
        if x % sp == 0:
            return x == sp
    d, s = x - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in (2, 3, 5, 7, 11, 13, 17)[:rounds]:
        y = pow(a, d, x)
        if y in (1, x - 1):
            continue
        for _ in range(s - 1):
            y = pow(y, 2, x)
            if y == x - 1:
                break
        else:
            return False
    return True


def describe_private_key(key: PrivateKeyTypes) -> tuple[str, int | None, str | None, str]:
    """(algorithm, bits, curve, fingerprint) of a private key object already proven consistent."""
    public = key.public_key()
    fp = fingerprint(public)
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa", key.key_size, None, fp
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec", key.curve.key_size, key.curve.name, fp
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa", key.key_size, None, fp
    name = type(key).__name__.removeprefix("_").lower()
    for algo in ("ed25519", "ed448", "x25519", "x448"):
        if algo in name:
            return algo, None, None, fp
    return name, None, None, fp


def private_key_consistent(key: PrivateKeyTypes) -> bool:
    """Arithmetic proof for a key object loaded with the library's RSA check skipped.

    RSA: p*q = n, e*d = 1 mod lambda(n), and the CRT values match.
    EC: the library already checked the scalar against the public point on load.
    DSA: y = g^x mod p. Others (Ed/X curves): any scalar is a key; structure decides.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        pub = nums.public_numbers
        if not rsa_consistent(pub.n, pub.e, nums.d, nums.p, nums.q):
            return False
        return (
            nums.dmp1 == nums.d % (nums.p - 1)
            and nums.dmq1 == nums.d % (nums.q - 1)
            and (nums.iqmp * nums.q) % nums.p == 1
        )
    if isinstance(key, dsa.DSAPrivateKey):
        dnums = key.private_numbers()
        params = dnums.public_numbers.parameter_numbers
        # bound the exponentiation: hostile parameters would cost seconds per hit
        if params.p.bit_length() > 8192 or params.q.bit_length() > 512:
            return False
        if not 0 < dnums.x < params.q:
            return False
        return pow(params.g, dnums.x, params.p) == dnums.public_numbers.y
    return True
