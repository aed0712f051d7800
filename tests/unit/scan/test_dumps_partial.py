"""The partial_der validator: DER bodies whose header a freed buffer lost, and no double reports."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.samples.memory import SAMPLES
from agent.scan.validators import Hit, partial
from tests import keys

_META = {"validator": "partial_der", "format": "der-partial"}


def _validate(data: bytes) -> list[str | None]:
    found: list[str | None] = []
    for anchor in (b"\x02\x03\x01\x00\x01\x02", b"\x02\x01\x01\x04"):
        at = data.find(anchor)
        if at >= 0:
            hit = Hit(
                rule="r", meta=_META, data=memoryview(data), start=at, end=at + 6, base_offset=0
            )
            found += [f.fingerprint for f in partial.validate(hit) if f.validated]
    return found


def test_rsa_body_without_header_or_top_of_n_is_rebuilt() -> None:
    """An RSA DER body that lost 16 or 32 bytes (header and the top of n) is proven from p and q."""
    for name in ("der_partial_rsa_2048", "der_partial_rsa_pointers"):
        sample = SAMPLES[name]()
        assert _validate(sample.data) == [sample.fingerprint]


def test_rsa_body_with_n_and_only_dp_is_factored() -> None:
    """n intact, p and q overwritten, dP intact: n is factored from dP and the key is proven."""
    key = keys.cached_rsa(2048)
    der = bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    der[:4] = bytes(4)  # the SEQUENCE header is gone
    nums = key.private_numbers()
    for secret in (nums.p, nums.q):
        enc = secret.to_bytes(128, "big")
        at = der.index(enc)
        der[at : at + 128] = bytes(128)  # values gone, INTEGER headers kept: the walk reaches dP
    assert _validate(bytes(der)) == [keys.fingerprint(key)]


def test_intact_der_is_left_to_the_der_validator() -> None:
    """PKCS#1, PKCS#8 and SEC1 keys with intact headers produce no partial finding."""
    rsa_key = keys.cached_rsa(2048)
    ec_key = keys.ec_key()
    for key, fmt in (
        (rsa_key, serialization.PrivateFormat.TraditionalOpenSSL),
        (rsa_key, serialization.PrivateFormat.PKCS8),
        (ec_key, serialization.PrivateFormat.TraditionalOpenSSL),
        (ec_key, serialization.PrivateFormat.PKCS8),
    ):
        data = bytes(64) + keys.der(key, fmt).data + bytes(64)
        assert _validate(data) == [], fmt


def test_sec1_body_is_proven_by_its_public_point() -> None:
    """SEC1 bodies of P-256 and P-384 without their header are proven against the stored point."""
    for name in ("der_partial_sec1_p256", "der_partial_sec1_p384"):
        sample = SAMPLES[name]()
        assert _validate(sample.data) == [sample.fingerprint]


def test_sec1_body_with_a_wrong_point_is_not_a_key() -> None:
    """A scalar whose stored public point belongs to another key is not reported as validated."""
    a, b = keys.ec_key(ec.SECP256R1()), keys.ec_key(ec.SECP256R1())
    der_a = keys.der(a, serialization.PrivateFormat.TraditionalOpenSSL).data
    der_b = keys.der(b, serialization.PrivateFormat.TraditionalOpenSSL).data
    body = der_a[2:][: 5 + 32] + der_b[2 + 5 + 32 :]
    assert _validate(bytes(16) + body) == []


@settings(max_examples=50, deadline=None)
@given(
    st.binary(max_size=600),
    st.sampled_from([b"\x02\x03\x01\x00\x01\x02\x82", b"\x02\x01\x01\x04\x20"]),
)
def test_garbage_after_an_anchor_never_raises_or_validates(tail: bytes, anchor: bytes) -> None:
    """Random bytes after a body anchor neither raise nor produce a validated key."""
    assert _validate(bytes(40) + anchor + tail) == []
