"""SSH Communications Security (ssh.com, Tectia) private keys, as `puttygen -O private-sshcom` writes them.

Armour `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` (RFC 4716 style: `Key:
value` headers, a trailing backslash continues a header line), base64 body,
`---- END SSH2 ENCRYPTED PRIVATE KEY ----` (the armour says ENCRYPTED even
for a clear key). The body (PuTTY's import.c):

    uint32 0x3f6ff9eb, uint32 total length, string key type, string cipher,
    string key data = uint32 length + (RSA) e, d, n, u, p, q
                                    | (DSA) uint32 0, p, g, q, y, x

Integers are ssh.com mpints: uint32 bit count, then the bytes big-endian.
Key types: `if-modn{sign{rsa...` (RSA) and `dl-modp{sign{dsa...` (DSA). A
clear key is proven (RSA: p*q = n, e*d = 1 mod lambda(n); DSA: y = g^x mod p);
a `3des-cbc` one is reported as encrypted when its structure parses (nothing
of the key, not even its public half, is in clear).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.scan import keymath
from agent.scan.validators.der import rsa_finding
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAGIC = 0x3F6FF9EB
BEGIN = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
END = "---- END SSH2 ENCRYPTED PRIVATE KEY ----"
MAX_CHARS = 64 * 1024  # an RSA-16384 key is about 12 KiB of base64
MAX_MPINT_BITS = 16384
FORMAT = "sshcom"


class _MalformedError(ValueError):
    """Not an ssh.com key (never carries its bytes)."""


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the ssh.com key whose armour starts at the hit."""
    try:
        blob = _body(text_at(hit, MAX_CHARS))
        return _parse(blob, hit)
    except (_MalformedError, struct.error, IndexError):
        return ()


def _body(text: str) -> bytes:
    if not text.startswith(BEGIN):
        raise _MalformedError("no armour")
    end = text.find(END, len(BEGIN))
    if end < 0:
        raise _MalformedError("no end line")
    lines = text[len(BEGIN) : end].replace("\r\n", "\n").split("\n")
    body: list[str] = []
    continued = False
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if continued or (not body and ":" in stripped):
            continued = stripped.endswith("\\")  # a header, or its continuation
            continue
        body.append(stripped)
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        raise _MalformedError("bad base64") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def u32(self) -> int:
        (value,) = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        return int(value)

    def string(self) -> bytes:
        n = self.u32()
        if self.at + n > len(self.data):
            raise _MalformedError("string past the end")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def mpint(self) -> int:
        bits = self.u32()
        if bits > MAX_MPINT_BITS:
            raise _MalformedError("integer too large")
        n = (bits + 7) // 8
        if self.at + n > len(self.data):
            raise _MalformedError("integer past the end")
        value = int.from_bytes(self.data[self.at : self.at + n], "big")
        self.at += n
        if value.bit_length() > bits:
            raise _MalformedError("integer longer than its bit count")
        return value


def _parse(blob: bytes, hit: Hit) -> Sequence[KeyFinding]:
    r = _Reader(blob)
    if r.u32() != MAGIC or r.u32() != len(blob):
        raise _MalformedError("not an ssh.com key blob")
    key_type = r.string().decode("latin-1")
    cipher = r.string().decode("latin-1")
    data = r.string()
    algorithm = (
        "rsa"
        if key_type.startswith("if-modn{sign{rsa")
        else "dsa"
        if key_type.startswith("dl-modp{sign{dsa")
        else None
    )
    if algorithm is None:
        raise _MalformedError("unknown key type")
    if cipher == "3des-cbc":
        if len(data) < 16 or len(data) % 8:
            raise _MalformedError("bad ciphertext length")
        return (hit.finding(format=FORMAT, algorithm=algorithm, validated=True, encrypted=True),)
    if cipher != "none":
        raise _MalformedError("unknown cipher")
    inner = _Reader(data)
    size = inner.u32()
    if size > len(data) - 4:
        raise _MalformedError("key data past the end")
    if algorithm == "rsa":
        e, d, n, _u, p, q = (inner.mpint() for _ in range(6))
        if not keymath.rsa_consistent(n, e, d, p, q):
            return ()
        return (rsa_finding(hit, n, e, FORMAT),)
    if inner.u32() != 0:
        raise _MalformedError("DSA with predefined parameters")
    p, g, q, y, x = (inner.mpint() for _ in range(5))
    public = keymath.dsa_proven(p, q, g, y, x)
    if public is None:
        return ()
    return (
        hit.finding(
            format=FORMAT,
            algorithm="dsa",
            bits=p.bit_length(),
            validated=True,
            fingerprint=keymath.fingerprint(public),
        ),
    )
