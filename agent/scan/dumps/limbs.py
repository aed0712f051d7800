"""EC-sized numbers stored as little-endian 64-bit limbs, each alone in its allocation (nettle on GMP, and the like).

Libraries other than OpenSSL keep an EC key's scalar and its point's affine
coordinates as separate limb arrays: in a core of `gnutls-serv` (nettle on
GMP) d, x and y each sat alone in a 32-byte malloc chunk, 144 bytes apart.
Go's big.Int holds its words the same way (a Go 1.19 core: P-256 d, x, y
alone, each followed by the four spare zero words `nat.make` reserves). Such
a number is a run of exactly 4 (P-256, secp256k1) or 6 (P-384) good cells
with a byte >= 0x80 in all but at most two cells. Runs are picked with array
operations and ints built only for them; `ec_ints` proves a scalar by its
point. A P-521 number's ninth limb (below 2^9) is a bad cell, and looks like
the size field of the next malloc chunk, so every 64-byte random value in a
C heap (a table of SHA-512 digests) would pass for one: P-521 is read only
as Go holds it, 8 good cells, the small ninth limb, then spare zero words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.scan.dumps.candidates import GO_SPARE, WindowCells, cells_after, run_bounds

RUN_CELLS = (4, 6)
P521_TOP = 0x1FF  # a P-521 number's ninth limb
# per size and window: beyond this, numbers of a size are a table (of SHA-256 digests, say)
MAX_NUMBERS = 8192
_HIGH_BITS = np.uint64(0x8080808080808080)


@dataclass(frozen=True, slots=True)
class LimbNumber:
    """A number read from little-endian limbs and the stream offset of its first limb."""

    value: int
    offset: int


def limb_numbers(view: WindowCells) -> tuple[list[LimbNumber], bool]:
    """(numbers, crowded): EC-sized limb runs of the window; crowded when a size passed MAX_NUMBERS.

    Besides runs of exactly a number's size, a number that ends a longer run
    followed by Go's spare zero words is read: Go packs objects of one size
    class without headers, and a neighbour's stale words can run into a
    big.Int's (a P-256 point's x in a measured core, a P-521 scalar in another).
    """
    window, base, first, cells = view.window, view.base, view.first, view.cells
    starts, ends = run_bounds(view.good, view.edges)
    length = ends - starts
    # what follows each run: Go's spare zeros, or a P-521 ninth limb and then three of them
    room, after = cells_after(cells, ends, GO_SPARE)
    spare_after = room & ~after.any(axis=1)
    top_after = room & (after[:, 0] >= 1) & (after[:, 0] <= P521_TOP) & ~after[:, 1:].any(axis=1)
    out: list[LimbNumber] = []
    crowded = False
    for run, cells_read, go_tail in ((4, 4, spare_after), (6, 6, spare_after), (8, 9, top_after)):
        exact = length == run
        if run == 8:  # P-521 is read only as Go holds it (see the module's note)
            exact &= top_after
        at = np.concatenate((starts[exact], ends[go_tail & (length > run)] - run))
        if len(at) == 0:
            continue
        runs = cells[at[:, None] + np.arange(run)]
        high = np.count_nonzero(runs & _HIGH_BITS, axis=1)
        at = at[high >= run - 2]  # a number lacks a high byte in 3 of 4 cells 1 time in 4M
        if len(at) > MAX_NUMBERS:
            at, crowded = at[:MAX_NUMBERS], True
        size = 8 * cells_read
        for cell in at.tolist():
            offset = first + 8 * cell
            value = int.from_bytes(window[offset : offset + size], "little")
            out.append(LimbNumber(value, base + offset))
    return out, crowded
