"""Hex-encoded DER private keys in text: `xxd -p` dumps, logs, configs, Go/Java/C source.

Three spellings: bare hex digits (either case, optionally wrapped or split
into concatenated string literals), `\\x30\\x82...` escapes, and C/Java byte
arrays (`0x30, 0x82, ...`, `(byte) 0x82`). The rules anchor on the hex of a
specific DER prefix, so the match is the first byte of the key. This module
only turns the text back into bytes: the decoded key (plus the few bytes of
hex just before it) is handed to the raw-DER validator, which proves it and
drops a PKCS#1 or SEC1 key that is the inside of a PKCS#8 found on its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.scan.validators import der

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_DER_BYTES = der.MAX_KEY_BYTES
MAX_CHARS_PER_BYTE = 16  # `(byte) 0x82, ` plus a line break: the widest spelling
LOOKBACK_BYTES = 64  # enough to hold a PKCS#8 header around a PKCS#1 or SEC1 key
MIN_DER_BYTES = 32


@dataclasses.dataclass(frozen=True, slots=True)
class _Spelling:
    unit: re.Pattern[str]  # one byte; group 1 holds its hex digits
    gap: re.Pattern[str]  # what may sit between two bytes (line breaks, quotes, commas)
    tail: re.Pattern[str]  # one byte and its gap, ending the text: for reading backwards


def _spelling(unit: str, gap: str) -> _Spelling:
    return _Spelling(re.compile(unit), re.compile(gap), re.compile(f"(?:{unit})(?:{gap})\\Z"))


_GAP_TEXT = r"(?:[ \t\r\n\"'+]|\\[nr]){0,16}"  # wraps, `\n` escapes, "..." + "..." concatenation
_HEX = _spelling(r"([0-9a-fA-F]{2})", _GAP_TEXT)
_ESCAPED = _spelling(r"\\[xX]([0-9a-fA-F]{2})", _GAP_TEXT)
_ARRAY = _spelling(r"(?:\(byte\)\s{0,2})?0[xX]([0-9a-fA-F]{1,2})\b", r"\s{0,16},?\s{0,16}")


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the hex-spelled DER key that starts at the hit; () unless proven."""
    spelling = _spelling_at(hit)
    text = bytes(hit.data[hit.start : hit.start + MAX_DER_BYTES * MAX_CHARS_PER_BYTE])
    body = decode_at(text.decode("latin-1"), spelling)
    if body is None:
        return ()
    before = bytes(hit.data[max(0, hit.start - LOOKBACK_BYTES * MAX_CHARS_PER_BYTE) : hit.start])
    prefix = _bytes_before(before.decode("latin-1"), spelling)
    buf = memoryview(prefix + body)
    inner = dataclasses.replace(
        hit, data=buf, start=len(prefix), end=len(buf), base_offset=hit.offset - len(prefix)
    )
    # the DER validator reports as der-*: the user sees where the key was, in what spelling
    return tuple(dataclasses.replace(f, format="hex-der") for f in der.validate(inner))


def _spelling_at(hit: Hit) -> _Spelling:
    head = bytes(hit.data[hit.start : hit.start + 2]).lower()
    if head == b"\\x":
        return _ESCAPED
    if head in {b"0x", b"(b"}:
        return _ARRAY
    return _HEX


def decode_at(text: str, spelling: _Spelling) -> bytes | None:
    """The DER SEQUENCE spelled at the start of `text`, or None when cut short or not a SEQUENCE."""
    out = bytearray()
    pos = 0
    need = 4  # enough for the SEQUENCE header; then the header says how much
    while len(out) < need:
        if out:
            pos = _skip(spelling.gap, text, pos)
        unit = spelling.unit.match(text, pos)
        if unit is None:
            return None
        out.append(int(unit.group(1), 16))
        pos = unit.end()
        if len(out) == 4:
            total = _der_total(bytes(out))
            if total is None:
                return None
            need = total
    return bytes(out[:need])


def _der_total(head: bytes) -> int | None:
    """Length of the whole SEQUENCE from its first four bytes, when it could be a key."""
    if head[0] != 0x30:
        return None
    first = head[1]
    if first < 0x80:
        total = 2 + first
    elif first == 0x81:
        total = 3 + head[2]
    elif first == 0x82:
        total = 4 + int.from_bytes(head[2:4], "big")
    else:
        return None
    return total if MIN_DER_BYTES <= total <= MAX_DER_BYTES else None


def _bytes_before(text: str, spelling: _Spelling) -> bytes:
    """The bytes spelled in the same way immediately before the hit (at most LOOKBACK_BYTES)."""
    out: list[int] = []
    end = len(text)
    while len(out) < LOOKBACK_BYTES:
        m = spelling.tail.search(text, max(0, end - 48), end)
        if m is None:
            break
        out.append(int(m.group(1), 16))
        end = m.start()
    return bytes(reversed(out))


def _skip(gap: re.Pattern[str], text: str, pos: int) -> int:
    m = gap.match(text, pos)
    return m.end() if m else pos
