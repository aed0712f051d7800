"""Passwords that published defaults and tools put on key containers: a key under one is not protected.

A keystore or PKCS#12 file whose password is one of these opens for anyone
who reads the documentation, so its key is reported as proven (with its own
fingerprint), not as an encrypted key, and the finding says why
(`default_password`). The list is short on purpose: each entry is tried once
per container, with the container's own (bounded) key derivation.
"""

from __future__ import annotations

DEFAULT_PASSWORDS: tuple[bytes, ...] = (
    b"changeit",  # the JDK's keytool and cacerts default, kept by countless Java keystores
    b"notasecret",  # Google Cloud service-account .p12 keys, all of them
    b"password",
    b"changeme",
    b"secret",
    b"test",
    b"123456",
)
