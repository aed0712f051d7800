""".NET XML RSA private keys (`RSA.ToXmlString(true)`, `<RSAKeyValue>` in config files).

The members are base64 big-endian integers in any order, with whitespace
between elements; the block may sit in a JSON or config string (escaped
quotes, `\\n`, `<\\/Modulus>`) or be XML-escaped inside an attribute
(`&lt;RSAKeyValue&gt;`). A key is proven by arithmetic (p*q = n,
e*d = 1 mod lambda(n), CRT values); Modulus and Exponent alone are a public
key and never a finding.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.scan import keymath
from agent.scan.validators.der import rsa_finding, rsa_proven
from agent.scan.validators.pem import text_at, unescape

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

# RSA-16384 with every member is ~15 KiB of XML; allow indentation and escapes on top
MAX_TEXT_CHARS = 48 * 1024
MAX_MEMBER_CHARS = (keymath.MAX_RSA_BITS // 6) + 64  # base64 of the largest modulus, plus wraps

_END = "</RSAKeyValue>"
_MEMBER = re.compile(
    rf"<(Modulus|Exponent|P|Q|DP|DQ|InverseQ|D)>\s*([A-Za-z0-9+/=\s]{{1,{MAX_MEMBER_CHARS}}})</\1>"
)


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the RSAKeyValue block at the hit, when it holds a proven private key."""
    opening = _opening_tag(hit)
    if opening is None:
        return ()  # a closing tag (`</RSAKeyValue>`), or the name in other text
    text = text_at(opening, MAX_TEXT_CHARS)
    if text.startswith("&lt;"):
        text = text.replace("&lt;", "<").replace("&gt;", ">")
    text = unescape(text)
    end = text.find(_END)
    if end < 0:
        return ()  # truncated, or longer than any key
    members: dict[str, int] = {}
    for m in _MEMBER.finditer(text, 0, end):
        if m.group(1) in members:
            return ()  # a member twice is not one key
        value = _integer(m.group(2))
        if value is None:
            return ()
        members[m.group(1)] = value
    try:
        n, e, p, q = (members[k] for k in ("Modulus", "Exponent", "P", "Q"))
    except KeyError:
        return ()  # the public half (or less): nothing secret here
    d = members.get("D")
    if not rsa_proven(
        n, e, d, p, q, dp=members.get("DP"), dq=members.get("DQ"), qinv=members.get("InverseQ")
    ):
        return ()
    return (rsa_finding(opening, n, e, "xml-rsa"),)


def _opening_tag(hit: Hit) -> Hit | None:
    """The hit moved back onto the `<` (or `&lt;`) before the element name the rule matched."""
    wide = hit.end - hit.start > 1 and hit.data[hit.start + 1] == 0
    for prefix in ("<", "&lt;"):
        raw = prefix.encode("utf-16-le" if wide else "latin-1")
        start = hit.start - len(raw)
        if start >= 0 and bytes(hit.data[start : hit.start]) == raw:
            return dataclasses.replace(hit, start=start)
    return None


def _integer(text: str) -> int | None:
    """A base64 big-endian unsigned integer, or None when it is not valid base64."""
    chars = "".join(text.split())
    try:
        raw = base64.b64decode(chars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if raw else None
