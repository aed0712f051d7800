"""Encrypted PEM and DER keys under a published default password are opened and reported as proven keys.

Keystores (PKCS#12, JKS) are tested with their validators in test_validators_more.py.
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan.validators.passwords import DEFAULT_PASSWORDS, MAX_TRIES_PER_WINDOW
from agent.values import KeyFinding
from tests import keys
from tests.unit.scan import rulekit

Enc = serialization.Encoding
Priv = serialization.PrivateFormat
RULES = ("pem.yar", "der.yar")


def _scan(data: bytes) -> list[KeyFinding]:
    found = rulekit.scan("yara-x", keys.plant(data, before=3000, after=3000), RULES)
    return [f for f in found if f.validated]


def _sealed(key: PrivateKeyTypes, enc: Enc, fmt: Priv, password: bytes) -> bytes:
    return key.private_bytes(enc, fmt, serialization.BestAvailableEncryption(password))


@pytest.mark.parametrize(
    ("enc", "fmt", "format_id"),
    [
        (Enc.PEM, Priv.PKCS8, "pem-encrypted-pkcs8"),
        (Enc.PEM, Priv.TraditionalOpenSSL, "pem-legacy-encrypted"),
        (Enc.DER, Priv.PKCS8, "der-encrypted-pkcs8"),
    ],
)
@pytest.mark.parametrize("password", [b"password", b"changeit"])
def test_default_password_opens_the_key(
    enc: Enc, fmt: Priv, format_id: str, password: bytes
) -> None:
    """PBES2/PBKDF2 PKCS#8 and OpenSSL's legacy PEM under a default: the key's own fingerprint."""
    assert password in DEFAULT_PASSWORDS
    key = keys.ec_key()
    (f,) = _scan(_sealed(key, enc, fmt, password))
    assert (f.format, f.algorithm, f.encrypted, f.default_password) == (
        format_id,
        "ec",
        False,
        True,
    )
    assert f.fingerprint == keys.fingerprint(key)


def test_a_real_passphrase_stays_encrypted() -> None:
    (f,) = _scan(_sealed(keys.rsa2048(), Enc.PEM, Priv.PKCS8, b"correct horse battery staple"))
    assert (f.encrypted, f.default_password, f.fingerprint) == (True, False, None)


def test_scrypt_is_never_tried() -> None:
    """scrypt costs tens of ms and megabytes per try: a default password under it is not tried."""
    made = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        capture_output=True,
        check=True,
    )
    sealed = subprocess.run(
        [
            "openssl",
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-scrypt",
            "-passout",
            "pass:password",
        ],
        input=made.stdout,
        capture_output=True,
        check=True,
    )
    (f,) = _scan(sealed.stdout)
    assert (f.format, f.encrypted, f.default_password) == ("pem-encrypted-pkcs8", True, False)


def test_tries_are_bounded_per_window() -> None:
    """A window packed with keys sealed under the last default: it is reached for the first
    few only (each costs every try), and the rest are still reported, as encrypted."""
    last = DEFAULT_PASSWORDS[-1]
    sealed = [_sealed(keys.ec_key(), Enc.PEM, Priv.PKCS8, last) for _ in range(12)]
    found = _scan(b"\n".join(sealed))
    assert len(found) == 12
    opened = [f for f in found if f.default_password]
    assert len(opened) == MAX_TRIES_PER_WINDOW // len(DEFAULT_PASSWORDS)
    assert all(f.encrypted for f in found if not f.default_password)
