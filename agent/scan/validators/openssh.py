"""OpenSSH openssh-key-v1 binary private keys: the public blob names the key, the private section proves it.

Layout: "openssh-key-v1\\0", string ciphername, string kdfname, string
kdfoptions, uint32 nkeys, nkeys public key blobs, then the private section
(encrypted unless ciphername is "none"): two equal check integers, then per
key its type, numbers and a comment. An unencrypted key is validated by its
arithmetic and must match its public blob; an encrypted one is validated when
the whole structure parses plausibly, and named by its public blob. A bare
public blob (what ssh-agent memory holds) has no magic and is never a finding.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from agent.scan import keymath
from agent.scan.validators.der import ec_private_key, rsa_proven

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAGIC = b"openssh-key-v1\x00"
MAX_BLOB_BYTES = 64 * 1024  # an RSA-16384 key with a long comment fits many times over
MAX_KEYS = 8  # OpenSSH itself writes one
MAX_MPINT_BYTES = 16384 // 8 + 1
MAX_BCRYPT_ROUNDS = 1 << 16  # plausibility only: nothing here runs the KDF

_CURVES: dict[bytes, ec.EllipticCurve] = {
    b"nistp256": ec.SECP256R1(),
    b"nistp384": ec.SECP384R1(),
    b"nistp521": ec.SECP521R1(),
}
# ciphername -> block size the encrypted private section must be a multiple of
_CIPHERS = {
    b"aes128-ctr": 16,
    b"aes192-ctr": 16,
    b"aes256-ctr": 16,
    b"aes128-cbc": 16,
    b"aes192-cbc": 16,
    b"aes256-cbc": 16,
    b"3des-cbc": 8,
    b"aes128-gcm@openssh.com": 16,
    b"aes256-gcm@openssh.com": 16,
    b"chacha20-poly1305@openssh.com": 8,
}
_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, OverflowError, IndexError, struct.error)


class _TruncatedError(ValueError):
    """The structure claims more bytes than there are (never carries the bytes)."""


class _Reader:
    """SSH wire-format reader over a bounded view: every length is checked against what is left."""

    def __init__(self, buf: memoryview | bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = memoryview(buf)
        self.pos = pos
        self.end = len(self.buf) if end is None else min(end, len(self.buf))

    def u32(self) -> int:
        if self.pos + 4 > self.end:
            raise _TruncatedError("uint32")
        (value,) = struct.unpack_from(">I", self.buf, self.pos)
        self.pos += 4
        return int(value)

    def string(self, cap: int | None = None) -> bytes:
        size = self.u32()
        if self.pos + size > self.end or (cap is not None and size > cap):
            raise _TruncatedError("string")
        out = bytes(self.buf[self.pos : self.pos + size])
        self.pos += size
        return out

    def mpint(self) -> int:
        raw = self.string(MAX_MPINT_BYTES)
        if raw and raw[0] & 0x80:
            raise ValueError("negative mpint")
        return int.from_bytes(raw, "big")

    def done(self) -> bool:
        return self.pos == self.end


@dataclass(frozen=True, slots=True)
class _Public:
    """What a public key blob says: its type, the key object and the raw values to compare."""

    keytype: bytes
    key: PublicKeyTypes
    values: tuple[int | bytes, ...]


def validate_binary(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for a raw openssh-key-v1 structure at the hit (format "openssh-key-v1")."""
    view = hit.data[hit.start : hit.start + MAX_BLOB_BYTES]
    return _findings(view, hit, "openssh-key-v1")


def findings_from_blob(blob: bytes, hit: Hit, *, fmt: str) -> Sequence[KeyFinding]:
    """Findings for a decoded openssh-key-v1 blob (also used by the PEM validator's armour)."""
    return _findings(blob[:MAX_BLOB_BYTES], hit, fmt)


def _findings(buf: memoryview | bytes, hit: Hit, fmt: str) -> Sequence[KeyFinding]:
    try:
        return _parse(_Reader(buf), hit, fmt)
    except _ERRORS:
        # hostile bytes end here: any parse failure means "not a key"
        return ()


def _parse(r: _Reader, hit: Hit, fmt: str) -> Sequence[KeyFinding]:
    if bytes(r.buf[: len(MAGIC)]) != MAGIC:
        return ()
    r.pos = len(MAGIC)
    cipher = r.string(64)
    kdf = r.string(64)
    kdf_options = r.string(1024)
    nkeys = r.u32()
    if not 1 <= nkeys <= MAX_KEYS:
        return ()
    publics = [_public(r.string()) for _ in range(nkeys)]
    section = r.string()
    if cipher == b"none":
        if kdf != b"none" or kdf_options:
            return ()
        return _plain(section, publics, hit, fmt)
    if not _encryption_plausible(cipher, kdf, kdf_options, len(section)):
        return ()
    return tuple(
        hit.finding(
            format=fmt,
            validated=True,
            encrypted=True,
            fingerprint=keymath.fingerprint(pub.key),
            **_describe(pub.key),
        )
        for pub in publics
    )


def _plain(section: bytes, publics: list[_Public], hit: Hit, fmt: str) -> Sequence[KeyFinding]:
    r = _Reader(section)
    if r.u32() != r.u32():
        return ()  # the check integers differ: a wrong key or a garbled section
    out: list[KeyFinding] = []
    for pub in publics:
        if r.string(64) != pub.keytype or not _private_matches(r, pub):
            return ()
        r.string(4096)  # comment
        out.append(
            hit.finding(
                format=fmt,
                validated=True,
                fingerprint=keymath.fingerprint(pub.key),
                **_describe(pub.key),
            )
        )
    padding = bytes(r.buf[r.pos : r.end])
    if padding != bytes(range(1, len(padding) + 1)):
        return ()  # OpenSSH pads with 1, 2, 3, ...; anything else is not its output
    return tuple(out)


def _private_matches(r: _Reader, pub: _Public) -> bool:
    """Reads one key's private fields and proves them against its public blob."""
    if pub.keytype == b"ssh-rsa":
        n, e, d, iqmp, p, q = (r.mpint() for _ in range(6))
        return (e, n) == pub.values and rsa_proven(n, e, d, p, q, qinv=iqmp)
    if pub.keytype == b"ssh-ed25519":
        public, secret = r.string(32), r.string(64)
        if len(public) != 32 or len(secret) != 64 or (public,) != pub.values:
            return False
        derived = ed25519.Ed25519PrivateKey.from_private_bytes(secret[:32]).public_key()
        raw = derived.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw == public == secret[32:]
    if pub.keytype.startswith(b"ecdsa-sha2-"):
        name, point, scalar = r.string(16), r.string(256), r.mpint()
        if (name, point) != pub.values:
            return False
        return ec_private_key(scalar, _CURVES[name], point) is not None
    if pub.keytype == b"ssh-dss":
        p, q, g, y, x = (r.mpint() for _ in range(5))
        return (p, q, g, y) == pub.values and 0 < x < q and pow(g, x, p) == y
    return False


def _public(blob: bytes) -> _Public:
    """Parse a public key blob; raises ValueError for anything that is not a supported key."""
    r = _Reader(blob)
    keytype = r.string(64)
    key: PublicKeyTypes
    values: tuple[int | bytes, ...]
    if keytype == b"ssh-rsa":
        e, n = r.mpint(), r.mpint()
        if not keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS:
            raise ValueError("modulus size")
        key, values = rsa.RSAPublicNumbers(e, n).public_key(), (e, n)
    elif keytype == b"ssh-ed25519":
        raw = r.string(32)
        key, values = ed25519.Ed25519PublicKey.from_public_bytes(raw), (raw,)
    elif keytype.startswith(b"ecdsa-sha2-"):
        name, point = r.string(16), r.string(256)
        if keytype != b"ecdsa-sha2-" + name or name not in _CURVES:
            raise ValueError("curve")
        key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[name], point)
        values = (name, point)
    elif keytype == b"ssh-dss":
        p, q, g, y = (r.mpint() for _ in range(4))
        if p.bit_length() > 4096:
            raise ValueError("DSA size")
        params = dsa.DSAParameterNumbers(p, q, g)
        key, values = dsa.DSAPublicNumbers(y, params).public_key(), (p, q, g, y)
    else:
        raise ValueError("unsupported key type")
    if not r.done():
        raise ValueError("trailing bytes in public blob")
    return _Public(keytype, key, values)


def _encryption_plausible(cipher: bytes, kdf: bytes, options: bytes, section: int) -> bool:
    block = _CIPHERS.get(cipher)
    if block is None or kdf != b"bcrypt" or section < 16 or section % block:
        return False
    r = _Reader(options)
    salt = r.string(64)
    rounds = r.u32()
    return len(salt) >= 8 and 1 <= rounds <= MAX_BCRYPT_ROUNDS and r.done()


def _describe(key: PublicKeyTypes) -> dict[str, object]:
    if isinstance(key, rsa.RSAPublicKey):
        return {"algorithm": "rsa", "bits": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"algorithm": "ec", "bits": key.curve.key_size, "curve": key.curve.name}
    if isinstance(key, dsa.DSAPublicKey):
        return {"algorithm": "dsa", "bits": key.key_size}
    return {"algorithm": "ed25519"}
