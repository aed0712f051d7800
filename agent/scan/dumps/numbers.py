"""The RSA number search: private keys held only as numbers, proven by p * q = n in the same dump.

Per window and modulus size, over every byte order at once (see `candidates`;
the orders' candidates are merged under keys that keep them apart): candidate
primes that lie near each other (p and q are allocated together) are paired,
the product of their lowest 64-bit limbs is compared (numpy, wrapping mod
2^64) with the lowest limbs of modulus candidates, and only survivors are
multiplied out exactly. A modulus with one candidate prime that divides it is
a key too. The public exponent is confirmed by finding d or dP for 65537 or 3
in the window; otherwise 65537 is assumed and the finding says so.

Cost control: memory crowded with short random-looking values (tables of
hashes or tokens) makes candidates explode, so 64 KiB blocks with more than
`max_islands_per_block` islands are skipped and counted in a NOT_DEEP_SCANNED
problem (long random runs cost little and are searched); keys and big-integer
checks per stream are capped.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from agent.logs import get_logger
from agent.scan import keymath
from agent.scan.dumps import alone, ec_ints, java, known, limbs, pylong
from agent.scan.dumps.candidates import (
    I64,
    U64,
    VIEWS,
    Candidates,
    CellClassifier,
    Islands,
    Positions,
    View,
    WindowCells,
    decode,
    encode,
    fused_work,
    merge,
    numbers_all_views,
    numbers_of_size,
    run_edges,
    unmerge,
    view_words,
)
from agent.scan.dumps.model import STAGE, DumpInfo
from agent.scan.dumps.openssl_ec import MAX_POINT_CHECKS, EcKeySearch
from agent.values import ErrorType, KeyFinding, ScanProblem

if TYPE_CHECKING:
    from agent.scan.inventory import Inventory

log = get_logger("agent.scan.dumps")

RULE = "rsa_number_search"
# prime sizes in bytes: moduli of 1024, 1536, 2048, 3072, 4096, 6144, 7680 and 8192 bits
PRIME_BYTES = (64, 96, 128, 192, 256, 384, 480, 512)
FUSE_LIMIT = 1 << 16  # (view, position) pairs gathered in one batch (8 bytes each, and indices)
MERGE_LIMIT = 1 << 20  # candidates of merged views held at once (a crowded window has millions)
JAVA_EC_NEAR = 256 * 1024  # a JDK key's scalar and point: 4-35 KiB apart in measured cores
LIMB_EC_NEAR = 256 * 1024  # nettle's (gnutls-serv): 144 bytes; the point is made with the key
DIVISOR_DISTANCE = 8 * 1024  # n and a lone prime of the same key sit this close in a heap


_per_thread = threading.local()


def _thread_classifier() -> CellClassifier:
    """This thread's classifier: its window-sized buffers outlive one file (no page faults per file)."""
    classifier: CellClassifier | None = getattr(_per_thread, "classifier", None)
    if classifier is None:
        classifier = _per_thread.classifier = CellClassifier()
    return classifier


class NumberSearch:
    """Finds RSA keys held only as numbers (p * q = n) in the windows fed to it, one stream each."""

    def __init__(
        self,
        *,
        inventory: Inventory | None = None,
        pair_distance: int = 64 * 1024,
        max_neighbours: int = 64,
        block_bytes: int = 64 * 1024,
        max_islands_per_block: int = 384,
        max_keys: int = 64,
        max_divisions: int = 20_000,
        keep_buffers: bool = False,
        memory: DumpInfo | None = None,
        max_ec_point_checks: int = MAX_POINT_CHECKS,
    ) -> None:
        """`keep_buffers`: share this thread's classifier buffers (one byte per window
        cell) with later streams, for processes that keep window memory anyway (sweep,
        burst workers); otherwise they go with this stream (the idle daemon stays small).
        `memory`: the dump's address map (ELF core, minidump), with which EC keys held
        by OpenSSL are followed from their BIGNUMs (`openssl_ec`).
        """
        self.problems: list[ScanProblem] = []
        self._inventory = known.Matcher(inventory) if inventory is not None else None
        self._pair_cells = pair_distance // 8
        self._max_neighbours = max_neighbours
        self._block_cells = block_bytes // 8
        self._max_islands = max_islands_per_block
        self._classifier = _thread_classifier() if keep_buffers else CellClassifier()
        self._max_keys = max_keys
        self._divisions_left = max_divisions
        self._found: set[int] = set()
        self._skipped_bytes = 0
        self._limits_noted: set[str] = set()
        self._pylongs = pylong.PyLongKeys(spend=self.spend_division, claim=self.claim)
        self._alone = alone.AloneRsaKeys([b // 8 for b in PRIME_BYTES], claim=self.claim)
        ec_found: set[str] = set()  # one key, one finding, whichever search proves it first
        self._python_ec = ec_ints.EcIntKeys(format_name="ec-numbers-pylong", found=ec_found)
        self._java_ec = ec_ints.EcIntKeys(
            format_name="ec-numbers-java", near=JAVA_EC_NEAR, found=ec_found
        )
        self._limb_ec = ec_ints.EcIntKeys(
            format_name="ec-numbers-le", near=LIMB_EC_NEAR, found=ec_found
        )
        self._ec = (
            EcKeySearch(memory, max_point_checks=max_ec_point_checks, found=ec_found)
            if memory is not None and memory.regions
            else None
        )

    # -- public -----------------------------------------------------------------

    def feed(
        self, window: memoryview, base_offset: int, scan_from: int, scan_to: int
    ) -> Sequence[KeyFinding]:
        """Search one window; report only keys whose first prime lies in [scan_from, scan_to)."""
        first = (-base_offset) % 8
        ncells = max(0, (len(window) - first) // 8)
        if ncells < 8:
            return ()
        ec_keys: list[KeyFinding] = []
        if self._ec is not None:
            ec_keys = self._ec.feed(window, base_offset)
            if self._ec.limit_reached:
                self.note_limit("the EC key search reached its budget of point checks")
        cells: U64 = np.frombuffer(window, dtype="<u8", count=ncells, offset=first)
        good = self._classifier.classify(cells)
        min_cells = known.MIN_SCALAR_CELLS if self._inventory and self._inventory.has_ec else 7
        edges = run_edges(good)
        islands = Islands.from_edges(cells, good, edges, min_cells)
        runtime = WindowCells(window, base_offset, first, cells, good, edges)
        python_ints = pylong.pylongs(runtime)
        java_numbers = java.java_numbers(runtime)
        limb_numbers, crowded = limbs.limb_numbers(runtime)
        islands = self._skip_crowded(islands, ncells, base_offset + first, scan_from, scan_to)
        self._note_skipped()
        alone_numbers = alone.alone_numbers(runtime, self._alone.sizes, (scan_from, scan_to))
        del cells, good, runtime
        if python_ints:
            ec_keys += self._pylongs.feed(python_ints)
            if self._pylongs.limit_reached:
                self.note_limit("more than 4096 key-sized Python ints; the rest were not paired")
            ec_keys += self._python_ec.feed(python_ints)
        if java_numbers:
            ec_keys += self._java_ec.feed(java_numbers)
        if limb_numbers:
            ec_keys += self._limb_ec.feed(limb_numbers)
        if crowded:
            self.note_limit("a window held more EC-sized limb runs than the EC search reads")
        if any(s.limit_reached for s in (self._python_ec, self._java_ec, self._limb_ec)):
            self.note_limit("the EC key search among language-runtime numbers reached its budget")
        # first: it proves e from a d alone anywhere in the stream; Go also leaves p and q
        # big-endian (rand.Prime's bytes), where no d is there to prove e in that order
        findings = ec_keys + self._alone.feed(alone_numbers)
        if self._alone.limit_reached:
            self.note_limit(
                f"more than {alone.MAX_PER_SIZE} numbers of one size alone in their allocations; "
                "the rest were not paired"
            )
        if len(islands.start):
            search = _WindowSearch(
                self, window, base=base_offset, first=first, scan_from=scan_from, scan_to=scan_to
            )
            findings += search.all_sizes(islands)
            if self._inventory is not None:
                for view in VIEWS:
                    words = view_words(window, first, view)
                    findings += self._inventory.search(search, view, words, islands)
                    del words
        return findings

    # -- internals ------------------------------------------------------------

    def _skip_crowded(
        self, islands: Islands, ncells: int, first_abs: int, scan_from: int, scan_to: int
    ) -> Islands:
        block = self._block_cells
        counts = np.bincount(islands.start // block, minlength=(ncells + block - 1) // block)
        crowded = np.flatnonzero(counts > self._max_islands)
        if len(crowded) == 0:
            return islands
        for b in crowded.tolist():
            start = first_abs + 8 * b * block
            own = min(start + 8 * block, scan_to) - max(start, scan_from)
            self._skipped_bytes += max(0, own)
        return islands.without(np.isin(islands.start // block, crowded))

    def _note_skipped(self) -> None:
        if not self._skipped_bytes:
            return
        kept = [p for p in self.problems if p.error_type is not ErrorType.NOT_DEEP_SCANNED]
        kept.append(
            ScanProblem(
                error_type=ErrorType.NOT_DEEP_SCANNED,
                stage=STAGE,
                detail=(
                    "the RSA number search skipped memory crowded with short random-looking "
                    "values (a table of hashes or random tokens, where candidate numbers are "
                    "too many to pair); structured rules still scanned it"
                ),
                bytes_affected=self._skipped_bytes,
            )
        )
        self.problems[:] = kept

    def note_limit(self, detail: str) -> None:
        """Record once per kind that a per-stream cap was reached (each search has its own)."""
        if detail not in self._limits_noted:
            self._limits_noted.add(detail)
            self.problems.append(
                ScanProblem(error_type=ErrorType.HIT_LIMIT, stage=STAGE, detail=detail)
            )

    def spend_division(self) -> bool:
        """Take one big-integer check from the stream's budget; False when it is spent."""
        if self._divisions_left <= 0:
            self.note_limit("the number search reached its budget of big-integer checks")
            return False
        self._divisions_left -= 1
        return True

    def claim(self, n: int) -> bool:
        """True the first time a modulus is proven in this stream (and while under the key cap)."""
        if n in self._found:
            return False
        if len(self._found) >= self._max_keys:
            self.note_limit(
                f"more than {self._max_keys} keys in numbers; the rest were not reported"
            )
            return False
        self._found.add(n)
        return True


class _WindowSearch:
    """The number search over one window: pairing, exact checks, exponent recovery."""

    def __init__(
        self,
        owner: NumberSearch,
        window: memoryview,
        *,
        base: int,
        first: int,
        scan_from: int,
        scan_to: int,
    ) -> None:
        self._owner = owner
        self.window = window
        self.base = base
        self.first = first
        self.scan_from = scan_from
        self.scan_to = scan_to
        self.positions: dict[tuple[int, int], Positions] = {}
        self.candidates: dict[int, Candidates] = {}

    @property
    def owner(self) -> NumberSearch:
        """The stream's search (budgets, caps, keys already proven)."""
        return self._owner

    def absolute(self, view: View, idx: int) -> int:
        """Stream offset of view-cell `idx`."""
        return self.base + self.first + view.phase + 8 * idx

    def owns(self, offset: int) -> bool:
        """True when this window reports a finding anchored at `offset`."""
        return self.scan_from <= offset < self.scan_to

    def value(self, view: View, idx: int, cells: int) -> int:
        """The integer at view-cell `idx`."""
        return decode(self.window, self.first, view, idx, cells)

    def contains(self, needle: bytes) -> bool:
        """True when the window holds these bytes (searched in place: no copy of the window)."""
        return re.search(re.escape(needle), self.window) is not None

    def all_sizes(self, islands: Islands) -> list[KeyFinding]:
        """Keys of every modulus size in every byte order.

        The candidates of all views are searched together (keys, see
        `candidates.merge`): pairing and matching cost a few dozen numpy calls
        per size, which on a window with few islands is most of the time when
        done per view.
        """
        out: list[KeyFinding] = []
        for size in PRIME_BYTES:
            cells = size // 8
            if islands.longest < 2 * cells - 1:
                continue
            for primes, moduli in self._groups(islands, cells):
                out += self._pairs(cells, primes, moduli)
                out += self._divisors(cells, primes, moduli)
        return out

    def _groups(self, islands: Islands, cells: int) -> Iterator[tuple[Candidates, Candidates]]:
        """(primes, moduli) of `cells` words over every view.

        One batch (`numbers_all_views`) when the window has few islands; else view
        by view, merged while the candidates held stay under MERGE_LIMIT (a crowded
        window has millions, and the batch holds 8 bytes and indices for each).
        """
        work = fused_work(islands, cells, self.positions)
        if max(work, fused_work(islands, 2 * cells, self.positions)) <= FUSE_LIMIT:
            m = self._all_views(islands, 2 * cells)
            if len(m.idx):
                p = self._all_views(islands, cells)
                if len(p.idx):
                    yield p, m
            return
        primes: list[tuple[int, Candidates]] = []
        moduli: list[tuple[int, Candidates]] = []
        held = 0
        for number, view in enumerate(VIEWS):
            words = view_words(self.window, self.first, view)
            m = numbers_of_size(words, islands, view, 2 * cells, cache=self.positions)
            if len(m.idx) == 0:
                continue
            p = numbers_of_size(words, islands, view, cells, cache=self.positions)
            if len(p.idx) == 0:
                continue
            primes.append((number, p))
            moduli.append((number, m))
            held += len(p.idx) + len(m.idx)
            if held >= MERGE_LIMIT:
                yield merge(primes), merge(moduli)
                primes, moduli, held = [], [], 0
        if primes:
            yield merge(primes), merge(moduli)

    def _all_views(self, islands: Islands, cells: int) -> Candidates:
        # a prime size of one key size is the modulus size of another (16 cells: the
        # primes of RSA 2048 and the modulus of RSA 1024): gathered once per window
        found = self.candidates.get(cells)
        if found is None:
            found = numbers_all_views(self.window, self.first, islands, cells, self.positions)
            self.candidates[cells] = found
        return found

    def _number(self, key: int, cells: int) -> int:
        view, idx = unmerge(key)
        return self.value(view, idx, cells)

    def _at(self, key: int) -> int:
        view, idx = unmerge(key)
        return self.absolute(view, idx)

    def _pairs(self, cells: int, primes: Candidates, moduli: Candidates) -> list[KeyFinding]:
        lows = np.unique(moduli.low)
        found: list[KeyFinding] = []
        a, b = self._pair_indices(cells, primes)
        if len(a) == 0:
            return found
        prod = primes.low[a] * primes.low[b]  # wraps mod 2^64: the product's lowest limb
        j = np.searchsorted(lows, prod)
        j[j == len(lows)] = 0
        hit = lows[j] == prod
        for ia, ib, low in zip(a[hit].tolist(), b[hit].tolist(), prod[hit].tolist(), strict=True):
            for nkey in moduli.idx[moduli.low == np.uint64(low)].tolist():
                f = self._prove(cells, int(primes.idx[ia]), int(primes.idx[ib]), nkey)
                if f is not None:
                    found.append(f)
                    break
        return found

    def _pair_indices(self, cells: int, primes: Candidates) -> tuple[I64, I64]:
        """Index pairs into `primes`: neighbouring island starts, and numbers stored back to back.

        All neighbours at once, not one array op per distance: this runs for every byte
        order and size of every window.
        """
        idx = primes.idx
        starts = np.flatnonzero(primes.at_start)
        s_idx = idx[starts]
        limit = self._owner._pair_cells
        # each start pairs with the next starts up to `limit` cells away, at most max_neighbours
        # of them: ragged ranges laid out flat with repeat, so the work is the number of pairs
        ends = np.searchsorted(s_idx, s_idx + limit, side="right")
        counts = np.minimum(ends - np.arange(len(starts)) - 1, self._owner._max_neighbours)
        total = int(counts.sum())
        first = np.repeat(np.arange(len(starts)), counts)
        second = first + 1 + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        far_enough = (s_idx[second] - s_idx[first]) >= cells
        firsts: list[I64] = [starts[first[far_enough]]]
        seconds: list[I64] = [starts[second[far_enough]]]
        # contiguous p || q (CNG blobs, arrays of numbers): q starts where p ends
        k = np.searchsorted(idx, idx + cells)
        k[k == len(idx)] = 0
        adj = np.flatnonzero(idx[k] == idx + cells)
        firsts.append(adj)
        seconds.append(k[adj])
        return np.concatenate(firsts), np.concatenate(seconds)

    def _divisors(self, cells: int, primes: Candidates, moduli: Candidates) -> list[KeyFinding]:
        """A modulus and one stored prime near it that divides it (n % p == 0) is a key too."""
        found: list[KeyFinding] = []
        # only numbers that fill their own allocation: n alone, p alone (heap layout)
        m_idx = moduli.idx[moduli.alone]
        p_idx = primes.idx[primes.alone]
        if len(m_idx) == 0 or len(p_idx) == 0:
            return found
        limit = DIVISOR_DISTANCE // 8
        lo = np.searchsorted(p_idx, m_idx - limit)
        hi = np.searchsorted(p_idx, m_idx + limit)
        for nkey, a, b in zip(m_idx.tolist(), lo.tolist(), hi.tolist(), strict=True):
            if a == b:
                continue
            n = self._number(nkey, 2 * cells)
            if n in self._owner._found:
                continue
            for pkey in p_idx[a:b].tolist():
                if not self._owner.spend_division():
                    return found
                p = self._number(pkey, cells)
                if 1 < p < n and n % p == 0:
                    f = self._finish(unmerge(pkey)[0], n, p, n // p, self._at(pkey))
                    if f is not None:
                        found.append(f)
                    break
        return found

    def _prove(self, cells: int, ka: int, kb: int, nkey: int) -> KeyFinding | None:
        anchor = min(self._at(ka), self._at(kb))
        if not self.owns(anchor):
            return None
        n = self._number(nkey, 2 * cells)
        if n in self._owner._found:
            return None
        p = self._number(ka, cells)
        q = self._number(kb, cells)
        if p * q != n:
            return None
        return self._finish(unmerge(ka)[0], n, p, q, anchor)

    def _finish(self, view: View, n: int, p: int, q: int, anchor: int) -> KeyFinding | None:
        if not self.owns(anchor):
            return None
        if not keymath.plausible_factors(p, q) or not self._owner.claim(n):
            return None
        e, assumed = self._exponent(view.order, p, q)
        log.debug("dumps.key_found", bits=n.bit_length(), order=view.order, offset=anchor)
        return KeyFinding(
            rule=RULE,
            format=f"rsa-numbers-{view.order}",
            algorithm="rsa",
            offset=anchor,
            validated=True,
            bits=n.bit_length(),
            fingerprint=keymath.rsa_fingerprint(n, e),
            exponent_assumed=assumed,
        )

    def _exponent(self, order: str, p: int, q: int) -> tuple[int, bool]:
        """(e, assumed): e is proven when its d or dP for this key is in the window."""
        return keymath.rsa_exponent(p, q, lambda secret: self.contains(encode(secret, order)))
