"""GnuPG 2.1+ secret key files (`private-keys-v1.d/<KEYGRIP>.key`): S-expressions.

gpg-agent stores each key as one S-expression, in one of two syntaxes:

- the "extended key format" (GnuPG 2.2.x writes this): `Name: value` lines,
  the key in `Key: (private-key (rsa (n #00C1...#)(e #010001#)...))`, the
  value folded over lines that start with a space, numbers as `#hex#` with
  whitespace allowed inside;
- the canonical form (GnuPG 2.1, and keys imported from it): binary,
  length-prefixed, `(11:private-key(3:rsa(1:n257:<bytes>)...))`.

One parser reads both (libgcrypt's advanced syntax is a superset of the
canonical one). Keys without a passphrase (CI signing keys) are clear and
proven here: RSA by arithmetic (libgcrypt keeps p < q and u = p^-1 mod q),
ECC by deriving the public point from d. A `protected-private-key` holds
the public parameters in clear beside the encrypted secret ones, so it is
reported as encrypted with the fingerprint of that public half.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from agent.scan import keymath
from agent.scan.validators.der import ec_finding, ec_private_key, rsa_finding, rsa_proven

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

# An RSA-16384 key in the text form is ~11 KiB of hex; a protected one adds its
# encrypted copy of the secret half. Nothing real comes near these caps.
MAX_INPUT = 64 * 1024
MAX_ATOM = 24 * 1024
MAX_NODES = 512
MAX_DEPTH = 8
# quoted strings are names, dates and counts; a number is quoted only when all its bytes are
# printable, which a random 32-byte value never is: a small cap keeps the per-byte loop cheap
MAX_QUOTED = 1024

_LEADS = (b"(", b"(11:", b"(protected-", b"(21:protected-")
_KINDS = {b"private-key": False, b"protected-private-key": True}
_TOKEN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-./_:*+=")
_SPACE = frozenset(b" \t\r\n\f\v")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12, ord("v"): 11}
_NIST: dict[bytes, ec.EllipticCurve] = {}
for _names, _curve in (
    (
        (b"NIST P-256", b"nistp256", b"secp256r1", b"prime256v1", b"1.2.840.10045.3.1.7"),
        ec.SECP256R1(),
    ),
    ((b"NIST P-384", b"nistp384", b"secp384r1", b"1.3.132.0.34"), ec.SECP384R1()),
    ((b"NIST P-521", b"nistp521", b"secp521r1", b"1.3.132.0.35"), ec.SECP521R1()),
    ((b"brainpoolP256r1", b"1.3.36.3.3.2.8.1.1.7"), ec.BrainpoolP256R1()),
    ((b"brainpoolP384r1", b"1.3.36.3.3.2.8.1.1.11"), ec.BrainpoolP384R1()),
    ((b"brainpoolP512r1", b"1.3.36.3.3.2.8.1.1.13"), ec.BrainpoolP512R1()),
):
    _NIST.update(dict.fromkeys(_names, _curve))
_ED25519 = (b"Ed25519", b"ed25519", b"1.3.6.1.4.1.11591.15.1")
_CV25519 = (b"Curve25519", b"cv25519", b"1.3.6.1.4.1.3029.1.5.1")

Node = bytes | list["Node"]


class _MalformedError(ValueError):
    """Not a GnuPG key S-expression (never carries its bytes)."""


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """A finding for the key S-expression at the hit; () for anything that is not a proven key."""
    opening = _opening(hit)
    if opening is None:
        return ()  # "private-key" in other text (`--private-key`, "shadowed-private-key")
    data = bytes(opening.data[opening.start : opening.start + MAX_INPUT])
    try:
        tree = parse(data)
        return _finding(opening, tree)
    except (_MalformedError, ValueError, TypeError, IndexError):
        return ()


def _opening(hit: Hit) -> Hit | None:
    """The hit moved back onto the `(` that opens the S-expression around the matched name."""
    for lead in _LEADS:
        start = hit.start - len(lead)
        if start >= 0 and bytes(hit.data[start : hit.start]) == lead:
            return dataclasses.replace(hit, start=start)
    return None


def parse(data: bytes) -> Node:
    """The first S-expression in `data` (which starts with `(`), canonical or advanced syntax."""
    parser = _Parser(data)
    tree = parser.expression(0)
    if not isinstance(tree, list):
        raise _MalformedError("not a list")
    return tree


class _Parser:
    """A bounded recursive-descent reader: depth, node count and atom size are capped."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.nodes = 0

    def expression(self, depth: int) -> Node:
        self._skip()
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise _MalformedError("too big")
        c = self._peek()
        if c == ord("("):
            self.pos += 1
            items: list[Node] = []
            while True:
                self._skip()
                if self._peek() == ord(")"):
                    self.pos += 1
                    return items
                items.append(self.expression(depth + 1))
        return self._atom(c)

    def _atom(self, c: int) -> bytes:
        if c == ord("#"):
            return self._hex()
        if c == ord('"'):
            return self._quoted()
        if c == ord("|"):
            return self._base64()
        if ord("0") <= c <= ord("9"):
            end = self.pos
            while end < len(self.data) and end - self.pos < 6 and self.data[end] in b"0123456789":
                end += 1
            if end < len(self.data) and self.data[end] == ord(":"):
                return self._verbatim(int(self.data[self.pos : end]), end + 1)
        return self._token()

    def _verbatim(self, length: int, start: int) -> bytes:
        if length > MAX_ATOM or start + length > len(self.data):
            raise _MalformedError("length")
        self.pos = start + length
        return self.data[start : self.pos]

    def _hex(self) -> bytes:
        end = self.data.find(b"#", self.pos + 1, self.pos + 1 + 3 * MAX_ATOM)
        if end < 0:
            raise _MalformedError("hex")
        raw = bytes(b for b in self.data[self.pos + 1 : end] if b not in _SPACE)
        if not all(b in _HEX for b in raw) or len(raw) % 2:
            raise _MalformedError("hex")
        self.pos = end + 1
        return bytes.fromhex(raw.decode("ascii"))

    def _base64(self) -> bytes:
        end = self.data.find(b"|", self.pos + 1, self.pos + 1 + 2 * MAX_ATOM)
        if end < 0:
            raise _MalformedError("base64")
        raw = bytes(b for b in self.data[self.pos + 1 : end] if b not in _SPACE)
        self.pos = end + 1
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _MalformedError("base64") from None

    def _quoted(self) -> bytes:
        out = bytearray()
        i = self.pos + 1
        data = self.data
        while True:
            if i >= len(data) or len(out) > MAX_QUOTED:
                raise _MalformedError("string")
            c = data[i]
            if c == ord('"'):
                self.pos = i + 1
                return bytes(out)
            if c != ord("\\"):
                out.append(c)
                i += 1
                continue
            n = data[i + 1] if i + 1 < len(data) else -1
            if n in _ESCAPES:
                out.append(_ESCAPES[n])
                i += 2
            elif n == ord("x"):
                out.append(int(data[i + 2 : i + 4], 16))
                i += 4
            elif ord("0") <= n <= ord("7"):
                out.append(int(data[i + 1 : i + 4], 8) & 0xFF)
                i += 4
            elif n in (ord("\n"), ord("\r")):
                i += 2  # a line continuation
            elif n < 0:
                raise _MalformedError("string")
            else:
                out.append(n)
                i += 2

    def _token(self) -> bytes:
        out = bytearray()
        data = self.data
        while self.pos < len(data) and len(out) <= 256:
            c = data[self.pos]
            if c in _TOKEN:
                out.append(c)
                self.pos += 1
            elif c == ord("\\") and self.pos + 1 < len(data):
                out.append(data[self.pos + 1])  # `NIST\ P-256`, as some tools write it
                self.pos += 2
            else:
                break
        if not out:
            raise _MalformedError("token")
        return bytes(out)

    def _skip(self) -> None:
        data = self.data
        while self.pos < len(data) and data[self.pos] in _SPACE:
            self.pos += 1

    def _peek(self) -> int:
        if self.pos >= len(self.data):
            raise _MalformedError("truncated")
        return self.data[self.pos]


def _finding(hit: Hit, tree: Node) -> Sequence[KeyFinding]:
    if not isinstance(tree, list) or len(tree) < 2 or not isinstance(tree[0], bytes):
        return ()
    protected = _KINDS.get(tree[0])
    body = tree[1]
    if protected is None or not isinstance(body, list) or not body:
        return ()
    algo = body[0]
    params = _params(body[1:])
    if protected and not _protection_plausible(body[1:]):
        return ()
    fmt = "gnupg-key-protected" if protected else "gnupg-key"
    if algo == b"rsa":
        return _rsa(hit, params, fmt, protected)
    if algo in (b"ecc", b"ecdsa", b"eddsa", b"ecdh"):
        return _ecc(hit, params, fmt, protected)
    return ()


def _params(items: Sequence[Node]) -> dict[bytes, bytes]:
    """`(name value)` pairs of the algorithm list; a name twice is not one key."""
    out: dict[bytes, bytes] = {}
    for item in items:
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], bytes)
            and isinstance(item[1], bytes)
        ):
            if item[0] in out:
                raise _MalformedError("duplicate")
            out[item[0]] = item[1]
    return out


def _protection_plausible(items: Sequence[Node]) -> bool:
    """`(protected openpgp-... (params) ciphertext)` with a non-empty ciphertext."""
    for item in items:
        if isinstance(item, list) and len(item) >= 4 and item[0] == b"protected":
            mode, blob = item[1], item[-1]
            return (
                isinstance(mode, bytes)
                and mode.startswith(b"openpgp-")
                and isinstance(blob, bytes)
                and len(blob) >= 16
            )
    return False


def _int(params: dict[bytes, bytes], name: bytes) -> int:
    raw = params.get(name)
    if raw is None or not raw:
        raise _MalformedError(name.decode("latin-1"))
    return int.from_bytes(raw, "big")


def _rsa(hit: Hit, params: dict[bytes, bytes], fmt: str, protected: bool) -> Sequence[KeyFinding]:
    n, e = _int(params, b"n"), _int(params, b"e")
    if not keymath.MIN_RSA_BITS <= n.bit_length() <= keymath.MAX_RSA_BITS or not 1 < e < n:
        return ()
    if protected:
        return (dataclasses.replace(rsa_finding(hit, n, e, fmt), encrypted=True),)
    d, p, q = _int(params, b"d"), _int(params, b"p"), _int(params, b"q")
    u = _int(params, b"u") if b"u" in params else None
    # libgcrypt's u is p^-1 mod q; rsa_proven checks qinv = q^-1 mod p, so swap the primes
    if not rsa_proven(n, e, d, q, p, qinv=u):
        return ()
    return (rsa_finding(hit, n, e, fmt),)


def _curve_name(params: dict[bytes, bytes]) -> bytes:
    name = params.get(b"curve")
    if name is None:
        raise _MalformedError("curve")
    return name


def _ecc(hit: Hit, params: dict[bytes, bytes], fmt: str, protected: bool) -> Sequence[KeyFinding]:
    name = _curve_name(params)
    q = params.get(b"q")
    if name in _NIST:
        curve = _NIST[name]
        if protected:
            if q is None:
                return ()
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, q)
            return (_okp_like(hit, "ec", fmt, public, curve),)
        d = _int(params, b"d")
        if d.bit_length() > curve.key_size:
            return ()
        key = ec_private_key(d, curve, q)
        return () if key is None else (ec_finding(hit, key, fmt),)
    if name in _ED25519:
        point = _native_point(q)
        if protected:
            if point is None:
                return ()
            return (
                _okp_like(hit, "ed25519", fmt, ed25519.Ed25519PublicKey.from_public_bytes(point)),
            )
        seed = params.get(b"d", b"")
        if not 0 < len(seed) <= 32:
            return ()
        edkey = ed25519.Ed25519PrivateKey.from_private_bytes(seed.rjust(32, b"\0"))
        return _okp_proven(hit, "ed25519", fmt, edkey.public_key(), point)
    if name in _CV25519:
        point = _native_point(q)
        if protected:
            if point is None:
                return ()
            return (_okp_like(hit, "x25519", fmt, x25519.X25519PublicKey.from_public_bytes(point)),)
        scalar = params.get(b"d", b"")
        if not 0 < len(scalar) <= 32:
            return ()
        # OpenPGP keeps the Curve25519 secret as a big-endian MPI: native order is reversed
        xkey = x25519.X25519PrivateKey.from_private_bytes(scalar.rjust(32, b"\0")[::-1])
        return _okp_proven(hit, "x25519", fmt, xkey.public_key(), point)
    return ()


def _native_point(q: bytes | None) -> bytes | None:
    """The 32-byte point of an Ed25519/Curve25519 `q` (GnuPG prefixes 0x40)."""
    if q is None:
        return None
    if len(q) == 33 and q[0] == 0x40:
        return q[1:]
    if len(q) == 32:
        return q
    raise _MalformedError("point")


def _okp_proven(
    hit: Hit,
    algorithm: str,
    fmt: str,
    derived: ed25519.Ed25519PublicKey | x25519.X25519PublicKey,
    point: bytes | None,
) -> Sequence[KeyFinding]:
    raw = derived.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if point is not None and not hmac.compare_digest(raw, point):
        return ()  # d does not give the stored point: tampered, or not one key
    return (_okp_like(hit, algorithm, fmt, derived, encrypted=False),)


def _okp_like(
    hit: Hit,
    algorithm: str,
    fmt: str,
    public: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey,
    curve: ec.EllipticCurve | None = None,
    *,
    encrypted: bool = True,
) -> KeyFinding:
    return hit.finding(
        format=fmt,
        algorithm=algorithm,
        bits=curve.key_size if curve is not None else None,
        curve=curve.name if curve is not None else None,
        validated=True,
        encrypted=encrypted,
        fingerprint=keymath.fingerprint(public),
    )
