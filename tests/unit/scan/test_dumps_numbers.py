"""The RSA number search on synthetic heaps: every byte order and size, window edges, cost control."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from agent.scan.dumps import NumberSearch
from agent.scan.inventory import Inventory, KnownKey
from agent.values import ErrorType
from tests import cores, keys


def _encode(x: int, size: int, order: str) -> bytes:
    if order == "le":
        return x.to_bytes(size, "little")
    if order == "be":
        return x.to_bytes(size, "big")
    return np.frombuffer(x.to_bytes(size, "big"), dtype=">u4").astype("<u4").tobytes()


def _heap(numbers: list[tuple[int, int]], order: str, *, lead: int = 4096) -> bytes:
    """Numbers in their own malloc chunks (size header, zero tail), as a C heap holds them."""
    out = bytearray(lead)
    for value, size in numbers:
        out += struct.pack("<QQ", 0, (size + 24) | 1) + _encode(value, size, order) + bytes(8)
    return bytes(out + bytes(4096))


def _key_numbers(bits: int, *, with_d: bool = True) -> tuple[list[tuple[int, int]], str]:
    key = keys.cached_rsa(bits)
    nums = key.private_numbers()
    n = nums.public_numbers.n
    half = bits // 16
    parts = [(n, bits // 8)]
    if with_d:
        parts.append((nums.d, bits // 8))
    parts += [(nums.p, half), (nums.q, half)]
    return parts, keymath.rsa_fingerprint(n, 65537)


def _big_product(bits: int) -> tuple[list[tuple[int, int]], str]:
    """n = p * q for sizes whose real key generation takes tens of seconds.

    The search proves p * q = n exactly; primality is checked only up to
    2048-bit primes (cost bound), so random odd factors exercise the same path.
    """
    half = bits // 2
    p, q = (
        int.from_bytes(os.urandom(half // 8), "big") | 1 | (1 << (half - 1)) | (1 << (half - 2))
        for _ in range(2)
    )
    return [(p * q, bits // 8), (p, half // 8), (q, half // 8)], keymath.rsa_fingerprint(
        p * q, 65537
    )


@pytest.mark.parametrize("order", ["le", "be", "java"])
@pytest.mark.parametrize("bits", [1024, 1536, 2048, 3072, 4096, 6144, 7680, 8192])
def test_key_stored_as_numbers_is_found_in_every_order_and_size(order: str, bits: int) -> None:
    """n, p and q (and d when generated) in one byte order are found as one key with its fingerprint."""
    if bits in (1024, 1536, 2048, 3072, 4096):
        parts, fp = _key_numbers(bits)
        assumed = False
    else:
        parts, fp = _big_product(bits)
        assumed = True
    data = _heap(parts, order)
    findings = NumberSearch().feed(memoryview(data), 0, 0, len(data))
    assert [(f.format, f.bits, f.fingerprint, f.exponent_assumed) for f in findings] == [
        (f"rsa-numbers-{order}", bits, fp, assumed)
    ]
    assert findings[0].rule == "rsa_number_search" and findings[0].validated


def test_big_endian_numbers_back_to_back_at_an_odd_offset_are_found() -> None:
    """n || p || q big-endian, contiguous and unaligned (as in a CNG blob), is found."""
    parts, fp = _key_numbers(2048)
    n, _, p, q = (v for v, _ in parts)
    data = (
        bytes(4099)
        + n.to_bytes(256, "big")
        + p.to_bytes(128, "big")
        + q.to_bytes(128, "big")
        + bytes(4096)
    )
    findings = NumberSearch().feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [fp]
    assert findings[0].offset == 4099 + 256


def test_without_d_the_exponent_is_assumed_and_said() -> None:
    """With no d or dP in memory, e = 65537 is assumed and the finding says so."""
    parts, fp = _key_numbers(2048, with_d=False)
    data = _heap(parts, "le")
    (finding,) = NumberSearch().feed(memoryview(data), 0, 0, len(data))
    assert finding.fingerprint == fp and finding.exponent_assumed


def test_modulus_and_one_prime_are_enough() -> None:
    """n with only p beside it (q overwritten) is factored and reported."""
    parts, fp = _key_numbers(2048)
    data = _heap(parts[:3], "le")  # n, d, p
    findings = NumberSearch().feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [fp]


def test_public_numbers_alone_are_not_a_key() -> None:
    """A modulus and unrelated prime-sized numbers never make a finding."""
    parts, _ = _key_numbers(2048)
    other, _ = _key_numbers(1024)
    data = _heap(
        [
            parts[0],
            (int.from_bytes(os.urandom(128), "little") | 1 | (1 << 1023), 128),
            other[2],
            other[3],
        ],
        "le",
    )
    assert not NumberSearch().feed(memoryview(data), 0, 0, len(data))


def test_key_across_a_window_edge_is_reported_once() -> None:
    """Fed in overlapping windows as the scanner does, a key on a window edge is reported exactly once."""
    parts, fp = _key_numbers(2048)
    key_heap = _heap(parts, "le", lead=0)
    chunk, overlap = 256 * 1024, 64 * 1024
    for edge in (chunk - overlap - 600, chunk - overlap - 8, chunk - 300, chunk + 1000):
        at = edge - edge % 16
        data = bytes(at) + key_heap + bytes(chunk)
        search = NumberSearch()
        found = []
        pos = 0
        while True:
            window = data[pos : pos + chunk]
            last = pos + len(window) >= len(data)
            own = len(window) if last else len(window) - overlap
            found += search.feed(memoryview(window), pos, pos, pos + own)
            if last:
                break
            pos += chunk - overlap
        assert [f.fingerprint for f in found] == [fp], at


def test_key_packed_between_random_buffers_is_found() -> None:
    """Random memory right beside a key's numbers (same 64 KiB block) hides nothing.

    An earlier cost control skipped blocks that were mostly random-looking
    cells; OpenSSL keeps a key's numbers side by side, so it skipped the key.
    """
    parts, fp = _key_numbers(4096)
    heap = _heap(parts, "le")
    data = os.urandom(1 << 20) + heap + os.urandom(1 << 20)
    search = NumberSearch()
    findings = search.feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [fp]
    assert search.problems == []


def test_memory_crowded_with_short_random_values_is_skipped_and_counted() -> None:
    """A table of many short random values is not paired window by window (hopeless), and the
    bytes are recorded; the stream-wide join keeps what its cap allows, and says so."""
    parts, fp = _key_numbers(2048)
    # malloc-like chunks: a 16-byte header, then 64 random bytes (a table of tokens or hashes)
    chunk = lambda: struct.pack("<QQ", 0x51, 0) + os.urandom(64)  # noqa: E731
    table = b"".join(chunk() for _ in range((2 << 20) // 80 + 1))[: 2 << 20]
    data = table + _heap(parts, "le")
    search = NumberSearch()
    findings = search.feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [fp]
    skipped, capped = search.problems
    assert skipped.error_type is ErrorType.NOT_DEEP_SCANNED
    assert skipped.bytes_affected == 2 << 20
    assert capped.error_type is ErrorType.HIT_LIMIT and "alone" in capped.detail


def test_key_cap_is_noted() -> None:
    """Past the per-stream key cap further keys are not reported, and the cap is recorded."""
    data = b"".join(
        _heap(_key_numbers(1024)[0] if i == 0 else _key_numbers_index(i), "le") for i in range(3)
    )
    search = NumberSearch(max_keys=2)
    assert len(search.feed(memoryview(data), 0, 0, len(data))) == 2
    assert [p.error_type for p in search.problems] == [ErrorType.HIT_LIMIT]


def _key_numbers_index(index: int) -> list[tuple[int, int]]:
    nums = keys.cached_rsa(1024, index).private_numbers()
    return [(nums.public_numbers.n, 128), (nums.p, 64), (nums.q, 64)]


def test_inventory_prime_alone_is_a_finding() -> None:
    """With the inventory, one stored prime of a registered key (no n nearby) is a named finding."""
    key = keys.cached_rsa(2048)
    nums = key.private_numbers()
    fp = keys.fingerprint(key)
    known = KnownKey(
        name="signing",
        fingerprint=fp,
        algorithm="rsa",
        bits=2048,
        rsa_n=nums.public_numbers.n,
        rsa_e=65537,
    )
    data = _heap([(nums.q, 128)], "be")
    assert not NumberSearch().feed(memoryview(data), 0, 0, len(data))
    (finding,) = NumberSearch(inventory=Inventory((known,))).feed(memoryview(data), 0, 0, len(data))
    assert (finding.fingerprint, finding.inventory_name, finding.format) == (
        fp,
        "signing",
        "rsa-prime-be",
    )


@pytest.mark.parametrize("order", ["le", "be"])
def test_ec_scalar_of_a_registered_key_is_found_and_bare_scalars_never_without(order: str) -> None:
    """A bare EC scalar is a finding only when the inventory holds its public point."""
    key = keys.ec_key(ec.SECP256R1())
    data = _heap([(key.private_numbers().private_value, 32)], order)
    assert not NumberSearch().feed(memoryview(data), 0, 0, len(data))
    (finding,) = NumberSearch(inventory=_inventory_of(key)).feed(memoryview(data), 0, 0, len(data))
    assert (finding.algorithm, finding.curve, finding.inventory_name) == ("ec", "secp256r1", "api")


@pytest.mark.parametrize("order", ["le", "be"])
def test_ec_scalar_with_a_cell_of_low_bytes_is_found(order: str) -> None:
    """One of a scalar's 8-byte cells has no byte >= 0x80 about once in 64 keys; still found.

    Islands are dropped as text when their first cells lack high bytes; requiring
    all three of a 256-bit scalar's missed such keys.
    """
    stored = bytearray(os.urandom(32))
    stored[8:16] = bytes(b & 0x7F for b in stored[8:16])
    top = 31 if order == "le" else 0
    stored[top] = 0x80 | (stored[top] & 0x7E)  # below the P-256 group order, 256 bits long
    scalar = int.from_bytes(stored, "little" if order == "le" else "big")
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    data = _heap([(scalar, 32)], order)
    assert data.count(bytes(stored)) == 1
    (finding,) = NumberSearch(inventory=_inventory_of(key)).feed(memoryview(data), 0, 0, len(data))
    assert finding.fingerprint == keys.fingerprint(key)


def _inventory_of(key: ec.EllipticCurvePrivateKey) -> Inventory:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    known = KnownKey(
        name="api",
        fingerprint=keys.fingerprint(key),
        algorithm="ec",
        curve="secp256r1",
        ec_public_point=point,
    )
    return Inventory((known,))


def test_synthetic_core_through_the_reader_and_the_search() -> None:
    """A key inside a hand-built ELF core is found, and its offset maps to the planted address."""
    parts, fp = _key_numbers(2048)
    core = cores.build_elf_core([(0x7F0000000000, _heap(parts, "le"))])
    result = cores.scan_numbers(core)
    (finding,) = result.findings
    assert finding.fingerprint == fp
    assert result.info is not None
    address = result.info.address_of(finding.offset)
    assert address is not None and 0x7F0000000000 < address < 0x7F0000000000 + 8192


def _pointers(count: int, *, kernel: bool = False) -> bytes:
    base = 0xFFFF888000000000 if kernel else 0x00007F0000000000
    rng = np.random.default_rng(3)
    words = (rng.integers(0, 1 << 36, count, dtype=np.uint64) << np.uint64(3)) | np.uint64(base)
    return words.astype("<u8").tobytes()


@pytest.mark.parametrize("kernel", [False, True])
def test_pointer_arrays_and_int_tables_hold_no_candidates(kernel: bool) -> None:
    """Pointers and small 32-bit integers are random-looking in their low bytes, never numbers.

    Before the weak-cell rule, an array of pointers was one long island and a
    heap of pointers mixed with small integers thousands of short ones; every
    later step paid for them.
    """
    from agent.scan.dumps.candidates import CellClassifier, Islands

    ints = np.random.default_rng(4).integers(0, 4096, 1 << 16, dtype=np.uint32).tobytes()
    for data in (_pointers(1 << 16, kernel=kernel), ints):
        cells = np.frombuffer(data, dtype="<u8")
        good = CellClassifier().classify(cells)
        assert len(Islands.from_cells(cells, good, 3).start) == 0


def test_classifier_matches_its_reference_across_block_edges() -> None:
    """The blocked, in-place classifier gives the reference answer at every size and edge."""
    from agent.scan.dumps.candidates import CellClassifier, Islands, bad_cells, high_cells

    rng = np.random.default_rng(5)
    classifier = CellClassifier()
    for n in (1, 2, 7, 32767, 32768, 32769, 100_003):
        cells = rng.integers(0, 1 << 64, n, dtype=np.uint64)
        pick = rng.random(n)
        mixed = np.frombuffer(_pointers(n) + _pointers(n, kernel=True), dtype="<u8")
        cells[pick < 0.2] = mixed[:n][pick < 0.2]
        cells[pick > 0.9] = mixed[n:][pick > 0.9]
        small = (pick > 0.4) & (pick < 0.5)
        cells[small] = rng.integers(0, 1 << 40, int(small.sum()), dtype=np.uint64)
        cells[(pick > 0.6) & (pick < 0.7)] &= np.uint64(0x7F7F7F7F7F7F7F7F)  # no high byte
        good = classifier.classify(cells)
        assert np.array_equal(good, ~bad_cells(cells)), n
        # islands test high bytes only at their starts: same islands as from the reference
        for min_cells in (3, 7):
            islands = Islands.from_cells(cells, good, min_cells)
            assert _reference_islands(~bad_cells(cells), high_cells(cells), min_cells) == list(
                zip(islands.start.tolist(), islands.length.tolist(), strict=True)
            ), n


def _reference_islands(good: np.ndarray, high: np.ndarray, min_cells: int) -> list[tuple[int, int]]:
    """Runs of good cells of at least `min_cells`, at most one of whose first `min_cells` has no
    byte >= 0x80; cell by cell."""
    out: list[tuple[int, int]] = []
    start = None
    for i, g in enumerate([*good.tolist(), False]):
        if g and start is None:
            start = i
        elif not g and start is not None:
            if (
                i - start >= min_cells
                and int(high[start : start + min_cells].sum()) >= min_cells - 1
            ):
                out.append((start, i - start))
            start = None
    return out


def _after_pointers(numbers: list[tuple[int, int]]) -> bytes:
    """Numbers in malloc chunks whose first cell is a pointer (a struct holding the number)."""
    data = bytearray(os.urandom(4096))
    for value, size in numbers:
        data += struct.pack("<QQ", 0, (size + 32) | 1) + _pointers(1) + _encode(value, size, "le")
    return bytes(data + bytes(4096))


def test_key_after_a_pointer_is_found() -> None:
    """A pointer right before each number ends the island there (it used to start the island)."""
    parts, fp = _key_numbers(2048)
    data = _after_pointers(parts)
    assert [f.fingerprint for f in NumberSearch().feed(memoryview(data), 0, 0, len(data))] == [fp]


@pytest.mark.parametrize("limb", [0, 5, 23])
def test_a_limb_that_looks_like_a_pointer_does_not_split_a_number(limb: int) -> None:
    """A lone limb whose top 16 bits are zero (about one 4096-bit key in 500) stays inside its number.

    Only two such cells side by side end an island. 6144-bit products: the
    search proves p * q = n exactly and tests primality only up to 2048-bit
    primes, so a factor may be edited.
    """
    (_, (p, half), (q, _)), _ = _big_product(6144)
    raw = bytearray(p.to_bytes(half, "little"))
    raw[8 * limb + 6 : 8 * limb + 8] = b"\0\0"
    p = int.from_bytes(raw, "little")
    data = _after_pointers([(p * q, 2 * half), (p, half), (q, half)])
    findings = NumberSearch().feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [keymath.rsa_fingerprint(p * q, 65537)]


def test_all_views_in_one_batch_equal_the_views_one_by_one() -> None:
    """`numbers_all_views` gives exactly the merged per-view candidates (keys, lows, flags)."""
    from agent.scan.dumps.candidates import (
        VIEWS,
        CellClassifier,
        Islands,
        merge,
        numbers_all_views,
        numbers_of_size,
        view_words,
    )

    parts, _ = _key_numbers(2048)
    data = (
        os.urandom(3000)
        + _heap(parts, "le")
        + b"\x01\x02\x03"  # shifts what follows off the 8-byte grid
        + _heap(parts, "be")
        + _heap(parts, "java")
        + os.urandom(5000)
        + bytes(4096)
    )
    window = memoryview(data)
    cells = np.frombuffer(data, dtype="<u8", count=len(data) // 8)
    islands = Islands.from_cells(cells, CellClassifier().classify(cells), 7)
    for size in (8, 16, 32, 64):
        batch = numbers_all_views(window, 0, islands, size, {})
        one_by_one = merge(
            [
                (k, numbers_of_size(view_words(window, 0, v), islands, v, size))
                for k, v in enumerate(VIEWS)
            ]
        )
        assert len(batch.idx) > 0
        for field in ("idx", "low", "at_start", "alone"):
            assert np.array_equal(getattr(batch, field), getattr(one_by_one, field)), (size, field)


def test_a_window_with_many_islands_takes_the_view_by_view_path_and_finds_the_key() -> None:
    """Past FUSE_LIMIT gathered pairs the views go one by one (bounded memory), same keys."""
    from agent.scan.dumps import numbers

    parts, fp = _key_numbers(2048)
    # a table of 184-byte random values in malloc chunks: ~330 islands per 64 KiB, under the
    # crowding limit, about 10,000 in all (far past FUSE_LIMIT with 11 views)
    chunk = lambda: struct.pack("<QQ", 0, 0xC1) + os.urandom(184)  # noqa: E731
    table = b"".join(chunk() for _ in range((2 << 20) // 200))
    data = table + _heap(parts, "be")
    islands_work = len(table) // 200 * 8 * len(numbers.VIEWS)
    assert islands_work > numbers.FUSE_LIMIT
    search = NumberSearch()
    findings = search.feed(memoryview(data), 0, 0, len(data))
    assert [f.fingerprint for f in findings] == [fp]
    assert search.problems == []
