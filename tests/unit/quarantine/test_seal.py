"""Sealing: the STREAM format round-trips and detects every kind of damage."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import QuarantineError
from agent.quarantine import seal


def _pair() -> tuple[seal.x25519.X25519PrivateKey, seal.x25519.X25519PublicKey]:
    private = seal.x25519.X25519PrivateKey.generate()
    return private, private.public_key()


def _sealed(data: bytes) -> tuple[bytes, seal.x25519.X25519PrivateKey]:
    private, public = _pair()
    out = io.BytesIO()
    digest = seal.seal_stream(io.BytesIO(data), out, public)
    assert digest == hashlib.sha256(data).hexdigest()
    return out.getvalue(), private


def _open(blob: bytes, private: seal.x25519.X25519PrivateKey) -> bytes:
    out = io.BytesIO()
    digest = seal.open_stream(io.BytesIO(blob), out, private)
    assert digest == hashlib.sha256(out.getvalue()).hexdigest()
    return out.getvalue()


@settings(max_examples=25, deadline=None)
@given(
    size=st.sampled_from([0, 1, seal.CHUNK - 1, seal.CHUNK, seal.CHUNK + 1, 3 * seal.CHUNK])
    | st.integers(0, 3 * seal.CHUNK)
)
def test_sealed_bytes_open_to_the_exact_plaintext(size: int) -> None:
    """Any plaintext, including empty and exact chunk multiples, opens to the same bytes."""
    data = os.urandom(size)
    blob, private = _sealed(data)
    assert _open(blob, private) == data


def test_sealed_output_holds_no_plaintext() -> None:
    """The sealed stream does not contain the plaintext."""
    data = b"-----BEGIN PRIVATE KEY-----" * 5000
    blob, _ = _sealed(data)
    assert b"BEGIN PRIVATE KEY" not in blob
    assert blob.startswith(seal.MAGIC)


def test_the_wrong_private_key_cannot_open_a_sealed_stream() -> None:
    """A key other than the recipient's fails with SealError."""
    blob, _ = _sealed(os.urandom(1000))
    wrong, _ = _pair()
    with pytest.raises(seal.SealError, match="wrong private key"):
        _open(blob, wrong)


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    """Dropping the last whole chunk fails: the new last chunk was not sealed as last."""
    blob, private = _sealed(os.urandom(3 * seal.CHUNK + 10))
    cut = seal.HEADER_LEN + 3 * (seal.CHUNK + seal.TAG)
    with pytest.raises(seal.SealError):
        _open(blob[:cut], private)


def test_reordered_chunks_are_detected() -> None:
    """Swapping two chunks fails: each chunk's nonce carries its position."""
    blob, private = _sealed(os.urandom(3 * seal.CHUNK))
    step = seal.CHUNK + seal.TAG
    h = seal.HEADER_LEN
    first, second = blob[h : h + step], blob[h + step : h + 2 * step]
    swapped = blob[:h] + second + first + blob[h + 2 * step :]
    with pytest.raises(seal.SealError):
        _open(swapped, private)


def test_an_edited_header_is_detected() -> None:
    """The header is authenticated with every chunk: changing the salt fails."""
    blob, private = _sealed(os.urandom(100))
    edited = bytearray(blob)
    edited[seal.HEADER_LEN - 1] ^= 1
    with pytest.raises(seal.SealError):
        _open(bytes(edited), private)


@settings(max_examples=50, deadline=None)
@given(position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(position: int, bit: int) -> None:
    """Flipping any single bit of a sealed stream makes it fail to open."""
    blob, private = _SAMPLE
    edited = bytearray(blob)
    edited[position % len(blob)] ^= 1 << bit
    with pytest.raises(seal.SealError):
        _open(bytes(edited), private)


_SAMPLE = _sealed(os.urandom(seal.CHUNK + 500))


@settings(max_examples=50, deadline=None)
@given(blob=st.binary(max_size=400) | st.builds(lambda b: seal.MAGIC + b, st.binary(max_size=400)))
def test_garbage_fails_only_with_seal_error(blob: bytes) -> None:
    """Arbitrary bytes never open and never raise anything but SealError."""
    private, _ = _pair()
    with pytest.raises(seal.SealError):
        _open(blob, private)


def test_public_key_loads_from_pem_and_from_raw_base64(tmp_path: Path) -> None:
    """Both documented public key encodings load to the same key."""
    private_pem, public_pem = seal.generate_keypair()
    (tmp_path / "k.pub").write_bytes(public_pem)
    pem_key = seal.load_public_key(tmp_path / "k.pub")
    raw = pem_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "raw.pub").write_text(base64.b64encode(raw).decode() + "\n")
    raw_key = seal.load_public_key(tmp_path / "raw.pub")
    assert raw_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    (tmp_path / "k.key").write_bytes(private_pem)
    assert (
        seal.load_private_key(tmp_path / "k.key")
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        == raw
    )


@pytest.mark.parametrize(
    "content", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n", b"QUJD\n"]
)
def test_a_public_key_file_that_is_not_x25519_is_refused(tmp_path: Path, content: bytes) -> None:
    """A bad seal_public_key file is refused with a hint, not used."""
    (tmp_path / "bad.pub").write_bytes(content)
    with pytest.raises(QuarantineError) as err:
        seal.load_public_key(tmp_path / "bad.pub")
    assert err.value.hint


def test_a_private_key_file_of_another_type_is_refused(tmp_path: Path) -> None:
    """Only an X25519 private key opens sealed items; an EC key file is refused clearly."""
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.key").write_bytes(other)
    with pytest.raises(seal.SealError, match="not an unencrypted X25519 private key"):
        seal.load_private_key(tmp_path / "ec.key")
