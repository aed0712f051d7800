"""PuTTY PPK v2/v3 private keys: parse the file at a hit, check its MAC, prove the key.

Layout (PuTTY manual, appendix C): a `PuTTY-User-Key-File-N: ALG` line,
`Encryption`, `Comment`, `Public-Lines` + base64 public blob, for encrypted v3
the Argon2 parameters, `Private-Lines` + base64 private blob, `Private-MAC`.
The public blob is always in clear, so every PPK gets a fingerprint. A clear
key must carry a valid MAC (v2: HMAC-SHA1 keyed with
SHA-1("putty-private-key-file-mac-key"); v3: HMAC-SHA-256 with an empty key)
and a private blob that proves the public one. An encrypted key (aes256-cbc)
is reported when the structure parses: without the passphrase nothing more
can be known.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from agent.scan import keymath
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_LINES = 1024  # an RSA-16384 private blob is ~60 lines of 64 characters
V2_MAC_KEY = hashlib.sha1(b"putty-private-key-file-mac-key").digest()  # noqa: S324 - the format's own KDF

_HEAD = re.compile(r"PuTTY-User-Key-File-([23]): ([A-Za-z0-9@._-]{1,64})\Z")
_CURVES: dict[str, ec.EllipticCurve] = {
    "nistp256": ec.SECP256R1(),
    "nistp384": ec.SECP384R1(),
    "nistp521": ec.SECP521R1(),
}
_ARGON2 = ("Argon2id", "Argon2i", "Argon2d")


class _MalformedError(ValueError):
    """The file is not a PPK (never carries its bytes)."""


@dataclass(frozen=True, slots=True)
class Ppk:
    """The parts of a PPK file that the MAC covers, plus its version and MAC."""

    version: int
    algorithm: str
    encryption: str
    comment: bytes
    public: bytes
    private: bytes
    mac: bytes
    kdf: dict[str, str]


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the PPK file at the hit; () for anything that is not a proven one."""
    try:
        ppk = parse(text_at(hit))
        public_key, algorithm = _public_key(ppk.algorithm, ppk.public)
        if ppk.encryption == "none":
            if not hmac.compare_digest(mac_of(ppk), ppk.mac):
                return ()
            if not _private_matches(ppk.algorithm, ppk.public, ppk.private):
                return ()
            encrypted = False
        elif not _encrypted_plausible(ppk):
            return ()
        else:
            encrypted = True
    except (_MalformedError, ValueError, TypeError, UnsupportedAlgorithm):
        return ()
    bits: int | None = None
    curve: str | None = None
    if isinstance(public_key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        bits = public_key.key_size
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        bits, curve = public_key.curve.key_size, public_key.curve.name
    return (
        hit.finding(
            format="ppk",
            algorithm=algorithm,
            bits=bits,
            curve=curve,
            fingerprint=keymath.fingerprint(public_key),
            validated=True,
            encrypted=encrypted,
        ),
    )


def mac_of(ppk: Ppk, mac_key: bytes | None = None) -> bytes:
    """The Private-MAC a clear PPK must carry (or, given the derived key, an encrypted one)."""
    data = b"".join(
        _ssh_string(x)
        for x in (
            ppk.algorithm.encode(),
            ppk.encryption.encode(),
            ppk.comment,
            ppk.public,
            ppk.private,
        )
    )
    if ppk.version == 2:
        return hmac.new(V2_MAC_KEY if mac_key is None else mac_key, data, "sha1").digest()
    return hmac.new(b"" if mac_key is None else mac_key, data, "sha256").digest()


def parse(text: str) -> Ppk:
    """Parse a PPK v2/v3 file from its first line; raises _MalformedError."""
    lines = iter(text.replace("\r\n", "\n").split("\n"))
    head = _HEAD.match(next(lines, "").rstrip())
    if head is None:
        raise _MalformedError("header")
    version = int(head.group(1))
    encryption = _field(lines, "Encryption")
    if encryption not in ("none", "aes256-cbc"):
        raise _MalformedError("encryption")
    comment = _field(lines, "Comment").encode("latin-1")
    public = _blob(lines, "Public-Lines")
    kdf: dict[str, str] = {}
    if version == 3 and encryption != "none":
        for name in ("Key-Derivation", "Argon2-Memory", "Argon2-Passes", "Argon2-Parallelism"):
            kdf[name] = _field(lines, name)
        kdf["Argon2-Salt"] = _field(lines, "Argon2-Salt")
    private = _blob(lines, "Private-Lines")
    try:
        mac = bytes.fromhex(_field(lines, "Private-MAC"))
    except ValueError:
        raise _MalformedError("mac") from None
    if len(mac) != (20 if version == 2 else 32):
        raise _MalformedError("mac length")
    return Ppk(version, head.group(2), encryption, comment, public, private, mac, kdf)


def _field(lines: Iterator[str], name: str) -> str:
    line = next(lines, "")
    prefix = name + ": "
    if not line.startswith(prefix):
        raise _MalformedError(name)
    return line[len(prefix) :].rstrip()


def _blob(lines: Iterator[str], name: str) -> bytes:
    value = _field(lines, name)
    if not value.isdigit() or not 0 < int(value) <= MAX_LINES:
        raise _MalformedError(name)
    parts = [next(lines, "").strip() for _ in range(int(value))]
    try:
        return base64.b64decode("".join(parts), validate=True)
    except (binascii.Error, ValueError):
        raise _MalformedError(name) from None


def _encrypted_plausible(ppk: Ppk) -> bool:
    """aes256-cbc: whole blocks; v3 also needs sane Argon2 parameters."""
    if not ppk.private or len(ppk.private) % 16:
        return False
    if ppk.version == 2:
        return True
    if ppk.kdf.get("Key-Derivation") not in _ARGON2:
        return False
    numbers = [ppk.kdf[k] for k in ("Argon2-Memory", "Argon2-Passes", "Argon2-Parallelism")]
    if not all(n.isdigit() and 0 < int(n) < 1 << 32 for n in numbers):
        return False
    salt = ppk.kdf["Argon2-Salt"]
    return len(salt) >= 16 and all(c in "0123456789abcdefABCDEF" for c in salt)


class _Wire:
    """SSH wire-format reader (RFC 4251): uint32-length strings and mpints."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.buf):
            raise _MalformedError("truncated")
        n = int.from_bytes(self.buf[self.pos : self.pos + 4], "big")
        if n > 8192 or self.pos + 4 + n > len(self.buf):
            raise _MalformedError("string length")
        out = self.buf[self.pos + 4 : self.pos + 4 + n]
        self.pos += 4 + n
        return out

    def mpint(self) -> int:
        raw = self.string()
        if raw[:1] and raw[0] & 0x80:
            raise _MalformedError("negative mpint")
        return int.from_bytes(raw, "big")


def _ssh_string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _public_key(algorithm: str, blob: bytes) -> tuple[PublicKeyTypes, str]:
    w = _Wire(blob)
    if w.string().decode("latin-1") != algorithm:
        raise _MalformedError("key type mismatch")
    if algorithm == "ssh-rsa":
        e, n = w.mpint(), w.mpint()
        if not keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS:
            raise _MalformedError("modulus size")
        return rsa.RSAPublicNumbers(e, n).public_key(), "rsa"
    if algorithm == "ssh-ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(w.string()), "ed25519"
    if algorithm == "ssh-ed448":
        return ed448.Ed448PublicKey.from_public_bytes(w.string()), "ed448"
    if algorithm.startswith("ecdsa-sha2-"):
        curve = _CURVES.get(w.string().decode("latin-1"))
        if curve is None or algorithm != "ecdsa-sha2-" + _curve_name(curve):
            raise _MalformedError("curve")
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, w.string()), "ec"
    if algorithm == "ssh-dss":
        p, q, g, y = w.mpint(), w.mpint(), w.mpint(), w.mpint()
        return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key(), "dsa"
    raise _MalformedError("algorithm")


def _curve_name(curve: ec.EllipticCurve) -> str:
    return next(k for k, v in _CURVES.items() if v.name == curve.name)


def _private_matches(algorithm: str, public: bytes, private: bytes) -> bool:
    """The clear private blob proves the public blob."""
    pw, w = _Wire(public), _Wire(private)
    pw.string()
    if algorithm == "ssh-rsa":
        e, n = pw.mpint(), pw.mpint()
        d, p, q, iqmp = w.mpint(), w.mpint(), w.mpint(), w.mpint()
        return keymath.rsa_consistent(n, e, d, p, q) and (iqmp * q) % p == 1
    if algorithm in ("ssh-ed25519", "ssh-ed448"):
        size = 32 if algorithm == "ssh-ed25519" else 57
        # PuTTY writes the seed as a little-endian integer, so high zero octets are dropped
        seed = w.string()
        if len(seed) > size:
            return False
        seed = seed.ljust(size, b"\0")
        derived = (
            ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
            if size == 32
            else ed448.Ed448PrivateKey.from_private_bytes(seed).public_key()
        )
        raw = derived.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hmac.compare_digest(raw, pw.string())
    if algorithm.startswith("ecdsa-sha2-"):
        curve = _CURVES[pw.string().decode("latin-1")]
        point = pw.string()
        d = w.mpint()
        if d <= 0 or d.bit_length() > curve.key_size:
            return False
        derived_point = (
            ec.derive_private_key(d, curve)
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        return hmac.compare_digest(derived_point, point)
    if algorithm == "ssh-dss":
        p, q, g, y = pw.mpint(), pw.mpint(), pw.mpint(), pw.mpint()
        return keymath.dsa_proven(p, q, g, y, w.mpint()) is not None
    return False
