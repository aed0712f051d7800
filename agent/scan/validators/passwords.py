"""Passwords that published defaults and tools put on key containers: a key under one is not protected.

A keystore, PKCS#12 file or encrypted PEM/PKCS#8 key whose password is one of
these opens for anyone who reads the documentation, so its key is reported
as proven (with its own fingerprint), not as an encrypted key, and the
finding says why (`default_password`). The list is short on purpose: each
entry is tried once per container, and only where the container's key
derivation is cheap (the callers check it: PBKDF2 or PKCS#12 PBE within
20,000 rounds, what OpenSSL (2,048), keytool (10,000) and Python's
cryptography (20,000) write; OpenSSL's
one-round legacy PEM scheme; never scrypt), and at most `MAX_TRIES_PER_WINDOW`
times per scan window, so a file packed with sealed keys costs a bounded few
hundred milliseconds before the rest are reported as encrypted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from agent.scan import keymath

MAX_ITERATIONS = 20_000  # key-derivation rounds per try above which no default is tried
MAX_TRIES_PER_WINDOW = 64  # password tries (each a key derivation) per scan window

DEFAULT_PASSWORDS: tuple[bytes, ...] = (
    b"changeit",  # the JDK's keytool and cacerts default, kept by countless Java keystores
    b"notasecret",  # Google Cloud service-account .p12 keys, all of them
    b"password",
    b"changeme",
    b"secret",
    b"test",
    b"123456",
)


class _WindowBudget:
    """Tries left in the current scan window (validators see the window, not the file)."""

    def __init__(self) -> None:
        self._window: object = None
        self._left = MAX_TRIES_PER_WINDOW

    def take(self, window: object) -> bool:
        # a window is one memoryview for all its hits, and a new one starts a fresh allowance;
        # it is held (not its id, which a later window may reuse) until the next window comes:
        # the scanner releases each view before the next, so no window's bytes are kept alive
        if window is not self._window:
            self._window, self._left = window, MAX_TRIES_PER_WINDOW
        if self._left <= 0:
            return False
        self._left -= 1
        return True


_budget = _WindowBudget()


def tries(window: object) -> Iterator[bytes]:
    """The default passwords to try for one container in `window`, while its budget lasts."""
    for password in DEFAULT_PASSWORDS:
        if not _budget.take(window):
            return
        yield password


def open_pkcs8(der: bytes, window: object) -> PrivateKeyTypes | None:
    """An EncryptedPrivateKeyInfo opened with a default password and proven, else None."""
    return _first(
        window,
        lambda password: serialization.load_der_private_key(
            der, password, unsafe_skip_rsa_key_validation=True
        ),
    )


def open_legacy_pem(pem: bytes, window: object) -> PrivateKeyTypes | None:
    """OpenSSL's traditionally encrypted PEM (Proc-Type/DEK-Info) opened with a default password."""
    return _first(
        window,
        lambda password: serialization.load_pem_private_key(
            pem, password, unsafe_skip_rsa_key_validation=True
        ),
    )


def _first(window: object, load: Callable[[bytes], PrivateKeyTypes]) -> PrivateKeyTypes | None:
    for password in tries(window):
        try:
            key = load(password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue  # the wrong password (or a cipher the library refuses)
        return key if keymath.private_key_consistent(key) else None
    return None
