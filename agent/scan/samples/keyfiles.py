"""Samples of small tools' key files (rules/text.yar): age identities, minisign and signify secret keys,
WireGuard configurations.

Byte for byte what age-keygen, `minisign -G`, `signify -G` and `wg genkey`
write (checked against the tools in tests/integration/test_key_tools.py),
built from keys generated at run time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from agent.scan.samples.base import Sample, SampleMaker
from agent.scan.samples.text import embed, fingerprint

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def bech32(hrp: str, data: bytes) -> str:
    """BIP 173 Bech32 of `data` under `hrp` (lower case)."""
    acc = bits = 0
    values: list[int] = []
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            values.append((acc >> bits) & 31)
    if bits:
        values.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    chk = 1
    for v in [*expanded, *values, 0, 0, 0, 0, 0, 0]:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATORS):
            if (top >> i) & 1:
                chk ^= g
    chk ^= 1
    checksum = [(chk >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def age_identity(key: x25519.X25519PrivateKey) -> bytes:
    """The file age-keygen writes."""
    secret = bech32("age-secret-key-", key.private_bytes_raw()).upper()
    recipient = bech32("age", key.public_key().public_bytes(*_RAW))
    return f"# created: 2026-01-01T00:00:00Z\n# public key: {recipient}\n{secret}\n".encode()


def minisign_key(key: ed25519.Ed25519PrivateKey, *, encrypted: bool = False) -> bytes:
    """`minisign -G` (scrypt-protected, random bytes for the XORed part) or `-G -W`."""
    keypair = key.private_bytes_raw() + key.public_key().public_bytes(*_RAW)
    if encrypted:
        blob = b"EdScB2" + os.urandom(32) + struct.pack("<QQ", 1 << 25, 1 << 30)
        blob += os.urandom(8 + 64 + 32)
        comment = "minisign encrypted secret key"
    else:
        blob = b"Ed\0\0B2" + bytes(48) + os.urandom(8) + keypair + bytes(32)
        comment = "minisign encrypted secret key"  # minisign 0.11 writes this even with -W
    return f"untrusted comment: {comment}\n".encode() + base64.b64encode(blob) + b"\n"


def signify_key(key: ed25519.Ed25519PrivateKey, *, encrypted: bool = False) -> bytes:
    """`signify -G -n` (no passphrase) or `signify -G` (42 bcrypt_pbkdf rounds)."""
    keypair = key.private_bytes_raw() + key.public_key().public_bytes(*_RAW)
    checksum = hashlib.sha512(keypair).digest()[:8]
    secret = os.urandom(64) if encrypted else keypair
    blob = b"EdBK" + struct.pack(">I", 42 if encrypted else 0) + os.urandom(16)
    blob += checksum + os.urandom(8) + secret
    return b"untrusted comment: signify secret key\n" + base64.b64encode(blob) + b"\n"


def _age(env: bool) -> Sample:
    key = x25519.X25519PrivateKey.generate()
    data = age_identity(key)
    if env:  # SOPS reads the identity from the environment too
        data = b"SOPS_AGE_KEY=" + data.splitlines()[-1] + b"\n"
    return Sample(embed(data), fingerprint(key))


def _signer(tool: str, encrypted: bool) -> Sample:
    key = ed25519.Ed25519PrivateKey.generate()
    write = minisign_key if tool == "minisign" else signify_key
    return Sample(embed(write(key, encrypted=encrypted)), None if encrypted else fingerprint(key))


def wireguard_key() -> x25519.X25519PrivateKey:
    """A key as `wg genkey` makes it: 32 random bytes, clamped."""
    raw = bytearray(os.urandom(32))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return x25519.X25519PrivateKey.from_private_bytes(bytes(raw))


def wireguard_config(key: x25519.X25519PrivateKey, *, networkd: bool = False) -> bytes:
    """A wg-quick configuration, or a systemd-networkd .netdev, holding the key."""
    secret = base64.b64encode(key.private_bytes_raw()).decode()
    peer = base64.b64encode(x25519.X25519PrivateKey.generate().public_key().public_bytes(*_RAW))
    if networkd:
        return (
            f"[NetDev]\nName=wg0\nKind=wireguard\n\n[WireGuard]\nPrivateKey={secret}\n"
            f"ListenPort=51820\n\n[WireGuardPeer]\nPublicKey={peer.decode()}\n"
        ).encode()
    return (
        f"[Interface]\nAddress = 10.0.0.1/24\nListenPort = 51820\nPrivateKey = {secret}\n\n"
        f"[Peer]\nPublicKey = {peer.decode()}\nAllowedIPs = 10.0.0.2/32\n"
    ).encode()


def _wireguard(networkd: bool) -> Sample:
    key = wireguard_key()
    return Sample(embed(wireguard_config(key, networkd=networkd)), fingerprint(key))


SAMPLES: Mapping[str, SampleMaker] = {
    "age_identity": lambda: _age(env=False),
    "age_identity_env": lambda: _age(env=True),
    "minisign_clear": lambda: _signer("minisign", encrypted=False),
    "minisign_encrypted": lambda: _signer("minisign", encrypted=True),
    "signify_clear": lambda: _signer("signify", encrypted=False),
    "signify_encrypted": lambda: _signer("signify", encrypted=True),
    "wireguard_wg_quick": lambda: _wireguard(networkd=False),
    "wireguard_networkd": lambda: _wireguard(networkd=True),
}
