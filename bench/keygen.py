"""Benchmark keys: deterministic from a seed, built at run time, encoded the ways dumps hold them.

Nothing here is stored in the repository. RSA primes come from a seeded
Miller-Rabin search so a corpus is reproducible byte for byte; the keys are
benchmark material only (never use them for anything else).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

Enc = serialization.Encoding
Priv = serialization.PrivateFormat
NoEnc = serialization.NoEncryption()

_SMALL_PRIMES = [p for p in range(3, 5000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_SMALL_PRODUCT = 1
for _p in _SMALL_PRIMES:
    _SMALL_PRODUCT *= _p


def _probable_prime(n: int, rng: random.Random, rounds: int = 12) -> bool:
    if math.gcd(n, _SMALL_PRODUCT) != 1:
        return n in _SMALL_PRIMES
    if pow(2, n - 1, n) != 1:  # one Fermat test rejects almost every composite cheaply
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int = 65537) -> int:
    while True:
        # top two bits set so p*q has exactly 2*bits bits
        cand = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (cand - 1) % e and _probable_prime(cand, rng):
            return cand


def rsa_from_seed(bits: int, rng: random.Random) -> rsa.RSAPrivateKey:
    """An RSA key whose primes come from `rng` (reproducible)."""
    e = 65537
    p = _prime(bits // 2, rng, e)
    q = _prime(bits // 2, rng, e)
    while q == p:
        q = _prime(bits // 2, rng, e)
    if p < q:
        p, q = q, p
    n = p * q
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    d = pow(e, -1, lam)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, n),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def ec_from_seed(curve: ec.EllipticCurve, rng: random.Random) -> ec.EllipticCurvePrivateKey:
    """An EC key with a seeded scalar."""
    order = {"secp256r1": 2**256, "secp384r1": 2**384}.get(curve.name, 2**256)
    return ec.derive_private_key(rng.randrange(1, order // 2), curve)


def ed25519_from_seed(rng: random.Random) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 key with a seeded 32-byte seed."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))


def fingerprint(key: PrivateKeyTypes) -> str:
    """`sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo (what the agent reports)."""
    der = key.public_key().public_bytes(Enc.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def algorithm(key: PrivateKeyTypes) -> str:
    """A short label for the manifest: rsa-2048, ec-secp256r1, ed25519."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ec-{key.curve.name}"
    return "ed25519"


def _b64u(n: int, size: int | None = None) -> str:
    raw = n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk(key: PrivateKeyTypes) -> bytes:
    """The key as a JWK with its private members (RFC 7517/7518/8037)."""
    if isinstance(key, rsa.RSAPrivateKey):
        pn = key.private_numbers()
        doc = {
            "kty": "RSA",
            "n": _b64u(pn.public_numbers.n),
            "e": _b64u(pn.public_numbers.e),
            "d": _b64u(pn.d),
            "p": _b64u(pn.p),
            "q": _b64u(pn.q),
            "dp": _b64u(pn.dmp1),
            "dq": _b64u(pn.dmq1),
            "qi": _b64u(pn.iqmp),
        }
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        en = key.private_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        doc = {
            "kty": "EC",
            "crv": crv,
            "x": _b64u(en.public_numbers.x, size),
            "y": _b64u(en.public_numbers.y, size),
            "d": _b64u(en.private_value, size),
        }
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(Enc.Raw, Priv.Raw, NoEnc)
        pub = key.public_key().public_bytes(Enc.Raw, serialization.PublicFormat.Raw)
        doc = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(pub).rstrip(b"=").decode(),
            "d": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        }
    doc["kid"] = "bench"
    return json.dumps(doc).encode()


def _le(n: int, size: int) -> bytes:
    return n.to_bytes(size, "little")


def rsa_limbs(key: rsa.RSAPrivateKey, rng: random.Random) -> bytes:
    """RSA as OpenSSL BIGNUM limbs in a core: little-endian n, p, q, d, dP, dQ, qInv.

    n appears three times and p, q twice, each in its own heap block (BIGNUM
    pointer words and a glibc chunk header before it), as measured in real cores.
    """
    pn = key.private_numbers()
    nsize = (key.key_size + 63) // 64 * 8
    psize = nsize // 2

    def gap(nbytes: int) -> bytes:
        # a BIGNUM struct's pointer words, then the glibc chunk header (prev_size, size | 1)
        # of the limb array's own allocation: each number starts a fresh heap block
        words = [0x00007F0000000000 | (rng.getrandbits(32) << 4) for _ in range(rng.randint(1, 4))]
        words += [0, ((nbytes + 8 + 15) & ~15) | 1]
        return b"".join(w.to_bytes(8, "little") for w in words)

    parts = [
        _le(pn.public_numbers.n, nsize),
        _le(pn.public_numbers.e, 8),
        _le(pn.d, nsize),
        _le(pn.p, psize),
        _le(pn.q, psize),
        _le(pn.dmp1, psize),
        _le(pn.dmq1, psize),
        _le(pn.iqmp, psize),
        _le(pn.public_numbers.n, nsize),
        _le(pn.p, psize),
        _le(pn.q, psize),
        _le(pn.public_numbers.n, nsize),
    ]
    return b"".join(gap(len(part)) + part for part in parts)


@dataclass(frozen=True)
class Encoded:
    """One planted key: its bytes and what the manifest records about it."""

    data: bytes
    encoding: str
    algorithm: str
    fingerprint: str


# encoding name -> which key kinds it applies to
ENCODINGS: dict[str, tuple[str, ...]] = {
    "pem-pkcs8": ("rsa", "ec", "ed25519"),
    "pem-pkcs1": ("rsa",),
    "pem-sec1": ("ec",),
    "der-pkcs8": ("rsa", "ec", "ed25519"),
    "der-pkcs1": ("rsa",),
    "der-sec1": ("ec",),
    "openssh": ("rsa", "ec", "ed25519"),
    "jwk": ("rsa", "ec", "ed25519"),
    "rsa-limbs-le": ("rsa",),
}


def kind_of(key: PrivateKeyTypes) -> str:
    """rsa | ec | ed25519."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec"
    return "ed25519"


def encode(key: PrivateKeyTypes, encoding: str, rng: random.Random) -> Encoded:
    """The key in one of ENCODINGS."""
    fmt = {
        "pem-pkcs8": (Enc.PEM, Priv.PKCS8),
        "pem-pkcs1": (Enc.PEM, Priv.TraditionalOpenSSL),
        "pem-sec1": (Enc.PEM, Priv.TraditionalOpenSSL),
        "der-pkcs8": (Enc.DER, Priv.PKCS8),
        "der-pkcs1": (Enc.DER, Priv.TraditionalOpenSSL),
        "der-sec1": (Enc.DER, Priv.TraditionalOpenSSL),
        "openssh": (Enc.PEM, Priv.OpenSSH),
    }
    if encoding in fmt:
        enc, priv = fmt[encoding]
        data = key.private_bytes(enc, priv, NoEnc)
    elif encoding == "jwk":
        data = jwk(key)
    elif encoding == "rsa-limbs-le":
        assert isinstance(key, rsa.RSAPrivateKey)
        data = rsa_limbs(key, rng)
    else:
        raise ValueError(f"unknown encoding {encoding}")
    return Encoded(data, encoding, algorithm(key), fingerprint(key))
