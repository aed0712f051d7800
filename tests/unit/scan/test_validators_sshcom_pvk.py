"""ssh.com (Tectia) private keys and encrypted PVK files: found, proven or marked encrypted; look-alikes refused.

Keys are made at run time with the encoders the self-test samples use; the
real tools' output (puttygen, openssl) is tested in tests/integration.
"""

from __future__ import annotations

import base64
import re
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa

from agent.scan.samples import binary as bin_samples
from agent.scan.samples.text import fingerprint, sshcom
from tests.keys import rsa2048
from tests.unit.scan.rulekit import ENGINES, scan

TEXT, BLOBS = ("text.yar",), ("blobs.yar",)


@pytest.mark.parametrize("engine", ENGINES)
def test_sshcom_rsa_and_dsa_are_proven_with_their_fingerprint(engine: str) -> None:
    key_rsa = rsa2048()
    key_dsa = dsa.generate_private_key(2048)
    for key in (key_rsa, key_dsa):
        (f,) = scan(engine, b"keys/\n" + sshcom(key) + b"\nend", TEXT)
        assert (f.format, f.validated, f.encrypted) == ("sshcom", True, False)
        assert f.fingerprint == fingerprint(key)
        assert f.algorithm == ("rsa" if key is key_rsa else "dsa")
        assert f.bits == 2048


@pytest.mark.parametrize("engine", ENGINES)
def test_sshcom_with_crlf_lines_is_found(engine: str) -> None:
    key = rsa2048()
    (f,) = scan(engine, sshcom(key).replace(b"\n", b"\r\n"), TEXT)
    assert f.fingerprint == fingerprint(key)


@pytest.mark.parametrize("engine", ENGINES)
def test_encrypted_sshcom_is_an_encrypted_finding(engine: str) -> None:
    (f,) = scan(engine, sshcom(rsa2048(), encrypted=True), TEXT)
    assert (f.format, f.algorithm, f.encrypted, f.fingerprint) == ("sshcom", "rsa", True, None)


def _reblob(text: bytes, change: object) -> bytes:
    """The armour around a changed body (change: bytes -> bytes)."""
    head, _, rest = text.partition(b'line"\n')
    body, _, tail = rest.partition(b"\n---- END")
    blob = base64.b64decode(body.replace(b"\n", b""))
    new = change(blob)  # type: ignore[operator]
    return head + b'line"\n' + base64.b64encode(new) + b"\n---- END" + tail


_SSHCOM_LOOK_ALIKES = {
    "armour only": lambda key: (
        b"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nAAAA\n"
        b"---- END SSH2 ENCRYPTED PRIVATE KEY ----\n"
    ),
    "no end line": lambda key: sshcom(key).split(b"---- END")[0],
    "wrong magic": lambda key: _reblob(sshcom(key), lambda b: b"\x3f\x6f\xf9\xec" + b[4:]),
    "wrong total length": lambda key: _reblob(sshcom(key), lambda b: b[:4] + b"\0\0\0\x10" + b[8:]),
    "unknown cipher": lambda key: _reblob(
        sshcom(key), lambda b: b.replace(b"\0\0\0\x04none", b"\0\0\0\x04nope")
    ),
    "last byte of q changed": lambda key: _reblob(
        sshcom(key), lambda b: b[:-1] + bytes([b[-1] ^ 2])
    ),
    "truncated body": lambda key: _reblob(sshcom(key), lambda b: b[: len(b) // 2]),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(_SSHCOM_LOOK_ALIKES))
def test_sshcom_look_alikes_give_no_finding(engine: str, case: str) -> None:
    data = _SSHCOM_LOOK_ALIKES[case](rsa2048())
    assert scan(engine, data, TEXT) == [], case


@pytest.mark.parametrize("engine", ENGINES)
def test_encrypted_pvk_is_an_encrypted_finding_with_its_key_size(engine: str) -> None:
    for data, algorithm, bits in (
        (bin_samples.pvk_encrypted(2048), "rsa", 2048),
        (bin_samples.pvk_encrypted(3072), "rsa", 3072),
        (bin_samples.pvk_encrypted(1024, dsa=True), "dsa", 1024),
    ):
        (f,) = scan(engine, data, BLOBS)
        assert (f.format, f.algorithm, f.bits, f.encrypted) == (
            "pvk-encrypted",
            algorithm,
            bits,
            True,
        )
        assert f.fingerprint is None and f.offset == 0


def _pvk_with(**fields: int) -> bytes:
    data = bytearray(bin_samples.pvk_encrypted(2048))
    names = ("magic", "reserved", "spec", "encrypted", "salt", "length")
    for name, value in fields.items():
        struct.pack_into("<I", data, 4 * names.index(name), value)
    return bytes(data)


_PVK_LOOK_ALIKES = {
    "spec 3": lambda: _pvk_with(spec=3),
    "no salt": lambda: _pvk_with(salt=0),
    "blob length of no key size": lambda: _pvk_with(length=1000),
    "reserved set": lambda: _pvk_with(reserved=1),
    "not a PRIVATEKEYBLOB": lambda: re.sub(
        rb"\x07\x02\0\0", b"\x06\x02\0\0", bin_samples.pvk_encrypted(2048), count=1
    ),
    "header cut short": lambda: bin_samples.pvk_encrypted(2048)[:20],
    "magic not at the start": lambda: b"\0" * 8 + bin_samples.pvk_encrypted(2048),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(_PVK_LOOK_ALIKES))
def test_pvk_look_alikes_give_no_finding(engine: str, case: str) -> None:
    assert scan(engine, _PVK_LOOK_ALIKES[case](), BLOBS) == [], case


@pytest.mark.parametrize("engine", ENGINES)
def test_a_clear_pvk_is_the_privatekeyblob_finding_alone(engine: str) -> None:
    """PVK without encryption: the PRIVATEKEYBLOB inside is proven; the PVK rule adds nothing."""
    key = rsa2048()
    blob = bin_samples.capi_blob(key)
    data = struct.pack("<6I", 0xB0B5F11E, 0, 1, 0, 0, len(blob)) + blob
    (f,) = scan(engine, data, BLOBS)
    assert (f.format, f.fingerprint) == ("capi-privatekeyblob", fingerprint(key))
