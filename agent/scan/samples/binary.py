"""Self-test samples for the binary formats: DER, CryptoAPI/CNG blobs, openssh-key-v1, PKCS#12.

Each generator makes a fresh key with cryptography, encodes it, and plants it
between random filler; nothing is stored. The encoders are public because the
tests build their positive and negative cases with them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from agent.scan import keymath
from agent.scan.samples.base import Sample, SampleMaker

_DER = serialization.Encoding.DER
_NONE = serialization.NoEncryption()
_CALG_RSA_KEYX = 0x0000A400
_CNG_CURVE_DIGIT = {"secp256r1": b"2", "secp384r1": b"4", "secp521r1": b"6"}


def planted(payload: bytes, fingerprint: str | None) -> Sample:
    """The payload between random filler, as a key sits inside a dump."""
    return Sample(secrets.token_bytes(4096) + payload + secrets.token_bytes(4096), fingerprint)


def _fp(key: PrivateKeyTypes) -> str:
    return keymath.fingerprint(key.public_key())


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def _be(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def capi_blob(key: rsa.RSAPrivateKey, *, header: bool = True, alg: int = _CALG_RSA_KEYX) -> bytes:
    """A CryptoAPI PRIVATEKEYBLOB (BLOBHEADER optional, as in memory after the header is gone)."""
    nums = key.private_numbers()
    n, e = nums.public_numbers.n, nums.public_numbers.e
    bits = key.key_size
    full, half = bits // 8, bits // 16
    head = struct.pack("<BBHI", 0x07, 0x02, 0, alg) if header else b""
    return (
        head
        + b"RSA2"
        + struct.pack("<II", bits, e)
        + _le(n, full)
        + b"".join(_le(v, half) for v in (nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp))
        + _le(nums.d, full)
    )


def cng_rsa_blob(key: rsa.RSAPrivateKey, *, full: bool = False) -> bytes:
    """A CNG BCRYPT_RSAPRIVATE_BLOB ("RSA2") or, with `full`, BCRYPT_RSAFULLPRIVATE_BLOB ("RSA3")."""
    nums = key.private_numbers()
    n, e = nums.public_numbers.n, nums.public_numbers.e
    cb_exp = (e.bit_length() + 7) // 8
    cb_mod = (n.bit_length() + 7) // 8
    cb_p, cb_q = (nums.p.bit_length() + 7) // 8, (nums.q.bit_length() + 7) // 8
    out = (b"RSA3" if full else b"RSA2") + struct.pack(
        "<5I", key.key_size, cb_exp, cb_mod, cb_p, cb_q
    )
    out += _be(e, cb_exp) + _be(n, cb_mod) + _be(nums.p, cb_p) + _be(nums.q, cb_q)
    if full:
        out += (
            _be(nums.dmp1, cb_p) + _be(nums.dmq1, cb_q) + _be(nums.iqmp, cb_p) + _be(nums.d, cb_mod)
        )
    return out


def cng_ecc_blob(
    key: ec.EllipticCurvePrivateKey, *, usage: bytes = b"ECS", generic: bool = False
) -> bytes:
    """A CNG BCRYPT_ECCPRIVATE_BLOB: usage ECS (ECDSA) or ECK (ECDH), named or generic magic."""
    size = (key.curve.key_size + 7) // 8
    pub = key.public_key().public_numbers()
    magic = usage + (b"V" if generic else _CNG_CURVE_DIGIT[key.curve.name])
    d = key.private_numbers().private_value
    return magic + struct.pack("<I", size) + _be(pub.x, size) + _be(pub.y, size) + _be(d, size)


def openssh_blob(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    """The binary openssh-key-v1 structure (what the PEM armour holds), optionally encrypted."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else _NONE
    )
    armoured = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc
    )
    body = b"".join(line for line in armoured.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def self_signed(key: PrivateKeyTypes, name: str = "self-test") -> x509.Certificate:
    """A one-day self-signed certificate for the key (EC/RSA sign with SHA-256, Ed* without)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    unhashed = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(key, None if unhashed else hashes.SHA256())  # type: ignore[arg-type]


def pfx(key: PrivateKeyTypes, password: bytes | None) -> bytes:
    """A PFX holding the key and its certificate: no password, the empty one, or a real one."""
    cert = self_signed(key)
    if password:
        enc = serialization.BestAvailableEncryption(password)
        return pkcs12.serialize_key_and_certificates(b"sample", key, cert, None, enc)  # type: ignore[arg-type]
    plain = pkcs12.serialize_key_and_certificates(b"sample", key, cert, None, _NONE)  # type: ignore[arg-type]
    if password is None:
        return plain
    return _with_empty_password_mac(plain)


def _with_empty_password_mac(plain: bytes) -> bytes:
    """Adds the MacData a Windows export with an empty password carries (RFC 7292, SHA-256)."""
    version, auth_safe = _der_children(plain)[:2]
    octets = _der_children(_der_children(auth_safe)[1])[0]  # authSafe [0] EXPLICIT OCTET STRING
    salt, iterations = secrets.token_bytes(16), 2048
    # the empty password as a BMPString is just its two-byte terminator
    mac_key = _pkcs12_kdf(b"\x00\x00", salt, 3, iterations, 32)
    mac = hmac.new(mac_key, octets[_header_len(octets) :], hashlib.sha256).digest()
    sha256_id = _seq(bytes.fromhex("0609608648016503040201") + b"\x05\x00")
    digest_info = _seq(sha256_id + _tag(4, mac))
    mac_data = _seq(digest_info + _tag(4, salt) + _tag(2, iterations.to_bytes(2, "big")))
    return _seq(version + auth_safe + mac_data)


def _pkcs12_kdf(password: bytes, salt: bytes, ident: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation with SHA-256 (v = 64-byte blocks)."""
    v = 64

    def expand(raw: bytes) -> bytes:
        # copies of raw filling a whole number of blocks; empty stays empty
        if not raw:
            return b""
        length = v * ((len(raw) + v - 1) // v)
        return (raw * (length // len(raw) + 1))[:length]

    block = bytearray(expand(salt) + expand(password))
    out = b""
    while len(out) < size:
        digest = hashlib.sha256(bytes([ident]) * v + bytes(block)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.sha256(digest).digest()
        out += digest
        b = int.from_bytes(expand(digest), "big")
        for j in range(0, len(block), v):
            chunk = (int.from_bytes(block[j : j + v], "big") + b + 1) % (1 << (8 * v))
            block[j : j + v] = chunk.to_bytes(v, "big")
    return out[:size]


def _tag(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _seq(content: bytes) -> bytes:
    return _tag(0x30, content)


def _header_len(element: bytes) -> int:
    return 2 if element[1] < 0x80 else 2 + (element[1] & 0x7F)


def _der_children(element: bytes) -> list[bytes]:
    """The encoded children of one encoded constructed element (sample building only)."""
    pos, out = _header_len(element), []
    while pos < len(element):
        size = element[pos + 1]
        head = 2
        if size >= 0x80:
            count = size & 0x7F
            size = int.from_bytes(element[pos + 2 : pos + 2 + count], "big")
            head += count
        out.append(element[pos : pos + head + size])
        pos += head + size
    return out


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _der_sample(key: PrivateKeyTypes, fmt: serialization.PrivateFormat) -> Sample:
    return planted(key.private_bytes(_DER, fmt, _NONE), _fp(key))


def der_pkcs1_rsa() -> Sample:
    """PKCS#1 RSA-2048 DER."""
    return _der_sample(_rsa(), serialization.PrivateFormat.TraditionalOpenSSL)


def der_pkcs8_rsa() -> Sample:
    """PKCS#8 RSA-2048 DER."""
    return _der_sample(_rsa(), serialization.PrivateFormat.PKCS8)


def der_pkcs8_ec() -> Sample:
    """PKCS#8 P-256 DER."""
    return _der_sample(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8)


def der_pkcs8_ed25519() -> Sample:
    """PKCS#8 Ed25519 DER."""
    return _der_sample(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)


def der_sec1_ec() -> Sample:
    """SEC1 P-384 DER with parameters and public key."""
    key = ec.generate_private_key(ec.SECP384R1())
    return _der_sample(key, serialization.PrivateFormat.TraditionalOpenSSL)


def der_encrypted_pkcs8() -> Sample:
    """PBES2 (PBKDF2, AES-256-CBC) EncryptedPrivateKeyInfo: no public half, so no fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(secrets.token_bytes(12))
    return planted(key.private_bytes(_DER, serialization.PrivateFormat.PKCS8, enc), None)


def capi_privatekeyblob() -> Sample:
    """CryptoAPI PRIVATEKEYBLOB with its BLOBHEADER."""
    key = _rsa()
    return planted(capi_blob(key), _fp(key))


def capi_privatekeyblob_bare() -> Sample:
    """CryptoAPI RSAPUBKEY + numbers, the BLOBHEADER gone."""
    key = _rsa()
    return planted(capi_blob(key, header=False), _fp(key))


def cng_rsaprivate() -> Sample:
    """CNG BCRYPT_RSAPRIVATE_BLOB."""
    key = _rsa()
    return planted(cng_rsa_blob(key), _fp(key))


def cng_rsafullprivate() -> Sample:
    """CNG BCRYPT_RSAFULLPRIVATE_BLOB."""
    key = _rsa()
    return planted(cng_rsa_blob(key, full=True), _fp(key))


def cng_eccprivate() -> Sample:
    """CNG BCRYPT_ECCPRIVATE_BLOB, ECDSA P-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    return planted(cng_ecc_blob(key), _fp(key))


def openssh_ed25519() -> Sample:
    """openssh-key-v1 Ed25519, unencrypted."""
    key = ed25519.Ed25519PrivateKey.generate()
    return planted(openssh_blob(key), _fp(key))


def openssh_rsa() -> Sample:
    """openssh-key-v1 RSA-2048, unencrypted."""
    key = _rsa()
    return planted(openssh_blob(key), _fp(key))


def openssh_ecdsa() -> Sample:
    """openssh-key-v1 ECDSA P-256, unencrypted."""
    key = ec.generate_private_key(ec.SECP256R1())
    return planted(openssh_blob(key), _fp(key))


def pkcs12_empty_password() -> Sample:
    """PFX with an empty password and a MAC, as many exports are."""
    key = ec.generate_private_key(ec.SECP256R1())
    return planted(pfx(key, b""), _fp(key))


def pkcs12_no_password() -> Sample:
    """PFX with no password and no MAC."""
    key = ec.generate_private_key(ec.SECP256R1())
    return planted(pfx(key, None), _fp(key))


def _wrapped(text: bytes, width: int) -> bytes:
    return b"\n".join(text[i : i + width] for i in range(0, len(text), width))


def base64_pkcs12_json() -> Sample:
    """A PFX with the empty password as one base64 string in JSON (Azure, Kubernetes Secrets)."""
    key = ec.generate_private_key(ec.SECP256R1())
    encoded = base64.b64encode(pfx(key, b""))
    return Sample(b'{"data": {"tls.pfx": "' + encoded + b'"}}\n', _fp(key))


def base64_pkcs12_wrapped_rsa() -> Sample:
    """A PFX without a password, base64 wrapped at 76 columns (base64 / openssl base64 output)."""
    key = _rsa()
    return Sample(b"pfx:\n" + _wrapped(base64.b64encode(pfx(key, None)), 76) + b"\n", _fp(key))


def base64_pkcs12_password() -> Sample:
    """A password-protected PFX in base64: an encrypted finding (its certificate is encrypted too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return Sample(b"PFX=" + base64.b64encode(pfx(key, b"hunter2")) + b"\n", None)


def pvk_encrypted(bits: int, *, dsa: bool = False) -> bytes:
    """A passphrase-protected PVK file as `openssl rsa -outform PVK -pvk-strong` writes one.

    The blob after its BLOBHEADER is RC4 ciphertext: random bytes of the right length.
    """
    if dsa:
        length, spec, alg = 80 + 2 * (bits // 8), 2, 0x2200  # AT_SIGNATURE, CALG_DSS_SIGN
    else:
        length, spec, alg = 20 + 9 * bits // 16, 1, _CALG_RSA_KEYX
    header = struct.pack("<6I", 0xB0B5F11E, 0, spec, 1, 16, length)
    blob_header = struct.pack("<BBHI", 0x07, 0x02, 0, alg)
    return header + os.urandom(16) + blob_header + os.urandom(length - 8)


def pvk_encrypted_rsa() -> Sample:
    """Encrypted PVK of an RSA 2048 key (nothing of the key is in clear)."""
    return Sample(pvk_encrypted(2048), None)


def pvk_encrypted_dsa() -> Sample:
    """Encrypted PVK of a DSA 1024 key."""
    return Sample(pvk_encrypted(1024, dsa=True), None)


SAMPLES: Mapping[str, SampleMaker] = {
    maker.__name__: maker
    for maker in (
        der_pkcs1_rsa,
        der_pkcs8_rsa,
        der_pkcs8_ec,
        der_pkcs8_ed25519,
        der_sec1_ec,
        der_encrypted_pkcs8,
        capi_privatekeyblob,
        capi_privatekeyblob_bare,
        cng_rsaprivate,
        cng_rsafullprivate,
        cng_eccprivate,
        openssh_ed25519,
        openssh_rsa,
        openssh_ecdsa,
        pkcs12_empty_password,
        pkcs12_no_password,
        base64_pkcs12_json,
        base64_pkcs12_wrapped_rsa,
        base64_pkcs12_password,
        pvk_encrypted_rsa,
        pvk_encrypted_dsa,
    )
}
