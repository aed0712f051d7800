"""Armoured PEM private keys: read the block at a hit, decode it, prove the key inside.

Handles the shapes PEM takes in files and dumps: LF or CRLF, indented (YAML,
config files), inside JSON strings with literal `\\n` / `\\r\\n` escapes (once
or twice escaped), in string literals of source code (one quoted piece per
line, joined by the compiler or by `+`), with XML/HTML character references
or markup between the lines (.docx paragraphs, `<br>`),
URL-encoded (a query string, a form post in a HAR file or an access log), and
UTF-16LE text. Dispatches on the armour label: PKCS#8, PKCS#1, SEC1, DSA
(plain or legacy `Proc-Type: 4,ENCRYPTED`), EncryptedPrivateKeyInfo, OpenSSH
(handed to `openssh.findings_from_blob`) and OpenPGP (handed to `pgp`).

Also home of the helpers the other text validators share (`text_at`,
`finding_from_der`), so they need no module of their own.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan import keymath
from agent.scan.validators import asn1, der, openssh, passwords, pgp

if TYPE_CHECKING:
    from agent.scan.validators import Hit
    from agent.values import KeyFinding

# The largest key in text (RSA-16384 PKCS#1, base64 with line ends) is ~13 KiB;
# anything beyond this is not one key and is not read.
MAX_TEXT_CHARS = 64 * 1024
MIN_DER_BYTES = 32

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# one quoted piece ends and the next begins: "...\n"<newline>"..." (C, Python, Go) or
# "...\n" +<newline>"..." (Java, C#, JavaScript); PEM text never holds a quote
_LITERAL_JOIN = re.compile(r"[\"']\s*\+?\s*[\"']")
_MARKUP = re.compile(r"<[^<>]{0,512}>")

# label -> format id users see for the unencrypted form
_LABEL_FORMAT = {
    "PRIVATE KEY": "pem-pkcs8",
    "RSA PRIVATE KEY": "pem-pkcs1",
    "EC PRIVATE KEY": "pem-sec1",
    "SM2 PRIVATE KEY": "pem-sec1",  # OpenSSL's SEC1 label for SM2 keys
    "DSA PRIVATE KEY": "pem-dsa",
    "ENCRYPTED PRIVATE KEY": "pem-encrypted-pkcs8",
    "OPENSSH PRIVATE KEY": "pem-openssh",
    "PGP PRIVATE KEY BLOCK": "pgp-private",
}
_LEGACY_ALGORITHM = {"RSA PRIVATE KEY": "rsa", "EC PRIVATE KEY": "ec", "DSA PRIVATE KEY": "dsa"}
# DEK-Info cipher -> block size (the IV is one block; the body a whole number of blocks)
_LEGACY_CIPHERS = {
    "DES-CBC": 8,
    "DES-EDE3-CBC": 8,
    "DES-EDE-CBC": 8,
    "BF-CBC": 8,
    "RC2-CBC": 8,
    "AES-128-CBC": 16,
    "AES-192-CBC": 16,
    "AES-256-CBC": 16,
    "CAMELLIA-128-CBC": 16,
    "CAMELLIA-192-CBC": 16,
    "CAMELLIA-256-CBC": 16,
    "ARIA-128-CBC": 16,
    "ARIA-192-CBC": 16,
    "ARIA-256-CBC": 16,
    "SM4-CBC": 16,
}
_PKCS5 = bytes.fromhex("2a864886f70d0105")  # 1.2.840.113549.1.5 (PBES1 / PBES2)
_PBES2 = bytes.fromhex("2a864886f70d01050d")
_PKCS12_PBE = bytes.fromhex("2a864886f70d010c01")  # 1.2.840.113549.1.12.1
_KDFS = (bytes.fromhex("2a864886f70d01050c"), bytes.fromhex("2b06010401da47040b"))  # PBKDF2, scrypt


@dataclass(frozen=True, slots=True)
class Armor:
    """A decoded armour block: label, RFC 1421 headers, body bytes and the optional CRC line."""

    label: str
    headers: dict[str, str]
    body: bytes
    checksum: str | None


def text_at(hit: Hit, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The text from the hit onwards as `str`, decoding UTF-16LE when the match was `wide`.

    Bytes map 1:1 to characters (latin-1) so offsets and byte-exact MACs survive.
    """
    data = hit.data
    start = hit.start
    if _is_wide(hit):
        raw = bytes(data[start : start + 2 * max_chars])
        raw = raw[: len(raw) - len(raw) % 2]
        high = raw[1::2]
        cut = next((i for i, b in enumerate(high) if b != 0), len(high))
        return raw[0::2][:cut].decode("latin-1")
    return bytes(data[start : start + max_chars]).decode("latin-1")


def _is_wide(hit: Hit) -> bool:
    data = hit.data
    return (
        hit.end - hit.start >= 4
        and hit.end <= len(data)
        and data[hit.start] != 0
        and data[hit.start + 1] == 0
        and data[hit.start + 3] == 0
    )


def unescape(text: str) -> str:
    """Undo the escapes a string literal adds (JSON `\\n`, `\\r\\n`, `\\/`, `\\u002B`) and real CRLF."""
    if "\\" in text:
        # System.Text.Json writes `+` as \u002B, some encoders `/` as \u002F and `\n` as \u000a
        text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        text = (
            text.replace("\\r\\n", "\n")
            .replace("\\n", "\n")
            .replace("\\r", "\n")
            .replace("\\t", " ")
            .replace("\\/", "/")
            .replace("\\", "")  # doubly escaped literals leave stray backslashes
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _armor_lines(text: str) -> list[str]:
    """The lines of an armour's inside, from whatever wraps them.

    Besides string-literal escapes: quoted pieces of source code, XML/HTML
    character references, and markup (a line per paragraph of a .docx, `<br>`
    in a wiki or mail export). No base64 line holds a quote, `&` or `<`.
    """
    if "&" in text:
        text = html.unescape(text)
    if '"' in text or "'" in text:
        text = _LITERAL_JOIN.sub("", text)
    if "<" in text:
        text = _MARKUP.sub("\n", text)
    return unescape(text).split("\n")


def parse_armor(text: str) -> Armor | None:
    """The armour block that starts `text`, or None when it is not a complete one."""
    begin = _BEGIN.match(text)
    if begin is None:
        return None
    label = begin.group(1)
    end = text.find(f"-----END {label}-----", begin.end())
    if end < 0:
        return None  # truncated, or longer than any key
    headers: dict[str, str] = {}
    body: list[str] = []
    checksum: str | None = None
    for raw_line in _armor_lines(text[begin.end() : end]):
        line = raw_line.strip()
        if not line:
            continue
        if ":" in line and not body:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
            continue
        if line.startswith("=") and len(line) == 5:
            checksum = line[1:]
            continue
        if checksum is not None:
            return None  # nothing may follow the checksum line
        body.append(line.replace(" ", "").replace("\t", ""))
    joined = "".join(body)
    if not _BASE64.fullmatch(joined) or len(joined) % 4:
        return None
    try:
        decoded = base64.b64decode(joined, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Armor(label, headers, decoded, checksum)


def load_der_key(der: bytes) -> PrivateKeyTypes | None:
    """A private key object from DER (PKCS#8, PKCS#1, SEC1, DSA), with the slow RSA check skipped."""
    try:
        outer = asn1.read_tlv(der, 0)
    except asn1.DerError:
        return None
    if outer.tag != 0x30:
        return None
    try:
        return serialization.load_der_private_key(
            der[: outer.end], password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def finding_from_der(body: bytes, hit: Hit, fmt: str, **fields: object) -> KeyFinding | None:
    """A validated finding when `body` (DER) holds a private key proven consistent, else None."""
    key = load_der_key(body)
    if key is None or not _cheap_to_prove(key) or not keymath.private_key_consistent(key):
        return None
    return hit.key_finding(key, format=fmt, **fields)


def _cheap_to_prove(key: PrivateKeyTypes) -> bool:
    """Refuse DSA numbers that would make y = g^x mod p cost seconds (real q is 160-256 bits)."""
    if isinstance(key, dsa.DSAPrivateKey):
        nums = key.private_numbers()
        q = nums.public_numbers.parameter_numbers.q
        return q.bit_length() <= keymath.MAX_DSA_Q_BITS and 0 < nums.x < q
    return True


def url_decoded(text: str) -> str:
    """The text with its URL encoding undone, when it starts URL-encoded (`%20` or `+` for spaces)."""
    if text.startswith("-----BEGIN%20"):
        return urllib.parse.unquote(text)
    if text.startswith("-----BEGIN+"):
        return urllib.parse.unquote_plus(text)  # a form: `+` is a space, base64's `+` is %2B
    return text


def validate(hit: Hit) -> Sequence[KeyFinding]:
    """Findings for the armoured block at the hit; () for anything not proven a private key."""
    armor = parse_armor(url_decoded(text_at(hit)))
    if armor is None or len(armor.body) < MIN_DER_BYTES:
        return ()
    label = armor.label
    if label == "PGP PRIVATE KEY BLOCK":
        if armor.checksum is not None and not pgp.checksum_matches(armor.body, armor.checksum):
            return ()
        return pgp.findings(armor.body, hit, fmt=_LABEL_FORMAT[label])
    if label == "OPENSSH PRIVATE KEY":
        return openssh.findings_from_blob(armor.body, hit, fmt=_LABEL_FORMAT[label])
    if label == "ENCRYPTED PRIVATE KEY":
        return _encrypted_pkcs8(armor.body, hit)
    fmt = _LABEL_FORMAT.get(label)
    if fmt is None:
        return ()
    if "ENCRYPTED" in armor.headers.get("Proc-Type", ""):
        return _legacy_encrypted(armor, hit)
    finding = finding_from_der(armor.body, hit, fmt)
    if finding is None and label in (
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "SM2 PRIVATE KEY",
    ):
        return _structural(armor.body, hit, fmt)
    return (finding,) if finding is not None else ()


def _structural(body: bytes, hit: Hit, fmt: str) -> Sequence[KeyFinding]:
    """Keys cryptography cannot load but the DER validator proves (multi-prime RSA, SM2)."""
    inner = replace(hit, data=memoryview(body), start=0, end=len(body), base_offset=hit.offset)
    return [replace(f, format=fmt, offset=hit.offset) for f in der.validate(inner)]


def _legacy_encrypted(armor: Armor, hit: Hit) -> Sequence[KeyFinding]:
    """OpenSSL's traditional encryption: plausible when cipher, IV and body length agree."""
    algorithm = _LEGACY_ALGORITHM.get(armor.label)
    if algorithm is None or armor.headers.get("Proc-Type", "").replace(" ", "") != "4,ENCRYPTED":
        return ()
    cipher, _, iv = armor.headers.get("DEK-Info", "").partition(",")
    block = _LEGACY_CIPHERS.get(cipher.strip().upper())
    if block is None:
        return ()
    try:
        iv_bytes = bytes.fromhex(iv.strip())
    except ValueError:
        return ()
    if len(iv_bytes) != block or len(armor.body) % block:
        return ()
    # one MD5 round derives the key from a password: the defaults cost nothing to try
    opened = passwords.open_legacy_pem(_armored(armor), hit.data)
    if opened is not None:
        return (hit.key_finding(opened, format="pem-legacy-encrypted", default_password=True),)
    return (
        hit.finding(
            format="pem-legacy-encrypted",
            algorithm=algorithm,
            validated=True,
            encrypted=True,
        ),
    )


def _armored(armor: Armor) -> bytes:
    """The armour as OpenSSL writes it (what cryptography's PEM loader reads)."""
    body = base64.encodebytes(armor.body).decode()
    headers = "".join(f"{name}: {value}\n" for name, value in armor.headers.items())
    return (
        f"-----BEGIN {armor.label}-----\n{headers}\n{body}-----END {armor.label}-----\n"
    ).encode()


def _encrypted_pkcs8(encoded: bytes, hit: Hit) -> Sequence[KeyFinding]:
    """EncryptedPrivateKeyInfo: plausible when the whole structure parses with a known scheme."""
    try:
        outer = asn1.read_tlv(encoded, 0)
        if outer.tag != 0x30 or outer.end != len(encoded):
            return ()
        parts = asn1.children(encoded, outer)
        if len(parts) != 2 or parts[0].tag != 0x30 or parts[1].tag != 0x04:
            return ()
        ciphertext = parts[1].end - parts[1].content
        alg = asn1.children(encoded, parts[0])
        if not alg or alg[0].tag != 0x06:
            return ()
        oid = encoded[alg[0].content : alg[0].end]
        if oid == _PBES2:
            if len(alg) != 2 or not _pbes2_params(encoded, alg[1]):
                return ()
        elif not oid.startswith((_PKCS5, _PKCS12_PBE)):
            return ()
    except asn1.DerError:
        return ()
    if ciphertext < MIN_DER_BYTES or ciphertext % 8:
        return ()
    opened = der.open_with_default_password(encoded, hit.data)
    if opened is not None:
        return (hit.key_finding(opened, format="pem-encrypted-pkcs8", default_password=True),)
    return (
        hit.finding(
            format="pem-encrypted-pkcs8",
            algorithm="unknown",  # the algorithm is inside the ciphertext
            validated=True,
            encrypted=True,
        ),
    )


def _pbes2_params(der: bytes, params: asn1.Tlv) -> bool:
    """PBES2-params: SEQUENCE { keyDerivationFunc (PBKDF2 | scrypt), encryptionScheme }."""
    if params.tag != 0x30:
        return False
    kdf_and_enc = asn1.children(der, params)
    if len(kdf_and_enc) != 2 or any(t.tag != 0x30 for t in kdf_and_enc):
        return False
    kdf = asn1.children(der, kdf_and_enc[0])
    enc = asn1.children(der, kdf_and_enc[1])
    if not kdf or not enc or kdf[0].tag != 0x06 or enc[0].tag != 0x06:
        return False
    return der[kdf[0].content : kdf[0].end] in _KDFS
