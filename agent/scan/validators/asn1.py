"""A minimal, bounded DER reader: enough to walk key structures without trusting lengths."""

from __future__ import annotations

from dataclasses import dataclass

MAX_LENGTH = 1 << 20  # no key structure is larger; longer lengths are hostile or garbage


class DerError(ValueError):
    """The bytes are not the DER structure expected (never carries the bytes)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One DER element: tag byte, where its content starts and ends in the buffer."""

    tag: int
    start: int  # offset of the tag byte
    content: int  # offset of the first content byte
    end: int  # offset just past the content


def read_tlv(buf: memoryview | bytes, pos: int, limit: int | None = None) -> Tlv:
    """Read one element at `pos`; raises DerError when it does not fit in `limit`."""
    end_limit = len(buf) if limit is None else min(limit, len(buf))
    if pos + 2 > end_limit:
        raise DerError("truncated header")
    tag = buf[pos]
    first = buf[pos + 1]
    if first < 0x80:
        length, header = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + 2 + count > end_limit:
            raise DerError("bad length")
        length = int.from_bytes(bytes(buf[pos + 2 : pos + 2 + count]), "big")
        if length < 0x80 or (count > 1 and buf[pos + 2] == 0):
            raise DerError("non-minimal length")  # DER requires the shortest form
        header = 2 + count
    if length > MAX_LENGTH or pos + header + length > end_limit:
        raise DerError("length past the end")
    return Tlv(tag, pos, pos + header, pos + header + length)


def children(buf: memoryview | bytes, parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed element, which must fill it exactly."""
    out: list[Tlv] = []
    pos = parent.content
    while pos < parent.end:
        child = read_tlv(buf, pos, parent.end)
        out.append(child)
        pos = child.end
        if len(out) > 64:
            raise DerError("too many elements")
    return out


def read_integer(buf: memoryview | bytes, tlv: Tlv, max_bits: int = 16384) -> int:
    """A non-negative INTEGER's value, bounded in size."""
    if tlv.tag != 0x02 or tlv.end == tlv.content:
        raise DerError("not an INTEGER")
    raw = bytes(buf[tlv.content : tlv.end])
    if raw[0] & 0x80:
        raise DerError("negative INTEGER")
    if len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80:
        raise DerError("non-minimal INTEGER")
    value = int.from_bytes(raw, "big")
    if value.bit_length() > max_bits:
        raise DerError("INTEGER too large")
    return value
