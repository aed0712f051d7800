"""Raw DER private keys: PKCS#1, PKCS#8 (v1/v2), SEC1 and EncryptedPrivateKeyInfo, proven by arithmetic.

The DER length at the hit decides where the key ends, so a key followed by
more bytes is still read exactly. RSA is proven here (p*q = n, e*d = 1 mod
lambda(n), CRT values) without handing the numbers to the library's slow
check; EC scalars are turned into a public point and compared with the one
stored; Ed/X keys are proven by structure. The EC and RSA helpers at the
bottom are shared with the blob and OpenSSH validators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, x448, x25519

from agent.scan import keymath
from agent.scan.validators import passwords
from agent.scan.validators.asn1 import DerError, Tlv, children, read_integer, read_tlv

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_KEY_BYTES = 16384  # an RSA-16384 PKCS#8 is under 10 KB: anything longer is not one key
MIN_CIPHERTEXT = 32  # the smallest PKCS#8 (X25519, 48 bytes) encrypts to at least this

OID_RSA = bytes.fromhex("2a864886f70d010101")
OID_RSA_PSS = bytes.fromhex("2a864886f70d01010a")  # same key, restricted to PSS signatures
OID_EC = bytes.fromhex("2a8648ce3d0201")
OID_DSA = bytes.fromhex("2a8648ce380401")
OID_PBES2 = bytes.fromhex("2a864886f70d01050d")
OID_PBKDF2 = bytes.fromhex("2a864886f70d01050c")
OID_SCRYPT = bytes.fromhex("2b06010401da47040b")
_PKCS12_PBE = bytes.fromhex("2a864886f70d010c01")  # + 1..6
_PBES1 = bytes.fromhex("2a864886f70d0105")  # + 1, 3, 4, 6, 10, 11

OID_SM2 = bytes.fromhex("2a811ccf5501822d")  # 1.2.156.10197.1.301: checked in keymath


def _oid_content(dotted: str) -> bytes:
    """The DER content bytes of an OBJECT IDENTIFIER given as a dotted string."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


# every named curve cryptography knows (NIST P, secp256k1, Brainpool), by DER OID content
CURVES: dict[bytes, ec.EllipticCurve] = {
    _oid_content(oid.dotted_string): ec.get_curve_for_oid(oid)()
    for oid in (
        getattr(ec.EllipticCurveOID, name) for name in dir(ec.EllipticCurveOID) if name.isupper()
    )
}
# scalar length -> the curve assumed when a SEC1 key names none and stores no point
_CURVE_BY_SIZE: dict[int, ec.EllipticCurve] = {
    32: ec.SECP256R1(),
    48: ec.SECP384R1(),
    65: ec.SECP521R1(),
    66: ec.SECP521R1(),
}
# OID -> (algorithm, raw private key length)
_RAW_KEYS: dict[bytes, tuple[str, int]] = {
    bytes.fromhex("2b6570"): ("ed25519", 32),
    bytes.fromhex("2b6571"): ("ed448", 57),
    bytes.fromhex("2b656e"): ("x25519", 32),
    bytes.fromhex("2b656f"): ("x448", 56),
}
# encryption scheme OID -> block size (1 for stream ciphers), for the ciphertext plausibility check
_CIPHERS: dict[bytes, int] = {
    bytes.fromhex("608648016503040102"): 16,  # aes128-cbc
    bytes.fromhex("608648016503040116"): 16,  # aes192-cbc
    bytes.fromhex("60864801650304012a"): 16,  # aes256-cbc
    bytes.fromhex("2a864886f70d0307"): 8,  # des-ede3-cbc
    bytes.fromhex("2b0e030207"): 8,  # des-cbc
}
_PKCS12_PBE_BLOCK = {1: 1, 2: 1, 3: 8, 4: 8, 5: 8, 6: 8}
_PBES1_IDS = {1, 3, 4, 6, 10, 11}
MAX_ITERATIONS = 10_000_000  # plausibility only: nothing here derives a key

_DER_ERRORS = (DerError, ValueError, TypeError, UnsupportedAlgorithm, OverflowError, IndexError)


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the DER structure that starts at the hit; () for anything else."""
    try:
        return _validate(hit)
    except _DER_ERRORS:
        # hostile bytes end here: any parse failure means "not a key"
        return ()


def _validate(hit: Hit) -> Sequence[KeyFinding]:
    data = hit.data
    outer = read_tlv(data, hit.start)
    if outer.tag != 0x30 or outer.end - outer.start > MAX_KEY_BYTES:
        return ()
    kids = children(data, outer)
    if len(kids) < 2:
        return ()
    if kids[0].tag == 0x30 and kids[1].tag == 0x04:
        if _inside_bag(data, outer.start):
            return ()  # a PKCS#12 shrouded key bag: the pkcs12 rule reports the file
        return _encrypted(hit, kids)
    if kids[0].tag != 0x02:
        return ()
    version = read_integer(data, kids[0], 8)
    if version in (0, 1) and kids[1].tag == 0x30:
        return _pkcs8(hit, outer, kids, version)
    if _inside_pkcs8(data, outer.start):
        return ()  # the PKCS#8 wrapper around this key is reported once, at its own offset
    if version in (0, 1) and kids[1].tag == 0x02:
        return _pkcs1(hit, outer)  # version 1: multi-prime RSA
    if version == 1 and kids[1].tag == 0x04:
        return _sec1(hit, outer, None)
    return ()


MAX_OTHER_PRIMES = 14  # RFC 8017 allows any number; OpenSSL makes at most 5 primes in all


def _pkcs1(hit: Hit, tlv: Tlv, fmt: str = "der-pkcs1") -> Sequence[KeyFinding]:
    kids = children(hit.data, tlv)
    if len(kids) == 10:
        return _multi_prime(hit, kids, fmt)
    if len(kids) != 9:
        return ()
    ints = [read_integer(hit.data, k) for k in kids]
    version, n, e, d, p, q, dp, dq, qinv = ints
    if version != 0 or not rsa_proven(n, e, d, p, q, dp=dp, dq=dq, qinv=qinv):
        return ()
    return (rsa_finding(hit, n, e, fmt),)


def _multi_prime(hit: Hit, kids: list[Tlv], fmt: str) -> Sequence[KeyFinding]:
    """RFC 8017 version 1 (`openssl genrsa -primes 3`): n = p*q*r_i..., e*d = 1 mod lcm(p_i - 1)."""
    data = hit.data
    version, n, e, d, p, q, dp, dq, qinv = (read_integer(data, k) for k in kids[:9])
    others = children(data, kids[9])
    if version != 1 or not 1 <= len(others) <= MAX_OTHER_PRIMES:
        return ()
    if not (keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS):
        return ()
    primes = [p, q]
    for info in others:
        triple = children(data, info)
        if len(triple) != 3:
            return ()
        r, d_r, t_r = (read_integer(data, t) for t in triple)
        before = math.prod(primes)
        # RFC 8017: d_i = d mod (r_i - 1), t_i = (r_1 * ... * r_(i-1))^-1 mod r_i
        if r <= 1 or d_r != d % (r - 1) or (t_r * before) % r != 1:
            return ()
        primes.append(r)
    product, lam = 1, 1
    for prime in primes:
        if prime <= 1:
            return ()
        product *= prime
        lam = lam * (prime - 1) // math.gcd(lam, prime - 1)
    if product != n or not (1 < e < n and 1 < d < n) or (e * d) % lam != 1:
        return ()
    if dp != d % (p - 1) or dq != d % (q - 1) or (qinv * q) % p != 1:
        return ()
    return (rsa_finding(hit, n, e, fmt),)


def _pkcs8(hit: Hit, outer: Tlv, kids: list[Tlv], version: int) -> Sequence[KeyFinding]:
    data = hit.data
    if len(kids) < 3 or kids[2].tag != 0x04:
        return ()
    alg = children(data, kids[1])
    if not alg or alg[0].tag != 0x06:
        return ()
    oid = bytes(data[alg[0].content : alg[0].end])
    public: bytes | None = None
    for extra in kids[3:]:
        if extra.tag in (0x81, 0xA1) and version == 1:
            public = _bit_string(data, extra)
        elif extra.tag != 0xA0:
            return ()
    private = kids[2]
    if oid in (OID_RSA, OID_RSA_PSS):
        inner = read_tlv(data, private.content, private.end)
        if inner.tag != 0x30 or inner.end != private.end:
            return ()
        return _pkcs1(hit, inner, "der-pkcs8")
    if oid == OID_EC:
        if len(alg) != 2 or alg[1].tag != 0x06:
            return ()
        named = bytes(data[alg[1].content : alg[1].end])
        inner = read_tlv(data, private.content, private.end)
        if inner.tag != 0x30 or inner.end != private.end:
            return ()
        if named == OID_SM2:
            return _sm2_finding(hit, sm2_point(data, inner, public), "der-pkcs8")
        curve = CURVES.get(named)
        if curve is None:
            return ()
        return _sec1(hit, inner, curve, "der-pkcs8", public)
    if oid in _RAW_KEYS:
        name, size = _RAW_KEYS[oid]
        inner = read_tlv(data, private.content, private.end)
        if inner.tag != 0x04 or inner.end != private.end or inner.end - inner.content != size:
            return ()
        return okp_finding(hit, name, bytes(data[inner.content : inner.end]), public)
    if oid == OID_DSA:
        return _dsa(hit, outer, alg)
    return ()


def _sec1(
    hit: Hit,
    tlv: Tlv,
    curve: ec.EllipticCurve | None,
    fmt: str = "der-sec1",
    outer_public: bytes | None = None,
) -> Sequence[KeyFinding]:
    data = hit.data
    kids = children(data, tlv)
    if len(kids) < 2 or read_integer(data, kids[0], 8) != 1 or kids[1].tag != 0x04:
        return ()
    scalar = bytes(data[kids[1].content : kids[1].end])
    point = outer_public
    for extra in kids[2:]:
        if extra.tag == 0xA0:
            oid = read_tlv(data, extra.content, extra.end)
            if oid.tag == 0x06 and bytes(data[oid.content : oid.end]) == OID_SM2 and curve is None:
                return _sm2_finding(hit, sm2_point(data, tlv, None), fmt)
            named = CURVES.get(bytes(data[oid.content : oid.end])) if oid.tag == 0x06 else None
            if named is None or (curve is not None and named.name != curve.name):
                return ()
            curve = named
        elif extra.tag == 0xA1:
            bits = read_tlv(data, extra.content, extra.end)
            if bits.tag != 0x03:
                return ()
            point = _bit_string(data, bits)
        else:
            return ()
    candidates = [curve] if curve is not None else _curves_for(len(scalar), point)
    for cand in candidates:
        key = ec_private_key(int.from_bytes(scalar, "big"), cand, point)
        if key is not None:
            return (ec_finding(hit, key, fmt),)
    return ()


def sm2_point(data: memoryview | bytes, tlv: Tlv, outer_public: bytes | None) -> bytes | None:
    """The public point of an SM2 ECPrivateKey (SEC1) at `tlv`, when its scalar gives it.

    A stored point ([1], or the PKCS#8 wrapper's) must be the one the scalar makes.
    """
    kids = children(data, tlv)
    if len(kids) < 2 or read_integer(data, kids[0], 8) != 1 or kids[1].tag != 0x04:
        return None
    stored = outer_public
    for extra in kids[2:]:
        if extra.tag == 0xA0:
            oid = read_tlv(data, extra.content, extra.end)
            if oid.tag != 0x06 or bytes(data[oid.content : oid.end]) != OID_SM2:
                return None
        elif extra.tag == 0xA1:
            bits = read_tlv(data, extra.content, extra.end)
            if bits.tag != 0x03:
                return None
            stored = _bit_string(data, bits)
        else:
            return None
    if kids[1].end - kids[1].content > 33:
        return None
    point = keymath.sm2_public_point(int.from_bytes(data[kids[1].content : kids[1].end], "big"))
    if point is None or (stored is not None and stored != point):
        return None
    return point


def _sm2_finding(hit: Hit, point: bytes | None, fmt: str) -> Sequence[KeyFinding]:
    """A validated SM2 finding named by its public point (none without a proven point)."""
    if point is None:
        return ()
    fingerprint = keymath.sm2_fingerprint(point)
    return (
        hit.finding(
            format=fmt,
            algorithm="ec",
            bits=256,
            curve="sm2",
            validated=True,
            fingerprint=fingerprint,
        ),
    )


def _curves_for(size: int, point: bytes | None) -> list[ec.EllipticCurve]:
    """Curves a bare SEC1 scalar may belong to: with a stored point the point decides."""
    if point is None:
        guess = _CURVE_BY_SIZE.get(size)
        return [guess] if guess is not None else []
    return [c for c in CURVES.values() if (c.key_size + 7) // 8 in (size, size - 1)]


def okp_finding(
    hit: Hit, name: str, raw: bytes, public: bytes | None, fmt: str = "der-pkcs8"
) -> Sequence[KeyFinding]:
    """A finding for a raw Ed25519/Ed448/X25519/X448 private key (`name` lower case), when
    `public`, if given, is its public half."""
    key: (
        ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey
        | x25519.X25519PrivateKey
        | x448.X448PrivateKey
    )
    try:
        if name == "ed25519":
            key = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        elif name == "ed448":
            key = ed448.Ed448PrivateKey.from_private_bytes(raw)
        elif name == "x25519":
            key = x25519.X25519PrivateKey.from_private_bytes(raw)
        else:
            key = x448.X448PrivateKey.from_private_bytes(raw)
    except ValueError:
        return ()  # wrong length for the curve
    pub = key.public_key()
    if public is not None:
        raw_pub = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if raw_pub != public:
            return ()
    return (
        hit.finding(
            format=fmt, algorithm=name, validated=True, fingerprint=keymath.fingerprint(pub)
        ),
    )


def _dsa(hit: Hit, outer: Tlv, alg: list[Tlv]) -> Sequence[KeyFinding]:
    data = hit.data
    if len(alg) != 2 or alg[1].tag != 0x30:
        return ()
    params = [read_integer(data, t, 4096) for t in children(data, alg[1])]
    if len(params) != 3:
        return ()
    p, q, g = params
    # prove the group before the library sees it: q | p-1, g of order q
    if q < 2 or p < 3 or (p - 1) % q or not 1 < g < p or pow(g, q, p) != 1:
        return ()
    key = serialization.load_der_private_key(bytes(data[outer.start : outer.end]), None)
    if not isinstance(key, dsa.DSAPrivateKey):
        return ()
    x = key.private_numbers().x
    if not 0 < x < q or not keymath.private_key_consistent(key):
        return ()
    _, bits, _, fp = keymath.describe_private_key(key)
    return (
        hit.finding(format="der-pkcs8", algorithm="dsa", bits=bits, validated=True, fingerprint=fp),
    )


def _encrypted(hit: Hit, kids: list[Tlv]) -> Sequence[KeyFinding]:
    data = hit.data
    if len(kids) != 2:
        return ()
    block = encryption_block_size(data, kids[0])
    size = kids[1].end - kids[1].content
    if block is None or size < MIN_CIPHERTEXT or size % block:
        return ()
    outer = read_tlv(data, hit.start)
    opened = open_with_default_password(bytes(data[outer.start : outer.end]), data)
    if opened is not None:
        return (hit.key_finding(opened, format="der-encrypted-pkcs8", default_password=True),)
    return (
        hit.finding(
            format="der-encrypted-pkcs8",
            algorithm="unknown",
            validated=True,
            encrypted=True,
            fingerprint=None,
        ),
    )


def encryption_block_size(data: memoryview | bytes, alg_id: Tlv) -> int | None:
    """Block size of a fully parsed PBES2 / PBES1 / PKCS#12-PBE AlgorithmIdentifier, else None."""
    alg = children(data, alg_id)
    if len(alg) != 2 or alg[0].tag != 0x06 or alg[1].tag != 0x30:
        return None
    oid = bytes(data[alg[0].content : alg[0].end])
    params = children(data, alg[1])
    if oid == OID_PBES2:
        if len(params) != 2 or not _kdf_plausible(data, params[0]):
            return None
        scheme = children(data, params[1])
        if len(scheme) != 2 or scheme[0].tag != 0x06 or scheme[1].tag != 0x04:
            return None
        block = _CIPHERS.get(bytes(data[scheme[0].content : scheme[0].end]))
        if block is None or scheme[1].end - scheme[1].content != block:
            return None  # the IV is one block long for every CBC scheme listed
        return block
    last = oid[-1]
    if oid[:-1] == _PKCS12_PBE and last in _PKCS12_PBE_BLOCK:
        block = _PKCS12_PBE_BLOCK[last]
    elif oid[:-1] == _PBES1 and last in _PBES1_IDS:
        block = 8
    else:
        return None
    if len(params) != 2 or params[0].tag != 0x04 or not _iterations_ok(data, params[1]):
        return None
    return block


def open_with_default_password(encrypted: bytes, window: object) -> PrivateKeyTypes | None:
    """An EncryptedPrivateKeyInfo opened with a published default password, when its scheme is
    cheap to try (PBES2 with PBKDF2, or PKCS#5/#12 PBE, within `passwords.MAX_ITERATIONS`; never
    scrypt); the tries are counted against the scan `window` it was found in."""
    try:
        alg_id = children(encrypted, read_tlv(encrypted, 0))[0]
        cheap = _cheap_to_try(encrypted, alg_id, passwords.MAX_ITERATIONS)
    except (DerError, IndexError):
        return None
    return passwords.open_pkcs8(encrypted, window) if cheap else None


def _cheap_to_try(data: memoryview | bytes, alg_id: Tlv, max_iterations: int) -> bool:
    alg = children(data, alg_id)
    if len(alg) != 2 or alg[0].tag != 0x06 or alg[1].tag != 0x30:
        return False
    if bytes(data[alg[0].content : alg[0].end]) == OID_PBES2:
        params = children(data, alg[1])
        kdf = children(data, params[0]) if params and params[0].tag == 0x30 else []
        if not kdf or kdf[0].tag != 0x06 or bytes(data[kdf[0].content : kdf[0].end]) != OID_PBKDF2:
            return False
    iterations = pbe_iterations(data, alg_id)
    return iterations is not None and 0 < iterations <= max_iterations


def pbe_iterations(data: memoryview | bytes, alg_id: Tlv) -> int | None:
    """The iteration count of a PBES2/PBKDF2 or PKCS#12-PBE AlgorithmIdentifier, when it has one."""
    alg = children(data, alg_id)
    if len(alg) != 2 or alg[0].tag != 0x06 or alg[1].tag != 0x30:
        return None
    params = children(data, alg[1])
    if bytes(data[alg[0].content : alg[0].end]) == OID_PBES2 and params:
        kdf = children(data, params[0])
        if len(kdf) == 2 and kdf[1].tag == 0x30:
            kdf_params = children(data, kdf[1])
            if len(kdf_params) >= 2 and kdf_params[1].tag == 0x02:
                return read_integer(data, kdf_params[1], 64)
        return None
    if len(params) == 2 and params[1].tag == 0x02:
        return read_integer(data, params[1], 64)
    return None


def _kdf_plausible(data: memoryview | bytes, kdf_id: Tlv) -> bool:
    kdf = children(data, kdf_id)
    if len(kdf) != 2 or kdf[0].tag != 0x06 or kdf[1].tag != 0x30:
        return False
    oid = bytes(data[kdf[0].content : kdf[0].end])
    params = children(data, kdf[1])
    if oid == OID_PBKDF2:
        return (
            2 <= len(params) <= 4
            and params[0].tag == 0x04
            and 8 <= params[0].end - params[0].content <= 64
            and _iterations_ok(data, params[1])
        )
    if oid == OID_SCRYPT:
        return 3 <= len(params) <= 5 and params[0].tag == 0x04
    return False


def _iterations_ok(data: memoryview | bytes, tlv: Tlv) -> bool:
    return 1 <= read_integer(data, tlv, 64) <= MAX_ITERATIONS


def _bit_string(data: memoryview | bytes, tlv: Tlv) -> bytes:
    """Content of a BIT STRING (or [1] IMPLICIT one) with no unused bits."""
    if tlv.end - tlv.content < 2 or data[tlv.content] != 0:
        raise DerError("bad BIT STRING")
    return bytes(data[tlv.content + 1 : tlv.end])


def _inside_pkcs8(data: memoryview, start: int) -> bool:
    """True when the key at `start` is the private-key OCTET STRING of a PKCS#8 just before it."""
    for back in range(10, 64):
        pos = start - back
        if pos < 0:
            break
        if data[pos] != 0x30:
            continue
        try:
            outer = read_tlv(data, pos)
            first = read_tlv(data, outer.content, outer.end)
            alg = read_tlv(data, first.end, outer.end)
            octets = read_tlv(data, alg.end, outer.end)
        except DerError:
            continue
        if (first.tag, alg.tag, octets.tag) == (0x02, 0x30, 0x04) and octets.content == start:
            return True
    return False


_BAG_TAIL = bytes.fromhex("060b2a864886f70d010c0a0102")  # pkcs8ShroudedKeyBag OID


def _inside_bag(data: memoryview, start: int) -> bool:
    """True when the EncryptedPrivateKeyInfo at `start` is the value of a PKCS#12 shrouded key bag."""
    for header in (2, 3, 4):
        pos = start - header
        if pos - len(_BAG_TAIL) < 0 or data[pos] != 0xA0:
            continue
        if bytes(data[pos - len(_BAG_TAIL) : pos]) == _BAG_TAIL:
            return True
    return False


# --- shared with blobs.py and openssh.py -------------------------------------------------------


def rsa_proven(
    n: int,
    e: int,
    d: int | None,
    p: int,
    q: int,
    *,
    dp: int | None = None,
    dq: int | None = None,
    qinv: int | None = None,
) -> bool:
    """The numbers form one RSA key: p*q = n, e*d = 1 mod lambda(n), and any CRT value given matches."""
    if d is None:
        # a blob without d (CNG RSAPRIVATE): the factorisation proves the key; e must be invertible
        return (
            keymath.rsa_consistent(n, None, None, p, q)
            and 1 < e < n
            and keymath.rsa_exponent_from_d(p, q, e) is not None
        )
    if not keymath.rsa_consistent(n, e, d, p, q):
        return False
    if dp is not None and dp != d % (p - 1):
        return False
    if dq is not None and dq != d % (q - 1):
        return False
    return qinv is None or (qinv * q) % p == 1


def rsa_finding(hit: Hit, n: int, e: int, fmt: str) -> KeyFinding:
    """A validated RSA finding named by its public half."""
    return hit.finding(
        format=fmt,
        algorithm="rsa",
        bits=n.bit_length(),
        validated=True,
        fingerprint=keymath.rsa_fingerprint(n, e),
    )


def ec_private_key(
    scalar: int, curve: ec.EllipticCurve, point: bytes | None
) -> ec.EllipticCurvePrivateKey | None:
    """The key when the scalar is in range for the curve and gives the stored point (if any)."""
    try:
        key = ec.derive_private_key(scalar, curve)
    except ValueError:
        return None  # zero or not below the group order
    if point is None:
        return key
    try:
        stored = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        return None
    if stored.public_numbers() != key.public_key().public_numbers():
        return None
    return key


def ec_finding(hit: Hit, key: ec.EllipticCurvePrivateKey, fmt: str) -> KeyFinding:
    """A validated EC finding named by its public half."""
    return hit.finding(
        format=fmt,
        algorithm="ec",
        bits=key.curve.key_size,
        curve=key.curve.name,
        validated=True,
        fingerprint=keymath.fingerprint(key.public_key()),
    )
