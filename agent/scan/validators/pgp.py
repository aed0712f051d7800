"""OpenPGP secret keys (RFC 4880 / 9580): walk the packets of a decoded armour block, prove each key.

Called by the PEM validator once it has removed the armour. Secret-key and
secret-subkey packets (tags 5 and 7, versions 4, 5 and 6) are parsed; the
public half is always in clear, so every key gets a fingerprint in our
scheme (SPKI SHA-256) when its algorithm has an SPKI: RSA, DSA, ECDSA/ECDH on
NIST and brainpool curves, Ed25519/Ed448 and X25519/X448. Unencrypted secrets
are proven (RSA p*q = n and e*d = 1 mod lambda(n); DSA y = g^x; curves derive
the public point); encrypted ones are reported when their S2K section parses.
ElGamal keys and GNU "dummy" stubs (no secret present) are not findings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from agent.scan import keymath

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_PACKETS = 64
MAX_MPI_BITS = keymath.MAX_RSA_BITS

_RSA = (1, 2, 3)
_ELGAMAL = (16, 20)
_DSA = 17
_ECDH = 18
_ECDSA = 19
_EDDSA_LEGACY = 22
# native v6 algorithms: fixed-size raw public and secret octets
_NATIVE = {
    25: ("x25519", 32, 32),
    26: ("x448", 56, 56),
    27: ("ed25519", 32, 32),
    28: ("ed448", 57, 57),
}

_NIST_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
    bytes.fromhex("2b8104000a"): ec.SECP256K1(),
    bytes.fromhex("2b2403030208010107"): ec.BrainpoolP256R1(),
    bytes.fromhex("2b240303020801010b"): ec.BrainpoolP384R1(),
    bytes.fromhex("2b240303020801010d"): ec.BrainpoolP512R1(),
}
_OID_ED25519 = bytes.fromhex("2b06010401da470f01")
_OID_CV25519 = bytes.fromhex("2b060104019755010501")
# symmetric algorithm id -> block size (the IV length of the secret-key encryption)
_BLOCK = {1: 8, 2: 8, 3: 8, 4: 8, 7: 16, 8: 16, 9: 16, 10: 16, 11: 16, 12: 16, 13: 16}


class _MalformedError(ValueError):
    """The packet is not what it claims (never carries the bytes)."""


def crc24(data: bytes) -> int:
    """The OpenPGP armour checksum (RFC 4880 section 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def checksum_matches(body: bytes, checksum: str) -> bool:
    """True when the armour's `=XXXX` line is the CRC24 of the body."""
    try:
        raw = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 3 and int.from_bytes(raw, "big") == crc24(body)


@dataclass(slots=True)
class _Reader:
    buf: bytes
    pos: int = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise _MalformedError("truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def mpi(self, max_bits: int = MAX_MPI_BITS) -> int:
        bits = int.from_bytes(self.take(2), "big")
        if bits > max_bits:
            raise _MalformedError("MPI too large")
        return int.from_bytes(self.take((bits + 7) // 8), "big")

    def mpi_bytes(self) -> bytes:
        bits = int.from_bytes(self.take(2), "big")
        if bits > MAX_MPI_BITS:
            raise _MalformedError("MPI too large")
        return self.take((bits + 7) // 8)


@dataclass(frozen=True, slots=True)
class _Public:
    algo: int
    numbers: tuple[int, ...] = ()
    oid: bytes = b""
    point: bytes = b""


MAX_BINARY_BYTES = 1 << 20  # a keyring of dozens of keys; MAX_PACKETS stops the walk anyway


def validate_binary(hit: Hit) -> Sequence[KeyFinding]:
    """Unarmoured packets from the hit on: `gpg --export-secret-keys`, GnuPG 1.x secring.gpg."""
    packets = bytes(hit.data[hit.start : hit.start + MAX_BINARY_BYTES])
    return findings(packets, hit, fmt="pgp-binary")


def findings(packets: bytes, hit: Hit, *, fmt: str) -> Sequence[KeyFinding]:
    """One finding per secret key or subkey packet that parses and proves (or parses, encrypted)."""
    out: list[KeyFinding] = []
    pos = 0
    for _ in range(MAX_PACKETS):
        if pos >= len(packets):
            break
        try:
            tag, start, end = _packet_header(packets, pos)
        except _MalformedError:
            break  # keep what was proven before the damage
        if tag in (5, 7):
            try:
                finding = _secret_key(packets[start:end], hit, fmt)
            except (_MalformedError, ValueError, TypeError, UnsupportedAlgorithm):
                finding = None
            if finding is not None:
                out.append(finding)
        pos = end
    return tuple(out)


def _packet_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, body start, body end) of the packet at `pos`; partial lengths are refused."""
    r = _Reader(buf, pos)
    first = r.byte()
    if not first & 0x80:
        raise _MalformedError("not a packet")
    if first & 0x40:  # new format
        tag = first & 0x3F
        o1 = r.byte()
        if o1 < 192:
            length = o1
        elif o1 < 224:
            length = ((o1 - 192) << 8) + r.byte() + 192
        elif o1 == 255:
            length = int.from_bytes(r.take(4), "big")
        else:
            raise _MalformedError("partial length")  # never used for key packets
    else:
        tag = (first >> 2) & 0x0F
        kind = first & 0x03
        if kind == 3:
            raise _MalformedError("indeterminate length")
        length = int.from_bytes(r.take(1 << kind), "big")
    if r.pos + length > len(buf):
        raise _MalformedError("packet past the end")
    return tag, r.pos, r.pos + length


def _secret_key(body: bytes, hit: Hit, fmt: str) -> KeyFinding | None:
    r = _Reader(body)
    version = r.byte()
    if version not in (4, 5, 6):
        return None
    r.take(4)  # creation time
    algo = r.byte()
    public_end = None
    if version in (5, 6):
        public_end = r.pos + 4 + int.from_bytes(r.take(4), "big")
    public = _read_public(r, algo)
    if public_end is not None and r.pos != public_end:
        return None
    usage = r.byte()
    if usage == 0:
        proven = _read_secret(r, public)
        if proven is None:
            return None
        public_key, algorithm = proven
        if version == 4 and not _checksum_ok(body, r):
            return None
        encrypted = False
    else:
        if not _encrypted_section_ok(r, usage, version):
            return None
        public_key, algorithm = _public_key(public)
        encrypted = True
    bits, curve = _size(public_key)
    return hit.finding(
        format=fmt,
        algorithm=algorithm,
        bits=bits,
        curve=curve,
        fingerprint=keymath.fingerprint(public_key),
        validated=True,
        encrypted=encrypted,
    )


def _read_public(r: _Reader, algo: int) -> _Public:
    if algo in _RSA:
        return _Public(algo, (r.mpi(), r.mpi()))
    if algo == _DSA:
        return _Public(algo, (r.mpi(), r.mpi(), r.mpi(), r.mpi()))
    if algo in (_ECDSA, _ECDH, _EDDSA_LEGACY):
        oid_len = r.byte()
        if oid_len in (0, 0xFF):
            raise _MalformedError("reserved OID length")
        oid = r.take(oid_len)
        point = r.mpi_bytes()
        if algo == _ECDH:
            r.take(r.byte())  # KDF parameters
        return _Public(algo, oid=oid, point=point)
    if algo in _NATIVE:
        return _Public(algo, point=r.take(_NATIVE[algo][1]))
    raise _MalformedError("unsupported algorithm")  # ElGamal and unknown ids: no SPKI, no finding


def _read_secret(r: _Reader, pub: _Public) -> tuple[PublicKeyTypes, str] | None:
    """Read the clear secret and prove it against the public half."""
    algo = pub.algo
    if algo in _RSA:
        n, e = pub.numbers
        d, p, q, u = r.mpi(), r.mpi(), r.mpi(), r.mpi()
        if not keymath.rsa_consistent(n, e, d, p, q) or (u * p) % q != 1:
            return None
        return rsa.RSAPublicNumbers(e, n).public_key(), "rsa"
    if algo == _DSA:
        p, q, g, y = pub.numbers
        public = keymath.dsa_proven(p, q, g, y, r.mpi())
        return (public, "dsa") if public is not None else None
    if algo in _NATIVE:
        name, _, secret_len = _NATIVE[algo]
        secret = r.take(secret_len)
        derived = _raw_public(name, secret)
        return (derived, name) if _raw(derived) == pub.point else None
    scalar = r.mpi_bytes()
    if pub.oid == _OID_ED25519 and algo == _EDDSA_LEGACY:
        derived = _raw_public("ed25519", scalar.rjust(32, b"\0")[-32:])
        return (derived, "ed25519") if b"\x40" + _raw(derived) == pub.point else None
    if pub.oid == _OID_CV25519 and algo == _ECDH:
        # stored big-endian; X25519 wants little-endian (some writers get it backwards)
        padded = scalar.rjust(32, b"\0")[-32:]
        for candidate in (padded[::-1], padded):
            derived = _raw_public("x25519", candidate)
            if b"\x40" + _raw(derived) == pub.point:
                return derived, "x25519"
        return None
    curve = _NIST_CURVES.get(pub.oid)
    if curve is None or algo not in (_ECDSA, _ECDH):
        return None
    value = int.from_bytes(scalar, "big")
    if value <= 0 or value.bit_length() > curve.key_size:
        return None
    derived_ec = ec.derive_private_key(value, curve).public_key()
    if derived_ec.public_numbers() != _ec_public(curve, pub.point).public_numbers():
        return None
    return derived_ec, "ec"


def _checksum_ok(body: bytes, r: _Reader) -> bool:
    """v4 clear secrets end with a 16-bit sum of their octets."""
    start = _secret_start(body)
    if start is None:
        return False
    secret = body[start : r.pos]
    stored = int.from_bytes(r.take(2), "big")
    return sum(secret) & 0xFFFF == stored


def _secret_start(body: bytes) -> int | None:
    """Offset of the first secret octet (just after the S2K usage octet) in a v4 packet."""
    r = _Reader(body)
    r.take(1 + 4)
    _read_public(r, r.byte())
    r.byte()
    return r.pos


def _encrypted_section_ok(r: _Reader, usage: int, version: int) -> bool:
    """The S2K section parses and leaves ciphertext; GNU dummy stubs hold no secret."""
    if version in (5, 6):
        count = r.byte()  # v5/v6 say how long the optional fields are
        r.take(count)
        return len(r.buf) - r.pos >= 16
    if usage in (254, 255):
        sym = r.byte()
        s2k = r.byte()
        if s2k == 101:
            return False  # GNU extension: the secret is absent or on a card
        r.byte()  # hash algorithm
        if s2k in (1, 3):
            r.take(8)
        if s2k == 3:
            r.byte()
        elif s2k not in (0, 1):
            return False
    else:
        sym = usage  # legacy: the usage octet is the cipher
    block = _BLOCK.get(sym)
    if block is None:
        return False
    r.take(block)
    return len(r.buf) - r.pos >= 16


def _public_key(pub: _Public) -> tuple[PublicKeyTypes, str]:
    algo = pub.algo
    if algo in _RSA:
        n, e = pub.numbers
        if not keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS:
            raise _MalformedError("modulus size")
        return rsa.RSAPublicNumbers(e, n).public_key(), "rsa"
    if algo == _DSA:
        p, q, g, y = pub.numbers
        return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key(), "dsa"
    if algo in _NATIVE:
        name = _NATIVE[algo][0]
        return _from_raw(name, pub.point), name
    if pub.oid == _OID_ED25519 and pub.point[:1] == b"\x40":
        return _from_raw("ed25519", pub.point[1:]), "ed25519"
    if pub.oid == _OID_CV25519 and pub.point[:1] == b"\x40":
        return _from_raw("x25519", pub.point[1:]), "x25519"
    curve = _NIST_CURVES.get(pub.oid)
    if curve is None:
        raise _MalformedError("unknown curve")
    return _ec_public(curve, pub.point), "ec"


def _ec_public(curve: ec.EllipticCurve, point: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def _raw_public(name: str, secret: bytes) -> PublicKeyTypes:
    if name == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret).public_key()
    if name == "ed448":
        return ed448.Ed448PrivateKey.from_private_bytes(secret).public_key()
    if name == "x25519":
        return x25519.X25519PrivateKey.from_private_bytes(secret).public_key()
    return x448.X448PrivateKey.from_private_bytes(secret).public_key()


def _from_raw(name: str, public: bytes) -> PublicKeyTypes:
    if name == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(public)
    if name == "ed448":
        return ed448.Ed448PublicKey.from_public_bytes(public)
    if name == "x25519":
        return x25519.X25519PublicKey.from_public_bytes(public)
    return x448.X448PublicKey.from_public_bytes(public)


def _raw(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _size(public: PublicKeyTypes) -> tuple[int | None, str | None]:
    if isinstance(public, rsa.RSAPublicKey | dsa.DSAPublicKey):
        return public.key_size, None
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.curve.key_size, public.curve.name
    return None, None
