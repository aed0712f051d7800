"""`openssl pkey|rsa|ec -text` output: a private key printed as labelled, colon-separated hex.

RSA ("Private-Key: (2048 bit, 2 primes)", modulus, publicExponent, ...,
coefficient) is proven by arithmetic; EC (priv, pub, "ASN1 OID" / "NIST CURVE")
by deriving the public point from priv; DSA (priv, pub, P, Q, G) by y = g^x
mod p; Ed25519/X25519/Ed448/X448 by deriving pub from priv. LF or CRLF. Parsing stops at the first line that is neither a
label nor a hex line, and at MAX_LINES, so a hit reads a bounded amount.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from agent.scan.validators.der import (
    ec_finding,
    ec_private_key,
    okp_finding,
    rsa_finding,
    rsa_proven,
)
from agent.scan.validators.pem import text_at

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

# RSA-16384: eight members of up to 2 KiB, printed at ~3.3 characters per byte
MAX_TEXT_CHARS = 96 * 1024
MAX_LINES = 4000
MAX_VALUE_BYTES = keymath.MAX_RSA_BITS // 8 + 1

_LABEL = re.compile(r"([A-Za-z0-9 ]{1,24}):[ \t]*(.*)")
_HEX_LINE = re.compile(r"[ \t]+((?:[0-9a-fA-F]{2}:)*[0-9a-fA-F]{2}):?[ \t]*")
_EXPONENT = re.compile(r"(\d{1,20})(?: \(0x[0-9a-fA-F]+\))?")
_TYPE_PREFIXES = (b"ED25519 ", b"X25519 ", b"ED448 ", b"X448 ", b"RSA ")
_OKP_HEAD = re.compile(r"(ED25519|X25519|ED448|X448) Private-Key:")

_CURVES: dict[str, ec.EllipticCurve] = {
    "prime256v1": ec.SECP256R1(),
    "P-256": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "P-384": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
    "P-521": ec.SECP521R1(),
    "secp224r1": ec.SECP224R1(),
    "P-224": ec.SECP224R1(),
    "secp256k1": ec.SECP256K1(),
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
    "brainpoolP512r1": ec.BrainpoolP512R1(),
}
_RSA_MEMBERS = ("modulus", "privateExponent", "prime1", "prime2")


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the printed key at the hit, when its numbers prove a private key."""
    hit = _line_start(hit)
    text = text_at(hit, MAX_TEXT_CHARS).replace("\r\n", "\n")
    head, _, rest = text.partition("\n")
    fields = _fields(rest)
    if fields is None:
        return ()
    okp = _OKP_HEAD.match(head)
    if okp is not None:
        return _okp(hit, okp.group(1), fields)
    if "modulus" in fields:
        return _rsa(hit, fields)
    if all(k in fields for k in ("priv", "pub", "P", "Q", "G")):
        return _dsa(hit, fields)
    if "priv" in fields:
        return _ec(hit, fields)
    return ()


def _line_start(hit: Hit) -> Hit:
    """The hit moved back over the key type the rule's literal leaves out ("ED25519 ", "RSA ")."""
    before = bytes(hit.data[max(0, hit.start - 8) : hit.start])
    for name in _TYPE_PREFIXES:
        if before.endswith(name):
            return dataclasses.replace(hit, start=hit.start - len(name))
    return hit


def _fields(text: str) -> dict[str, bytes | str] | None:
    """label -> hex block as bytes (or the inline text after the colon), in the order printed."""
    fields: dict[str, bytes | str] = {}
    current: list[str] | None = None
    label = ""
    for line in text.split("\n", MAX_LINES)[:MAX_LINES]:
        hex_line = _HEX_LINE.fullmatch(line)
        if hex_line is not None and current is not None:
            current.append(hex_line.group(1))
            continue
        if current is not None:
            fields[label] = _hex_bytes(current)
            current = None
        named = _LABEL.fullmatch(line)
        if named is None or named.group(1) in fields:
            break  # the end of the printout (or a second key: read on its own hit)
        label, value = named.group(1), named.group(2).strip()
        if value:
            fields[label] = value
        else:
            current = []
    if current is not None:
        fields[label] = _hex_bytes(current)
    if any(isinstance(v, bytes) and len(v) > MAX_VALUE_BYTES for v in fields.values()):
        return None
    return fields


def _hex_bytes(lines: list[str]) -> bytes:
    return bytes.fromhex("".join(lines).replace(":", ""))


def _int(fields: dict[str, bytes | str], name: str) -> int | None:
    value = fields.get(name)
    return int.from_bytes(value, "big") if isinstance(value, bytes) and value else None


def _rsa(hit: Hit, fields: dict[str, bytes | str]) -> Sequence[KeyFinding]:
    n, d, p, q = (_int(fields, k) for k in _RSA_MEMBERS)
    e = _exponent(fields.get("publicExponent"))
    if n is None or e is None or d is None or p is None or q is None:
        return ()  # `-pubin -text` prints modulus and exponent only: no key
    dp, dq, qinv = (_int(fields, k) for k in ("exponent1", "exponent2", "coefficient"))
    if not rsa_proven(n, e, d, p, q, dp=dp, dq=dq, qinv=qinv):
        return ()
    return (rsa_finding(hit, n, e, "openssl-text-rsa"),)


def _exponent(value: bytes | str | None) -> int | None:
    if isinstance(value, bytes):
        return int.from_bytes(value, "big") if value else None  # large e is printed as a block
    m = _EXPONENT.fullmatch(value or "")
    return int(m.group(1)) if m else None


def _ec(hit: Hit, fields: dict[str, bytes | str]) -> Sequence[KeyFinding]:
    scalar = _int(fields, "priv")
    point = fields.get("pub")
    if scalar is None or not isinstance(point, bytes):
        return ()
    named = [_CURVES.get(str(fields.get(k, ""))) for k in ("ASN1 OID", "NIST CURVE")]
    curves = [c for c in named if c is not None][:1]
    if not curves and "ASN1 OID" not in fields:
        # explicit parameters or an old printout: the point's length names the candidates
        curves = [c for c in _CURVES.values() if 2 * ((c.key_size + 7) // 8) + 1 == len(point)]
    for curve in curves:
        key = ec_private_key(scalar, curve, point)
        if key is not None:
            return (ec_finding(hit, key, "openssl-text-ec"),)
    return ()


def _dsa(hit: Hit, fields: dict[str, bytes | str]) -> Sequence[KeyFinding]:
    """DSA (`openssl dsa -text`): proven when y = g^x mod p, with q dividing p - 1."""
    x, y, p, q, g = (_int(fields, k) for k in ("priv", "pub", "P", "Q", "G"))
    if x is None or y is None or p is None or q is None or g is None:
        return ()
    public = keymath.dsa_proven(p, q, g, y, x)
    if public is None:
        return ()
    return (
        hit.finding(
            format="openssl-text-dsa",
            algorithm="dsa",
            bits=p.bit_length(),
            validated=True,
            fingerprint=keymath.fingerprint(public),
        ),
    )


def _okp(hit: Hit, name: str, fields: dict[str, bytes | str]) -> Sequence[KeyFinding]:
    priv, pub = fields.get("priv"), fields.get("pub")
    if not isinstance(priv, bytes) or not isinstance(pub, bytes):
        return ()
    # pub is printed beside priv: a mismatch means an edited or mixed-up printout
    return okp_finding(hit, name.lower(), priv, pub, fmt="openssl-text-okp")
