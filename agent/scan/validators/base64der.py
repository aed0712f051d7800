"""Base64 DER private keys without armour (env files, JSON/YAML values, k8s secrets).

The rules anchor on the base64 of each DER prefix (PKCS#8 RSA/EC/EdDSA,
PKCS#1 RSA, SEC1 EC, DSA) starting at a base64 group, so the match is the
first character of the key. This validator reads base64 forward from there,
skipping line breaks, indentation and the literal `\\n` escapes of string
literals, decodes exactly as many characters as the DER header says the key
needs (so whatever base64 follows does not matter) and proves the key.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.scan.validators.pem import finding_from_der

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_DER_BYTES = 48 * 1024  # an RSA-16384 PKCS#8 key is ~9.5 KiB
MAX_TEXT_BYTES = MAX_DER_BYTES * 2  # base64 (4/3) plus line breaks and escapes

# base64 characters, whitespace and the escapes a string literal puts at line ends
_RUN = re.compile(rb"(?:[A-Za-z0-9+/=]+|[ \t\r\n]+|\\[nrt])+")
_TRAILING_NOISE = re.compile(rb"(?:[ \t\r\n]|\\[nrt])+\Z")
_NOISE = re.compile(rb"[ \t\r\n]+|\\[nrt]")


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the base64 DER key that starts at the hit; () unless proven."""
    if _inside_armor(hit):
        return ()  # the PEM rule owns armoured bodies: one key, one finding
    der = decode_at(bytes(hit.data[hit.start : hit.start + MAX_TEXT_BYTES]))
    if der is None:
        return ()
    finding = finding_from_der(der, hit, "base64-der")
    return (finding,) if finding is not None else ()


def decode_at(text: bytes, max_bytes: int = MAX_DER_BYTES) -> bytes | None:
    """The DER SEQUENCE whose base64 starts `text`, or None when it is cut short or not base64."""
    chars = _base64_chars(text)
    try:
        head = base64.b64decode(chars[:8], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(head) < 6 or head[0] != 0x30:
        return None
    first = head[1]
    if first < 0x80:
        total = 2 + first
    elif first in (0x81, 0x82):
        count = first & 0x7F
        total = 2 + count + int.from_bytes(head[2 : 2 + count], "big")
    else:
        return None
    if total > max_bytes:
        return None
    need = -(-total // 3) * 4  # whole base64 groups covering the element
    body = chars[:need]
    if len(body) < need or b"=" in body[:-2]:
        return None  # truncated, or padding inside the key
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return der[:total] if len(der) >= total else None


def _inside_armor(hit: Hit) -> bool:
    """True when the base64 starts right after a `-----BEGIN ...-----` line."""
    before = bytes(hit.data[max(0, hit.start - 64) : hit.start])
    return _TRAILING_NOISE.sub(b"", before).endswith(b"-----")


def _base64_chars(text: bytes) -> bytes:
    """The base64 run at the start of `text`, without line breaks, indentation and `\\n` escapes."""
    run = _RUN.match(text)
    return _NOISE.sub(b"", run.group()) if run else b""
