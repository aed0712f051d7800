"""Windows CryptoAPI and CNG private key blobs: fixed struct layouts, proven by RSA/EC arithmetic.

CryptoAPI PRIVATEKEYBLOB: BLOBHEADER (8 bytes, optional in memory), RSAPUBKEY
{"RSA2", bitlen, pubexp}, then n, p, q, dP, dQ, qInv, d little-endian in
bitlen/8 or bitlen/16 bytes. CNG BCRYPT_RSAKEY_BLOB: six ULONGs, then
big-endian e, n, p, q (and dP, dQ, qInv, d for RSAFULLPRIVATE).
BCRYPT_ECCKEY_BLOB: magic, cbKey, then big-endian X, Y, d. Public blobs carry
other magics and never reach these validators; a private magic with numbers
that do not form a key gives no finding.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan.validators.der import ec_finding, ec_private_key, rsa_finding, rsa_proven

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MIN_BITS = 512
MAX_BITS = 16384
_BLOBHEADER = struct.Struct("<BBHI")  # bType, bVersion, reserved, aiKeyAlg
_PRIVATEKEYBLOB = 0x07
_CALG_RSA = (0x0000A400, 0x00002400)  # CALG_RSA_KEYX, CALG_RSA_SIGN
_RSA2 = b"RSA2"
_RSA3 = b"RSA3"

# ECC magic -> curve (None: generic magic, the curve follows from cbKey)
_ECC_MAGICS: dict[bytes, ec.EllipticCurve | None] = {
    b"ECK2": ec.SECP256R1(),
    b"ECK4": ec.SECP384R1(),
    b"ECK6": ec.SECP521R1(),
    b"ECS2": ec.SECP256R1(),
    b"ECS4": ec.SECP384R1(),
    b"ECS6": ec.SECP521R1(),
    b"ECKV": None,
    b"ECSV": None,
}
_CURVE_BY_CBKEY: dict[int, ec.EllipticCurve] = {
    32: ec.SECP256R1(),
    48: ec.SECP384R1(),
    66: ec.SECP521R1(),
}


def validate_capi(hit: Hit) -> Sequence[KeyFinding]:
    """A CryptoAPI PRIVATEKEYBLOB at the hit (with its BLOBHEADER or starting at "RSA2")."""
    data = hit.data
    pos = hit.start
    if bytes(data[pos : pos + 4]) == _RSA2:
        if pos >= 8 and _is_blobheader(bytes(data[pos - 8 : pos])):
            return ()  # the BLOBHEADER hit, 8 bytes earlier, reports this blob
        magic_at = pos
    else:
        if not _is_blobheader(bytes(data[pos : pos + 8])):
            return ()
        magic_at = pos + 8
    head = bytes(data[magic_at : magic_at + 12])
    if len(head) != 12 or head[:4] != _RSA2:
        return ()
    bitlen, e = struct.unpack_from("<II", head, 4)
    if not MIN_BITS <= bitlen <= MAX_BITS or bitlen % 16 or e < 3:
        return ()
    full, half = bitlen // 8, bitlen // 16
    sizes = (full, half, half, half, half, half, full)
    numbers = _read_numbers(data, magic_at + 12, sizes, "little")
    if numbers is None:
        return ()
    n, p, q, dp, dq, qinv, d = numbers
    if not rsa_proven(n, e, d, p, q, dp=dp, dq=dq, qinv=qinv):
        return ()
    return (rsa_finding(hit, n, e, "capi-privatekeyblob"),)


def validate_cng_rsa(hit: Hit) -> Sequence[KeyFinding]:
    """A CNG BCRYPT_RSAPRIVATE_BLOB ("RSA2") or BCRYPT_RSAFULLPRIVATE_BLOB ("RSA3") at the hit."""
    data = hit.data
    head = bytes(data[hit.start : hit.start + 24])
    if len(head) != 24 or head[:4] not in (_RSA2, _RSA3):
        return ()
    bitlen, cb_exp, cb_mod, cb_p1, cb_p2 = struct.unpack_from("<5I", head, 4)
    full_bytes = (bitlen + 7) // 8
    if not (
        MIN_BITS <= bitlen <= MAX_BITS
        and 1 <= cb_exp <= 8
        and cb_mod == full_bytes
        and 0 < cb_p1 <= cb_mod
        and 0 < cb_p2 <= cb_mod
    ):
        return ()
    full = head[:4] == _RSA3
    sizes: tuple[int, ...] = (cb_exp, cb_mod, cb_p1, cb_p2)
    if full:
        sizes += (cb_p1, cb_p2, cb_p1, cb_mod)
    numbers = _read_numbers(data, hit.start + 24, sizes, "big")
    if numbers is None:
        return ()
    e, n, p, q = numbers[:4]
    if n.bit_length() != bitlen:
        return ()
    if full:
        dp, dq, qinv, d = numbers[4:]
        proven = rsa_proven(n, e, d, p, q, dp=dp, dq=dq, qinv=qinv)
    else:
        proven = rsa_proven(n, e, None, p, q)
    if not proven:
        return ()
    return (rsa_finding(hit, n, e, "cng-rsafullprivate" if full else "cng-rsaprivate"),)


def validate_cng_ecc(hit: Hit) -> Sequence[KeyFinding]:
    """A CNG BCRYPT_ECCPRIVATE_BLOB (ECDH/ECDSA, named or generic magic) at the hit."""
    data = hit.data
    head = bytes(data[hit.start : hit.start + 8])
    if len(head) != 8 or head[:4] not in _ECC_MAGICS:
        return ()
    (cb_key,) = struct.unpack_from("<I", head, 4)
    curve = _ECC_MAGICS[head[:4]] or _CURVE_BY_CBKEY.get(cb_key)
    if curve is None or (curve.key_size + 7) // 8 != cb_key:
        return ()
    numbers = _read_numbers(data, hit.start + 8, (cb_key, cb_key, cb_key), "big")
    if numbers is None:
        return ()
    x, y, d = numbers
    point = b"\x04" + x.to_bytes(cb_key, "big") + y.to_bytes(cb_key, "big")
    key = ec_private_key(d, curve, point)
    if key is None:
        return ()
    return (ec_finding(hit, key, "cng-eccprivate"),)


def _is_blobheader(raw: bytes) -> bool:
    if len(raw) != 8:
        return False
    b_type, b_version, reserved, alg = _BLOBHEADER.unpack(raw)
    return b_type == _PRIVATEKEYBLOB and b_version == 2 and reserved == 0 and alg in _CALG_RSA


def _read_numbers(
    data: memoryview, pos: int, sizes: Sequence[int], order: Literal["little", "big"]
) -> tuple[int, ...] | None:
    """Consecutive fixed-width integers, or None when the window ends first (sizes are capped)."""
    end = pos + sum(sizes)
    if end > len(data):
        return None
    out: list[int] = []
    for size in sizes:
        out.append(int.from_bytes(data[pos : pos + size], order))
        pos += size
    return tuple(out)


# PVK (Microsoft's private key file; `openssl rsa -outform PVK`): magic, reserved, key spec,
# encrypted flag, salt length, blob length; then the salt and a PRIVATEKEYBLOB whose
# BLOBHEADER stays in clear while the rest is RC4-encrypted
PVK_MAGIC = 0xB0B5F11E
_PVK_HEAD = struct.Struct("<6I")
_PVK_ALGORITHMS = {0xA400: "rsa", 0x2400: "rsa", 0x2200: "dsa"}  # CALG_RSA_KEYX, _SIGN, DSS_SIGN
MAX_PVK_SALT = 64
MAX_PVK_BLOB = 64 * 1024


def validate_pvk(hit: Hit) -> Sequence[KeyFinding]:
    """An encrypted PVK file at the hit (a clear one is the PRIVATEKEYBLOB rule's finding).

    Plausible when the header, the clear BLOBHEADER and the blob length agree
    with a key size of the algorithm it names; nothing more can be known
    without the passphrase.
    """
    head = bytes(hit.data[hit.start : hit.start + _PVK_HEAD.size])
    if len(head) != _PVK_HEAD.size:
        return ()
    magic, reserved, spec, encrypted, salt, length = _PVK_HEAD.unpack(head)
    if magic != PVK_MAGIC or reserved or spec not in (1, 2) or encrypted != 1:
        return ()
    if not 1 <= salt <= MAX_PVK_SALT or not 8 < length <= MAX_PVK_BLOB:
        return ()
    blob_at = hit.start + _PVK_HEAD.size + salt
    blob = bytes(hit.data[blob_at : blob_at + 8])
    if len(blob) != 8 or blob[0] != 0x07 or blob[1] != 0x02 or blob[2:4] != b"\0\0":
        return ()
    algorithm = _PVK_ALGORITHMS.get(struct.unpack_from("<I", blob, 4)[0])
    if algorithm is None:
        return ()
    bits = _pvk_bits(algorithm, length)
    if bits is None:
        return ()
    return (
        hit.finding(
            format="pvk-encrypted", algorithm=algorithm, bits=bits, validated=True, encrypted=True
        ),
    )


def _pvk_bits(algorithm: str, length: int) -> int | None:
    """The key size a PRIVATEKEYBLOB of `length` bytes holds, when the length fits one."""
    if algorithm == "rsa":
        # BLOBHEADER 8 + RSAPUBKEY 12 + n, d (bits/8 each) + p, q, dP, dQ, qInv (bits/16 each)
        body = length - 20
        bits = body * 16 // 9
    else:
        # BLOBHEADER 8 + DSSPUBKEY 8 + p, g (bits/8) + q, x (20 each) + DSSSEED 24
        body = length - 8 - 8 - 20 - 20 - 24
        bits = body * 8 // 2
    exact = body * 16 % 9 == 0 if algorithm == "rsa" else True
    ok = exact and body > 0 and bits % 64 == 0 and MIN_BITS <= bits <= MAX_BITS
    return bits if ok else None
