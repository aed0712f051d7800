"""Text-encoded private keys: real rules (both engines) find them, validators prove them.

Every key is generated at run time; nothing here is stored. Each positive case
plants one encoding in filler, scans with rules/pem.yar + rules/text.yar under
YARA-X and yara-python, calls the validator each rule names and expects exactly
one validated finding with the key's fingerprint, size and offset.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x448
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from agent.scan import samples
from agent.scan.rules import rule_metas
from agent.scan.samples import keyfiles
from agent.scan.samples import text as enc
from agent.scan.samples.binary import self_signed
from agent.scan.validators import VALIDATORS, Hit
from agent.values import KeyFinding
from tests import keys
from tests.keys import dsa1024, rsa2048
from tests.unit.scan import rulekit

RULE_FILES = ("pem.yar", "text.yar")
ENGINES = ("yara-x", "yara")
BEFORE = 3000
Enc = serialization.Encoding
Priv = serialization.PrivateFormat
NoEnc = serialization.NoEncryption()
K = TypeVar("K", bound=PrivateKeyTypes)


def scan(engine: str, data: bytes) -> list[KeyFinding]:
    """Every finding the text rules and their validators produce for `data`."""
    return rulekit.scan(engine, data, RULE_FILES)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def wrap(text: bytes, width: int, newline: bytes = b"\n") -> bytes:
    return newline.join(text[i : i + width] for i in range(0, len(text), width))


def der(key: PrivateKeyTypes, fmt: Priv = Priv.PKCS8) -> bytes:
    return key.private_bytes(Enc.DER, fmt, NoEnc)


@dataclass(frozen=True)
class Case:
    """A payload holding one key, where its finding must point, and what it must say."""

    payload: bytes
    anchor: bytes  # the finding's offset is where this first occurs in the payload
    key: PrivateKeyTypes | None  # None: encrypted without a public half
    fmt: str
    algorithm: str
    encrypted: bool = False
    fingerprint_known: bool = True


def pem_case(key: PrivateKeyTypes, fmt: Priv, fmt_id: str, algorithm: str) -> Case:
    return Case(enc.pem(key, fmt), b"-----BEGIN", key, fmt_id, algorithm)


def keyed(make: Callable[[], K], build: Callable[[K], Case]) -> Callable[[], Case]:
    """A case maker that makes a fresh key, then builds the case around it."""
    return lambda: build(make())


def _json_crlf_escaped(key: ec.EllipticCurvePrivateKey) -> Case:
    text = enc.pem(key, Priv.TraditionalOpenSSL).replace(b"\n", b"\\r\\n")
    return Case(b'{"key": "' + text + b'"}', b"-----BEGIN", key, "pem-sec1", "ec")


def _url_encoded(key: PrivateKeyTypes, quote: Callable[[str], str]) -> Case:
    text = quote(enc.pem(key).decode()).encode()
    return Case(
        b"POST /keys HTTP/1.1\r\n\r\nname=a&key=" + text,
        b"-----BEGIN",
        key,
        "pem-pkcs8",
        _algorithm(key),
    )


def _source_literals(key: PrivateKeyTypes, join: bytes) -> Case:
    """The PEM as one quoted literal per line of source code (C, Python, Go; `+` in Java)."""
    lines = enc.pem(key, Priv.TraditionalOpenSSL).splitlines()
    text = join.join(b'    "' + line + b'\\n"' for line in lines)
    return Case(b"KEY = (\n" + text + b")\n", b"-----BEGIN", key, "pem-pkcs1", "rsa")


def _docx_paragraphs(key: PrivateKeyTypes) -> Case:
    """The PEM pasted into a word processor: a paragraph per line, base64 lines split into runs
    (a header split into runs is not matched: the rules need its text in one piece)."""

    def runs(line: bytes) -> bytes:
        cut = len(line) if line.startswith(b"-----") else 20
        return b'</w:t></w:r><w:r w:rsidR="00B2"><w:t>'.join((line[:cut], line[cut:]))

    paragraphs = b"".join(
        b'<w:p w:rsidR="00A1"><w:r><w:t>' + runs(line) + b"</w:t></w:r></w:p>"
        for line in enc.pem(key).splitlines()
    )
    return Case(
        b"<w:document><w:body>" + paragraphs + b"</w:body>",
        b"-----BEGIN",
        key,
        "pem-pkcs8",
        _algorithm(key),
    )


def _algorithm(key: PrivateKeyTypes) -> str:
    return "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"


CASES: dict[str, Callable[[], Case]] = {
    "pem-pkcs8-rsa": lambda: pem_case(rsa2048(), Priv.PKCS8, "pem-pkcs8", "rsa"),
    "pem-pkcs8-ec-p256": lambda: pem_case(keys.ec_key(), Priv.PKCS8, "pem-pkcs8", "ec"),
    "pem-pkcs8-ed25519": lambda: pem_case(keys.ed25519_key(), Priv.PKCS8, "pem-pkcs8", "ed25519"),
    "pem-pkcs8-ed448": lambda: pem_case(keys.ed448_key(), Priv.PKCS8, "pem-pkcs8", "ed448"),
    "pem-pkcs8-x25519": lambda: pem_case(keys.x25519_key(), Priv.PKCS8, "pem-pkcs8", "x25519"),
    "pem-pkcs8-x448": lambda: pem_case(
        x448.X448PrivateKey.generate(), Priv.PKCS8, "pem-pkcs8", "x448"
    ),
    "pem-pkcs8-dsa": lambda: pem_case(dsa1024(), Priv.PKCS8, "pem-pkcs8", "dsa"),
    "pem-pkcs1-rsa": lambda: pem_case(rsa2048(), Priv.TraditionalOpenSSL, "pem-pkcs1", "rsa"),
    "pem-sec1-p384": lambda: pem_case(
        keys.ec_key(ec.SECP384R1()), Priv.TraditionalOpenSSL, "pem-sec1", "ec"
    ),
    "pem-dsa": lambda: pem_case(dsa1024(), Priv.TraditionalOpenSSL, "pem-dsa", "dsa"),
    "pem-encrypted-pkcs8": lambda: Case(
        enc.pem(rsa2048(), password=b"pw"),
        b"-----BEGIN",
        None,
        "pem-encrypted-pkcs8",
        "unknown",
        True,
    ),
    "pem-legacy-encrypted-rsa": lambda: Case(
        enc.pem(rsa2048(), Priv.TraditionalOpenSSL, b"pw"),
        b"-----BEGIN",
        None,
        "pem-legacy-encrypted",
        "rsa",
        True,
    ),
    "pem-legacy-encrypted-ec": lambda: Case(
        enc.pem(keys.ec_key(), Priv.TraditionalOpenSSL, b"pw"),
        b"-----BEGIN",
        None,
        "pem-legacy-encrypted",
        "ec",
        True,
    ),
    "pem-crlf": lambda: Case(
        enc.pem(rsa2048(), Priv.TraditionalOpenSSL).replace(b"\n", b"\r\n"),
        b"-----BEGIN",
        rsa2048(),
        "pem-pkcs1",
        "rsa",
    ),
    "pem-yaml-indented": keyed(
        keys.ec_key,
        lambda k: Case(
            b"tls:\n  key: |\n" + b"".join(b"    " + ln + b"\n" for ln in enc.pem(k).splitlines()),
            b"-----BEGIN",
            k,
            "pem-pkcs8",
            "ec",
        ),
    ),
    "pem-url-encoded": lambda: _url_encoded(rsa2048(), urllib.parse.quote),
    "pem-form-encoded": lambda: _url_encoded(keys.ec_key(), urllib.parse.quote_plus),
    "pem-c-string-literals": lambda: _source_literals(rsa2048(), b"\n"),
    "pem-java-string-concatenation": lambda: _source_literals(rsa2048(), b" +\n"),
    "pem-json-twice-escaped": keyed(
        keys.ec_key,
        lambda k: Case(
            json.dumps({"msg": json.dumps({"private_key": enc.pem(k).decode()})}).encode(),
            b"-----BEGIN",
            k,
            "pem-pkcs8",
            "ec",
        ),
    ),
    "pem-xml-character-references": keyed(
        keys.ec_key,
        lambda k: Case(
            b"<key>" + enc.pem(k).replace(b"\n", b"&#10;") + b"</key>",
            b"-----BEGIN",
            k,
            "pem-pkcs8",
            "ec",
        ),
    ),
    "pem-docx-paragraphs": lambda: _docx_paragraphs(rsa2048()),
    "pem-html-line-breaks": keyed(
        keys.ec_key,
        lambda k: Case(
            b"<div>" + enc.pem(k).replace(b"\n", b"<br/>") + b"</div>",
            b"-----BEGIN",
            k,
            "pem-pkcs8",
            "ec",
        ),
    ),
    "pem-json-gcp": lambda: Case(
        json.dumps(
            {"type": "service_account", "private_key": enc.pem(rsa2048()).decode()}
        ).encode(),
        b"-----BEGIN",
        rsa2048(),
        "pem-pkcs8",
        "rsa",
    ),
    "pem-json-crlf-escaped": lambda: _json_crlf_escaped(keys.ec_key()),
    "pem-utf16le": lambda: Case(
        enc.pem(rsa2048(), Priv.TraditionalOpenSSL)
        .decode()
        .replace("\n", "\r\n")
        .encode("utf-16-le"),
        "-----BEGIN".encode("utf-16-le"),
        rsa2048(),
        "pem-pkcs1",
        "rsa",
    ),
    "pem-utf16le-pkcs8-ed25519": keyed(
        keys.ed25519_key,
        lambda k: Case(
            enc.pem(k).decode().encode("utf-16-le"),
            "-----BEGIN".encode("utf-16-le"),
            k,
            "pem-pkcs8",
            "ed25519",
        ),
    ),
    "pem-openssh-ed25519": keyed(
        keys.ed25519_key,
        lambda k: Case(
            k.private_bytes(Enc.PEM, Priv.OpenSSH, NoEnc),
            b"-----BEGIN",
            k,
            "pem-openssh",
            "ed25519",
        ),
    ),
    "pem-openssh-rsa": lambda: Case(
        rsa2048().private_bytes(Enc.PEM, Priv.OpenSSH, NoEnc),
        b"-----BEGIN",
        rsa2048(),
        "pem-openssh",
        "rsa",
    ),
    "pem-openssh-ecdsa-json": keyed(
        keys.ec_key,
        lambda k: Case(
            json.dumps(
                {"ssh_key": k.private_bytes(Enc.PEM, Priv.OpenSSH, NoEnc).decode()}
            ).encode(),
            b"-----BEGIN",
            k,
            "pem-openssh",
            "ec",
        ),
    ),
    "pgp-rsa": lambda: Case(
        enc.pgp_armor(enc.pgp_packets(rsa2048())), b"-----BEGIN", rsa2048(), "pgp-private", "rsa"
    ),
    "pgp-ed25519-crlf": keyed(
        keys.ed25519_key,
        lambda k: Case(
            enc.pgp_armor(enc.pgp_packets(k), newline="\r\n"),
            b"-----BEGIN",
            k,
            "pgp-private",
            "ed25519",
        ),
    ),
    "pgp-p256": keyed(
        keys.ec_key,
        lambda k: Case(enc.pgp_armor(enc.pgp_packets(k)), b"-----BEGIN", k, "pgp-private", "ec"),
    ),
    "pgp-encrypted-rsa": lambda: Case(
        enc.pgp_armor(enc.pgp_packets(rsa2048(1), encrypted=True)),
        b"-----BEGIN",
        rsa2048(1),
        "pgp-private",
        "rsa",
        encrypted=True,
    ),
    "ppk-v2-rsa": lambda: Case(enc.ppk(rsa2048(), version=2), b"PuTTY", rsa2048(), "ppk", "rsa"),
    "ppk-v3-rsa-crlf": lambda: Case(
        enc.ppk(rsa2048(), version=3, newline="\r\n"), b"PuTTY", rsa2048(), "ppk", "rsa"
    ),
    "ppk-v3-ed25519": keyed(
        keys.ed25519_key,
        lambda k: Case(enc.ppk(k, version=3), b"PuTTY", k, "ppk", "ed25519"),
    ),
    "ppk-v2-ecdsa-p521": keyed(
        lambda: keys.ec_key(ec.SECP521R1()),
        lambda k: Case(enc.ppk(k, version=2), b"PuTTY", k, "ppk", "ec"),
    ),
    "ppk-v3-ecdsa-p384": keyed(
        lambda: keys.ec_key(ec.SECP384R1()),
        lambda k: Case(enc.ppk(k, version=3), b"PuTTY", k, "ppk", "ec"),
    ),
    "ppk-v2-dsa": lambda: Case(enc.ppk(dsa1024(), version=2), b"PuTTY", dsa1024(), "ppk", "dsa"),
    "ppk-v2-encrypted-rsa": lambda: Case(
        enc.ppk(rsa2048(), version=2, passphrase=b"pw"), b"PuTTY", rsa2048(), "ppk", "rsa", True
    ),
    "ppk-v3-encrypted-ed25519": keyed(
        keys.ed25519_key,
        lambda k: Case(
            enc.ppk(k, version=3, passphrase=b"pw"), b"PuTTY", k, "ppk", "ed25519", True
        ),
    ),
    "ppk-utf16le": keyed(
        keys.ed25519_key,
        lambda k: Case(
            enc.ppk(k, version=3, newline="\r\n").decode().encode("utf-16-le"),
            "PuTTY".encode("utf-16-le"),
            k,
            "ppk",
            "ed25519",
        ),
    ),
    "jwk-rsa-crt": lambda: Case(
        json.dumps(enc.jwk(rsa2048())).encode(), b"{", rsa2048(), "jwk", "rsa"
    ),
    "jwk-rsa-n-e-d-only": lambda: Case(
        json.dumps(enc.jwk(rsa2048(1), crt=False), indent=2).encode(),
        b"{",
        rsa2048(1),
        "jwk",
        "rsa",
    ),
    "jwk-rsa-members-reversed": lambda: Case(
        json.dumps(dict(reversed(enc.jwk(rsa2048()).items())), separators=(",", ":")).encode(),
        b"{",
        rsa2048(),
        "jwk",
        "rsa",
    ),
    "jwk-ec-p256": keyed(
        keys.ec_key,
        lambda k: Case(json.dumps(enc.jwk(k), indent=4).encode(), b"{", k, "jwk", "ec"),
    ),
    "jwk-ec-p521": keyed(
        lambda: keys.ec_key(ec.SECP521R1()),
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "ec"),
    ),
    "jwk-ec-secp256k1": keyed(
        lambda: keys.ec_key(ec.SECP256K1()),
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "ec"),
    ),
    "jwk-okp-ed25519": keyed(
        keys.ed25519_key,
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "ed25519"),
    ),
    "jwk-okp-ed448": keyed(
        keys.ed448_key,
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "ed448"),
    ),
    "jwk-okp-x25519": keyed(
        keys.x25519_key,
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "x25519"),
    ),
    "jwk-okp-x448": keyed(
        x448.X448PrivateKey.generate,
        lambda k: Case(json.dumps(enc.jwk(k)).encode(), b"{", k, "jwk", "x448"),
    ),
    "jwk-set-second-key": keyed(
        keys.ed25519_key,
        lambda k: Case(
            json.dumps({"keys": [enc.jwk(keys.ec_key(), private=False), enc.jwk(k)]}).encode(),
            b'{"kty": "OKP"',
            k,
            "jwk",
            "ed25519",
        ),
    ),
    "b64-pkcs8-rsa-one-line": lambda: Case(
        b"KEY=" + b64(der(rsa2048())) + b"\n", b"MII", rsa2048(), "base64-der", "rsa"
    ),
    "b64-pkcs8-rsa-76-wrapped": lambda: Case(
        b"data:\n" + wrap(b64(der(rsa2048())), 76, b"\r\n") + b"\r\n",
        b"MII",
        rsa2048(),
        "base64-der",
        "rsa",
    ),
    "b64-pkcs1-rsa-json-escaped": lambda: Case(
        b'{"k": "' + wrap(b64(der(rsa2048(), Priv.TraditionalOpenSSL)), 64, b"\\n") + b'"}',
        b"MII",
        rsa2048(),
        "base64-der",
        "rsa",
    ),
    "b64-sec1-p256": keyed(
        keys.ec_key,
        lambda k: Case(b64(der(k, Priv.TraditionalOpenSSL)), b"MHc", k, "base64-der", "ec"),
    ),
    "b64-sec1-p384": keyed(
        lambda: keys.ec_key(ec.SECP384R1()),
        lambda k: Case(b64(der(k, Priv.TraditionalOpenSSL)), b"MIG", k, "base64-der", "ec"),
    ),
    "b64-sec1-p521": keyed(
        lambda: keys.ec_key(ec.SECP521R1()),
        lambda k: Case(b64(der(k, Priv.TraditionalOpenSSL)), b"MIH", k, "base64-der", "ec"),
    ),
    "b64-sec1-secp256k1": keyed(
        lambda: keys.ec_key(ec.SECP256K1()),
        lambda k: Case(b64(der(k, Priv.TraditionalOpenSSL)), b"MHQ", k, "base64-der", "ec"),
    ),
    "b64-pkcs8-p256-yaml": keyed(
        keys.ec_key,
        lambda k: Case(
            b"key: |\n  " + wrap(b64(der(k)), 64, b"\n  ") + b"\n", b"MIG", k, "base64-der", "ec"
        ),
    ),
    "b64-pkcs8-p384": keyed(
        lambda: keys.ec_key(ec.SECP384R1()),
        lambda k: Case(b64(der(k)), b"MIG", k, "base64-der", "ec"),
    ),
    "b64-pkcs8-ed25519": keyed(
        keys.ed25519_key, lambda k: Case(b64(der(k)), b"MC4", k, "base64-der", "ed25519")
    ),
    "b64-pkcs8-x25519": keyed(
        keys.x25519_key, lambda k: Case(b64(der(k)), b"MC4", k, "base64-der", "x25519")
    ),
    "b64-pkcs8-ed448": keyed(
        keys.ed448_key, lambda k: Case(b64(der(k)), b"MEc", k, "base64-der", "ed448")
    ),
    "b64-pkcs8-x448": keyed(
        x448.X448PrivateKey.generate,
        lambda k: Case(b64(der(k)), b"MEY", k, "base64-der", "x448"),
    ),
    "b64-pkcs8-dsa": lambda: Case(b64(der(dsa1024())), b"MII", dsa1024(), "base64-der", "dsa"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(CASES))
def test_planted_key_gives_one_validated_finding(engine: str, case_id: str) -> None:
    """A key planted in filler gives exactly one validated finding naming it, at its offset."""
    case = CASES[case_id]()
    data = keys.plant(case.payload, before=BEFORE, after=BEFORE)
    findings = scan(engine, data)
    assert len(findings) == 1, [(f.rule, f.offset) for f in findings]
    (f,) = findings
    assert f.validated
    assert f.format == case.fmt
    assert f.algorithm == case.algorithm
    assert f.encrypted is case.encrypted
    assert f.offset == BEFORE + case.payload.index(case.anchor)
    if case.key is None:
        assert f.fingerprint is None
        return
    assert f.fingerprint == keys.fingerprint(case.key)
    bits, curve = keys.bits_and_curve(case.key)
    assert (f.bits, f.curve) == (bits, curve)
    _assert_holds_no_key_text(f, case.payload)


def _assert_holds_no_key_text(finding: KeyFinding, payload: bytes) -> None:
    shown = repr(finding)
    text = payload.decode("latin-1")
    windows = {text[i : i + 16] for i in range(max(1, len(text) - 15))}
    assert not any(shown[i : i + 16] in windows for i in range(len(shown) - 15))


# ---- negatives ------------------------------------------------------------------------


def _der_int(x: int) -> bytes:
    body = x.to_bytes(x.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tampered_pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#1 DER of the key with p replaced by p + 2 (everything else intact)."""
    n = key.private_numbers()
    ints = (0, n.public_numbers.n, n.public_numbers.e, n.d, n.p + 2, n.q, n.dmp1, n.dmq1, n.iqmp)
    body = b"".join(_der_int(i) for i in ints)
    return b"\x30" + _der_len(len(body)) + body


def _armor(label: str, body: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label.encode(),
        wrap(b64(body), 64),
        label.encode(),
    )


def _tampered_jwk() -> bytes:
    doc = enc.jwk(rsa2048())
    q = int.from_bytes(base64.urlsafe_b64decode(doc["q"] + "=="), "big") + 2
    doc["q"] = base64.urlsafe_b64encode(q.to_bytes(128, "big")).rstrip(b"=").decode()
    return json.dumps(doc).encode()


def _tampered_ppk_mac() -> bytes:
    text = enc.ppk(keys.ed25519_key(), version=3)
    head, mac = text.rsplit(b"Private-MAC: ", 1)
    flipped = (b"0" if mac[:1] != b"0" else b"1") + mac[1:]
    return head + b"Private-MAC: " + flipped


def _tampered_pgp_crc() -> bytes:
    armored = enc.pgp_armor(enc.pgp_packets(keys.ed25519_key()))
    start = armored.index(b"\n=") + 2
    flipped = b"A" if armored[start : start + 1] != b"A" else b"B"
    return armored[:start] + flipped + armored[start + 1 :]


def _gnu_dummy_pgp() -> bytes:
    packets = enc.pgp_packets(keys.ed25519_key())
    # replace the clear secret by a GNU dummy S2K (the secret is absent: `gpg --export-secret-subkeys`)
    length = packets[1]
    body = packets[2 : 2 + length]
    public_end = 1 + 4 + 1 + 1 + 9 + 2 + 33
    stub = body[:public_end] + bytes([255, 0, 101, 0]) + b"GNU\x01"
    return enc.pgp_armor(bytes([0xC5, len(stub)]) + stub + packets[2 + length :])


NEGATIVES: dict[str, Callable[[], bytes]] = {
    "pem-public-spki": lambda: (
        rsa2048()
        .public_key()
        .public_bytes(Enc.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "pem-public-pkcs1": lambda: (
        rsa2048().public_key().public_bytes(Enc.PEM, serialization.PublicFormat.PKCS1)
    ),
    "openssh-public": lambda: (
        keys.ed25519_key()
        .public_key()
        .public_bytes(Enc.OpenSSH, serialization.PublicFormat.OpenSSH)
    ),
    "jwk-public-rsa": lambda: json.dumps(enc.jwk(rsa2048(), private=False)).encode(),
    "jwk-public-set": lambda: json.dumps(
        {
            "keys": [
                enc.jwk(keys.ec_key(), private=False),
                enc.jwk(keys.ed25519_key(), private=False),
            ]
        }
    ).encode(),
    "certificate": lambda: self_signed(rsa2048()).public_bytes(Enc.PEM),
    "certificate-base64-der": lambda: b64(self_signed(rsa2048()).public_bytes(Enc.DER)),
    "csr": lambda: (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(rsa2048(), hashes.SHA256())
        .public_bytes(Enc.PEM)
    ),
    "placeholder-doc": lambda: (
        b"-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n"
    ),
    "placeholder-url-encoded": lambda: urllib.parse.quote(
        "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n"
    ).encode(),
    "url-encoded-public-key": lambda: urllib.parse.quote_plus(
        rsa2048()
        .public_key()
        .public_bytes(Enc.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    ).encode(),
    "url-encoded-tampered-prime": lambda: urllib.parse.quote(
        _armor("RSA PRIVATE KEY", tampered_pkcs1(rsa2048())).decode()
    ).encode(),
    "placeholder-html": lambda: (
        b"<p>-----BEGIN PRIVATE KEY-----</p><p><em>paste your key here</em></p>"
        b"<p>-----END PRIVATE KEY-----</p>"
    ),
    "placeholder-rsa-doc": lambda: (
        b"-----BEGIN RSA PRIVATE KEY-----\n<insert key>\n-----END RSA PRIVATE KEY-----\n"
    ),
    "placeholder-jwk": lambda: (
        b'{"kty": "RSA", "n": "...", "e": "AQAB", "d": "your-private-exponent-here"}'
    ),
    "header-then-random-base64": lambda: _armor("PRIVATE KEY", keys.filler(1200, seed=7)),
    "header-then-random-pgp": lambda: _armor("PGP PRIVATE KEY BLOCK", keys.filler(900, seed=8)),
    "header-then-garbage": lambda: b"-----BEGIN RSA PRIVATE KEY-----\n" + keys.filler(2000, seed=9),
    "truncated-pem": lambda: enc.pem(rsa2048())[:900],
    "truncated-ppk": lambda: enc.ppk(rsa2048(), version=3)[:700],
    "truncated-base64-der": lambda: b64(der(rsa2048()))[:1000],
    "truncated-jwk": lambda: json.dumps(enc.jwk(keys.ec_key())).encode()[:-10],
    "tampered-prime-pem": lambda: _armor("RSA PRIVATE KEY", tampered_pkcs1(rsa2048())),
    "tampered-prime-base64": lambda: b64(tampered_pkcs1(rsa2048())),
    "tampered-prime-jwk": _tampered_jwk,
    "tampered-ppk-mac": _tampered_ppk_mac,
    "tampered-pgp-crc": _tampered_pgp_crc,
    "pgp-gnu-dummy-stub": _gnu_dummy_pgp,
    "encrypted-pkcs8-unknown-scheme": lambda: _armor(
        "ENCRYPTED PRIVATE KEY",
        bytes.fromhex("3082011e300d06092a864886f70d0101010500048201") + b"\x0b" + keys.filler(267),
    ),
    "legacy-encrypted-bad-iv": lambda: enc.pem(rsa2048(), Priv.TraditionalOpenSSL, b"pw").replace(
        b"AES-256-CBC,", b"AES-256-CBC,00"
    ),
    "random-bytes": lambda: keys.filler(20_000, seed=11),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(NEGATIVES))
def test_look_alikes_give_no_validated_finding(engine: str, case_id: str) -> None:
    """Public keys, certificates, placeholders, garbage and tampered keys are never a finding."""
    data = keys.plant(NEGATIVES[case_id](), before=BEFORE, after=BEFORE)
    assert [f for f in scan(engine, data) if f.validated] == []


def test_pem_openssh_body_is_handed_to_the_openssh_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An OPENSSH PRIVATE KEY block's decoded body goes to openssh.findings_from_blob as pem-openssh."""
    from agent.scan.validators import openssh

    seen: list[tuple[bytes, str]] = []

    def fake(blob: bytes, hit: Hit, *, fmt: str) -> tuple[KeyFinding, ...]:
        seen.append((blob, fmt))
        return ()

    monkeypatch.setattr(openssh, "findings_from_blob", fake)
    key = keys.ed25519_key()
    text = key.private_bytes(Enc.PEM, Priv.OpenSSH, NoEnc)
    scan("yara-x", keys.plant(text, before=100, after=100))
    body = b"".join(text.splitlines()[1:-1])
    assert seen == [(base64.b64decode(body), "pem-openssh")]


def test_two_keys_in_one_file_are_two_findings() -> None:
    """Each armoured block is validated on its own: two keys, two fingerprints."""
    a, b = rsa2048(), keys.ec_key()
    data = keys.plant(
        enc.pem(a) + b"\n\n" + enc.pem(b, Priv.TraditionalOpenSSL), before=50, after=50
    )
    fps = sorted(f.fingerprint or "" for f in scan("yara", data))
    assert fps == sorted([keys.fingerprint(a), keys.fingerprint(b)])


def test_jwk_rsa_without_primes_is_factored_from_e_and_d() -> None:
    """n, e and d alone are enough: the primes are recovered and the key proven."""
    from agent.scan.validators.jwk import factor_from_exponents

    n = rsa2048().private_numbers()
    assert sorted(
        factor_from_exponents(n.public_numbers.n, n.public_numbers.e, n.d) or ()
    ) == sorted((n.p, n.q))
    assert factor_from_exponents(n.public_numbers.n, n.public_numbers.e, n.d + 2) is None


# ---- rules and self-test samples ------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_text_rules_compile_under_both_engines(engine: str) -> None:
    """rules/pem.yar and rules/text.yar compile with YARA-X and yara-python."""
    assert rulekit.compiled(engine, RULE_FILES).engine == engine


def test_every_text_rule_names_a_validator_and_existing_selftests() -> None:
    """Each rule's meta names a known validator, a severity and self-test generators that exist."""
    metas = rule_metas(rulekit.sources(RULE_FILES))
    assert len(metas) == 12
    for rule, meta in metas.items():
        assert meta["validator"] in VALIDATORS, rule
        assert meta["severity"] == "high"
        assert meta["format"] and meta["description"]
        for name in meta["selftest"].split(","):
            assert name in samples.SAMPLES, (rule, name)


@pytest.fixture(scope="module")
def generated_samples() -> dict[str, samples.Sample]:
    makers = {**enc.SAMPLES, **keyfiles.SAMPLES}  # rules/text.yar's generators
    return {name: maker() for name, maker in makers.items()}


@pytest.mark.parametrize("engine", ENGINES)
def test_every_selftest_sample_validates_with_its_rule(
    engine: str, generated_samples: dict[str, samples.Sample]
) -> None:
    """Each rule finds each of its self-test samples, validated, with the sample's fingerprint."""
    for rule, meta in rule_metas(rulekit.sources(RULE_FILES)).items():
        for name in meta["selftest"].split(","):
            sample = generated_samples[name]
            found = [f for f in scan(engine, sample.data) if f.rule == rule and f.validated]
            assert [f.fingerprint for f in found] == [sample.fingerprint], (rule, name)
