"""Passwords that published defaults and tools put on key containers: a key under one is not protected.

A keystore, PKCS#12 file or encrypted PEM/PKCS#8 key whose password is one of
these opens for anyone who reads the documentation, so its key is reported
as proven (with its own fingerprint), not as an encrypted key, and the
finding says why (`default_password`). The list is short on purpose: each
entry is tried once per container, and only where the container's key
derivation is cheap (the callers check it: PBKDF2 or PKCS#12 PBE within
100,000 rounds, OpenSSL's one-round legacy PEM scheme; never scrypt).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan import keymath

MAX_ITERATIONS = 100_000  # key-derivation rounds per try above which no default is tried

DEFAULT_PASSWORDS: tuple[bytes, ...] = (
    b"changeit",  # the JDK's keytool and cacerts default, kept by countless Java keystores
    b"notasecret",  # Google Cloud service-account .p12 keys, all of them
    b"password",
    b"changeme",
    b"secret",
    b"test",
    b"123456",
)


def open_pkcs8(der: bytes) -> PrivateKeyTypes | None:
    """An EncryptedPrivateKeyInfo opened with a default password and proven, else None."""
    return _first(
        lambda password: serialization.load_der_private_key(
            der, password, unsafe_skip_rsa_key_validation=True
        )
    )


def open_legacy_pem(pem: bytes) -> PrivateKeyTypes | None:
    """OpenSSL's traditionally encrypted PEM (Proc-Type/DEK-Info) opened with a default password."""
    return _first(
        lambda password: serialization.load_pem_private_key(
            pem, password, unsafe_skip_rsa_key_validation=True
        )
    )


def _first(load: Callable[[bytes], PrivateKeyTypes]) -> PrivateKeyTypes | None:
    for password in DEFAULT_PASSWORDS:
        try:
            key = load(password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue  # the wrong password (or a cipher the library refuses)
        return key if keymath.private_key_consistent(key) else None
    return None
