"""Keys generated at run time, in every encoding the tests need. Nothing here is stored.

Each helper returns the encoded bytes and the fingerprint a correct scan must
report (`sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

Enc = serialization.Encoding
PrivFmt = serialization.PrivateFormat
NoEnc = serialization.NoEncryption()


@dataclass(frozen=True)
class Planted:
    """Encoded key bytes plus the expected fingerprint."""

    data: bytes
    fingerprint: str


def fingerprint(key: PrivateKeyTypes) -> str:
    der = key.public_key().public_bytes(Enc.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def bits_and_curve(key: PrivateKeyTypes) -> tuple[int | None, str | None]:
    """What a finding should say in `bits` and `curve` for this key (None where it has none)."""
    if isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        return key.key_size, None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.curve.key_size, key.curve.name
    return None, None


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def cached_rsa(bits: int, index: int = 0) -> rsa.RSAPrivateKey:
    """RSA generation is slow for big keys: tests share one per (bits, index) per session."""
    return rsa_key(bits)


def rsa2048(index: int = 0) -> rsa.RSAPrivateKey:
    """The session's shared RSA 2048 key number `index`."""
    return cached_rsa(2048, index)


@cache
def dsa1024() -> dsa.DSAPrivateKey:
    """One DSA 1024 key per session (the size legacy PEM and openssl -text tests use)."""
    return dsa.generate_private_key(key_size=1024)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ed448_key() -> ed448.Ed448PrivateKey:
    return ed448.Ed448PrivateKey.generate()


def x25519_key() -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.generate()


def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=2048)


def pem(
    key: PrivateKeyTypes, fmt: PrivFmt = PrivFmt.PKCS8, password: bytes | None = None
) -> Planted:
    enc = serialization.BestAvailableEncryption(password) if password else NoEnc
    return Planted(key.private_bytes(Enc.PEM, fmt, enc), fingerprint(key))


def der(key: PrivateKeyTypes, fmt: PrivFmt = PrivFmt.PKCS8) -> Planted:
    return Planted(key.private_bytes(Enc.DER, fmt, NoEnc), fingerprint(key))


def filler(size: int, seed: int = 1) -> bytes:
    """Deterministic random-looking filler (not key material)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def plant(payload: bytes, *, before: int = 100_000, after: int = 100_000, seed: int = 1) -> bytes:
    """Payload surrounded by filler, as a key sits inside a dump."""
    return filler(before, seed) + payload + filler(after, seed + 1)
