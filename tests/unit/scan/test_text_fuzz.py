"""Text validators on hostile input: random or mutated bytes after a real header never raise
and never claim a validated key (mutations of a real key may still prove it, but never raise)."""

from __future__ import annotations

import base64
import json
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.samples import text as enc
from agent.scan.validators import VALIDATORS, Hit
from agent.values import KeyFinding
from tests import keys

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
LABELS = (
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "PGP PRIVATE KEY BLOCK",
)
FUZZ = settings(max_examples=50, deadline=None)


def run(validator: str, data: bytes, start: int, length: int) -> list[KeyFinding]:
    hit = Hit("fuzz", {"validator": validator}, memoryview(data), start, start + length, 0)
    return list(VALIDATORS[validator](hit))


@cache
def real_ppk() -> bytes:
    return enc.ppk(keys.ed25519_key(), version=3)


@cache
def real_pgp_packets() -> bytes:
    return enc.pgp_packets(keys.ec_key())


@FUZZ
@given(
    label=st.sampled_from(LABELS),
    body=st.text(alphabet=B64 + "\n:- ", max_size=3000),
    headers=st.sampled_from(("", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n")),
    wide=st.booleans(),
)
def test_pem_random_body_is_never_a_validated_key(
    label: str, body: str, headers: str, wide: bool
) -> None:
    """Random base64 between real armour lines never raises and never validates."""
    text = f"-----BEGIN {label}-----\n{headers}{body}\n-----END {label}-----\n"
    codec = "utf-16-le" if wide else "latin-1"
    data = b"\x00junk" + text.encode(codec) + b"tail"
    head = f"-----BEGIN {label}-----".encode(codec)
    assert not any(f.validated for f in run("pem", data, 5, len(head)))


@FUZZ
@given(packets=st.binary(max_size=2000))
def test_pgp_random_packets_with_a_valid_checksum_are_never_a_validated_key(packets: bytes) -> None:
    """Random packet bytes, correctly armoured (CRC24 right), never raise and never validate."""
    data = enc.pgp_armor(packets)
    assert not any(f.validated for f in run("pem", data, 0, 37))


@FUZZ
@given(data=st.data())
def test_pgp_mutated_real_packets_never_raise(data: st.DataObject) -> None:
    """Flipping bytes of a real secret-key packet never makes the validator raise."""
    packets = bytearray(real_pgp_packets())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(packets) - 1))
        packets[i] = data.draw(st.integers(0, 255))
    run("pem", enc.pgp_armor(bytes(packets)), 0, 37)


@FUZZ
@given(body=st.text(alphabet=B64 + "\n:- ", max_size=2000), version=st.sampled_from("23"))
def test_ppk_random_text_is_never_a_validated_key(body: str, version: str) -> None:
    """Random text after a PPK header never raises and never validates."""
    data = f"PuTTY-User-Key-File-{version}: ssh-rsa\n{body}".encode()
    assert not any(f.validated for f in run("ppk", data, 0, 23))


@FUZZ
@given(data=st.data())
def test_ppk_mutated_real_file_never_raises(data: st.DataObject) -> None:
    """Flipping characters of a real PPK never makes the validator raise."""
    text = bytearray(real_ppk())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(24, len(text) - 1))
        text[i] = data.draw(st.sampled_from(b"Az09+/=:\n -"))
    run("ppk", bytes(text), 0, 23)


@FUZZ
@given(
    kty=st.sampled_from(("RSA", "EC", "OKP", "oct", "")),
    crv=st.sampled_from(("P-256", "P-521", "secp256k1", "Ed25519", "X448", "nope")),
    values=st.lists(st.text(alphabet=B64URL, min_size=16, max_size=700), min_size=8, max_size=8),
    tail=st.binary(max_size=200),
)
def test_jwk_random_members_are_never_a_validated_key(
    kty: str, crv: str, values: list[str], tail: bytes
) -> None:
    """A JWK-shaped object with random members never raises and never validates."""
    names = ("n", "e", "x", "y", "p", "q", "dp", "qi")
    doc = {"kty": kty, "crv": crv, "d": values[0]} | dict(zip(names, values, strict=True))
    data = b"\xff{[" + json.dumps(doc).encode() + tail
    start = data.index(b'"d"')
    assert not any(f.validated for f in run("jwk", data, start, 20))


@FUZZ
@given(before=st.binary(max_size=300), after=st.binary(max_size=300))
def test_jwk_random_bytes_around_a_private_member_never_raise(before: bytes, after: bytes) -> None:
    """Random bytes around a `"d": "..."` member never raise and never validate."""
    data = before + b'"d": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"' + after
    assert not any(f.validated for f in run("jwk", data, len(before), 20))


@FUZZ
@given(
    prefix=st.sampled_from(
        ("MIIEvQIBADANBgkqhkiG9w0BAQEFAAS", "MIIEpAIBAAKCAQEA", "MHcCAQEEI", "MC4CAQAwBQYDK2Vw")
    ),
    body=st.text(alphabet=B64 + "\n \\", max_size=3000),
)
def test_base64_der_random_body_is_never_a_validated_key(prefix: str, body: str) -> None:
    """A real DER-prefix anchor followed by random base64 never raises and never validates."""
    data = b"key=" + (prefix + body).encode()
    assert not any(f.validated for f in run("base64_der", data, 4, len(prefix)))


@FUZZ
@given(der=st.binary(min_size=6, max_size=1500))
def test_base64_der_of_random_der_like_bytes_is_never_a_validated_key(der: bytes) -> None:
    """Base64 of random bytes behind a SEQUENCE header never raises and never validates."""
    data = base64.b64encode(b"\x30\x82" + len(der).to_bytes(2, "big") + der)
    assert not any(f.validated for f in run("base64_der", data, 0, 8))


@cache
def real_sshcom() -> bytes:
    return enc.sshcom(keys.rsa2048())


@FUZZ
@given(blob=st.binary(max_size=1500), magic=st.booleans())
def test_sshcom_random_blob_is_never_a_validated_key(blob: bytes, magic: bool) -> None:
    """Random bytes in real ssh.com armour (with or without a right magic and length) never validate."""
    if magic:
        blob = (0x3F6FF9EB).to_bytes(4, "big") + (len(blob) + 8).to_bytes(4, "big") + blob
    body = base64.b64encode(blob).decode()
    text = (
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n"
        + body
        + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n"
    )
    assert not any(f.validated for f in run("sshcom", text.encode(), 0, 10))


@FUZZ
@given(at=st.integers(min_value=0, max_value=10_000), bit=st.integers(min_value=0, max_value=7))
def test_sshcom_with_one_bit_flipped_is_refused_or_still_the_same_key(at: int, bit: int) -> None:
    """A flipped bit anywhere in a real key's blob never raises and never names another key."""
    text = real_sshcom()
    head, _, rest = text.partition(b'line"\n')
    body, _, tail = rest.partition(b"\n---- END")
    blob = bytearray(base64.b64decode(body.replace(b"\n", b"")))
    blob[at % len(blob)] ^= 1 << bit
    data = head + b'line"\n' + base64.b64encode(bytes(blob)) + b"\n---- END" + tail
    expected = keys.fingerprint(keys.rsa2048())
    assert all(f.fingerprint == expected for f in run("sshcom", data, 0, 10) if f.validated)


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


@FUZZ
@given(tail=st.text(alphabet=BECH32.upper() + "1-\n ", max_size=200))
def test_age_random_identity_is_never_a_key(tail: str) -> None:
    """Random bech32 characters after the prefix never raise and (checksum) never prove a key."""
    data = b"x" + b"AGE-SECRET-KEY-" + tail.encode() + b"\n"
    assert run("age", data, 1, 15) == []


@FUZZ
@given(
    kind=st.sampled_from((b"Ed\0\0B2", b"EdScB2", b"EdBK\0\0\0\0", b"EdBK\0\0\0\x2a", b"")),
    blob=st.binary(max_size=200),
    comment=st.text(max_size=80).filter(lambda c: "\n" not in c),
)
def test_minisign_random_key_is_never_a_clear_key(kind: bytes, blob: bytes, comment: str) -> None:
    """Random bytes behind the real magic, in every length, never raise and never prove a
    clear key (a protected one is only reported as encrypted, which random bytes can mimic)."""
    line = base64.b64encode(kind + blob)
    data = b"untrusted comment: " + comment.encode("utf-8", "replace") + b"\n" + line + b"\n"
    found = run("minisign", data, 0, 19)
    assert [f for f in found if not f.encrypted] == []
    assert all(f.fingerprint is None for f in found)


@FUZZ
@given(flip=st.integers(min_value=0, max_value=157 * 8 - 1))
def test_minisign_key_with_one_bit_flipped_never_raises(flip: int) -> None:
    """A real clear key with any bit flipped is refused or still proves that same key."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from agent.scan.samples.keyfiles import minisign_key

    key = ed25519.Ed25519PrivateKey.generate()
    head, line, _ = minisign_key(key).split(b"\n")
    blob = bytearray(base64.b64decode(line))
    blob[flip // 8] ^= 1 << (flip % 8)
    data = head + b"\n" + base64.b64encode(bytes(blob)) + b"\n"
    for f in run("minisign", data, 0, 19):
        assert f.fingerprint in (None, enc.fingerprint(key))


@FUZZ
@given(value=st.text(alphabet=B64 + " \t<>$()", max_size=80))
def test_wireguard_random_value_never_raises(value: str) -> None:
    """Anything after `PrivateKey = ` is refused or, when it is a clamped 32-byte value, an
    X25519 key named by its public half."""
    data = b"[Interface]\nPrivateKey = " + value.encode() + b"\n"
    for f in run("wireguard", data, 12, 10):
        assert f.algorithm == "x25519" and f.fingerprint
