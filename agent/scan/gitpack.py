"""Git pack entries read forward: each entry's header, then its zlib stream.

A pack (`.git/objects/pack/*.pack`, RFC-less but documented in git's
Documentation/gitformat-pack.txt) is "PACK", a version, an entry count, then
entries back to back: a type and inflated-size varint, a delta base for the
two delta types, and a zlib stream whose end is found only by inflating it.
`unpack` walks the entries under its limits; these readers only read.
"""

from __future__ import annotations

import zlib
from typing import Protocol


class Readable(Protocol):
    """A stream read forward only."""

    def read(self, n: int, /) -> bytes:
        """Up to n bytes; b'' at the end."""
        ...


class PackSource:
    """The pack's bytes read forward, with what a zlib stream read past its end put back."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._back = b""
        self.consumed = 0  # bytes of the pack handed out (the offset of the next one)

    def read(self, n: int, /) -> bytes:
        if self._back:
            out, self._back = self._back[:n], self._back[n:]
        else:
            out = self._source.read(n)
        self.consumed += len(out)
        return out

    def unread(self, data: bytes) -> None:
        self._back = data + self._back
        self.consumed -= len(data)

    def exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            piece = self.read(n - len(out))
            if not piece:
                raise EOFError("git pack ends inside an object header")
            out += piece
        return out

    def object_header(self) -> tuple[int, int]:
        """(type, inflated size) of the object that starts here."""
        c = self.exact(1)[0]
        kind, size, shift = (c >> 4) & 7, c & 15, 4
        while c & 0x80 and shift < 64:
            c = self.exact(1)[0]
            size |= (c & 0x7F) << shift
            shift += 7
        return kind, size

    def varint(self) -> None:
        """Skip an OFS_DELTA base offset."""
        c, count = self.exact(1)[0], 1
        while c & 0x80 and count < 10:
            c, count = self.exact(1)[0], count + 1


class PackEntry:
    """One object's zlib stream inside a pack; what follows its end goes back to the pack."""

    def __init__(self, src: PackSource) -> None:
        self._src = src
        self._decoder = zlib.decompressobj()
        self._ended = False

    def read(self, n: int, /) -> bytes:
        d = self._decoder
        while not self._ended:
            data = d.unconsumed_tail or self._src.read(64 * 1024)
            if not data:
                raise EOFError("git pack ends inside an object")
            out = d.decompress(data, n)
            if d.eof:
                self._ended = True
                self._src.unread(d.unused_data)
            if out:
                return out
        return b""
