"""WireGuard private keys in configuration files (wg-quick, wg setconf, systemd-networkd `.netdev`).

`PrivateKey = ` then 44 characters of base64: a 32-byte X25519 key. Every 32
bytes are an X25519 key, so what tells a key from a look-alike is the form
WireGuard gives its keys: `wg genkey` (and wireguard-go, boringtun) clamp
them, the low three bits of the first byte clear and the top two bits of
the last byte 01; a random value is clamped one time in 32, and a value
that is not base64 of 32 bytes (`<your key here>`, `$(wg genkey)`) is
nothing. The fingerprint names the X25519 public key (`wg pubkey`'s).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import x25519

from agent.scan import keymath
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

_LINE = re.compile(r"PrivateKey[ \t]*=[ \t]*([A-Za-z0-9+/]{43}=)(?![A-Za-z0-9+/=])")
MAX_CHARS = 96


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """The key on the `PrivateKey =` line at the hit, when it is a clamped X25519 key."""
    m = _LINE.match(text_at(hit, MAX_CHARS))
    if m is None:
        return ()
    try:
        key = base64.b64decode(m.group(1), validate=True)
    except (binascii.Error, ValueError):
        return ()
    if len(key) != 32 or key[0] & 0x07 or key[31] & 0xC0 != 0x40:
        return ()
    public = x25519.X25519PrivateKey.from_private_bytes(key).public_key()
    return [
        hit.finding(algorithm="x25519", validated=True, fingerprint=keymath.fingerprint(public))
    ]
