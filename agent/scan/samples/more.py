"""Self-test samples for rules/more.yar: hex DER, .NET XML RSA, `openssl -text`, Java KeyStore.

Each maker generates a fresh key with cryptography and writes it the way the
tool in question does (xxd -p / xxd -i, .NET `ToXmlString(true)`, OpenSSL's
`-text` printer, the JKS writer of the JDK), without needing those tools.
Tests use the same encoders to build variants.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan.samples.base import Sample, SampleMaker
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


SAMPLES: Mapping[str, SampleMaker] = {
    "hex_der_pkcs8_rsa_xxd": _hex_xxd,
    "hex_der_sec1_ec_upper": _hex_sec1_upper,
    "hex_der_pkcs8_ed25519_escaped": _hex_escaped_ed25519,
    "hex_der_pkcs1_rsa_c_array": _hex_c_array,
    "xml_rsa_dotnet": _xml_dotnet,
    "xml_rsa_json_config": _xml_json_config,
}
