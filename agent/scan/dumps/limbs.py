"""EC-sized numbers stored as little-endian 64-bit limbs, each alone in its allocation (nettle on GMP, and the like).

Libraries other than OpenSSL keep an EC key's scalar and its point's affine
coordinates as separate limb arrays: in a core of `gnutls-serv` (nettle on
GMP) d, x and y each sat alone in a 32-byte malloc chunk, 144 bytes apart.
Go's big.Int holds its words the same way (not tested here: no Go toolchain).
Such a number is a run of exactly 4 (P-256, secp256k1) or 6 (P-384) good
cells with a byte >= 0x80 in all but at most two cells. Runs are picked with
array operations and ints built only for them; `ec_ints` proves a scalar by
its point. P-521 is not read this way: its ninth limb (below 2^9) looks like
the size field of the next malloc chunk, so every 64-byte random value (a
table of SHA-512 digests) would pass for a P-521 number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.scan.dumps.candidates import WindowCells, run_bounds

RUN_CELLS = (4, 6)
# per window: beyond this, runs of exactly these sizes are a table (of SHA-256 digests, say)
MAX_NUMBERS = 8192
_HIGH_BITS = np.uint64(0x8080808080808080)


@dataclass(frozen=True, slots=True)
class LimbNumber:
    """A number read from little-endian limbs and the stream offset of its first limb."""

    value: int
    offset: int


def limb_numbers(view: WindowCells) -> tuple[list[LimbNumber], bool]:
    """(numbers, crowded): EC-sized limb runs of the window; crowded when MAX_NUMBERS was passed."""
    window, base, first, cells = view.window, view.base, view.first, view.cells
    starts, ends = run_bounds(view.good, view.edges)
    length = ends - starts
    out: list[LimbNumber] = []
    crowded = False
    for run in RUN_CELLS:
        at = starts[length == run]
        if len(at) == 0:
            continue
        runs = cells[at[:, None] + np.arange(run)]
        high = np.count_nonzero(runs & _HIGH_BITS, axis=1)
        at = at[high >= run - 2]  # a number lacks a high byte in 3 of 4 cells 1 time in 4M
        if len(out) + len(at) > MAX_NUMBERS:
            at, crowded = at[: max(MAX_NUMBERS - len(out), 0)], True
        size = 8 * run
        for cell in at.tolist():
            offset = first + 8 * cell
            value = int.from_bytes(window[offset : offset + size], "little")
            out.append(LimbNumber(value, base + offset))
    return out, crowded
