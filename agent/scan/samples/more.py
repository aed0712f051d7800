"""Self-test samples for rules/more.yar: hex DER, .NET XML RSA, `openssl -text`, Java KeyStore, GnuPG.

Each maker generates a fresh key with cryptography and writes it the way the
tool in question does (xxd -p / xxd -i, .NET `ToXmlString(true)`, OpenSSL's
`-text` printer, the JKS writer of the JDK, gpg-agent's private-keys-v1.d files), without
needing those tools.
Tests use the same encoders to build variants.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan.samples import text as text_samples
from agent.scan.samples.base import Sample, SampleMaker
from agent.scan.samples.binary import self_signed
from agent.scan.samples.text import embed, fingerprint

_Enc = serialization.Encoding
_Priv = serialization.PrivateFormat
_NoEnc = serialization.NoEncryption()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der(key: PrivateKeyTypes, fmt: _Priv = _Priv.PKCS8) -> bytes:
    """The key as unencrypted DER."""
    return key.private_bytes(_Enc.DER, fmt, _NoEnc)


# ---- hex DER --------------------------------------------------------------------------


def xxd_plain(data: bytes, width: int = 60) -> bytes:
    """`xxd -p`: lowercase hex wrapped at `width` digits."""
    text = data.hex().encode()
    return b"\n".join(text[i : i + width] for i in range(0, len(text), width)) + b"\n"


def hex_escaped(data: bytes) -> bytes:
    """A `"\\x30\\x82..."` string literal (C, Python, shell printf)."""
    return b'"' + b"".join(b"\\x%02x" % b for b in data) + b'"'


def c_array(data: bytes, *, java: bool = False, per_line: int = 12) -> bytes:
    """`xxd -i` (C) or a Java `new byte[] {(byte) 0x82, ...}` body."""
    items = [("(byte) 0x%02x" if java and b >= 0x80 else "0x%02x") % b for b in data]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ("{\n  " + ",\n  ".join(lines) + "\n}").encode()


def _hex_xxd() -> Sample:
    key = _rsa()
    return Sample(embed(b"$ xxd -p key.der\n" + xxd_plain(der(key))), fingerprint(key))


def _hex_sec1_upper() -> Sample:
    key = ec.generate_private_key(ec.SECP256R1())
    text = der(key, _Priv.TraditionalOpenSSL).hex().upper().encode()
    return Sample(embed(b'signing_key = "' + text + b'"\n'), fingerprint(key))


def _hex_escaped_ed25519() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    return Sample(embed(b"KEY = " + hex_escaped(der(key)) + b"\n"), fingerprint(key))


def _hex_c_array() -> Sample:
    key = _rsa()
    body = c_array(der(key, _Priv.TraditionalOpenSSL))
    return Sample(embed(b"unsigned char key_der[] = " + body + b";\n"), fingerprint(key))


# ---- .NET XML RSA ---------------------------------------------------------------------

DOTNET_ORDER = ("Modulus", "Exponent", "P", "Q", "DP", "DQ", "InverseQ", "D")


def _b64_int(value: int, size: int) -> str:
    return base64.b64encode(
        value.to_bytes(max(size, (value.bit_length() + 7) // 8), "big")
    ).decode()


def xml_rsa(
    key: rsa.RSAPrivateKey,
    *,
    order: Sequence[str] = DOTNET_ORDER,
    private: bool = True,
    sep: str = "",
) -> str:
    """`RSA.ToXmlString(private)`: members padded as .NET pads them (halves to half the modulus)."""
    nums = key.private_numbers()
    pub = nums.public_numbers
    size = (pub.n.bit_length() + 7) // 8
    values = {
        "Modulus": (pub.n, size),
        "Exponent": (pub.e, 0),
        "P": (nums.p, size // 2),
        "Q": (nums.q, size // 2),
        "DP": (nums.dmp1, size // 2),
        "DQ": (nums.dmq1, size // 2),
        "InverseQ": (nums.iqmp, size // 2),
        "D": (nums.d, size),
    }
    names = [n for n in order if private or n in ("Modulus", "Exponent")]
    body = sep.join(f"<{n}>{_b64_int(*values[n])}</{n}>" for n in names)
    return f"<RSAKeyValue>{sep}{body}{sep}</RSAKeyValue>"


def _xml_dotnet() -> Sample:
    key = _rsa()
    return Sample(embed(xml_rsa(key).encode()), fingerprint(key))


def _xml_json_config() -> Sample:
    key = _rsa()
    doc = {"Signing": {"PrivateKeyXml": xml_rsa(key, order=DOTNET_ORDER[::-1], sep="\n  ")}}
    return Sample(embed(json.dumps(doc, indent=2).encode()), fingerprint(key))


# ---- openssl -text ---------------------------------------------------------------------

_OKP_NAMES = (
    (ed25519.Ed25519PrivateKey, "ED25519"),
    (x25519.X25519PrivateKey, "X25519"),
    (ed448.Ed448PrivateKey, "ED448"),
    (x448.X448PrivateKey, "X448"),
)
_NIST = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _hex_block(raw: bytes) -> list[str]:
    """OpenSSL's layout: 15 bytes a line, 4-space indent, a colon after every byte but the last."""
    pairs = [f"{b:02x}" for b in raw]
    rows = [":".join(pairs[i : i + 15]) for i in range(0, len(pairs), 15)]
    return ["    " + r + (":" if i < len(rows) - 1 else "") for i, r in enumerate(rows)]


def _bignum(value: int) -> list[str]:
    """A positive BIGNUM as OpenSSL prints it: a leading 00 when the top bit is set."""
    return _hex_block(value.to_bytes(value.bit_length() // 8 + 1, "big"))


def openssl_text(key: PrivateKeyTypes, *, newline: str = "\n") -> bytes:
    """What `openssl pkey -text -noout` prints for the key (OpenSSL 3 layout)."""
    lines: list[str] = []
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        pub = nums.public_numbers
        lines.append(f"Private-Key: ({key.key_size} bit, 2 primes)")
        members = (
            ("modulus", pub.n),
            ("privateExponent", nums.d),
            ("prime1", nums.p),
            ("prime2", nums.q),
            ("exponent1", nums.dmp1),
            ("exponent2", nums.dmq1),
            ("coefficient", nums.iqmp),
        )
        for name, value in members:
            lines += [f"{name}:", *_bignum(value)]
            if name == "modulus":
                lines.append(f"publicExponent: {pub.e} (0x{pub.e:x})")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        point = key.public_key().public_bytes(
            _Enc.X962, serialization.PublicFormat.UncompressedPoint
        )
        lines += [f"Private-Key: ({key.curve.key_size} bit)", "priv:"]
        lines += _hex_block(key.private_numbers().private_value.to_bytes(size, "big"))
        lines += ["pub:", *_hex_block(point)]
        oid = "prime256v1" if key.curve.name == "secp256r1" else key.curve.name
        lines.append(f"ASN1 OID: {oid}")
        if key.curve.name in _NIST:
            lines.append(f"NIST CURVE: {_NIST[key.curve.name]}")
    elif isinstance(key, dsa.DSAPrivateKey):
        d = key.private_numbers()
        pn = d.public_numbers.parameter_numbers
        lines.append(f"Private-Key: ({key.key_size} bit)")
        for name, value in (
            ("priv", d.x),
            ("pub", d.public_numbers.y),
            ("P", pn.p),
            ("Q", pn.q),
            ("G", pn.g),
        ):
            lines += [f"{name}:", *_bignum(value)]
    else:
        name = next(n for cls, n in _OKP_NAMES if isinstance(key, cls))
        raw = key.private_bytes(_Enc.Raw, _Priv.Raw, _NoEnc)
        pub_raw = key.public_key().public_bytes(_Enc.Raw, serialization.PublicFormat.Raw)
        lines += [f"{name} Private-Key:", "priv:", *_hex_block(raw), "pub:", *_hex_block(pub_raw)]
    return (newline.join(lines) + newline).encode()


def _text_rsa() -> Sample:
    key = _rsa()
    return Sample(
        embed(b"$ openssl pkey -in k.pem -text -noout\n" + openssl_text(key)), fingerprint(key)
    )


def _text_ec() -> Sample:
    key = ec.generate_private_key(ec.SECP384R1())
    return Sample(embed(openssl_text(key, newline="\r\n")), fingerprint(key))


def _text_dsa() -> Sample:
    key = dsa.generate_private_key(2048)
    return Sample(embed(b"$ openssl dsa -in k.pem -text\n" + openssl_text(key)), fingerprint(key))


def _text_okp() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    return Sample(embed(openssl_text(key)), fingerprint(key))


# ---- Java KeyStore ----------------------------------------------------------------------

_JKS_KEY_OID = bytes.fromhex("060a2b060104012a02110101")  # 1.3.6.1.4.1.42.2.17.1.1 (Sun JKS)
_JCEKS_KEY_OID = bytes.fromhex("06092b060104012a021301")  # 1.3.6.1.4.1.42.2.19.1 (Sun JCE)
_JKS_PASSWORD = "egress-guard self-test"  # noqa: S105 - not a default: these stay encrypted


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _jks_protect(plain: bytes, password: str) -> bytes:
    """Sun's KeyProtector: SHA-1 keystream from password + salt, then a SHA-1 check value."""
    pw = password.encode("utf-16-be")
    salt = os.urandom(20)
    stream, digest = b"", salt
    while len(stream) < len(plain):
        digest = hashlib.sha1(pw + digest).digest()  # noqa: S324 - the format's cipher
        stream += digest
    body = bytes(a ^ b for a, b in zip(plain, stream, strict=False))
    check = hashlib.sha1(pw + plain).digest()  # noqa: S324 - the format's check value
    return salt + body + check


def _utf(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def jks(
    entries: Sequence[tuple[str, PrivateKeyTypes | None, Sequence[x509.Certificate]]],
    *,
    magic: bytes = b"\xfe\xed\xfe\xed",
    version: int = 2,
    password: str = _JKS_PASSWORD,
) -> bytes:
    """A keystore as the JDK writes it: (alias, key, chain) per entry; key None = trusted cert."""
    oid = _JCEKS_KEY_OID if magic == b"\xce\xce\xce\xce" else _JKS_KEY_OID
    out = bytearray(magic + struct.pack(">II", version, len(entries)))
    stamp = struct.pack(">Q", int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    for alias, key, chain in entries:
        certs = [c.public_bytes(_Enc.DER) for c in chain]
        cert_type = _utf("X.509") if version == 2 else b""
        if key is None:
            out += struct.pack(">I", 2) + _utf(alias) + stamp + cert_type
            out += struct.pack(">I", len(certs[0])) + certs[0]
            continue
        protected = _jks_protect(der(key), password)
        epki = _tlv(0x30, _tlv(0x30, oid + b"\x05\x00") + _tlv(0x04, protected))
        out += struct.pack(">I", 1) + _utf(alias) + stamp + struct.pack(">I", len(epki)) + epki
        out += struct.pack(">I", len(certs))
        for cert in certs:
            out += cert_type + struct.pack(">I", len(cert)) + cert
    pw = password.encode("utf-16-be")
    out += hashlib.sha1(pw + b"Mighty Aphrodite" + out).digest()  # noqa: S324 - the format's MAC
    return bytes(out)


def _jks_rsa() -> Sample:
    key = _rsa()
    return Sample(jks([("server", key, [self_signed(key)])]), fingerprint(key))


def _jceks_ec() -> Sample:
    key = ec.generate_private_key(ec.SECP256R1())
    ca = ec.generate_private_key(ec.SECP256R1())
    store = jks(
        [("ca", None, [self_signed(ca, "ca")]), ("client", key, [self_signed(key)])],
        magic=b"\xce\xce\xce\xce",
    )
    return Sample(embed(store), fingerprint(key))


# ---- base64-encoded PEM files ---------------------------------------------------------


def _b64_kubeconfig() -> Sample:
    key = _rsa()
    pem = key.private_bytes(_Enc.PEM, _Priv.TraditionalOpenSSL, _NoEnc)
    cert = self_signed(key).public_bytes(_Enc.PEM)
    doc = (
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
        f"    client-certificate-data: {base64.b64encode(cert).decode()}\n"
        f"    client-key-data: {base64.b64encode(pem).decode()}\n"
    )
    return Sample(embed(doc.encode()), fingerprint(key))


def _b64_secret_bundle() -> Sample:
    """A certificate, then the key, in one encoded value wrapped at 76 (`base64` without -w0)."""
    key = ec.generate_private_key(ec.SECP384R1())
    bundle = self_signed(key).public_bytes(_Enc.PEM) + key.private_bytes(
        _Enc.PEM, _Priv.PKCS8, _NoEnc
    )
    text = base64.b64encode(bundle).decode()
    wrapped = "\n    ".join(text[i : i + 76] for i in range(0, len(text), 76))
    doc = f"apiVersion: v1\nkind: Secret\ndata:\n  tls.pem: |\n    {wrapped}\n"
    return Sample(embed(doc.encode()), fingerprint(key))


# ---- GnuPG private-keys-v1.d ------------------------------------------------------------

SexpNode = bytes | list["SexpNode"]
GnupgKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_GPG_CURVES = {"secp256r1": b"NIST P-256", "secp384r1": b"NIST P-384", "secp521r1": b"NIST P-521"}
_TOKEN_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-./_:*+=")


def _mpi(value: int) -> bytes:
    """An unsigned number as libgcrypt writes it: a leading 00 when the top bit is set."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def gnupg_params(
    key: GnupgKey | x25519.X25519PrivateKey,
) -> tuple[bytes, list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(algorithm, public parameters, secret parameters) as gpg-agent stores the key."""
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        p, q = sorted((nums.p, nums.q))  # libgcrypt keeps p < q and u = p^-1 mod q
        pub = nums.public_numbers
        return (
            b"rsa",
            [(b"n", _mpi(pub.n)), (b"e", _mpi(pub.e))],
            [(b"d", _mpi(nums.d)), (b"p", _mpi(p)), (b"q", _mpi(q)), (b"u", _mpi(pow(p, -1, q)))],
        )
    raw_pub = serialization.PublicFormat.Raw
    if isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_bytes(
            _Enc.X962, serialization.PublicFormat.UncompressedPoint
        )
        d = key.private_numbers().private_value
        return (
            b"ecc",
            [(b"curve", _GPG_CURVES[key.curve.name]), (b"q", point)],
            [(b"d", d.to_bytes((d.bit_length() + 7) // 8, "big"))],
        )
    pub_raw = key.public_key().public_bytes(_Enc.Raw, raw_pub)
    secret = key.private_bytes(_Enc.Raw, _Priv.Raw, _NoEnc)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return (
            b"ecc",
            [(b"curve", b"Ed25519"), (b"flags", b"eddsa"), (b"q", b"\x40" + pub_raw)],
            [(b"d", secret)],
        )
    # OpenPGP keeps the Curve25519 secret big-endian, the reverse of X25519's native order
    return (
        b"ecc",
        [(b"curve", b"Curve25519"), (b"flags", b"djb-tweak"), (b"q", b"\x40" + pub_raw)],
        [(b"d", secret[::-1])],
    )


def gnupg_tree(key: GnupgKey | x25519.X25519PrivateKey, *, protected: bool = False) -> SexpNode:
    """The key's S-expression; protected: the secret half replaced by a (random) ciphertext."""
    algo, public, secret = gnupg_params(key)
    items: list[SexpNode] = [algo]
    items.extend([name, value] for name, value in public)
    if protected:
        s2k: SexpNode = [[b"sha1", os.urandom(8), b"219428864"], os.urandom(12)]
        ciphertext = os.urandom(32 + sum(len(v) + 8 for _, v in secret))
        items.append([b"protected", b"openpgp-s2k3-ocb-aes", s2k, ciphertext])
        items.append([b"protected-at", b"20260101T000000"])
        return [b"protected-private-key", items]
    items.extend([name, value] for name, value in secret)
    return [b"private-key", items]


def sexp_canonical(node: SexpNode) -> bytes:
    """Canonical S-expression: `(11:private-key(3:rsa(1:n257:...)))`."""
    if isinstance(node, bytes):
        return b"%d:%s" % (len(node), node)
    return b"(" + b"".join(sexp_canonical(x) for x in node) + b")"


def sexp_advanced(node: SexpNode, *, wrap: int = 64) -> bytes:
    """libgcrypt's advanced syntax: tokens, quoted strings, `#hex#` folded like gpg folds it."""
    if isinstance(node, list):
        out = b""
        for i, part in enumerate(sexp_advanced(x, wrap=wrap) for x in node):
            # gpg: a space after the head and between atoms, none where a list begins or ends
            spaced = i == 1 and not isinstance(node[0], list)
            sep = b" " if spaced or not (out.endswith(b")") or part.startswith(b"(")) else b""
            out += (sep if i else b"") + part
        return b"(" + out + b")"
    if node and node[:1].isalpha() and all(b in _TOKEN_CHARS for b in node):
        return node
    if node and all(0x20 <= b < 0x7F and b not in b'"\\' for b in node):
        return b'"' + node + b'"'
    digits = node.hex().upper().encode()
    return b"#" + b"\n ".join(digits[i : i + wrap] for i in range(0, len(digits), wrap)) + b"#"


def gnupg_extended(key: GnupgKey | x25519.X25519PrivateKey, *, protected: bool = False) -> bytes:
    """A GnuPG 2.2 extended-format `.key` file: `Created:` and the folded `Key:` line."""
    return (
        b"Created: 20260101T000000\nKey: "
        + sexp_advanced(gnupg_tree(key, protected=protected))
        + b"\n"
    )


def _gnupg_rsa_extended() -> Sample:
    key = _rsa()
    return Sample(embed(gnupg_extended(key)), fingerprint(key))


def _gnupg_ed25519_canonical() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    return Sample(embed(sexp_canonical(gnupg_tree(key))), fingerprint(key))


def _gnupg_protected_p256() -> Sample:
    key = ec.generate_private_key(ec.SECP256R1())
    return Sample(embed(gnupg_extended(key, protected=True)), fingerprint(key))


# ---- binary OpenPGP ------------------------------------------------------------------------


def _old_format(packets: bytes) -> bytes:
    """The first packet re-headed in the old format with a two-byte length, as gpg 2.2 writes it."""
    first = packets[0]
    assert first == 0xC0 | 5, "expects a new-format secret-key packet first"
    o1 = packets[1]
    if o1 < 192:
        length, start = o1, 2
    else:
        length, start = ((o1 - 192) << 8) + packets[2] + 192, 3
    return bytes([0x95]) + length.to_bytes(2, "big") + packets[start:]


def _pgp_binary_rsa_old_format() -> Sample:
    key = _rsa()
    return Sample(_old_format(text_samples.pgp_packets(key)), fingerprint(key))


def _pgp_binary_ed25519() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    return Sample(text_samples.pgp_packets(key), fingerprint(key))


def _pgp_binary_encrypted() -> Sample:
    key = ec.generate_private_key(ec.SECP256R1())
    return Sample(text_samples.pgp_packets(key, encrypted=True), fingerprint(key))


SAMPLES: Mapping[str, SampleMaker] = {
    "hex_der_pkcs8_rsa_xxd": _hex_xxd,
    "hex_der_sec1_ec_upper": _hex_sec1_upper,
    "hex_der_pkcs8_ed25519_escaped": _hex_escaped_ed25519,
    "hex_der_pkcs1_rsa_c_array": _hex_c_array,
    "xml_rsa_dotnet": _xml_dotnet,
    "xml_rsa_json_config": _xml_json_config,
    "openssl_text_rsa": _text_rsa,
    "openssl_text_ec_crlf": _text_ec,
    "openssl_text_ed25519": _text_okp,
    "openssl_text_dsa": _text_dsa,
    "jks_rsa": _jks_rsa,
    "jceks_ec_after_trusted_cert": _jceks_ec,
    "base64_pem_kubeconfig": _b64_kubeconfig,
    "base64_pem_secret_bundle": _b64_secret_bundle,
    "gnupg_rsa_extended": _gnupg_rsa_extended,
    "gnupg_ed25519_canonical": _gnupg_ed25519_canonical,
    "gnupg_protected_p256": _gnupg_protected_p256,
    "pgp_binary_rsa_old_format": _pgp_binary_rsa_old_format,
    "pgp_binary_ed25519": _pgp_binary_ed25519,
    "pgp_binary_encrypted": _pgp_binary_encrypted,
}
