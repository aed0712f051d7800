"""Sealing: encrypt a quarantined file to the security team's X25519 public key, streaming.

Format (version 1), all integers big-endian:

    magic    8 bytes  b"EGSEAL1\\n"
    chunk    4 bytes  plaintext bytes per chunk (65536)
    epk     32 bytes  ephemeral X25519 public key of the sender
    salt    16 bytes  random
    then chunks: ChaCha20-Poly1305(plaintext chunk) = chunk + 16-byte tag

The key and a 7-byte nonce prefix come from HKDF-SHA256 over the X25519
shared secret (salt = `salt`, info binds both public keys). Each chunk's
nonce is prefix || counter (4 bytes) || last flag (1 byte) and the header is
the associated data of every chunk: the STREAM construction, so reordered,
dropped, duplicated or truncated chunks and an edited header all fail to
decrypt. The last chunk may be short or empty (an empty file is one empty
last chunk).

Keys: the public key file is PEM SubjectPublicKeyInfo (what `egress-guard
quarantine keygen` writes) or the raw 32 bytes in base64 on one line; the
private key file is unencrypted PEM PKCS#8. The private key belongs on the
security team's machine, never on the debug host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import QuarantineError

MAGIC = b"EGSEAL1\n"
CHUNK = 64 * 1024
TAG = 16
HEADER_LEN = len(MAGIC) + 4 + 32 + 16
_INFO = b"egress-guard seal v1"
_MAX_CHUNK = 16 * 1024 * 1024  # refuse absurd chunk sizes from a hostile header


class SealError(QuarantineError):
    """A sealed item could not be opened: wrong key, damaged or truncated file."""


def _public_raw(key: x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(path: Path) -> x25519.X25519PublicKey:
    """The team's public key from a PEM SubjectPublicKeyInfo or a base64 raw 32-byte file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise QuarantineError(
            f"cannot read the seal public key {path}: {exc.strerror}",
            step="seal_key",
            hint="set [quarantine] seal_public_key to the team's X25519 public key file",
        ) from None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
            if isinstance(key, x25519.X25519PublicKey):
                return key
        else:
            raw = base64.b64decode(data.strip(), validate=True)
            if len(raw) == 32:
                return x25519.X25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        pass
    raise QuarantineError(
        f"{path} is not an X25519 public key",
        step="seal_key",
        hint="use the .pub file from `egress-guard quarantine keygen` (PEM) or 32 raw bytes in base64",
    )


def load_private_key(path: Path) -> x25519.X25519PrivateKey:
    """The team's private key (unencrypted PEM PKCS#8)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SealError(
            f"cannot read the private key {path}: {exc.strerror}",
            step="open_seal",
            hint="pass the security team's X25519 private key with --private-key",
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise SealError(
            f"{path} is not an unencrypted X25519 private key (PEM PKCS#8)",
            step="open_seal",
            hint="use the .key file written by `egress-guard quarantine keygen`",
        )
    return key


def generate_keypair() -> tuple[bytes, bytes]:
    """A new team key pair as (private PEM PKCS#8, public PEM SubjectPublicKeyInfo)."""
    key = x25519.X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _derive(shared: bytes, salt: bytes, epk: bytes, recipient: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=39, salt=salt, info=_INFO + epk + recipient)
    material = okm.derive(shared)
    return material[:32], material[32:]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _chunks(src: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """Chunks of `src` with a one-chunk look-ahead, so the last one is flagged."""
    current = src.read(size)
    while True:
        following = src.read(size) if len(current) == size else b""
        last = not following
        yield current, last
        if last:
            return
        current = following


def seal_stream(
    src: BinaryIO,
    dst: BinaryIO,
    recipient: x25519.X25519PublicKey,
    *,
    on_chunk: Callable[[], None] | None = None,
) -> str:
    """Encrypt `src` into `dst`; returns the hex SHA-256 of the plaintext read."""
    ephemeral = x25519.X25519PrivateKey.generate()
    epk = _public_raw(ephemeral.public_key())
    salt = secrets.token_bytes(16)
    header = MAGIC + struct.pack(">I", CHUNK) + epk + salt
    key, prefix = _derive(ephemeral.exchange(recipient), salt, epk, _public_raw(recipient))
    aead = ChaCha20Poly1305(key)
    digest = hashlib.sha256()
    dst.write(header)
    for counter, (chunk, last) in enumerate(_chunks(src, CHUNK)):
        if counter >= 2**32:
            raise QuarantineError(
                "file too large to seal (over 256 TiB)",
                step="copy",
                hint="quarantine it without sealing",
            )
        digest.update(chunk)
        dst.write(aead.encrypt(_nonce(prefix, counter, last), chunk, header))
        if on_chunk is not None:
            on_chunk()
    return digest.hexdigest()


def open_stream(src: BinaryIO, dst: BinaryIO, private: x25519.X25519PrivateKey) -> str:
    """Decrypt `src` into `dst`, verifying every chunk; returns the plaintext's hex SHA-256.

    Raises SealError on a wrong key or any damage. `dst` may already hold a
    prefix of the plaintext when that happens: write to a temporary file.
    """
    header = src.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise SealError(
            "not a sealed quarantine file (bad header)",
            step="open_seal",
            hint="the item is damaged; restore it from a backup of the vault",
        )
    (chunk_size,) = struct.unpack(">I", header[len(MAGIC) : len(MAGIC) + 4])
    if not 0 < chunk_size <= _MAX_CHUNK:
        raise SealError(
            "sealed file has an invalid chunk size",
            step="open_seal",
            hint="the item is damaged; restore it from a backup of the vault",
        )
    epk = header[len(MAGIC) + 4 : len(MAGIC) + 36]
    salt = header[len(MAGIC) + 36 :]
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(epk))
    except ValueError:
        raise SealError(
            "sealed file has an invalid ephemeral key",
            step="open_seal",
            hint="the item is damaged; restore it from a backup of the vault",
        ) from None
    key, prefix = _derive(shared, salt, epk, _public_raw(private.public_key()))
    aead = ChaCha20Poly1305(key)
    digest = hashlib.sha256()
    for counter, (chunk, last) in enumerate(_chunks(src, chunk_size + TAG)):
        try:
            plain = aead.decrypt(_nonce(prefix, counter, last), chunk, header)
        except InvalidTag:
            raise SealError(
                "the sealed item does not decrypt: wrong private key, or the file was "
                "altered or truncated",
                step="open_seal",
                hint="use the security team's private key matching the seal_public_key in use",
            ) from None
        digest.update(plain)
        dst.write(plain)
    return digest.hexdigest()


def fsync_file(f: BinaryIO) -> None:
    """Flush Python's buffer and the kernel's to disk."""
    f.flush()
    os.fsync(f.fileno())
