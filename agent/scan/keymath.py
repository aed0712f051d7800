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
from collections.abc import Callable

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
RSA_EXPONENTS = (65537, 3)  # tried in this order for keys found as bare numbers
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


def rsa_exponent(p: int, q: int, seen: Callable[[int], bool]) -> tuple[int, bool]:
    """(e, assumed) for a key found as p and q: e is proven when `seen` one of its private exponents.

    d mod lambda(n) (OpenSSL), d mod phi(n) (older tools), dP or dQ. When none
    was seen, 65537 is assumed (what nearly every key uses) and the caller says so.
    """
    phi = (p - 1) * (q - 1)
    lam = phi // math.gcd(p - 1, q - 1)
    for e in RSA_EXPONENTS:
        if math.gcd(e, phi) != 1:
            continue
        secrets = (pow(e, -1, p - 1), pow(e, -1, q - 1), pow(e, -1, lam), pow(e, -1, phi))
        if any(seen(s) for s in secrets):
            return e, False
    return RSA_EXPONENTS[0], True


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


def plausible_factors(p: int, q: int) -> bool:
    """p * q = n was found in memory: the smaller factor passes a Miller-Rabin round.

    Skipped above 2048 bits, where a round costs more than a few ms: two
    numbers of a modulus' halves whose product is that modulus are its primes
    unless built to mislead, and a misled finding still names a real factoring.
    """
    small = min(p, q)
    return small.bit_length() > 2048 or probably_prime(small, rounds=1)


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


# SM2 (GB/T 32918.5, the curve of Chinese commercial cryptography): cryptography has no SM2
# curve, so its scalar-to-point check is done here (affine result of a Jacobian ladder).
SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)
_SM2_SPKI_PREFIX = bytes.fromhex(
    "3059301306072a8648ce3d020106082a811ccf5501822d034200"
)  # SEQUENCE { id-ecPublicKey, sm2 }, BIT STRING (no unused bits) of the 65-byte point


def sm2_public_point(d: int) -> bytes | None:
    """The uncompressed public point (04 || x || y) of SM2 private key d, None when d is out of range."""
    if not 0 < d < SM2_N - 1:  # GB/T 32918: d in [1, n - 2]
        return None
    point = _sm2_affine(_sm2_multiply(d))
    if point is None:
        return None
    x, y = point
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def sm2_fingerprint(point: bytes) -> str:
    """Fingerprint of an SM2 public point (its SubjectPublicKeyInfo, as OpenSSL writes it)."""
    return "sha256:" + hashlib.sha256(_SM2_SPKI_PREFIX + point).hexdigest()


def _sm2_multiply(k: int) -> tuple[int, int, int]:
    """k * G in Jacobian coordinates (X, Y, Z), double-and-add over k's bits (a = -3)."""
    p = SM2_P
    gx, gy = SM2_G
    x1, y1, z1 = 0, 1, 0  # the point at infinity
    for bit in bin(k)[2:]:
        if z1:  # double
            delta = z1 * z1 % p
            gamma = y1 * y1 % p
            beta = x1 * gamma % p
            alpha = 3 * (x1 - delta) * (x1 + delta) % p
            x3 = (alpha * alpha - 8 * beta) % p
            z1 = ((y1 + z1) * (y1 + z1) - gamma - delta) % p
            y1 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
            x1 = x3
        if bit == "1":  # add G (affine)
            if not z1:
                x1, y1, z1 = gx, gy, 1
                continue
            zz = z1 * z1 % p
            h = (gx * zz - x1) % p
            r = (gy * z1 * zz - y1) % p
            if h == 0:
                return (0, 1, 0)  # G + (-G) or G + G: k is a multiple of n here, never a key
            hh = h * h % p
            hhh = h * hh % p
            v = x1 * hh % p
            x3 = (r * r - hhh - 2 * v) % p
            y1 = (r * (v - x3) - y1 * hhh) % p
            z1 = z1 * h % p
            x1 = x3
    return x1, y1, z1


def _sm2_affine(point: tuple[int, int, int]) -> tuple[int, int] | None:
    x, y, z = point
    if not z:
        return None
    zi = pow(z, -1, SM2_P)
    zi2 = zi * zi % SM2_P
    return x * zi2 % SM2_P, y * zi2 * zi % SM2_P
