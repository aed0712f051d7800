"""EC keys held as OpenSSL BIGNUMs in hand-built ELF cores: found when proven by their point, only then."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448, x25519

from agent.scan.dumps import NumberSearch, inspect
from agent.scan.dumps.openssl_ec import CURVES, EcKeySearch
from agent.values import ErrorType
from tests import cores, keys

BASE = 0x55D000000000
SECURE, CONSTTIME, PUBLIC = 0x9, 0x5, 0x1  # BN_FLG_MALLOCED with SECURE / CONSTTIME / nothing
_BY_NAME = {c.curve.name: c for c in CURVES}


@dataclass
class Heap:
    """A glibc-like heap: 16-byte chunk headers, BIGNUM structs pointing at their limbs."""

    data: bytearray = field(default_factory=lambda: bytearray(os.urandom(4096)))

    def chunk(self, payload: bytes) -> int:
        """Append a malloc chunk; the address of its payload."""
        size = 16 + len(payload) + (-len(payload) % 16)
        self.data += struct.pack("<QQ", 0, size | 1)
        at = len(self.data)
        self.data += payload + bytes(-len(payload) % 16)
        return BASE + at

    def bignum(self, value: int, limbs: int, flags: int, *, dmax: int | None = None) -> int:
        """A BIGNUM of `value`; the address of its limbs."""
        d = self.chunk(value.to_bytes(8 * limbs, "little"))
        self.chunk(struct.pack("<QiiiI", d, limbs, dmax or limbs, 0, flags))
        return d

    def ecx(self, private: bytes, public: bytes, kind: int, *, refs: int = 1) -> int:
        """An OpenSSL 3 ECX_KEY and its private bytes; the address of the private bytes."""
        d = self.chunk(private)
        body = struct.pack("<QQ", BASE + 8, 0) + b"\x01" + public.ljust(57, b"\0")
        body = body.ljust(80, b"\0") + struct.pack("<QQII", d, len(private), kind, refs)
        self.chunk(body + struct.pack("<Q", BASE + 16))
        return d

    def junk(self, size: int) -> None:
        self.data += os.urandom(size)

    def core(self) -> bytes:
        return cores.build_elf_core([(BASE, bytes(self.data) + bytes(4096))])


def _point(heap: Heap, key: ec.EllipticCurvePrivateKey, form: str) -> None:
    """The public point as OpenSSL keeps it: affine or Jacobian, plain or Montgomery."""
    c = _BY_NAME[key.curve.name]
    nums = key.public_key().public_numbers()
    p, r = c.p, (c.montgomery if "montgomery" in form else 1)
    z = int.from_bytes(os.urandom(8 * c.limbs), "big") % p if "jacobian" in form else 1
    x, y = nums.x * z * z % p, nums.y * z * z * z % p
    for value in (x * r % p, y * r % p):
        heap.bignum(value, c.limbs, PUBLIC)
        heap.junk(512)
    heap.bignum(z * r % p, 1 if z * r % p < 2**64 else c.limbs, PUBLIC)


def _key_core(curve: ec.EllipticCurve, form: str, flags: int = SECURE) -> tuple[bytes, str, int]:
    """A core holding one EC key's scalar and point; (core, fingerprint, scalar's address)."""
    key = keys.ec_key(curve)
    c = _BY_NAME[curve.name]
    heap = Heap()
    _point(heap, key, form)
    heap.junk(3000)
    at = heap.bignum(key.private_numbers().private_value, c.limbs, flags, dmax=c.limbs + 2)
    heap.junk(2000)
    return heap.core(), keys.fingerprint(key), at


@pytest.mark.parametrize(
    ("curve", "form", "flags"),
    [
        (ec.SECP256R1(), "jacobian montgomery", SECURE),  # a generated P-256 key
        (ec.SECP384R1(), "jacobian plain", SECURE),  # a generated P-384 key
        (ec.SECP256K1(), "affine montgomery", SECURE),
        (ec.SECP521R1(), "affine plain", CONSTTIME),  # a decoded key
        (ec.SECP256R1(), "affine plain", CONSTTIME),
    ],
)
def test_key_held_as_bignums_is_found_and_proven_by_its_point(
    curve: ec.EllipticCurve, form: str, flags: int
) -> None:
    data, fingerprint, address = _key_core(curve, form, flags)
    result = cores.scan_numbers(data)
    (finding,) = result.findings
    assert (finding.fingerprint, finding.curve, finding.algorithm) == (
        fingerprint,
        curve.name,
        "ec",
    )
    assert (finding.rule, finding.format, finding.validated) == (
        "openssl_ec_bignum",
        "ec-bignum-le",
        True,
    )
    assert result.info is not None and result.info.address_of(finding.offset) == address
    assert finding.bits == curve.key_size


def test_scalar_without_its_point_is_never_a_finding() -> None:
    """Any 32 bytes are a P-256 scalar: secret-flagged numbers beside another key's point are not keys."""
    heap = Heap()
    _point(heap, keys.ec_key(ec.SECP256R1()), "jacobian montgomery")
    for _ in range(20):
        heap.bignum(int.from_bytes(os.urandom(32), "big") >> 1, 4, SECURE)
        heap.bignum(int.from_bytes(os.urandom(48), "big") >> 1, 6, CONSTTIME)
    result = cores.scan_numbers(heap.core())
    assert result.findings == []
    assert result.problems == []


def test_a_public_bignum_is_not_a_candidate_scalar() -> None:
    """The struct search tries only numbers OpenSSL marks secret (its cost filter); the limbs
    alone beside their point are still a key for the limb search, which needs no struct."""
    data, _, _ = _key_core(ec.SECP256R1(), "affine plain", flags=PUBLIC)
    assert {f.format for f in cores.scan_numbers(data).findings} == {"ec-numbers-le"}


def test_structs_pointing_nowhere_or_out_of_the_window_are_skipped() -> None:
    """Pointers outside the dump, into another window, and malformed structs cost nothing and raise nothing."""
    key = keys.ec_key(ec.SECP256R1())
    heap = Heap()
    _point(heap, key, "affine plain")
    scalar = key.private_numbers().private_value
    # a struct pointing outside every region, one with dmax < top, one with neg set
    heap.chunk(struct.pack("<QiiiI", 0x10, 4, 4, 0, SECURE))
    heap.chunk(struct.pack("<QiiiI", BASE + 64, 4, 3, 0, SECURE))
    heap.chunk(struct.pack("<QiiiI", BASE + 64, 4, 4, 1, SECURE))
    # the key's limbs, then 256 KiB of junk, then its struct: windows of 128 KiB never hold both
    d = heap.chunk(scalar.to_bytes(32, "little"))
    heap.junk(256 * 1024)
    heap.chunk(struct.pack("<QiiiI", d, 4, 4, 0, SECURE))
    data = heap.core()
    assert cores.scan_numbers(data, chunk=128 * 1024, overlap=16 * 1024).findings == []
    (found,) = cores.scan_numbers(data).findings  # one window: followed
    assert found.fingerprint == keys.fingerprint(key)


def test_a_key_across_window_edges_is_reported_once() -> None:
    """Overlapping windows see the key (and its point) twice or not whole: it is reported once."""
    data, fingerprint, _ = _key_core(ec.SECP384R1(), "jacobian plain")
    for chunk in (8192, 12288, 16384, 65536):
        result = cores.scan_numbers(data, chunk=chunk, overlap=4096 + 2048)
        assert [f.fingerprint for f in result.findings] == [fingerprint], chunk


def test_point_checks_are_budgeted_per_stream() -> None:
    """Each candidate costs a scalar multiplication: past the budget the search stops and says so."""
    heap = Heap()
    for _ in range(5):
        heap.bignum(int.from_bytes(os.urandom(32), "big") >> 1, 4, SECURE)
        private, _ = _raw(ed25519.Ed25519PrivateKey.generate())
        heap.ecx(private, bytes(32), 2)
    data = heap.core()
    info = inspect(data, len(data))
    assert info is not None
    search = EcKeySearch(info, max_point_checks=8)
    assert search.feed(memoryview(data), 0) == []
    assert search.limit_reached  # 5 ECX keys and 5 scalars are 10 checks
    numbers = NumberSearch(memory=info, max_ec_point_checks=3)
    numbers.feed(memoryview(data), 0, 0, len(data))
    (problem,) = numbers.problems
    assert problem.error_type is ErrorType.HIT_LIMIT
    assert "EC key search" in problem.detail


def test_bignums_outside_any_dump_are_not_followed() -> None:
    """Without an address map (a bare memory image) the struct search does not run and nothing
    raises; the limb search, which follows no pointer, still proves the key."""
    data, _, _ = _key_core(ec.SECP256R1(), "affine plain")
    body = data[4096:]  # the heap without the ELF headers
    assert inspect(body, len(body)) is None
    assert {f.format for f in cores.scan_numbers(body).findings} == {"ec-numbers-le"}


_RAW = serialization.Encoding.Raw
_OKP = {
    "x25519": (x25519.X25519PrivateKey, 0),
    "x448": (x448.X448PrivateKey, 1),
    "ed25519": (ed25519.Ed25519PrivateKey, 2),
    "ed448": (ed448.Ed448PrivateKey, 3),
}


def _raw(
    key: ed25519.Ed25519PrivateKey
    | x25519.X25519PrivateKey
    | ed448.Ed448PrivateKey
    | x448.X448PrivateKey,
) -> tuple[bytes, bytes]:
    private = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return private, key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


@pytest.mark.parametrize("algorithm", sorted(_OKP))
def test_ecx_key_is_found_when_its_private_bytes_give_the_public_beside_them(
    algorithm: str,
) -> None:
    cls, kind = _OKP[algorithm]
    key = cls.generate()
    heap = Heap()
    address = heap.ecx(*_raw(key), kind)
    heap.junk(1000)
    result = cores.scan_numbers(heap.core())
    (finding,) = result.findings
    assert (finding.algorithm, finding.format, finding.rule) == (
        algorithm,
        "okp-openssl",
        "openssl_ecx_key",
    )
    assert finding.fingerprint == keys.fingerprint(key)
    assert result.info is not None and result.info.address_of(finding.offset) == address


def test_ecx_look_alikes_are_not_keys() -> None:
    """Another key's public half, no public half, a type that disagrees with the length: nothing."""
    heap = Heap()
    private, _ = _raw(ed25519.Ed25519PrivateKey.generate())
    _, other = _raw(ed25519.Ed25519PrivateKey.generate())
    heap.ecx(private, other, 2)
    heap.ecx(private, bytes(32), 2)
    ed448_private, ed448_public = _raw(ed448.Ed448PrivateKey.generate())
    heap.ecx(ed448_private, ed448_public, 2)  # type says Ed25519, length says 57
    heap.ecx(private, _raw(ed25519.Ed25519PrivateKey.from_private_bytes(private))[1], 2, refs=0)
    assert cores.scan_numbers(heap.core()).findings == []
