"""Whole PEM files base64-encoded (kubeconfig client-key-data, Kubernetes Secrets, CI values)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.samples.more import self_signed
from agent.scan.samples.text import fingerprint
from tests.unit.scan import rulekit

FILES = ("more.yar",)
Enc = serialization.Encoding
Priv = serialization.PrivateFormat
NoEnc = serialization.NoEncryption()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _validated(engine: str, data: bytes) -> list[tuple[str, str | None, int]]:
    return [
        (f.format, f.fingerprint, f.offset)
        for f in rulekit.scan(engine, data, FILES)
        if f.rule == "base64_pem_private_key" and f.validated
    ]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
def test_kubeconfig_client_key_data_is_found_at_its_run(engine: str) -> None:
    """RSA PKCS#1 as kubectl writes it: one line of base64 after `client-key-data: `."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Enc.PEM, Priv.TraditionalOpenSSL, NoEnc)
    head = b"users:\n- name: admin\n  user:\n    client-key-data: "
    data = os.urandom(500) + head + _b64(pem) + b"\n"
    assert _validated(engine, data) == [("base64-pem-pkcs1", fingerprint(key), 500 + len(head))]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_bundle_of_certificate_then_key_gives_the_key_once(engine: str, pad: int) -> None:
    """Cert then key in one value, wrapped at 76: once, whatever the alignment of the second
    BEGIN (at one of three paddings it spells `LS0tLS1CRUdJTi` mid-run and matches again)."""
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = (
        self_signed(key).public_bytes(Enc.PEM)
        + b"\n" * pad
        + key.private_bytes(Enc.PEM, Priv.PKCS8, NoEnc)
    )
    text = _b64(bundle)
    wrapped = b"\n    ".join(text[i : i + 76] for i in range(0, len(text), 76))
    data = b"data:\n  tls.pem: |\n    " + wrapped + b"\n"
    found = _validated(engine, data)
    assert [(fmt, fp) for fmt, fp, _ in found] == [("base64-pem-pkcs8", fingerprint(key))]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
def test_encrypted_and_ed25519_keys_in_json_ci_variables(engine: str) -> None:
    """An encrypted PKCS#8 (reported encrypted, no fingerprint) and an Ed25519 key in JSON."""
    enc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed = ed25519.Ed25519PrivateKey.generate()
    doc = {
        "SIGNING_KEY": _b64(
            enc_key.private_bytes(
                Enc.PEM, Priv.PKCS8, serialization.BestAvailableEncryption(b"hunter2")
            )
        ).decode(),
        "DEPLOY_KEY": _b64(ed.private_bytes(Enc.PEM, Priv.PKCS8, NoEnc)).decode(),
    }
    findings = [
        f
        for f in rulekit.scan(engine, json.dumps(doc).encode(), FILES)
        if f.rule == "base64_pem_private_key"
    ]
    assert sorted((f.encrypted, f.fingerprint or "") for f in findings) == sorted(
        [(True, ""), (False, fingerprint(ed))]
    )


def _public_only() -> list[bytes]:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(Enc.PEM, Priv.PKCS8, NoEnc)
    placeholder = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg...\n-----END PRIVATE KEY-----\n"
    return [
        _b64(self_signed(key).public_bytes(Enc.PEM)),  # tls.crt
        _b64(
            key.public_key().public_bytes(Enc.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        ),
        _b64(placeholder),  # documentation
        _b64(pem)[: len(_b64(pem)) // 2],  # truncated value
        _b64(pem.replace(b"M", b"N", 3)),  # tampered body
        b"LS0tLS1CRUdJTi" + _b64(os.urandom(900)),  # random after the prefix
    ]


@pytest.mark.parametrize("engine", rulekit.ENGINES)
def test_certificates_public_keys_placeholders_and_broken_values_give_nothing(engine: str) -> None:
    """Negatives that carry the same prefix."""
    for value in _public_only():
        assert _validated(engine, b"tls.crt: " + value + b"\n") == [], value[:40]


def test_findings_hold_no_key_bytes() -> None:
    """The finding names the key by fingerprint only: no 16-byte window of the key leaks."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Enc.PEM, Priv.PKCS8, NoEnc)
    der = key.private_bytes(Enc.DER, Priv.PKCS8, NoEnc)
    encoded = _b64(pem)
    (finding,) = rulekit.scan("yara-x", b"key: " + encoded, FILES)
    text = json.dumps(finding.to_json()).encode()
    for secret in (pem, der, encoded):
        assert not any(secret[i : i + 16] in text for i in range(0, len(secret) - 16, 8))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=3))
def test_hostile_bytes_after_the_prefix_never_raise(tail: bytes, cut: int) -> None:
    """Any bytes after the prefix: the validator returns, never raises."""
    rulekit.scan("yara-x", b"x: LS0tLS1CRUdJTi" + tail[: len(tail) - cut], FILES)
