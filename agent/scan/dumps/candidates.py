"""Vectorised candidate extraction for the number search: where in a window could a big number sit?

A big integer from memory (a prime, a modulus, a private scalar) is a run of
random-looking bytes. One pass over the window's 8-byte cells marks cells that
cannot lie inside such a number: a run of three 0x00 or three 0xff bytes at
either end of the cell (pointers, small integers, -1, padding). The chance
that a random 8192-bit number holds such a cell is about 3e-5, so this filter
is conservative for every byte order and alignment, and it leaves only short
"islands" of good cells in an ordinary heap. Every later step works on the
island cells only, so its cost follows the number of candidates, not the
window size.

Byte orders ("views"):
  le    64-bit little-endian limbs, 8-byte aligned (OpenSSL BIGNUM, Go, .NET)
  java  int[] magnitude: most significant 32-bit word first, each word
        little-endian, 4-byte aligned (java.math.BigInteger)
  be    big-endian bytes at any alignment (Java byte[] fields, CNG, our tests)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

MIN_ISLAND_CELLS = 3  # a 256-bit scalar at an odd alignment still covers three whole cells
_LOW3 = np.uint64(0xFFFFFF)
_SHIFT40 = np.uint64(40)
_HIGH_BITS = np.uint64(0x8080808080808080)


@dataclass(frozen=True, slots=True)
class View:
    """One byte order at one byte phase (relative to the window's first 8-aligned byte)."""

    order: str  # "le" | "java" | "be"
    phase: int  # 0..7

    @property
    def dtype(self) -> str:
        return ">u8" if self.order == "be" else "<u8"


VIEWS: tuple[View, ...] = (
    View("le", 0),
    View("java", 0),
    View("java", 4),
    *(View("be", k) for k in range(8)),
)


def bad_cells(cells: U64) -> BOOL:
    """Cells that cannot lie inside a random-looking big number (see the module docstring)."""
    top = cells >> _SHIFT40
    low = cells & _LOW3
    bad: BOOL = (top == 0) | (top == _LOW3) | (low == 0) | (low == _LOW3)
    return bad


def high_cells(cells: U64) -> BOOL:
    """Cells with at least one byte >= 0x80 (text never has them; numbers nearly always)."""
    out: BOOL = (cells & _HIGH_BITS) != 0
    return out


@dataclass(slots=True)
class Islands:
    """Runs of good cells that can hold numbers: first cell and length of each, ascending."""

    start: I64
    length: I64

    @classmethod
    def from_cells(cls, good: BOOL, high: BOOL, min_cells: int = MIN_ISLAND_CELLS) -> Islands:
        """Every run of good cells at least `min_cells` long whose cells are mostly high.

        A stored number has a byte >= 0x80 in nearly every cell (a cell lacks one
        with probability 1/256); text and small structures do not, so islands
        with fewer than 3/4 such cells are dropped before any candidate work.
        """
        edges = np.diff(good.view(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        keep = (ends - starts) >= min_cells
        starts, ends = starts[keep], ends[keep]
        highs = np.concatenate(([0], np.cumsum(high, dtype=np.int64)))
        mostly_high = 4 * (highs[ends] - highs[starts]) >= 3 * (ends - starts)
        return cls(
            starts[mostly_high].astype(np.int64), (ends - starts)[mostly_high].astype(np.int64)
        )

    @property
    def longest(self) -> int:
        """Cells in the longest island (0 when there is none)."""
        return int(self.length.max()) if len(self.length) else 0


@dataclass(slots=True)
class Candidates:
    """Numbers of one size in one view: view-cell index, lowest 64 bits, where they sit.

    `at_start`: the number starts its island (its own allocation, as a heap
    holds it). `alone`: it also fills the island (nothing random-looking
    after it), as an OpenSSL, Go or Java number does.
    """

    idx: I64
    low: U64
    at_start: BOOL
    alone: BOOL


def view_words(window: memoryview, first_aligned: int, view: View) -> U64:
    """The window as 64-bit words of the view's byte order, starting at its phase."""
    offset = first_aligned + view.phase
    count = max(0, (len(window) - offset) // 8)
    words: U64 = np.frombuffer(window, dtype=view.dtype, count=count, offset=offset)
    return words


# numbers stored back to back (p || q, n || p || q): the m-th number of an island
MAX_NUMBERS_PER_ISLAND = 4


def numbers_of_size(
    words: U64, islands: Islands, view: View, cells: int, *, need_top: bool = True
) -> Candidates:
    """Numbers of `cells` words at the starts of islands (and back to back after them).

    Odd, top bit set. Positions are limited to island starts plus whole
    multiples of the size, so the work follows the number of islands and not
    their length (a long random-looking run costs no more than a short one).
    """
    shift = 1 if view.phase else 0
    parts: list[I64] = []
    firsts: list[BOOL] = []
    # an unaligned number starts in the cell before the first whole cell it covers,
    # or inside the island's first cell when the island begins mid-number
    for m in range(MAX_NUMBERS_PER_ISLAND):
        for j in range(shift + 1):
            pos = islands.start + m * cells + j
            fits = pos + cells - shift <= islands.start + islands.length
            parts.append(pos[fits] - shift)
            firsts.append(np.full(int(fits.sum()), m == 0))
    idx = np.concatenate(parts)
    first = np.concatenate(firsts)
    alone_len = (
        np.concatenate(
            [
                islands.length[
                    islands.start + m * cells + j + cells - shift <= islands.start + islands.length
                ]
                for m in range(MAX_NUMBERS_PER_ISLAND)
                for j in range(shift + 1)
            ]
        )
        <= cells + 1
    )
    ok = (idx >= 0) & (idx + cells <= len(words))
    order = np.argsort(idx[ok], kind="stable")
    idx, at_start, alone = idx[ok][order], first[ok][order], (first & alone_len)[ok][order]
    if len(idx) == 0:
        return Candidates(idx, np.zeros(0, dtype=np.uint64), at_start, alone)
    first_w = words[idx]
    last = words[idx + cells - 1]
    if view.order == "le":
        low, top = first_w, last >> np.uint64(63)
    elif view.order == "be":
        low, top = last, first_w >> np.uint64(63)
    else:
        low = (last >> np.uint64(32)) | (last << np.uint64(32))
        top = (first_w >> np.uint64(31)) & np.uint64(1)
    keep = (low & np.uint64(1)).astype(bool)
    if need_top:
        keep &= top.astype(bool)
    return Candidates(idx[keep], low[keep], at_start[keep], alone[keep])


def decode(window: memoryview, first_aligned: int, view: View, idx: int, cells: int) -> int:
    """The integer of `cells` words at view-cell `idx`."""
    at = first_aligned + view.phase + 8 * idx
    raw = bytes(window[at : at + 8 * cells])
    if view.order == "le":
        return int.from_bytes(raw, "little")
    if view.order == "be":
        return int.from_bytes(raw, "big")
    return int.from_bytes(np.frombuffer(raw, dtype="<u4").astype(">u4").tobytes(), "big")


def encode(value: int, order: str) -> bytes:
    """`value` as it would sit in memory in `order`, without leading zero words."""
    if order == "java":
        words = max(1, (value.bit_length() + 31) // 32)
        return np.frombuffer(value.to_bytes(4 * words, "big"), dtype=">u4").astype("<u4").tobytes()
    size = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "little" if order == "le" else "big")
