"""Key-sized numbers of a Java process's heap: BigInteger magnitudes (int[]) and the JDK's EC scalars (byte[]).

HotSpot lays out an array as a mark word, a class pointer (4 bytes when
compressed, the default; 8 when not), the 32-bit length, then the elements
from an 8-byte boundary. The JDK's EC keys (sun.security.ec, JDK 11 and
later) keep the private scalar as a little-endian byte[] (`arrayS`) and the
public point as BigIntegers, whose magnitude is an int[] with the most
significant int first (each int in the CPU's little-endian order). The
elements are random-looking, so they start a run of good cells, and the
cell before them holds the length: `klass | length << 32` or the length
alone. RSA keys need none of this: their BigIntegers are found by the limb
search's Java byte order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.scan.dumps.candidates import WindowCells

INT_ARRAY_LENGTHS = (8, 12, 17)  # ints in the magnitude of a 256-, 384- or 521-bit number
BYTE_ARRAY_LENGTHS = (32, 48, 66)  # bytes of a P-256, P-384 or P-521 scalar
_LENGTHS = np.array(sorted((*INT_ARRAY_LENGTHS, *BYTE_ARRAY_LENGTHS)), dtype=np.uint64)
_LOW32 = np.uint64(0xFFFFFFFF)
_SMALL = 1 << 24  # a random 32-bit word is below this 1 time in 256
_HIGH_BITS = np.uint64(0x8080808080808080)
MAX_NUMBERS = 16_384  # per window


@dataclass(frozen=True, slots=True)
class JavaNumber:
    """A key-sized number of a Java array and the stream offset of its first element."""

    value: int
    offset: int


def java_numbers(view: WindowCells) -> list[JavaNumber]:
    """Key-sized int[] and byte[] arrays whose elements start a run of good cells."""
    window, base, first, cells = view.window, view.base, view.first, view.cells
    starts = view.run_starts()
    # a 521-bit magnitude's first cell holds its top int, below 2^9: a weak cell, so its
    # run starts one cell later, and its length is two cells before that
    data = np.concatenate((starts, starts - 1))
    data = data[data >= 1]
    if len(data) == 0:
        return []
    header = cells[data - 1]
    compressed = header >> np.uint64(32)
    length = np.where(np.isin(compressed, _LENGTHS) & ((header & _LOW32) != 0), compressed, header)
    keep = np.isin(length, _LENGTHS)
    data, length = data[keep], length[keep]
    out: list[JavaNumber] = []
    for start, n in zip(data.tolist(), length.tolist(), strict=True):
        at = first + 8 * start
        size = 4 * n if n in INT_ARRAY_LENGTHS else n
        if at + size > len(window):
            continue
        raw = bytes(window[at : at + size])
        words = np.frombuffer(raw[: size // 4 * 4], dtype="<u4")
        # random-looking: a random word is below 2^24 one time in 256 and an 8-byte cell
        # lacks a byte >= 0x80 as often (text always does); two of each are allowed (besides
        # a magnitude's first int: a 521-bit one's is below 2^9), so a key's number is lost
        # to chance about once in a million, and text or small counts never pass
        body = words[1:] if n in INT_ARRAY_LENGTHS else words
        if int(np.count_nonzero(body < _SMALL)) > max(2, len(body) // 8):
            continue
        lows = np.frombuffer(raw[: size // 8 * 8], dtype="<u8") & _HIGH_BITS
        if int(np.count_nonzero(lows == 0)) > 2:
            continue
        if n in INT_ARRAY_LENGTHS:
            if words[0] == 0:
                continue  # a BigInteger magnitude has no leading zero int
            value = int.from_bytes(words.astype(">u4").tobytes(), "big")
        else:
            value = int.from_bytes(raw, "little")
        out.append(JavaNumber(value, base + at))
        if len(out) >= MAX_NUMBERS:
            break
    return out
