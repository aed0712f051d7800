"""age identities (age-keygen, SOPS `keys.txt`): `AGE-SECRET-KEY-1` and a bech32 X25519 key.

An identity is the Bech32 (BIP 173) encoding of a 32-byte X25519 private key
under the human-readable part `age-secret-key-`, written in upper case.
Every 32 bytes are a valid X25519 key, so what tells a key from a look-alike
is the code's 30-bit checksum (a random string passes one time in a
billion); the fingerprint names the X25519 public key, as age's `age1...`
recipient does. Post-quantum identities (`AGE-SECRET-KEY-PQ-1`, age 1.3)
carry a 32-byte seed under their own prefix: reported with the same proof,
without a fingerprint (cryptography has no ML-KEM-768 + X25519 here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import x25519

from agent.scan import keymath
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_PREFIXES = {"age-secret-key-": "x25519", "age-secret-key-pq-": "mlkem768x25519"}
MAX_CHARS = 128  # an identity is 74 characters (the post-quantum one 77)


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """The identity at the hit, when its checksum holds and it carries 32 bytes."""
    text = text_at(hit, MAX_CHARS)
    end = 0
    while end < len(text) and (text[end].isalnum() or text[end] == "-"):
        end += 1
    decoded = bech32_decode(text[:end].lower())
    if decoded is None:
        return ()
    hrp, key = decoded
    algorithm = _PREFIXES.get(hrp)
    if algorithm is None or len(key) != 32:
        return ()
    if algorithm != "x25519":
        return [hit.finding(algorithm=algorithm, validated=True, format="age-pq")]
    public = x25519.X25519PrivateKey.from_private_bytes(key).public_key()
    return [
        hit.finding(algorithm="x25519", validated=True, fingerprint=keymath.fingerprint(public))
    ]


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """(human-readable part, data bytes) of a valid Bech32 string (BIP 173), else None."""
    sep = text.rfind("1")
    if sep < 1 or len(text) - sep < 7 or any(c not in _CHARSET for c in text[sep + 1 :]):
        return None
    hrp = text[:sep]
    values = [_CHARSET.index(c) for c in text[sep + 1 :]]
    if _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values) != 1:
        return None
    acc = bits = 0
    out = bytearray()
    for v in values[:-6]:  # 5-bit groups to bytes; the padding must be zeros
        acc, bits = (acc << 5) | v, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        return None
    return hrp, bytes(out)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATORS):
            if (top >> i) & 1:
                chk ^= g
    return chk
