"""Vectorised candidate extraction for the number search: where in a window could a big number sit?

A big integer from memory (a prime, a modulus, a private scalar) is a run of
random-looking bytes. One pass over the window's 8-byte cells marks cells that
cannot lie inside such a number, from its four 16-bit words w0..w3 (low to
high), each tested for 0x0000 or 0xffff:

- strong: w0 and w1, or w2 and w3 (small integers, -1, padding, malloc size
  fields, doubles). A random cell is one with probability 2^-29.
- weak: w1 or w3, the top of either 32-bit half (user and kernel pointers,
  arrays of small 32-bit integers, 40-bit counters). A random cell is one with
  probability 2^-14, too often to end a number on its own, so a weak cell
  counts only beside another weak or strong cell: pointer arrays, int tables
  and the pointer before a heap block end islands, a lone weak limb inside a
  number (a pair of them has probability about 2^-28) does not.

The chance that a random 8192-bit number holds a cell that breaks it is about
3e-5, so the filter is conservative for every byte order and alignment, and it
leaves only short "islands" of good cells in an ordinary heap. Every later step
works on the island cells only, so its cost follows the number of candidates,
not the window size.

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


def _word_flags(cells: U64) -> npt.NDArray[np.bool_]:
    """(n, 4): each 16-bit word of each cell is 0x0000 or 0xffff."""
    words = cells.astype("<u8").view("<u2").reshape(-1, 4)
    flags: npt.NDArray[np.bool_] = (words == 0) | (words == 0xFFFF)
    return flags


def bad_cells(cells: U64) -> BOOL:
    """Cells that cannot lie inside a random-looking big number (reference for `CellClassifier`)."""
    z = _word_flags(cells)
    strong = (z[:, 0] & z[:, 1]) | (z[:, 2] & z[:, 3])
    weak = z[:, 1] | z[:, 3]
    either = strong | weak
    beside = np.zeros(len(cells), dtype=np.bool_)
    beside[1:] |= either[:-1]
    beside[:-1] |= either[1:]
    bad: BOOL = strong | (weak & beside)
    return bad


def high_cells(cells: U64) -> BOOL:
    """Cells with at least one byte >= 0x80 (text never has them; numbers nearly always)."""
    out: BOOL = (cells & _HIGH_BITS) != 0
    return out


_ONE16 = np.uint16(1)
_EIGHT32 = np.uint32(8)
_STRONG_BITS = np.uint32(0x00010001)  # after (Z >> 8) & Z: w0&w1 in byte 0, w2&w3 in byte 2
_WEAK_BITS = np.uint32(0x01000100)  # w1 in byte 1, w3 in byte 3
_BLOCK_CELLS = 32768  # the block's scratch (512 KiB) stays in L2 across its passes


class CellClassifier:
    """`good` for every cell of a window, in reused buffers (little-endian hosts).

    Same answer as `~bad_cells(cells)`, about 4x faster than testing each
    cell's fields: the four word tests are two passes over the window seen as
    16-bit words, whose 0/1 results, viewed as one 32-bit value per cell,
    combine in a few more. Each block (with one neighbour cell on each side,
    for the weak-cell rule) goes through every pass while it is in the CPU
    cache, and the only window-sized array is the answer (fresh 32 MiB arrays
    cost as much in page faults as the arithmetic).
    A 16-bit word w is 0 or 0xffff exactly when (w + 1) mod 2^16 <= 1.
    """

    def __init__(self) -> None:
        halo = _BLOCK_CELLS + 2
        self._t16 = np.empty(4 * halo, dtype=np.uint16)
        self._z = np.empty(4 * halo, dtype=np.bool_)
        self._u = np.empty(halo, dtype=np.uint32)
        self._strong_good, self._weak, self._either = (np.empty(halo, bool) for _ in range(3))
        self._beside = np.empty(_BLOCK_CELLS, dtype=np.bool_)
        self._good = np.empty(0, dtype=np.bool_)

    def classify(self, cells: U64) -> BOOL:
        """`good` for `cells`; valid until the next call."""
        n = len(cells)
        if n > len(self._good):
            # kept at the largest window seen: files of every size reuse the same pages
            self._good = np.empty(n, dtype=np.bool_)
        good = self._good[:n]
        for s in range(0, n, _BLOCK_CELLS):
            self._block(cells, s, min(n, s + _BLOCK_CELLS), good)
        return good

    def _block(self, cells: U64, s: int, e: int, good: BOOL) -> None:
        # cells lo..hi: the block and its neighbours inside the window
        lo, hi = max(s - 1, 0), min(e + 1, len(cells))
        m = hi - lo
        t16, z, u = self._t16[: 4 * m], self._z[: 4 * m], self._u[:m]
        np.add(cells[lo:hi].view(np.uint16), _ONE16, out=t16)
        np.less_equal(t16, _ONE16, out=z)
        flags = z.view(np.uint32)  # byte k of a cell's value: word k is 0 or 0xffff
        np.right_shift(flags, _EIGHT32, out=u)
        np.bitwise_and(u, flags, out=u)
        np.bitwise_and(u, _STRONG_BITS, out=u)
        strong_good = self._strong_good[:m]
        np.equal(u, 0, out=strong_good)
        np.bitwise_and(flags, _WEAK_BITS, out=u)
        weak = self._weak[:m]
        np.not_equal(u, 0, out=weak)
        # either[j]: cell s-1+j is strong or weak; False outside the window (unknown, so not bad)
        either = self._either[: e - s + 2]
        either[0] = either[-1] = False
        at = lo - (s - 1)
        np.less_equal(strong_good, weak, out=either[at : at + m])  # not strong-good, or weak
        # a weak cell is bad only beside a strong or weak one
        beside = self._beside[: e - s]
        np.logical_or(either[:-2], either[2:], out=beside)
        inner = slice(s - lo, s - lo + e - s)
        np.logical_and(beside, weak[inner], out=beside)  # now: the weak cells that are bad
        np.greater(strong_good[inner], beside, out=good[s:e])  # strong-good and not bad-weak


def run_edges(good: BOOL) -> I64:
    """Cells where `good` changes (a run of good cells starts or ends there), ascending."""
    # not_equal on bools, not np.diff: diff casts and runs about 10x slower on 4M cells
    edges: I64 = np.flatnonzero(np.not_equal(good[1:], good[:-1])) + 1
    return edges


def run_bounds(good: BOOL, edges: I64) -> tuple[I64, I64]:
    """(first cell, end) of every run of good cells, from the window's `run_edges`."""
    n = len(good)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # edges alternate rise, fall, rise, ... once a leading and a trailing bad cell are implied
    if good[0]:
        edges = np.concatenate(([0], edges))
    if good[-1]:
        edges = np.concatenate((edges, [n]))
    return edges[0::2], edges[1::2]


GO_SPARE = 4  # zero words Go's `nat.make` reserves after a big.Int's words


def cells_after(cells: U64, ends: I64, count: int) -> tuple[BOOL, U64]:
    """(room, after): whether `count` cells follow each run end in the window, and those cells."""
    room: BOOL = ends + count <= len(cells)
    after: U64 = cells[np.where(room, ends, 0)[:, None] + np.arange(count)]
    return room, after


@dataclass(frozen=True, slots=True)
class WindowCells:
    """One window as the number readers see it: its bytes and its classified 8-byte cells.

    `first` is the offset in `window` of the first whole cell (cells are aligned
    to the stream), `base` the stream offset of `window[0]`, `edges` the
    window's `run_edges(good)`.
    """

    window: memoryview
    base: int
    first: int
    cells: U64
    good: BOOL
    edges: I64

    def run_starts(self) -> I64:
        """Cells where a run of good cells begins (not the window's first cell)."""
        starts: I64 = self.edges[self.good[self.edges]]
        return starts


@dataclass(slots=True)
class Islands:
    """Runs of good cells that can hold numbers: first cell and length of each, ascending."""

    start: I64
    length: I64

    @classmethod
    def from_cells(cls, cells: U64, good: BOOL, min_cells: int = MIN_ISLAND_CELLS) -> Islands:
        """Every run of good cells at least `min_cells` long whose cells are mostly high.

        Text and small structures have no byte >= 0x80, so an island with more
        than one such cell among its first `min_cells` is dropped before any
        candidate work. Only those first cells are tested (not the window: most
        cells are in no island).
        """
        return cls.from_edges(cells, good, run_edges(good), min_cells)

    @classmethod
    def from_edges(cls, cells: U64, good: BOOL, edges: I64, min_cells: int) -> Islands:
        """`from_cells` with the window's `run_edges` already computed (other searches use them)."""
        starts, ends = run_bounds(good, edges)
        keep = (ends - starts) >= min_cells
        starts, ends = starts[keep], ends[keep]
        # mostly high, judged on the first `min_cells` cells of each island: a stored
        # number lacks a byte >= 0x80 in a cell with probability 1/256, text always does.
        # One such cell is allowed: demanding all of an EC scalar's 3 cells missed 1 in 85
        highs = np.zeros(len(starts), dtype=np.int64)
        for k in range(min_cells):
            highs += (cells[starts + k] & _HIGH_BITS) != 0
        mostly_high = highs >= min_cells - 1
        return cls(
            starts[mostly_high].astype(np.int64), (ends - starts)[mostly_high].astype(np.int64)
        )

    def without(self, drop: BOOL) -> Islands:
        """The islands not marked in `drop`."""
        return Islands(self.start[~drop], self.length[~drop])

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


@dataclass(frozen=True, slots=True)
class Positions:
    """Where numbers of one size can start, in cells from the first whole cell, ascending.

    They depend only on the islands, the size and whether the view is shifted
    by a phase, not on the byte order, so one window computes each once.
    """

    idx: I64
    at_start: BOOL
    alone: BOOL


def positions(islands: Islands, cells: int, shift: int) -> Positions:
    """Island starts plus whole multiples of the size (numbers stored back to back)."""
    # an unaligned number starts in the cell before the first whole cell it covers,
    # or inside the island's first cell when the island begins mid-number
    long_enough = islands.length >= cells - shift
    start, length = islands.start[long_enough], islands.length[long_enough]
    # every (m-th number, sub-cell step j) offset of every island at once
    m = np.repeat(np.arange(MAX_NUMBERS_PER_ISLAND), shift + 1)
    offsets = m * cells + np.tile(np.arange(shift + 1), MAX_NUMBERS_PER_ISLAND)
    pos = start[:, None] + offsets[None, :]
    fits = pos + (cells - shift) <= (start + length)[:, None]
    first = np.broadcast_to(m == 0, fits.shape)
    alone = (length <= cells + 1)[:, None] & first
    idx = pos[fits] - shift
    order = np.argsort(idx, kind="stable")
    return Positions(idx[order], first[fits][order], alone[fits][order])


def numbers_of_size(
    words: U64,
    islands: Islands,
    view: View,
    cells: int,
    *,
    need_top: bool = True,
    cache: dict[tuple[int, int], Positions] | None = None,
) -> Candidates:
    """Numbers of `cells` words at the starts of islands (and back to back after them).

    Odd, top bit set. Positions are limited to island starts plus whole
    multiples of the size, so the work follows the number of islands and not
    their length (a long random-looking run costs no more than a short one).
    `cache` keeps the positions for the other byte orders of the same window.
    """
    pos = _cached_positions(islands, cells, 1 if view.phase else 0, cache)
    ok = (pos.idx >= 0) & (pos.idx + cells <= len(words))
    idx, at_start, alone = pos.idx[ok], pos.at_start[ok], pos.alone[ok]
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


# merged candidates: key = view number * VIEW_STRIDE + view-cell, so that numbers of
# different views sort apart and never come within pairing distance of each other
VIEW_STRIDE = 1 << 40


def merge(parts: list[tuple[int, Candidates]]) -> Candidates:
    """Candidates of several views as one set, `idx` holding keys (view number, view-cell)."""
    return Candidates(
        np.concatenate([c.idx + number * VIEW_STRIDE for number, c in parts]),
        np.concatenate([c.low for _, c in parts]),
        np.concatenate([c.at_start for _, c in parts]),
        np.concatenate([c.alone for _, c in parts]),
    )


_FIRST_VIEW_OF_ORDER = {"le": 0, "java": 1, "be": 2}
_EIGHT_BYTES = np.arange(8, dtype=np.int64)


def fused_work(islands: Islands, cells: int, cache: dict[tuple[int, int], Positions]) -> int:
    """How many (view, position) pairs `numbers_all_views` would gather for this size."""
    total = 0
    for shift in (0, 1):
        views = sum(1 for v in VIEWS if (1 if v.phase else 0) == shift)
        total += views * len(_cached_positions(islands, cells, shift, cache).idx)
    return total


def _cached_positions(
    islands: Islands, cells: int, shift: int, cache: dict[tuple[int, int], Positions] | None
) -> Positions:
    key = (cells, shift)
    pos = cache.get(key) if cache is not None else None
    if pos is None:
        pos = positions(islands, cells, shift)
        if cache is not None:
            cache[key] = pos
    return pos


def numbers_all_views(
    window: memoryview,
    first_aligned: int,
    islands: Islands,
    cells: int,
    cache: dict[tuple[int, int], Positions],
) -> Candidates:
    """`merge` of `numbers_of_size` over every view, in one batch of numpy calls.

    Same answer; a window with few islands costs a few dozen numpy calls per
    size instead of a few hundred (the per-view calls were most of its time).
    The gather holds 8 bytes per (view, position): callers keep `fused_work`
    small and use the per-view path beyond it.
    """
    raw = np.frombuffer(window, dtype=np.uint8)
    keys: list[I64] = []
    lows: list[U64] = []
    starts: list[BOOL] = []
    alones: list[BOOL] = []
    for shift in (0, 1):
        pos = _cached_positions(islands, cells, shift, cache)
        numbers = [k for k, v in enumerate(VIEWS) if (1 if v.phase else 0) == shift]
        if len(pos.idx) == 0 or not numbers:
            continue
        number = np.repeat(np.array(numbers, dtype=np.int64), len(pos.idx))
        order = np.array([_FIRST_VIEW_OF_ORDER[VIEWS[k].order] for k in numbers])
        order = np.repeat(order, len(pos.idx))
        phase = np.repeat(np.array([VIEWS[k].phase for k in numbers], dtype=np.int64), len(pos.idx))
        idx = np.tile(pos.idx, len(numbers))
        start = first_aligned + phase + 8 * idx
        end = start + 8 * cells
        ok = (idx >= 0) & (end <= len(raw))
        # the top bit: last byte (le), first byte (be), fourth byte (java: first word LE)
        top_at = np.where(order == 0, end - 1, np.where(order == 1, start + 3, start))
        ok[ok] = raw[top_at[ok]] >= 0x80
        sel = np.flatnonzero(ok)
        if len(sel) == 0:
            continue
        order, start, end = order[sel], start[sel], end[sel]
        low_at = np.where(order == 0, start, end - 8)
        low = raw[low_at[:, None] + _EIGHT_BYTES].view("<u8").ravel()
        be, java = order == 2, order == 1
        low[be] = low[be].byteswap()
        low[java] = (low[java] >> np.uint64(32)) | (low[java] << np.uint64(32))
        odd = (low & np.uint64(1)).astype(bool)
        sel, low = sel[odd], low[odd]
        keys.append(number[sel] * VIEW_STRIDE + idx[sel])
        lows.append(low)
        starts.append(np.tile(pos.at_start, len(numbers))[sel])
        alones.append(np.tile(pos.alone, len(numbers))[sel])
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(
            empty, np.zeros(0, dtype=np.uint64), empty.astype(bool), empty.astype(bool)
        )
    key = np.concatenate(keys)
    by_key = np.argsort(key, kind="stable")
    return Candidates(
        key[by_key],
        np.concatenate(lows)[by_key],
        np.concatenate(starts)[by_key],
        np.concatenate(alones)[by_key],
    )


def unmerge(key: int) -> tuple[View, int]:
    """(view, view-cell) of a merged candidate's key."""
    number, idx = divmod(key, VIEW_STRIDE)
    return VIEWS[number], idx


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
