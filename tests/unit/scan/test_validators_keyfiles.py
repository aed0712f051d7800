"""age identities, minisign and signify secret keys: proven or encrypted, look-alikes refused."""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from agent.scan import rules as rules_mod
from agent.scan.samples.keyfiles import (
    age_identity,
    bech32,
    minisign_key,
    signify_key,
    wireguard_config,
    wireguard_key,
)
from agent.scan.samples.text import fingerprint
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS, age

ENGINES = ("yara-x", "yara")


@pytest.fixture(scope="module", params=ENGINES)
def scanner(request: pytest.FixtureRequest) -> Scanner:
    ruleset = rules_mod.load("builtin", request.param, validators=set(VALIDATORS))
    return Scanner(ruleset, ScanSettings(number_search="off"))


def _found(scanner: Scanner, data: bytes) -> list[tuple[str, str | None, bool, bool]]:
    return [
        (f.format, f.fingerprint, f.validated, f.encrypted)
        for f in scanner.scan_bytes(data)
        if f.rule in ("age_secret_key", "minisign_secret_key", "wireguard_private_key")
    ]


def test_bech32_round_trip_and_checksum() -> None:
    data = os.urandom(32)
    text = bech32("age-secret-key-", data)
    assert age.bech32_decode(text) == ("age-secret-key-", data)
    flipped = text[:-1] + ("q" if text[-1] != "q" else "p")
    assert age.bech32_decode(flipped) is None
    assert age.bech32_decode("age-secret-key-1") is None
    assert age.bech32_decode(text.replace("1", "b", 1)) is None


def test_age_identity_in_crlf_file_and_look_alikes(scanner: Scanner) -> None:
    key = x25519.X25519PrivateKey.generate()
    crlf = age_identity(key).replace(b"\n", b"\r\n")
    assert _found(scanner, crlf) == [("age", fingerprint(key), True, False)]
    short = bech32("age-secret-key-", os.urandom(16)).upper().encode()
    other_hrp = bech32("age-secret-kez-", os.urandom(32)).upper().encode()
    placeholder = b"AGE-SECRET-KEY-1XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    plugin = b"AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    for data in (short, other_hrp, placeholder, plugin, b"AGE-SECRET-KEY-"):
        assert _found(scanner, b"x\n" + data + b"\n") == [], data[:20]


def test_post_quantum_identity_is_a_key_without_fingerprint(scanner: Scanner) -> None:
    pq = bech32("age-secret-key-pq-", os.urandom(32)).upper().encode()
    assert _found(scanner, pq + b"\n") == [("age-pq", None, True, False)]


@pytest.mark.parametrize(
    ("write", "fmt"), [(minisign_key, "minisign"), (signify_key, "signify")], ids=str
)
def test_clear_and_protected_keys(scanner: Scanner, write: Callable[..., bytes], fmt: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    assert _found(scanner, write(key)) == [(fmt, fingerprint(key), True, False)]
    assert _found(scanner, write(key, encrypted=True)) == [(fmt, None, True, True)]
    crlf = write(key).replace(b"\n", b"\r\n")
    assert _found(scanner, crlf) == [(fmt, fingerprint(key), True, False)]


def test_minisign_and_signify_look_alikes(scanner: Scanner) -> None:
    """A seed that does not give the stored public key, a signify checksum that does not match,
    public keys and signatures under the same comment, wrong sizes, an absurd KDF: nothing."""
    key = ed25519.Ed25519PrivateKey.generate()
    clear = bytearray(base64.b64decode(minisign_key(key).split(b"\n")[1]))
    clear[62] ^= 1  # the seed no longer gives the public key after it
    signify = bytearray(base64.b64decode(signify_key(key).split(b"\n")[1]))
    signify[24] ^= 1  # checksum
    absurd = bytearray(base64.b64decode(minisign_key(key, encrypted=True).split(b"\n")[1]))
    struct.pack_into("<Q", absurd, 38, 0)  # opslimit 0
    pub = b"Ed" + os.urandom(8 + 32)
    sig = b"Ed" + os.urandom(8 + 64)
    lines = [
        (b"minisign encrypted secret key", bytes(clear)),
        (b"signify secret key", bytes(signify)),
        (b"minisign encrypted secret key", bytes(absurd)),
        (b"minisign public key 1234", pub),
        (b"signature from minisign secret key", sig),
        (b"minisign encrypted secret key", os.urandom(158)),
        (b"signify secret key", b"EdBK" + os.urandom(99)),
    ]
    for comment, blob in lines:
        data = b"untrusted comment: " + comment + b"\n" + base64.b64encode(blob) + b"\n"
        assert _found(scanner, data) == [], comment
    assert _found(scanner, b"untrusted comment: no line after it") == []


@pytest.mark.parametrize("networkd", [False, True], ids=["wg-quick", "networkd"])
def test_wireguard_config_key(scanner: Scanner, networkd: bool) -> None:
    key = wireguard_key()
    config = wireguard_config(key, networkd=networkd)
    assert _found(scanner, config) == [("wireguard", fingerprint(key), True, False)]
    crlf = config.replace(b"\n", b"\r\n")
    assert _found(scanner, crlf) == [("wireguard", fingerprint(key), True, False)]


def test_wireguard_look_alikes(scanner: Scanner) -> None:
    """An unclamped value, 31 or 33 bytes, placeholders, a key file path, a public key: nothing."""
    unclamped = bytearray(os.urandom(32))
    unclamped[0] |= 1  # wg genkey clears the low three bits
    lines = [
        b"PrivateKey = " + base64.b64encode(bytes(unclamped)),
        b"PrivateKey = " + base64.b64encode(os.urandom(31)),
        b"PrivateKey = " + base64.b64encode(os.urandom(33)),
        b"PrivateKey = <your private key here>",
        b"PrivateKey = $(wg genkey)",
        b"PrivateKeyFile = /etc/wireguard/wg0.key",
        b"PublicKey = " + base64.b64encode(wireguard_key().private_bytes_raw()),
    ]
    for line in lines:
        assert _found(scanner, b"[Interface]\n" + line + b"\n") == [], line
