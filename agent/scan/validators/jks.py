"""Java KeyStores (JKS, magic FEEDFEED; JCEKS, magic CECECECE): one finding per private-key entry.

The layout (big-endian): magic, version (1 or 2), entry count, then per entry
a tag (1 private key, 2 trusted certificate, 3 JCEKS secret key), the alias
(u16 length + modified UTF-8), a u64 timestamp and, for a private key, the
protected key (u32 length + an EncryptedPrivateKeyInfo) and its certificate
chain (u32 count; per certificate, from version 2, the type as u16 + UTF-8,
then u32 length + DER); a 20-byte keyed SHA-1 ends the file. The key is
protected by a password: a JKS key under a published default (`changeit`,
keytool's, and the rest of `passwords`) is opened (Sun's KeyProtector: a
SHA-1 keystream and a SHA-1 check, cheap) and reported as the proven key it
is; otherwise an entry is reported as an encrypted key, validated when the
whole structure up to it parses, and named by the public key of the first
certificate of its chain. A keystore of trusted certificates only holds no
private key and gives nothing.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from agent.scan import keymath
from agent.scan.validators import asn1
from agent.scan.validators.passwords import DEFAULT_PASSWORDS
from agent.scan.validators.pem import load_der_key

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_ENTRIES = 256
MAX_CHAIN = 16
MAX_BLOB = 64 * 1024  # one certificate or protected key
MAX_STORE = 4 * 1024 * 1024
MIN_CIPHERTEXT = 40  # JKS: 20-byte salt + key + 20-byte check
DIGEST = 20
_MAGIC = {b"\xfe\xed\xfe\xed": (1, 2), b"\xce\xce\xce\xce": (2,)}
_SECRET_KEY = 3
_KEY_PROTECTOR = bytes.fromhex("2b060104012a02110101")  # 1.3.6.1.4.1.42.2.17.1.1


class _MalformedError(ValueError):
    """The bytes are not a keystore (never carries the bytes)."""


class _Reader:
    """Bounded big-endian reads over the window; every overrun is _MalformedError."""

    def __init__(self, data: memoryview, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.limit = min(len(data), pos + MAX_STORE)

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > self.limit:
            raise _MalformedError("past the end")
        out = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        return out

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def utf(self) -> str:
        raw = self.take(self.u16())
        try:
            # modified UTF-8: NUL as C0 80, supplementary characters as surrogate pairs
            return raw.replace(b"\xc0\x80", b"\0").decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _MalformedError("alias is not UTF-8") from None

    def blob(self) -> bytes:
        size = self.u32()
        if size == 0 or size > MAX_BLOB:
            raise _MalformedError("bad length")
        return self.take(size)


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """One encrypted-key finding per private-key entry of the keystore at the hit."""
    try:
        return _validate(hit)
    except (_MalformedError, asn1.DerError, ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        # hostile bytes end here (a certificate may also name an unknown key type or version;
        # InvalidVersion is not a ValueError)
        return ()


def _validate(hit: Hit) -> Sequence[KeyFinding]:
    r = _Reader(hit.data, hit.start)
    versions = _MAGIC.get(r.take(4))
    version = r.u32()
    if versions is None or version not in versions:
        return ()
    count = r.u32()
    if not 0 < count <= MAX_ENTRIES:
        return ()
    found: list[KeyFinding] = []
    for _ in range(count):
        entry_at = r.pos
        tag = r.u32()
        r.utf()  # alias: parsed for structure, never reported
        r.take(8)  # timestamp (ms since 1970)
        if tag == 1:
            protected = r.blob()
            _encrypted_key(protected)
            chain = [_certificate(r, version) for _ in range(_chain_length(r))]
            opened = _opens_with_default_password(protected, chain[0])
            found.append(_finding(hit, entry_at, chain[0], opened=opened))
        elif tag == 2:
            _certificate(r, version)
        elif tag == _SECRET_KEY and version == 2 and found:
            # a JCEKS secret key is a serialised Java object of no stated length: stop here
            return found
        else:
            return ()
    r.take(DIGEST)  # keyed with the password: its presence is all that can be checked
    return found


def _chain_length(r: _Reader) -> int:
    count = r.u32()
    if not 0 < count <= MAX_CHAIN:
        raise _MalformedError("bad chain length")
    return count


def _encrypted_key(der: bytes) -> None:
    """An EncryptedPrivateKeyInfo filling the blob: SEQUENCE { AlgorithmIdentifier, OCTET STRING }."""
    outer = asn1.read_tlv(der, 0)
    if outer.tag != 0x30 or outer.end != len(der):
        raise _MalformedError("not a SEQUENCE")
    kids = asn1.children(der, outer)
    if len(kids) != 2 or kids[0].tag != 0x30 or kids[1].tag != 0x04:
        raise _MalformedError("not an EncryptedPrivateKeyInfo")
    alg = asn1.children(der, kids[0])
    if not alg or alg[0].tag != 0x06 or kids[1].end - kids[1].content < MIN_CIPHERTEXT:
        raise _MalformedError("no algorithm or too short")


def _opens_with_default_password(der: bytes, cert: x509.Certificate) -> bool:
    """True when a published default password opens the JKS entry to its certificate's key."""
    kids = asn1.children(der, asn1.read_tlv(der, 0))
    alg = asn1.children(der, kids[0])
    if der[alg[0].content : alg[0].end] != _KEY_PROTECTOR:
        return False  # JCEKS's PBEWithMD5AndTripleDES: not tried
    sealed = der[kids[1].content : kids[1].end]
    for password in DEFAULT_PASSWORDS:  # a SHA-1 keystream per try: no budget needed
        plain = _unprotect(sealed, password)
        if plain is None:
            continue
        key = load_der_key(plain)
        if key is not None and keymath.fingerprint(key.public_key()) == keymath.fingerprint(
            cert.public_key()
        ):
            return True
    return False


def _unprotect(sealed: bytes, password: bytes) -> bytes | None:
    """Sun's KeyProtector: salt(20) || key XOR SHA-1 keystream || SHA-1(password || key)."""
    salt, body, check = sealed[:DIGEST], sealed[DIGEST:-DIGEST], sealed[-DIGEST:]
    secret = password.decode("latin-1").encode("utf-16-be")  # Java chars, big-endian
    stream = bytearray()
    digest = salt
    while len(stream) < len(body):
        digest = hashlib.sha1(secret + digest).digest()  # noqa: S324 - the format's own hash
        stream += digest
    plain = (int.from_bytes(body, "big") ^ int.from_bytes(stream[: len(body)], "big")).to_bytes(
        len(body), "big"
    )
    if hashlib.sha1(secret + plain).digest() != check:  # noqa: S324 - the format's own check
        return None
    return plain


def _certificate(r: _Reader, version: int) -> x509.Certificate:
    if version == 2 and r.utf() != "X.509":
        raise _MalformedError("not an X.509 certificate")
    der = r.blob()
    with warnings.catch_warnings():
        # old certificates (negative serials, odd encodings) warn but still name the key
        warnings.simplefilter("ignore")
        return x509.load_der_x509_certificate(der)


def _finding(hit: Hit, entry_at: int, cert: x509.Certificate, *, opened: bool) -> KeyFinding:
    """The entry's finding, named by its certificate's key (the opened key's own, when opened)."""
    public = cert.public_key()
    bits: int | None = None
    curve: str | None = None
    if isinstance(public, rsa.RSAPublicKey | dsa.DSAPublicKey):
        algorithm, bits = (
            ("rsa" if isinstance(public, rsa.RSAPublicKey) else "dsa"),
            public.key_size,
        )
    elif isinstance(public, ec.EllipticCurvePublicKey):
        algorithm, bits, curve = "ec", public.curve.key_size, public.curve.name
    else:
        names = {
            ed25519.Ed25519PublicKey: "ed25519",
            ed448.Ed448PublicKey: "ed448",
            x25519.X25519PublicKey: "x25519",
            x448.X448PublicKey: "x448",
        }
        algorithm = next((n for cls, n in names.items() if isinstance(public, cls)), "unknown")
    return hit.finding(
        offset=hit.base_offset + entry_at,
        format="jks",
        algorithm=algorithm,
        bits=bits,
        curve=curve,
        validated=True,
        encrypted=not opened,
        default_password=opened,
        fingerprint=keymath.fingerprint(public),
    )
