"""Multi-prime RSA (RFC 8017 version 1, `openssl genrsa -primes 3`): cryptography cannot load it,
the DER validator proves it (n = p*q*r, e*d = 1 mod lcm(p_i - 1)). Raw PKCS#1 DER of such a
key is not matched: a rule pattern for version 1 made YARA-X ten times slower."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.scan import rulekit

FILES = ("pem.yar", "der.yar")


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    tool = shutil.which("openssl")
    assert tool, "install openssl (scripts/check does so when run as root)"
    return subprocess.run([tool, *args], input=data, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def three_primes(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A fresh 3-prime RSA 2048 key as OpenSSL writes it (PKCS#8 PEM) and its fingerprint."""
    path = tmp_path_factory.mktemp("mp") / "mp.pem"
    _openssl("genrsa", "-primes", "3", "-out", str(path), "2048")
    spki = _openssl("pkey", "-in", str(path), "-pubout", "-outform", "DER")
    return path.read_bytes(), "sha256:" + hashlib.sha256(spki).hexdigest()


def _found(engine: str, data: bytes) -> list[tuple[str, str | None]]:
    return [(f.format, f.fingerprint) for f in rulekit.scan(engine, data, FILES) if f.validated]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
def test_three_prime_key_in_every_openssl_encoding(
    engine: str, three_primes: tuple[bytes, str], tmp_path: Path
) -> None:
    """PKCS#8 PEM, PKCS#1 PEM and PKCS#8 DER of one 3-prime key: one finding each, same name."""
    pem8, fp = three_primes
    pem1 = _openssl("pkey", "-traditional", data=pem8)
    der8 = _openssl("pkcs8", "-topk8", "-nocrypt", "-outform", "DER", data=pem8)
    noise = b"\0" * 300
    assert _found(engine, noise + pem8) == [("pem-pkcs8", fp)]
    assert _found(engine, noise + pem1) == [("pem-pkcs1", fp)]
    assert _found(engine, noise + der8 + noise) == [("der-pkcs8", fp)]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
def test_a_tampered_third_prime_is_not_a_key(engine: str, three_primes: tuple[bytes, str]) -> None:
    """Flip one byte near the end of the DER (inside the other-prime info): nothing."""
    der8 = bytearray(
        _openssl("pkcs8", "-topk8", "-nocrypt", "-outform", "DER", data=three_primes[0])
    )
    der8[-40] ^= 0x01
    assert _found(engine, b"\0" * 300 + bytes(der8)) == []
