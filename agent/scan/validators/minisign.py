"""minisign and OpenBSD signify Ed25519 secret keys: an `untrusted comment:` line, then one base64 line.

minisign (`minisign -G`, 158 bytes): "Ed", KDF "Sc" (scrypt) or two zero bytes
(`-W`, no passphrase), checksum algorithm "B2", 32-byte salt, opslimit and
memlimit (64-bit little-endian), then key id (8), secret key (64: seed and
public key) and checksum (32), XORed with the scrypt output when protected.
signify (`signify -G`, 104 bytes): "Ed", "BK" (bcrypt_pbkdf), rounds (32-bit
big-endian, 0 with `-n`), salt (16), checksum (the first 8 bytes of the
secret key's SHA-512), key number (8), secret key (64), XORed when rounds > 0.
A clear key is proven by its seed giving the public key stored beside it
(signify's checksum too); a protected one is reported as encrypted when its
fields are plausible: nothing of it is readable without the passphrase.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.scan import keymath
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MINISIGN_BYTES = 158
SIGNIFY_BYTES = 104
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
MAX_COMMENT = 1024  # minisign lets a user write any comment; the key line follows it
MAX_CHARS = MAX_COMMENT + 4 * ((MINISIGN_BYTES + 2) // 3) + 2


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """The minisign or signify secret key on the line after the comment at the hit."""
    text = text_at(hit, MAX_CHARS).encode("latin-1")
    start = text.find(b"\n", 0, MAX_COMMENT) + 1
    if start == 0:
        return ()
    end = start
    while end < len(text) and text[end] in _B64:
        end += 1
    try:
        blob = base64.b64decode(text[start:end], validate=True)
    except (binascii.Error, ValueError):
        return ()
    if len(blob) == MINISIGN_BYTES and blob[:2] == b"Ed" and blob[4:6] == b"B2":
        return _minisign(hit, blob)
    if len(blob) == SIGNIFY_BYTES and blob[:4] == b"EdBK":
        return _signify(hit, blob)
    return ()


def _minisign(hit: Hit, blob: bytes) -> Sequence[KeyFinding]:
    kdf = blob[2:4]
    opslimit, memlimit = struct.unpack_from("<QQ", blob, 38)
    secret = blob[62:126]
    if kdf == b"\0\0":
        return _proven(hit, secret, "minisign")
    # scrypt limits minisign writes: 2^25 ops and 1 GiB by default; any sane pair passes
    if kdf == b"Sc" and 0 < opslimit < 2**40 and 0 < memlimit < 2**40:
        return [hit.finding(algorithm="ed25519", validated=True, encrypted=True, format="minisign")]
    return ()


def _signify(hit: Hit, blob: bytes) -> Sequence[KeyFinding]:
    (rounds,) = struct.unpack_from(">I", blob, 4)
    checksum, secret = blob[24:32], blob[40:104]
    if rounds == 0:
        if hashlib.sha512(secret).digest()[:8] != checksum:
            return ()
        return _proven(hit, secret, "signify")
    if rounds <= 1 << 20:  # signify uses 42 rounds
        return [hit.finding(algorithm="ed25519", validated=True, encrypted=True, format="signify")]
    return ()


def _proven(hit: Hit, secret: bytes, fmt: str) -> Sequence[KeyFinding]:
    """Seed (32) and public key (32): a key when the seed gives that public key."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(secret[:32])
    public = key.public_key()
    if (
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        != secret[32:]
    ):
        return ()
    return [
        hit.finding(
            algorithm="ed25519",
            validated=True,
            format=fmt,
            fingerprint=keymath.fingerprint(public),
        )
    ]
