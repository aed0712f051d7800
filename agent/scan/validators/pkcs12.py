"""PKCS#12 / PFX key stores: opened when they use no, an empty or a default password, else reported as encrypted.

The structure is walked here first, bounded (16 MiB, every KDF iteration
count read and capped) so the library's password attempts cost at most a few
million hash rounds. A PFX that opens with no password, the empty one (a
common export default) or a published default (`notasecret` for every Google
service-account key, `changeit`: see `passwords`) yields its private key,
proven like any other, and says which (`default_password`); one
that does not is an encrypted finding, validated when authSafe and macData
parse completely and a key could be inside, named by a certificate readable
without the password when one belongs to the key.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import pkcs12

from agent.scan import keymath
from agent.scan.validators import passwords
from agent.scan.validators.asn1 import DerError, Tlv
from agent.scan.validators.base64der import decode_at
from agent.scan.validators.der import pbe_iterations

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

MAX_PFX_BYTES = 16 * 1024 * 1024
MAX_ITERATIONS = 1_000_000  # per KDF; above it the library is not asked to try a password
MAX_ELEMENTS = 1024

OID_DATA = bytes.fromhex("2a864886f70d010701")
OID_ENCRYPTED_DATA = bytes.fromhex("2a864886f70d010706")
OID_KEY_BAG = bytes.fromhex("2a864886f70d010c0a0101")
OID_SHROUDED_KEY_BAG = bytes.fromhex("2a864886f70d010c0a0102")
OID_CERT_BAG = bytes.fromhex("2a864886f70d010c0a0103")
OID_X509_CERT = bytes.fromhex("2a864886f70d01091601")
OID_LOCAL_KEY_ID = bytes.fromhex("2a864886f70d010915")

_ERRORS = (DerError, ValueError, TypeError, UnsupportedAlgorithm, OverflowError, IndexError)


@dataclass(slots=True)
class _Walk:
    """What the unencrypted part of a PFX shows: key bags, certificates, KDF costs."""

    key_bags: list[bytes | None] = field(default_factory=list)  # localKeyId of each key bag
    certs: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (localKeyId, DER)
    encrypted_parts: int = 0
    iterations: list[int] = field(default_factory=list)
    has_mac: bool = False


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the PFX that starts at the hit; () for anything that is not one."""
    try:
        return _validate(hit)
    except _ERRORS:
        # hostile bytes end here: any parse failure means "not a key store"
        return ()


MAX_BASE64_PFX_BYTES = 0xFFFF  # a two-byte DER length: a key with its certificate chain


def validate_base64(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the base64 PFX that starts at the hit (line breaks and `\\n` escapes allowed)."""
    text = bytes(hit.data[hit.start : hit.start + 2 * MAX_BASE64_PFX_BYTES])
    blob = decode_at(text, MAX_BASE64_PFX_BYTES)
    if blob is None:
        return ()
    # the decoded PFX is walked as a hit of its own; findings keep the text's offset
    inner = replace(hit, data=memoryview(blob), start=0, end=len(blob), base_offset=hit.offset)
    return tuple(replace(f, format=f"base64-{f.format}") for f in validate(inner))


def _validate(hit: Hit) -> Sequence[KeyFinding]:
    data = hit.data
    pfx = _tlv(data, hit.start)
    if pfx.tag != 0x30:
        return ()
    walk = _walk(data, pfx)
    if not walk.key_bags and not walk.encrypted_parts:
        return ()  # certificates only (a trust store): no private key can be inside
    blob = bytes(data[pfx.start : pfx.end])
    if all(0 < n <= MAX_ITERATIONS for n in walk.iterations):
        cheap = all(n <= passwords.MAX_ITERATIONS for n in walk.iterations)  # keytool: 10,000
        opened = _open(blob, passwords.tries(data) if cheap else iter(()))
        if opened is not None:
            return _opened(hit, *opened)
    return (
        hit.finding(
            format="pkcs12",
            algorithm="unknown",
            validated=walk.has_mac,
            encrypted=True,
            fingerprint=_cert_fingerprint(walk),
        ),
    )


def _open(
    blob: bytes, defaults: Iterator[bytes]
) -> tuple[pkcs12.PKCS12KeyAndCertificates, bool] | None:
    """The PFX opened with no password, the empty one or one of `defaults` (then True)."""
    for password in itertools.chain((None, b""), defaults):  # lazily: each default costs budget
        try:
            # real-world PFX files carry sloppy certificates (negative serials): the
            # library's deprecation warnings are about the certificate, not the key
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pkcs12.load_pkcs12(blob, password), bool(password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue  # wrong password, or a cipher the library refuses: try the next one
    return None


def _opened(
    hit: Hit, opened: pkcs12.PKCS12KeyAndCertificates, default_password: bool
) -> Sequence[KeyFinding]:
    key = opened.key
    if key is None or not keymath.private_key_consistent(key):
        return ()
    return (hit.key_finding(key, format="pkcs12", default_password=default_password),)


def _walk(data: memoryview, pfx: Tlv) -> _Walk:
    """Walks PFX -> authSafe -> ContentInfos -> SafeBags; raises DerError when any level is malformed."""
    walk = _Walk()
    kids = _kids(data, pfx)
    if len(kids) not in (2, 3) or _int(data, kids[0]) != 3:
        raise DerError("not a version 3 PFX")
    content = _content_info(data, kids[1], OID_DATA)
    safe = _tlv(data, content.content, content.end)
    if safe.tag != 0x30 or safe.end != content.end:
        raise DerError("authSafe")
    for info in _kids(data, safe):
        oid, value = _kids_exact(data, info, 2)
        kind = _oid(data, oid)
        if kind == OID_DATA:
            _safe_contents(data, _explicit_octets(data, value), walk)
        elif kind == OID_ENCRYPTED_DATA:
            _encrypted_data(data, value, walk)
        else:
            raise DerError("content type")
    if len(kids) == 3:
        _mac_data(data, kids[2], walk)
    return walk


def _safe_contents(data: memoryview, octets: Tlv, walk: _Walk) -> None:
    contents = _tlv(data, octets.content, octets.end)
    if contents.tag != 0x30 or contents.end != octets.end:
        raise DerError("SafeContents")
    for bag in _kids(data, contents):
        parts = _kids(data, bag)
        if len(parts) not in (2, 3) or parts[1].tag != 0xA0:
            raise DerError("SafeBag")
        bag_id = _oid(data, parts[0])
        local_id = _local_key_id(data, parts[2]) if len(parts) == 3 else None
        value = _tlv(data, parts[1].content, parts[1].end)
        if bag_id == OID_KEY_BAG:
            walk.key_bags.append(local_id)
        elif bag_id == OID_SHROUDED_KEY_BAG:
            walk.key_bags.append(local_id)
            alg = _kids(data, value)[0]
            walk.iterations.append(pbe_iterations(data, alg) or 0)
        elif bag_id == OID_CERT_BAG:
            cert_id, cert_value = _kids_exact(data, value, 2)
            if _oid(data, cert_id) == OID_X509_CERT:
                der = _explicit_octets(data, cert_value)
                walk.certs.append((local_id, bytes(data[der.content : der.end])))


def _encrypted_data(data: memoryview, value: Tlv, walk: _Walk) -> None:
    if value.tag != 0xA0:
        raise DerError("encryptedData")
    encrypted = _tlv(data, value.content, value.end)
    version, info = _kids_exact(data, encrypted, 2)
    if _int(data, version) not in (0, 2):
        raise DerError("encryptedData version")
    parts = _kids(data, info)
    if len(parts) != 3 or parts[2].tag not in (0x80, 0xA0):
        raise DerError("EncryptedContentInfo")
    walk.encrypted_parts += 1
    walk.iterations.append(pbe_iterations(data, parts[1]) or 0)


def _mac_data(data: memoryview, mac: Tlv, walk: _Walk) -> None:
    parts = _kids(data, mac)
    if len(parts) not in (2, 3) or parts[0].tag != 0x30 or parts[1].tag != 0x04:
        raise DerError("MacData")
    digest = _kids(data, parts[0])
    if len(digest) != 2 or digest[1].tag != 0x04:
        raise DerError("DigestInfo")
    walk.iterations.append(_int(data, parts[2]) if len(parts) == 3 else 1)
    walk.has_mac = True


def _cert_fingerprint(walk: _Walk) -> str | None:
    """The certificate that belongs to the key, when one is readable without the password."""
    wanted = {kid for kid in walk.key_bags if kid is not None}
    chosen = [der for kid, der in walk.certs if kid is not None and kid in wanted]
    if not chosen and len(walk.key_bags) == 1 and len(walk.certs) == 1:
        chosen = [walk.certs[0][1]]
    if len(chosen) != 1:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sloppy certificates still name their key
            cert = x509.load_der_x509_certificate(chosen[0])
            return keymath.fingerprint(cert.public_key())
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        return None  # an unreadable certificate names nothing; the finding stays


def _local_key_id(data: memoryview, attrs: Tlv) -> bytes | None:
    if attrs.tag != 0x31:
        raise DerError("bag attributes")
    for attr in _kids(data, attrs):
        oid, values = _kids_exact(data, attr, 2)
        if _oid(data, oid) == OID_LOCAL_KEY_ID and values.tag == 0x31:
            inner = _kids(data, values)
            if len(inner) == 1 and inner[0].tag == 0x04:
                return bytes(data[inner[0].content : inner[0].end])
    return None


def _content_info(data: memoryview, info: Tlv, expected: bytes) -> Tlv:
    oid, value = _kids_exact(data, info, 2)
    if _oid(data, oid) != expected:
        raise DerError("content type")
    return _explicit_octets(data, value)


def _explicit_octets(data: memoryview, value: Tlv) -> Tlv:
    """The OCTET STRING inside a [0] EXPLICIT wrapper, which it must fill."""
    if value.tag != 0xA0:
        raise DerError("[0] EXPLICIT")
    octets = _tlv(data, value.content, value.end)
    if octets.tag != 0x04 or octets.end != value.end:
        raise DerError("OCTET STRING")
    return octets


def _oid(data: memoryview, tlv: Tlv) -> bytes:
    if tlv.tag != 0x06:
        raise DerError("not an OID")
    return bytes(data[tlv.content : tlv.end])


def _int(data: memoryview, tlv: Tlv) -> int:
    if tlv.tag != 0x02 or not 0 < tlv.end - tlv.content <= 8 or data[tlv.content] & 0x80:
        raise DerError("small INTEGER")
    return int.from_bytes(data[tlv.content : tlv.end], "big")


def _tlv(data: memoryview, pos: int, limit: int | None = None) -> Tlv:
    """One DER element; like asn1.read_tlv but up to 16 MiB, as a PFX may carry many certificates."""
    end_limit = len(data) if limit is None else min(limit, len(data))
    if pos + 2 > end_limit:
        raise DerError("truncated header")
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        length, header = first, 2
    else:
        count = first & 0x7F
        if not 1 <= count <= 3 or pos + 2 + count > end_limit:
            raise DerError("bad length")
        length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
        if length < 0x80 or (count > 1 and data[pos + 2] == 0):
            raise DerError("non-minimal length")
        header = 2 + count
    if length > MAX_PFX_BYTES or pos + header + length > end_limit:
        raise DerError("length past the end")
    return Tlv(tag, pos, pos + header, pos + header + length)


def _kids(data: memoryview, parent: Tlv) -> list[Tlv]:
    out: list[Tlv] = []
    pos = parent.content
    while pos < parent.end:
        child = _tlv(data, pos, parent.end)
        out.append(child)
        pos = child.end
        if len(out) > MAX_ELEMENTS:
            raise DerError("too many elements")
    return out


def _kids_exact(data: memoryview, parent: Tlv, count: int) -> list[Tlv]:
    kids = _kids(data, parent)
    if len(kids) != count:
        raise DerError("element count")
    return kids
