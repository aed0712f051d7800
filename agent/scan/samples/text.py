"""Self-test samples for the text formats (PEM, OpenPGP, PPK, JWK, base64 DER), made in memory.

Each generator makes a fresh key, encodes it the way real tools write it
(OpenSSL/cryptography for PEM and DER; the encoders below follow the PuTTY
manual's appendix C for PPK, RFC 4880 for OpenPGP and RFC 7517 for JWK) and
embeds it in a little filler. Tests use the same encoders to build variants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.scan.samples.base import Sample, SampleMaker

_Enc = serialization.Encoding
_Priv = serialization.PrivateFormat
_PASSPHRASE = b"egress-guard self-test"
K = TypeVar("K", bound=PrivateKeyTypes)
_SSH_CURVES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}


def fingerprint(key: PrivateKeyTypes) -> str:
    """`sha256:` + hex SHA-256 of the public key's DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(_Enc.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def embed(payload: bytes, *, size: int = 256) -> bytes:
    """The payload between two runs of random bytes, as a key sits in a dump."""
    return os.urandom(size) + b"\n" + payload + b"\n" + os.urandom(size)


def pem(key: PrivateKeyTypes, fmt: _Priv = _Priv.PKCS8, password: bytes | None = None) -> bytes:
    """The key as PEM (cryptography's writer, the same bytes OpenSSL writes)."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(_Enc.PEM, fmt, enc)


# ---- PuTTY PPK ------------------------------------------------------------------------


def _ssh_string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _mpint(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big") if value else b""
    return _ssh_string(raw)


def ssh_blobs(key: PrivateKeyTypes) -> tuple[str, bytes, bytes]:
    """(algorithm, public blob, PuTTY private blob) of a key."""
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        pub = nums.public_numbers
        public = _ssh_string(b"ssh-rsa") + _mpint(pub.e) + _mpint(pub.n)
        private = _mpint(nums.d) + _mpint(nums.p) + _mpint(nums.q) + _mpint(nums.iqmp)
        return "ssh-rsa", public, private
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw_pub = key.public_key().public_bytes(_Enc.Raw, serialization.PublicFormat.Raw)
        seed = key.private_bytes(_Enc.Raw, _Priv.Raw, serialization.NoEncryption())
        # PuTTY writes the seed as a little-endian integer: high zero octets dropped
        return (
            "ssh-ed25519",
            _ssh_string(b"ssh-ed25519") + _ssh_string(raw_pub),
            _ssh_string(seed.rstrip(b"\0")),
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        name = _SSH_CURVES[key.curve.name]
        alg = "ecdsa-sha2-" + name
        point = key.public_key().public_bytes(
            _Enc.X962, serialization.PublicFormat.UncompressedPoint
        )
        public = _ssh_string(alg.encode()) + _ssh_string(name.encode()) + _ssh_string(point)
        return alg, public, _mpint(key.private_numbers().private_value)
    if isinstance(key, dsa.DSAPrivateKey):
        dn = key.private_numbers()
        par = dn.public_numbers.parameter_numbers
        public = b"".join(
            (_ssh_string(b"ssh-dss"), _mpint(par.p), _mpint(par.q), _mpint(par.g))
        ) + _mpint(dn.public_numbers.y)
        return "ssh-dss", public, _mpint(dn.x)
    raise TypeError("no PPK encoding for this key type")


def _lines(blob: bytes) -> list[str]:
    text = base64.b64encode(blob).decode()
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def ppk(
    key: PrivateKeyTypes,
    *,
    version: int = 3,
    passphrase: bytes | None = None,
    comment: str = "egress-guard-self-test",
    newline: str = "\n",
) -> bytes:
    """A PuTTY .ppk file for the key, exactly as puttygen writes it (v2 or v3, clear or aes256-cbc)."""
    alg, public, private = ssh_blobs(key)
    encryption = "none" if passphrase is None else "aes256-cbc"
    kdf_lines: list[str] = []
    if passphrase is None:
        mac_key = hashlib.sha1(b"putty-private-key-file-mac-key").digest() if version == 2 else b""  # noqa: S324 - the format's KDF
        stored = private
    else:
        pad = -len(private) % 16 or 0
        if version == 2:
            private += hashlib.sha1(private).digest()[:pad]  # noqa: S324 - the format's padding
            cipher_key = (
                hashlib.sha1(b"\0\0\0\0" + passphrase).digest()  # noqa: S324 - the format's KDF
                + hashlib.sha1(b"\0\0\0\1" + passphrase).digest()  # noqa: S324 - the format's KDF
            )[:32]
            iv = b"\0" * 16
            mac_key = hashlib.sha1(b"putty-private-key-file-mac-key" + passphrase).digest()  # noqa: S324 - the format's KDF
        else:
            private += os.urandom(pad)
            salt = os.urandom(16)
            derived = Argon2id(
                salt=salt, length=80, iterations=2, lanes=1, memory_cost=8192
            ).derive(passphrase)
            cipher_key, iv, mac_key = derived[:32], derived[32:48], derived[48:]
            kdf_lines = [
                "Key-Derivation: Argon2id",
                "Argon2-Memory: 8192",
                "Argon2-Passes: 2",
                "Argon2-Parallelism: 1",
                f"Argon2-Salt: {salt.hex()}",
            ]
        encryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).encryptor()
        stored = encryptor.update(private) + encryptor.finalize()
    mac_data = b"".join(
        _ssh_string(x)
        for x in (alg.encode(), encryption.encode(), comment.encode(), public, private)
    )
    mac = hmac.new(mac_key, mac_data, "sha1" if version == 2 else "sha256").hexdigest()
    pub_lines, priv_lines = _lines(public), _lines(stored)
    out = [
        f"PuTTY-User-Key-File-{version}: {alg}",
        f"Encryption: {encryption}",
        f"Comment: {comment}",
        f"Public-Lines: {len(pub_lines)}",
        *pub_lines,
        *kdf_lines,
        f"Private-Lines: {len(priv_lines)}",
        *priv_lines,
        f"Private-MAC: {mac}",
    ]
    return (newline.join(out) + newline).encode()


# ---- OpenPGP --------------------------------------------------------------------------

_OID_P256 = bytes.fromhex("2a8648ce3d030107")
_OID_ED25519 = bytes.fromhex("2b06010401da470f01")


def _mpi(value: int | bytes) -> bytes:
    number = int.from_bytes(value, "big") if isinstance(value, bytes) else value
    return number.bit_length().to_bytes(2, "big") + number.to_bytes(
        (number.bit_length() + 7) // 8, "big"
    )


def _packet(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        n -= 192
        length = bytes([(n >> 8) + 192, n & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + length + body


def pgp_packets(key: PrivateKeyTypes, *, encrypted: bool = False) -> bytes:
    """A v4 secret-key packet plus a user ID packet (RFC 4880), clear or S2K-protected."""
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        p, q = sorted((nums.p, nums.q))  # OpenPGP wants p < q and u = p^-1 mod q
        public = bytes([1]) + _mpi(nums.public_numbers.n) + _mpi(nums.public_numbers.e)
        secret = _mpi(nums.d) + _mpi(p) + _mpi(q) + _mpi(pow(p, -1, q))
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw_pub = key.public_key().public_bytes(_Enc.Raw, serialization.PublicFormat.Raw)
        seed = key.private_bytes(_Enc.Raw, _Priv.Raw, serialization.NoEncryption())
        public = bytes([22, len(_OID_ED25519)]) + _OID_ED25519 + _mpi(b"\x40" + raw_pub)
        secret = _mpi(seed)
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        point = key.public_key().public_bytes(
            _Enc.X962, serialization.PublicFormat.UncompressedPoint
        )
        public = bytes([19, len(_OID_P256)]) + _OID_P256 + _mpi(point)
        secret = _mpi(key.private_numbers().private_value)
    else:
        raise TypeError("no OpenPGP encoding for this key type here")
    head = bytes([4]) + (1_700_000_000).to_bytes(4, "big") + public
    if encrypted:
        # AES-256, iterated+salted S2K (SHA-256), IV, then ciphertext of secret + SHA-1
        s2k = bytes([254, 9, 3, 8]) + os.urandom(8) + bytes([0xFF]) + os.urandom(16)
        body = head + s2k + os.urandom(len(secret) + 20)
    else:
        checksum = (sum(secret) & 0xFFFF).to_bytes(2, "big")
        body = head + b"\0" + secret + checksum
    return _packet(5, body) + _packet(13, b"Self Test <self-test@example.invalid>")


def crc24(data: bytes) -> int:
    """OpenPGP armour checksum."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def pgp_armor(packets: bytes, *, newline: str = "\n") -> bytes:
    """ASCII armour with headers and the CRC24 line, as gpg writes it."""
    text = base64.b64encode(packets).decode()
    crc = base64.b64encode(crc24(packets).to_bytes(3, "big")).decode()
    lines = [
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "Comment: egress-guard self-test",
        "",
        *(text[i : i + 64] for i in range(0, len(text), 64)),
        "=" + crc,
        "-----END PGP PRIVATE KEY BLOCK-----",
    ]
    return (newline.join(lines) + newline).encode()


# ---- JWK ------------------------------------------------------------------------------


def _b64u(value: int | bytes, size: int | None = None) -> str:
    raw = (
        value
        if isinstance(value, bytes)
        else value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_JWK_CURVES = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "secp256k1": "secp256k1",
}
_OKP = (
    (ed25519.Ed25519PrivateKey, "Ed25519"),
    (ed448.Ed448PrivateKey, "Ed448"),
    (x25519.X25519PrivateKey, "X25519"),
    (x448.X448PrivateKey, "X448"),
)


def jwk(key: PrivateKeyTypes, *, private: bool = True, crt: bool = True) -> dict[str, Any]:
    """The key as a JWK (RFC 7517/7518/8037); `crt=False` leaves an RSA key with n, e, d only."""
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        out: dict[str, Any] = {
            "kty": "RSA",
            "n": _b64u(nums.public_numbers.n),
            "e": _b64u(nums.public_numbers.e),
        }
        if private:
            out["d"] = _b64u(nums.d)
            if crt:
                out |= {
                    "p": _b64u(nums.p),
                    "q": _b64u(nums.q),
                    "dp": _b64u(nums.dmp1),
                    "dq": _b64u(nums.dmq1),
                    "qi": _b64u(nums.iqmp),
                }
        return out
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        pub = key.public_key().public_numbers()
        out = {
            "kty": "EC",
            "crv": _JWK_CURVES[key.curve.name],
            "x": _b64u(pub.x, size),
            "y": _b64u(pub.y, size),
        }
        if private:
            out["d"] = _b64u(key.private_numbers().private_value, size)
        return out
    for cls, crv in _OKP:
        if isinstance(key, cls):
            raw_pub = key.public_key().public_bytes(_Enc.Raw, serialization.PublicFormat.Raw)
            out = {"kty": "OKP", "crv": crv, "x": _b64u(raw_pub)}
            if private:
                raw = key.private_bytes(_Enc.Raw, _Priv.Raw, serialization.NoEncryption())
                out["d"] = _b64u(raw)
            return out
    raise TypeError("no JWK encoding for this key type")


# ---- the samples ----------------------------------------------------------------------


def _keyed(make: Callable[[], K], build: Callable[[K], Sample]) -> SampleMaker:
    return lambda: build(make())


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_sample(key: PrivateKeyTypes, fmt: _Priv = _Priv.PKCS8) -> Sample:
    return Sample(embed(pem(key, fmt)), fingerprint(key))


def _pem_crlf() -> Sample:
    key = _rsa()
    return Sample(
        embed(pem(key, _Priv.TraditionalOpenSSL).replace(b"\n", b"\r\n")), fingerprint(key)
    )


def _pem_yaml() -> Sample:
    key = ec.generate_private_key(ec.SECP384R1())
    body = b"".join(b"    " + line + b"\n" for line in pem(key).splitlines())
    return Sample(embed(b"tls:\n  key: |\n" + body), fingerprint(key))


def _pem_json() -> Sample:
    key = _rsa()
    doc = {
        "type": "service_account",
        "project_id": "self-test",
        "private_key_id": "0" * 40,
        "private_key": pem(key).decode(),
        "client_email": "self-test@self-test.iam.gserviceaccount.com",
    }
    return Sample(embed(json.dumps(doc, indent=2).encode()), fingerprint(key))


def _pem_json_twice() -> Sample:
    """A service-account document logged as a string inside another JSON document."""
    key = ec.generate_private_key(ec.SECP256R1())
    inner = json.dumps({"private_key": pem(key).decode()})
    return Sample(embed(json.dumps({"level": "info", "msg": inner}).encode()), fingerprint(key))


def _pem_source_literals() -> Sample:
    """The key as Java source holds it: a quoted piece per line, joined with `+`."""
    key = _rsa()
    lines = pem(key, _Priv.TraditionalOpenSSL).decode().splitlines()
    java = " +\n".join(f'        "{line}\\n"' for line in lines)
    return Sample(embed(f"String key =\n{java};\n".encode()), fingerprint(key))


def _pem_xml_references() -> Sample:
    """Line ends as character references, as XML and HTML exports write them."""
    key = ec.generate_private_key(ec.SECP384R1())
    text = pem(key).decode().replace("\n", "&#xA;")
    return Sample(embed(f'<entry key="tls">{text}</entry>'.encode()), fingerprint(key))


def _pem_docx() -> Sample:
    """The key pasted into a word processor: a paragraph per line (a .docx's document.xml)."""
    key = ec.generate_private_key(ec.SECP256R1())
    body = b"".join(
        b"<w:p><w:r><w:t>" + line + b"</w:t></w:r></w:p>" for line in pem(key).splitlines()
    )
    return Sample(
        embed(b"<w:document><w:body>" + body + b"</w:body></w:document>"), fingerprint(key)
    )


def _pem_url(plus: bool) -> SampleMaker:
    def make() -> Sample:
        key = _rsa()
        text = pem(key).decode()
        if plus:  # a form post (application/x-www-form-urlencoded), as a HAR file records it
            return Sample(
                embed(f"user=a&key={urllib.parse.quote_plus(text)}".encode()), fingerprint(key)
            )
        return Sample(
            embed(f"GET /v1/k?key={urllib.parse.quote(text)} HTTP/1.1".encode()), fingerprint(key)
        )

    return make


def _pem_utf16() -> Sample:
    key = _rsa()
    text = pem(key, _Priv.TraditionalOpenSSL).decode().replace("\n", "\r\n")
    return Sample(embed(text.encode("utf-16-le")), fingerprint(key))


def _pgp(key: PrivateKeyTypes, *, encrypted: bool = False) -> Sample:
    return Sample(embed(pgp_armor(pgp_packets(key, encrypted=encrypted))), fingerprint(key))


def _ppk(key: PrivateKeyTypes, version: int, passphrase: bytes | None = None) -> Sample:
    return Sample(embed(ppk(key, version=version, passphrase=passphrase)), fingerprint(key))


def _jwk_okp_set() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    doc = {"keys": [jwk(ec.generate_private_key(ec.SECP256R1()), private=False), jwk(key)]}
    return Sample(embed(json.dumps(doc, indent=2).encode()), fingerprint(key))


def _b64_env() -> Sample:
    key = _rsa()
    text = base64.b64encode(key.private_bytes(_Enc.DER, _Priv.PKCS8, serialization.NoEncryption()))
    return Sample(embed(b"SIGNING_KEY=" + text + b"\nOTHER=1\n"), fingerprint(key))


def _b64_json() -> Sample:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(_Enc.DER, _Priv.TraditionalOpenSSL, serialization.NoEncryption())
    doc = {"alg": "ES256", "key": base64.b64encode(der).decode()}
    return Sample(embed(json.dumps(doc).encode()), fingerprint(key))


def _b64_ed25519() -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    text = base64.b64encode(key.private_bytes(_Enc.DER, _Priv.PKCS8, serialization.NoEncryption()))
    return Sample(embed(b"key: " + text + b"\n"), fingerprint(key))


def sshcom(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey, *, encrypted: bool = False) -> bytes:
    """The key as `puttygen -O private-sshcom` writes it (PuTTY's import.c, sshcom_write).

    An encrypted one carries random bytes of the right length for its 3DES
    ciphertext: a scanner cannot decrypt it either way.
    """

    def mpint(x: int) -> bytes:
        return x.bit_length().to_bytes(4, "big") + x.to_bytes((x.bit_length() + 7) // 8, "big")

    def string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    if isinstance(key, rsa.RSAPrivateKey):
        r = key.private_numbers()
        kind = b"if-modn{sign{rsa-pkcs1-sha1},encrypt{rsa-pkcs1v2-oaep}}"
        parts = [r.public_numbers.e, r.d, r.public_numbers.n, r.iqmp, r.p, r.q]
        material = b"".join(mpint(x) for x in parts)
    else:
        d = key.private_numbers()
        pn = d.public_numbers.parameter_numbers
        kind = b"dl-modp{sign{dsa-nist-sha1},dh{plain}}"
        parts = [pn.p, pn.g, pn.q, d.public_numbers.y, d.x]
        material = bytes(4) + b"".join(mpint(x) for x in parts)
    data = len(material).to_bytes(4, "big") + material
    if encrypted:
        data = os.urandom(len(data) + (-len(data) % 8))
    body = string(kind) + string(b"3des-cbc" if encrypted else b"none") + string(data)
    blob = (0x3F6FF9EB).to_bytes(4, "big") + (8 + len(body)).to_bytes(4, "big") + body
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return (
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n"
        + 'Comment: "rsa-key-20261123 with a header long enough to be continued on the \\\n'
        + 'next line"\n'
        + "\n".join(lines)
        + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n"
    ).encode()


def _sshcom(key: rsa.RSAPrivateKey | dsa.DSAPrivateKey, *, encrypted: bool = False) -> Sample:
    return Sample(embed(sshcom(key, encrypted=encrypted)), None if encrypted else fingerprint(key))


SAMPLES: Mapping[str, SampleMaker] = {
    "pem_pkcs8_rsa": lambda: _pem_sample(_rsa()),
    "pem_pkcs8_ec": lambda: _pem_sample(ec.generate_private_key(ec.SECP256R1())),
    "pem_pkcs8_ed25519": lambda: _pem_sample(ed25519.Ed25519PrivateKey.generate()),
    "pem_pkcs1_rsa_crlf": _pem_crlf,
    "pem_sec1_ec": lambda: _pem_sample(
        ec.generate_private_key(ec.SECP521R1()), _Priv.TraditionalOpenSSL
    ),
    "pem_encrypted_pkcs8": lambda: Sample(
        embed(pem(ec.generate_private_key(ec.SECP256R1()), password=_PASSPHRASE)), None
    ),
    "pem_legacy_encrypted_rsa": lambda: Sample(
        embed(pem(_rsa(), _Priv.TraditionalOpenSSL, password=_PASSPHRASE)), None
    ),
    "pem_indented_yaml": _pem_yaml,
    "pem_json_escaped_gcp": _pem_json,
    "pem_json_double_escaped": _pem_json_twice,
    "pem_source_string_literals": _pem_source_literals,
    "pem_xml_character_references": _pem_xml_references,
    "pem_docx_paragraphs": _pem_docx,
    "pem_url_encoded": _pem_url(plus=False),
    "pem_form_encoded": _pem_url(plus=True),
    "pem_utf16le_rsa": _pem_utf16,
    "pgp_private_rsa": lambda: _pgp(_rsa()),
    "pgp_private_ed25519": lambda: _pgp(ed25519.Ed25519PrivateKey.generate()),
    "pgp_private_encrypted": lambda: _pgp(ec.generate_private_key(ec.SECP256R1()), encrypted=True),
    "ppk_v2_rsa": lambda: _ppk(_rsa(), 2),
    "ppk_v3_ed25519": lambda: _ppk(ed25519.Ed25519PrivateKey.generate(), 3),
    "ppk_v3_encrypted_ecdsa": lambda: _ppk(ec.generate_private_key(ec.SECP384R1()), 3, _PASSPHRASE),
    "jwk_private_rsa": _keyed(
        _rsa, lambda key: Sample(embed(json.dumps(jwk(key)).encode()), fingerprint(key))
    ),
    "jwk_private_ec": _keyed(
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda key: Sample(embed(json.dumps(jwk(key), indent=4).encode()), fingerprint(key)),
    ),
    "jwk_private_okp_set": _jwk_okp_set,
    "base64_der_pkcs8_rsa_env": _b64_env,
    "base64_der_sec1_ec_json": _b64_json,
    "base64_der_pkcs8_ed25519": _b64_ed25519,
    "sshcom_rsa": lambda: _sshcom(_rsa()),
    "sshcom_dsa": lambda: _sshcom(dsa.generate_private_key(2048)),
    "sshcom_encrypted": lambda: _sshcom(_rsa(), encrypted=True),
}
