"""Binary validators on hostile input: they never raise and never validate a key whose arithmetic broke."""

from __future__ import annotations

import base64
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.scan.samples import binary as samples
from agent.scan.samples import text as text_samples
from agent.scan.validators import VALIDATORS, Hit
from tests.keys import cached_rsa, fingerprint

DER = serialization.Encoding.DER
NONE = serialization.NoEncryption()
FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _key_packet(packets: bytes) -> bytes:
    """The first packet of a new-format stream (one or two length bytes)."""
    first = packets[1]
    if first < 192:
        return packets[: 2 + first]
    return packets[: 3 + ((first - 192) << 8) + packets[2] + 192]


@cache
def originals() -> dict[str, tuple[str, bytes, str]]:
    """validator name -> (case, a real encoded key, its fingerprint); built once per session."""
    rsa_key = cached_rsa(1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    return {
        "der-pkcs1": (
            "der",
            rsa_key.private_bytes(DER, serialization.PrivateFormat.TraditionalOpenSSL, NONE),
            fingerprint(rsa_key),
        ),
        "der-pkcs8-ec": (
            "der",
            ec_key.private_bytes(DER, serialization.PrivateFormat.PKCS8, NONE),
            fingerprint(ec_key),
        ),
        "der-sec1": (
            "der",
            ec_key.private_bytes(DER, serialization.PrivateFormat.TraditionalOpenSSL, NONE),
            fingerprint(ec_key),
        ),
        "capi": ("capi_blob", samples.capi_blob(rsa_key), fingerprint(rsa_key)),
        "cng-rsa": ("cng_rsa", samples.cng_rsa_blob(rsa_key, full=True), fingerprint(rsa_key)),
        "cng-ecc": ("cng_ecc", samples.cng_ecc_blob(ec_key), fingerprint(ec_key)),
        "openssh-rsa": ("openssh_binary", samples.openssh_blob(rsa_key), fingerprint(rsa_key)),
        "openssh-ed25519": ("openssh_binary", samples.openssh_blob(ed_key), fingerprint(ed_key)),
        "pkcs12": ("pkcs12", samples.pfx(ec_key, b""), fingerprint(ec_key)),
        "base64-pkcs12": (
            "base64_pkcs12",
            base64.b64encode(samples.pfx(ec_key, b"")),
            fingerprint(ec_key),
        ),
        # the secret-key packet alone (RSA: an Ed25519 packet is shorter than the longest
        # header kept by the header test); a cut user-ID packet after it leaves a whole key
        "pgp-binary": (
            "pgp_binary",
            _key_packet(text_samples.pgp_packets(rsa_key)),
            fingerprint(rsa_key),
        ),
    }


def run(validator: str, data: bytes) -> list:
    hit = Hit("fuzz", {"validator": validator, "format": "fuzz"}, memoryview(data), 0, 8, 0)
    return list(VALIDATORS[validator](hit))


CASES = [
    "der-pkcs1",
    "der-pkcs8-ec",
    "der-sec1",
    "capi",
    "cng-rsa",
    "cng-ecc",
    "openssh-rsa",
    "openssh-ed25519",
    "pkcs12",
    "base64-pkcs12",
    "pgp-binary",
]


@pytest.mark.parametrize("case", CASES)
def test_unmodified_originals_validate(case: str) -> None:
    """The structures the fuzz tests mutate are themselves validated keys (so the fuzz tests can fail)."""
    validator, data, fp = originals()[case]
    assert [f.fingerprint for f in run(validator, data) if f.validated] == [fp]


@pytest.mark.parametrize("case", CASES)
@FUZZ
@given(data=st.data())
def test_mutated_keys_never_raise_and_never_validate_another_key(
    case: str, data: st.DataObject
) -> None:
    """Flipping bytes of a real key either still proves that same key or proves nothing; it never raises."""
    validator, original, fp = originals()[case]
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] ^= data.draw(st.integers(1, 255))
    for finding in run(validator, bytes(mutated)):
        assert not finding.validated or finding.fingerprint in (fp, None)


@pytest.mark.parametrize("case", CASES)
@FUZZ
@given(cut=st.integers(0, 64), tail=st.binary(min_size=0, max_size=2048))
def test_random_bytes_after_a_real_header_never_validate(case: str, cut: int, tail: bytes) -> None:
    """A real header (the first bytes of a key) followed by random bytes is never a validated finding."""
    validator, original, _ = originals()[case]
    header = original[: 16 + cut]
    assert [f for f in run(validator, header + tail) if f.validated] == []


@pytest.mark.parametrize(
    "validator",
    [
        "der",
        "capi_blob",
        "cng_rsa",
        "cng_ecc",
        "openssh_binary",
        "pkcs12",
        "base64_pkcs12",
        "pgp_binary",
        "pvk",
    ],
)
@FUZZ
@given(blob=st.binary(min_size=0, max_size=512))
def test_random_bytes_never_raise(validator: str, blob: bytes) -> None:
    """Any bytes at a hit give no validated finding and no exception."""
    assert [f for f in run(validator, blob) if f.validated] == []


def test_truncated_keys_are_not_validated() -> None:
    """Every proper prefix of a real key is refused (the structure's own length decides)."""
    for validator, original, _ in originals().values():
        for size in range(0, len(original), max(1, len(original) // 40)):
            assert [f for f in run(validator, original[:size]) if f.validated] == [], (
                validator,
                size,
            )
