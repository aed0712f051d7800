"""EC keys on every named curve: P-192 to P-521, secp256k1, Brainpool (cryptography) and SM2 (keymath).

SM2 keys are made here (cryptography has no SM2): a random scalar, its point
from keymath's ladder, and the DER OpenSSL writes (PKCS#8, SEC1, the "SM2
PRIVATE KEY" PEM). The real openssl output is tested in tests/integration.
"""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.scan import keymath
from tests.keys import fingerprint, plant
from tests.unit.scan.rulekit import ENGINES, scan

FILES = ("der.yar", "pem.yar")
_OID_SM2 = bytes.fromhex("06082a811ccf5501822d")
_OID_EC = bytes.fromhex("06072a8648ce3d0201")

CURVES = [
    ec.SECP192R1(),
    ec.SECP224R1(),
    ec.SECP256K1(),
    ec.BrainpoolP256R1(),
    ec.BrainpoolP384R1(),
    ec.BrainpoolP512R1(),
]


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    size = (
        bytes([n])
        if n < 0x80
        else bytes([0x81, n])
        if n < 0x100
        else bytes([0x82]) + n.to_bytes(2, "big")
    )
    return bytes([tag]) + size + body


def sm2_key() -> tuple[int, bytes]:
    """A fresh SM2 key: (scalar, uncompressed public point)."""
    while True:
        d = secrets.randbelow(keymath.SM2_N)
        point = keymath.sm2_public_point(d)
        if point is not None:
            return d, point


def sm2_sec1(d: int, point: bytes, *, params: bool = True) -> bytes:
    """ECPrivateKey as `openssl ec` writes an SM2 key."""
    body = _der(0x02, b"\x01") + _der(0x04, d.to_bytes(32, "big"))
    if params:
        body += _der(0xA0, _OID_SM2)
    body += _der(0xA1, _der(0x03, b"\x00" + point))
    return _der(0x30, body)


def sm2_pkcs8(d: int, point: bytes) -> bytes:
    """PrivateKeyInfo as `openssl genpkey -algorithm SM2` writes it."""
    alg = _der(0x30, _OID_EC + _OID_SM2)
    return _der(0x30, _der(0x02, b"\x00") + alg + _der(0x04, sm2_sec1(d, point, params=False)))


def _pem(label: str, der: bytes) -> bytes:
    text = base64.encodebytes(der).decode().replace("\n", "")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_sec1_der_on_every_named_curve_is_found(engine: str, curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for data in (der, pkcs8):
        found = [f for f in scan(engine, plant(data), FILES) if f.validated]
        assert {(f.curve, f.fingerprint) for f in found} == {(curve.name, fingerprint(key))}


def test_sm2_ladder_is_the_curve() -> None:
    """G is on y^2 = x^3 - 3x + b and n * G is the point at infinity (known-answer checks)."""
    p = keymath.SM2_P
    gx, gy = keymath.SM2_G
    assert (gy * gy - (gx**3 - 3 * gx + keymath.SM2_B)) % p == 0
    assert keymath.sm2_public_point(1) == b"\x04" + gx.to_bytes(32, "big") + gy.to_bytes(32, "big")
    assert keymath.sm2_public_point(0) is None
    assert keymath.sm2_public_point(keymath.SM2_N - 1) is None  # out of GB/T 32918's range


@pytest.mark.parametrize("engine", ENGINES)
def test_sm2_keys_are_found_in_der_and_pem(engine: str) -> None:
    d, point = sm2_key()
    expected = {("sm2", keymath.sm2_fingerprint(point))}
    for data in (
        sm2_pkcs8(d, point),
        sm2_sec1(d, point),
        _pem("PRIVATE KEY", sm2_pkcs8(d, point)).encode(),
        _pem("SM2 PRIVATE KEY", sm2_sec1(d, point)).encode(),
    ):
        found = {(f.curve, f.fingerprint) for f in scan(engine, plant(data), FILES) if f.validated}
        assert found == expected, data[:40]


@pytest.mark.parametrize("engine", ENGINES)
def test_sm2_look_alikes_are_not_keys(engine: str) -> None:
    """Another key's point, a scalar of zero, a scalar past the order: nothing validated."""
    d, point = sm2_key()
    _, other = sm2_key()
    for data in (
        sm2_sec1(d, other),
        sm2_pkcs8(d, other),
        _pem("SM2 PRIVATE KEY", sm2_sec1(0, point)).encode(),
        sm2_sec1(keymath.SM2_N + 5, point),
    ):
        assert [f for f in scan(engine, plant(data), FILES) if f.validated] == []
