"""Known-key inventory: every public encoding is accepted, private keys are refused, storage is safe."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan.inventory import (
    Inventory,
    InventoryError,
    KnownKey,
    add_key,
    load_inventory,
    parse_public_key,
    remove_key,
)
from tests.keys import cached_rsa, ec_key, ed25519_key, fingerprint

Enc = serialization.Encoding
Pub = serialization.PublicFormat
Priv = serialization.PrivateFormat


def b64url(n: int | bytes) -> str:
    raw = n if isinstance(n, bytes) else n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def certificate(key: PrivateKeyTypes, encoding: Enc) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signing")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(encoding)


def jwk(key: PrivateKeyTypes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        pub = key.public_key().public_numbers()
        doc = {"kty": "RSA", "n": b64url(pub.n), "e": b64url(pub.e), "kid": "k1"}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        nums = key.public_key().public_numbers()
        doc = {"kty": "EC", "crv": "P-256", "x": b64url(nums.x), "y": b64url(nums.y)}
    else:
        raw = key.public_key().public_bytes(Enc.Raw, Pub.Raw)
        doc = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    return json.dumps(doc).encode()


def spki(key: PrivateKeyTypes, encoding: Enc) -> bytes:
    return key.public_key().public_bytes(encoding, Pub.SubjectPublicKeyInfo)


def openssh(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(Enc.OpenSSH, Pub.OpenSSH) + b" ops@bastion\n"


KEYS: dict[str, Callable[[], PrivateKeyTypes]] = {
    "rsa": lambda: cached_rsa(2048),
    "ec": ec_key,
    "ed25519": ed25519_key,
}
ENCODINGS: dict[str, Callable[[PrivateKeyTypes], bytes]] = {
    "pem-spki": lambda k: spki(k, Enc.PEM),
    "der-spki": lambda k: spki(k, Enc.DER),
    "pem-cert": lambda k: certificate(k, Enc.PEM),
    "der-cert": lambda k: certificate(k, Enc.DER),
    "openssh": openssh,
    "authorized_keys": lambda k: b'# ops keys\n\nfrom="10.0.0.0/8",no-pty ' + openssh(k),
    "jwk": jwk,
    "jwks": lambda k: b'{"keys": [' + jwk(k) + b"]}",
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_every_public_encoding_gives_the_spki_fingerprint(algorithm: str, encoding: str) -> None:
    """Each accepted public encoding yields the fingerprint of the DER SubjectPublicKeyInfo."""
    key = KEYS[algorithm]()
    parsed = parse_public_key(ENCODINGS[encoding](key))
    assert parsed.fingerprint == fingerprint(key)
    assert parsed.algorithm == algorithm


def test_pkcs1_rsa_public_key_and_rfc4716_are_accepted() -> None:
    """PEM `RSA PUBLIC KEY` (PKCS#1) and an RFC 4716 SSH2 public key are read too."""
    key = cached_rsa(2048)
    pkcs1 = key.public_key().public_bytes(Enc.PEM, Pub.PKCS1)
    blob = openssh(key).split()[1]
    rfc = b'---- BEGIN SSH2 PUBLIC KEY ----\nComment: "2048-bit RSA"\n'
    rfc += b"\n".join(blob[i : i + 70] for i in range(0, len(blob), 70))
    rfc += b"\n---- END SSH2 PUBLIC KEY ----\n"
    assert parse_public_key(pkcs1).fingerprint == fingerprint(key)
    assert parse_public_key(rfc).fingerprint == fingerprint(key)


def test_parsed_key_carries_the_public_numbers() -> None:
    """RSA entries carry n, e and bits; EC entries carry the curve and the uncompressed point."""
    rsa_k, ec_k = cached_rsa(2048), ec_key()
    r = parse_public_key(spki(rsa_k, Enc.PEM))
    e = parse_public_key(spki(ec_k, Enc.PEM))
    nums = rsa_k.public_key().public_numbers()
    assert (r.rsa_n, r.rsa_e, r.bits) == (nums.n, nums.e, 2048)
    assert (e.curve, e.bits) == ("secp256r1", 256)
    assert e.ec_public_point == ec_k.public_key().public_bytes(Enc.X962, Pub.UncompressedPoint)


PRIVATE: dict[str, Callable[[PrivateKeyTypes], bytes]] = {
    "pem-pkcs8": lambda k: k.private_bytes(Enc.PEM, Priv.PKCS8, serialization.NoEncryption()),
    "pem-encrypted": lambda k: k.private_bytes(
        Enc.PEM, Priv.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ),
    "der-pkcs8": lambda k: k.private_bytes(Enc.DER, Priv.PKCS8, serialization.NoEncryption()),
    "der-encrypted": lambda k: k.private_bytes(
        Enc.DER, Priv.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ),
    "openssh-private": lambda k: k.private_bytes(
        Enc.PEM, Priv.OpenSSH, serialization.NoEncryption()
    ),
    "pem-and-public-together": lambda k: (
        spki(k, Enc.PEM) + k.private_bytes(Enc.PEM, Priv.PKCS8, serialization.NoEncryption())
    ),
}


@pytest.mark.parametrize("encoding", sorted(PRIVATE))
def test_private_keys_are_refused_without_echoing_them(encoding: str) -> None:
    """A private key in any encoding is refused, and the error holds none of its text."""
    key = ec_key()
    data = PRIVATE[encoding](key)
    with pytest.raises(InventoryError) as info:
        parse_public_key(data)
    message = str(info.value)
    assert "private key" in message
    assert "pubout" in message
    chunks = [data[i : i + 12] for i in range(0, len(data) - 12, 12)]
    assert not any(c.decode("latin-1") in message for c in chunks if b"-----" not in c)


@pytest.mark.parametrize("member", ["d", "p", "k"])
def test_jwk_with_private_members_is_refused(member: str) -> None:
    """A JWK holding a private member (d, p, ... or a symmetric k) is refused."""
    doc = json.loads(jwk(ec_key()))
    doc[member] = b64url(b"\x01" * 32)
    with pytest.raises(InventoryError, match="private key"):
        parse_public_key(json.dumps(doc).encode())


def test_file_with_two_ssh_keys_is_refused() -> None:
    """An authorized_keys file with several keys is refused: one key is registered at a time."""
    data = openssh(ec_key()) + openssh(ed25519_key())
    with pytest.raises(InventoryError, match="one key at a time"):
        parse_public_key(data)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_give_a_key_or_an_inventory_error(data: bytes) -> None:
    """Random input never raises anything but InventoryError."""
    with contextlib.suppress(InventoryError):
        parse_public_key(data)


@pytest.fixture
def pubfile(tmp_path: Path) -> Callable[[PrivateKeyTypes], Path]:
    counter = iter(range(1_000_000))

    def make(key: PrivateKeyTypes) -> Path:
        # a counter, not id(key): a freed key's id is reused and would overwrite its file
        p = tmp_path / f"key-{next(counter)}.pub"
        p.write_bytes(spki(key, Enc.PEM))
        return p

    return make


def test_added_key_is_stored_atomically_readable_and_reloads_equal(
    state_dir: Path, pubfile: Callable[[PrivateKeyTypes], Path]
) -> None:
    """add_key writes a 0644 JSON file whose reload equals the returned entry."""
    inv = state_dir / "keys.json"
    key = cached_rsa(2048)
    entry = add_key(inv, pubfile(key), "token-signing")
    assert stat.S_IMODE(inv.stat().st_mode) == 0o644
    assert load_inventory(inv).keys == (entry,)
    assert entry.name == "token-signing" and entry.added_at
    stored = json.loads(inv.read_text())["keys"][0]
    assert stored["rsa_n"] == format(key.public_key().public_numbers().n, "x")
    assert sorted(p.name for p in state_dir.iterdir()) == ["keys.json", "keys.json.lock"]


def test_duplicate_name_or_key_is_refused(
    state_dir: Path, pubfile: Callable[[PrivateKeyTypes], Path]
) -> None:
    """A second key under a taken name, or the same key under a new name, is refused."""
    inv = state_dir / "keys.json"
    k1 = pubfile(ec_key())
    add_key(inv, k1, "a")
    with pytest.raises(InventoryError, match="already registered"):
        add_key(inv, pubfile(ec_key()), "a")
    with pytest.raises(InventoryError, match="already registered as 'a'"):
        add_key(inv, k1, "b")
    assert [k.name for k in load_inventory(inv).keys] == ["a"]


def test_remove_by_name_and_by_fingerprint(
    state_dir: Path, pubfile: Callable[[PrivateKeyTypes], Path]
) -> None:
    """remove_key finds a key by its name, its sha256: fingerprint, or the bare hex."""
    inv = state_dir / "keys.json"
    a = add_key(inv, pubfile(ec_key()), "a")
    b = add_key(inv, pubfile(ec_key()), "b")
    c = add_key(inv, pubfile(ed25519_key()), "c")
    assert remove_key(inv, "a") == a
    assert remove_key(inv, b.fingerprint.upper().replace("SHA256:", "sha256:")) == b
    assert remove_key(inv, c.fingerprint.removeprefix("sha256:")) == c
    assert load_inventory(inv).keys == ()
    with pytest.raises(InventoryError, match="no registered key"):
        remove_key(inv, "a")


@pytest.mark.parametrize("name", ["", " padded", "x" * 129, "new\nline", "sha256:abc"])
def test_invalid_names_are_refused(
    state_dir: Path, pubfile: Callable[[PrivateKeyTypes], Path], name: str
) -> None:
    """Empty, padded, overlong, non-printable and fingerprint-like names are refused."""
    with pytest.raises(InventoryError):
        add_key(state_dir / "keys.json", pubfile(ec_key()), name)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"keys": {}}',
        '{"keys": [{"name": "x"}]}',
        '{"keys": [{"name": "x", "algorithm": "rsa", "fingerprint": "sha256:00"}]}',
        '{"keys": [{"name": "x", "algorithm": "rsa", "fingerprint": "sha256:'
        + "0" * 64
        + '", "rsa_n": "zz"}]}',
    ],
)
def test_damaged_inventory_gives_a_clear_error(state_dir: Path, text: str) -> None:
    """A damaged keys.json is refused with its path and a hint, never silently emptied."""
    inv = state_dir / "keys.json"
    inv.write_text(text)
    with pytest.raises(InventoryError, match="damaged") as info:
        load_inventory(inv)
    assert str(inv) in str(info.value)
    assert info.value.hint


def test_missing_inventory_is_empty(tmp_path: Path) -> None:
    """A missing inventory file is an empty inventory."""
    assert load_inventory(tmp_path / "none.json").keys == ()


def test_by_fingerprint_finds_the_registered_key() -> None:
    """Inventory.by_fingerprint returns the key with that fingerprint, else None."""
    k = KnownKey(name="n", fingerprint="sha256:" + "a" * 64, algorithm="rsa")
    inv = Inventory(keys=(k,))
    assert inv.by_fingerprint(k.fingerprint) is k
    assert inv.by_fingerprint("sha256:" + "b" * 64) is None
    assert inv.by_fingerprint(None) is None


def test_unreadable_key_file_is_a_clear_error(state_dir: Path) -> None:
    """A key file that does not exist is refused with its path."""
    with pytest.raises(InventoryError, match="cannot read"):
        add_key(state_dir / "keys.json", state_dir / "missing.pub", "x")


def test_der_private_key_ending_in_a_whitespace_byte_is_still_refused_as_private() -> None:
    """Binary DER may end in 0x20 or 0x0a; stripping it once hid such keys from the check."""
    for _ in range(2000):
        key = ec_key()
        der = key.private_bytes(Enc.DER, Priv.PKCS8, serialization.NoEncryption())
        if der[-1:].isspace():
            break
    else:
        raise AssertionError("no key ending in a whitespace byte in 2000 tries")
    with pytest.raises(InventoryError) as info:
        parse_public_key(der)
    assert "private key" in str(info.value)
