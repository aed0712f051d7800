"""rules/more.yar gnupg_private_key: GnuPG private-keys-v1.d files, under both engines.

Keys are generated at run time (cryptography for the hand-built forms, the real
`gpg` for the integration test); nothing here is stored. The extended text
form is what GnuPG 2.2 writes; the canonical form is built by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan import keymath
from agent.scan import rules as rules_mod
from agent.scan.samples import more as enc
from agent.scan.samples import text as text_samples
from agent.scan.samples.text import fingerprint
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS, Hit, gnupg
from agent.scan.validators.der import rsa_proven
from agent.values import KeyFinding
from tests import keys
from tests.unit.scan import rulekit

ENGINES = rulekit.ENGINES
BEFORE = b"\0core\xff" * 300
FUZZ = settings(max_examples=50, deadline=None)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
AnyKey = Key | x25519.X25519PrivateKey


def scan(engine: str, data: bytes) -> list[KeyFinding]:
    return rulekit.scan(engine, data, ("more.yar",))


@cache
def make(kind: str) -> AnyKey:
    if kind == "rsa":
        return keys.cached_rsa(2048, 0)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return x25519.X25519PrivateKey.generate()


ALGORITHM = {"rsa": "rsa", "p256": "ec", "ed25519": "ed25519", "x25519": "x25519"}
FORMS: dict[str, Callable[[AnyKey, bool], bytes]] = {
    "extended": lambda k, p: enc.gnupg_extended(k, protected=p),
    "canonical": lambda k, p: enc.sexp_canonical(enc.gnupg_tree(k, protected=p)),
}


def _one(findings: list[KeyFinding]) -> KeyFinding:
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind", sorted(ALGORITHM))
@pytest.mark.parametrize("protected", [False, True])
def test_key_file_is_found_with_its_fingerprint(
    engine: str, form: str, kind: str, protected: bool
) -> None:
    key = make(kind)
    body = FORMS[form](key, protected)
    data = BEFORE + body + b"\n" + os.urandom(300)
    found = _one(scan(engine, data))
    head = b"(protected-private-key" if protected else b"(private-key"
    if form == "canonical":
        head = b"(21:protected-private-key" if protected else b"(11:private-key"
    assert found.offset == data.index(head)
    assert found.format == ("gnupg-key-protected" if protected else "gnupg-key")
    assert found.algorithm == ALGORITHM[kind]
    assert found.validated
    assert found.encrypted is protected
    assert found.fingerprint == fingerprint(key)
    if kind == "p256":
        assert (found.curve, found.bits) == ("secp256r1", 256)


def test_rsa_numbers_in_the_file_form_one_key() -> None:
    """The parser reads libgcrypt's parameters: p < q, u = p^-1 mod q, p*q = n."""
    key = make("rsa")
    assert isinstance(key, rsa.RSAPrivateKey)
    tree = gnupg.parse(enc.sexp_canonical(enc.gnupg_tree(key)))
    assert isinstance(tree, list) and isinstance(tree[1], list)
    params = {
        p[0]: int.from_bytes(p[1], "big")
        for p in tree[1][1:]
        if isinstance(p, list) and isinstance(p[0], bytes) and isinstance(p[1], bytes)
    }
    n, e, d, p, q, u = (params[k] for k in (b"n", b"e", b"d", b"p", b"q", b"u"))
    assert p < q and p * q == n and (u * p) % q == 1
    assert rsa_proven(n, e, d, q, p, qinv=u)
    assert keymath.rsa_fingerprint(n, e) == fingerprint(key)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "curve", [b'(curve "NIST P-256")', b"(curve NIST\\ P-256)", b"(curve nistp256)"]
)
def test_nist_curve_spellings(engine: str, curve: bytes) -> None:
    key = make("p256")
    text = enc.gnupg_extended(key).replace(b'(curve "NIST P-256")', curve)
    assert curve in text
    assert _one(scan(engine, text)).fingerprint == fingerprint(key)


@pytest.mark.parametrize("engine", ENGINES)
def test_folded_hex_and_crlf(engine: str) -> None:
    key = make("rsa")
    text = enc.gnupg_extended(key).replace(b"\n ", b"\r\n   ")
    assert _one(scan(engine, text)).fingerprint == fingerprint(key)


# ---- negatives ---------------------------------------------------------------------------


def _flip_hex(text: bytes, name: bytes) -> bytes:
    """One hex digit of the named parameter changed."""
    i = text.index(b"(" + name + b" #") + len(name) + 5
    digit = text[i : i + 1]
    return text[:i] + (b"1" if digit != b"1" else b"2") + text[i + 1 :]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "case",
    [
        "public",
        "rsa_d",
        "rsa_p",
        "p256_d",
        "ed25519_d",
        "x25519_d",
        "truncated",
        "random_after",
        "shadowed",
        "option",
        "canonical_cut",
    ],
)
def test_not_a_key(engine: str, case: str) -> None:
    rsa_text = enc.gnupg_extended(make("rsa"))
    data = {
        "public": rsa_text.replace(b"(private-key", b"(public-key").split(b"(d ")[0] + b"))",
        "rsa_d": _flip_hex(rsa_text, b"d"),
        "rsa_p": _flip_hex(rsa_text, b"p"),
        "p256_d": _flip_hex(enc.gnupg_extended(make("p256")), b"d"),
        "ed25519_d": _flip_hex(enc.gnupg_extended(make("ed25519")), b"d"),
        "x25519_d": _flip_hex(enc.gnupg_extended(make("x25519")), b"d"),
        "truncated": rsa_text[: len(rsa_text) // 2],
        "random_after": b"Key: (private-key" + os.urandom(4000),
        "shadowed": b"(20:shadowed-private-key(3:rsa(1:n3:\x01\x00\x01)))",
        "option": b"ssh -i ~/.ssh/id --private-key (private-key)\n",
        "canonical_cut": enc.sexp_canonical(enc.gnupg_tree(make("ed25519")))[:-20],
    }[case]
    assert scan(engine, BEFORE + data) == []


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet='()#|"\\ \n0123456789ABCDEFabcdenpqu:-', max_size=2000).map(str.encode),
    ),
    head=st.sampled_from([b"(private-key", b"(11:private-key", b"(protected-private-key"]),
)
def test_hostile_input_never_raises(body: bytes, head: bytes) -> None:
    data = head + body
    start = data.index(b"private-key")
    hit = Hit("fuzz", {"validator": "gnupg"}, memoryview(data), start, start + 11, 0)
    assert VALIDATORS["gnupg"](hit) == ()


# ---- binary OpenPGP exports (rules/more.yar openpgp_binary_secret_key) ---------------------
# Through the real Scanner: the rule has no strings, and the scanner is what hands a
# start-anchored rule's hit to its validator.

BINARY_RULE = "openpgp_binary_secret_key"


@cache
def _scanner(engine: str) -> Scanner:
    ruleset = rules_mod.load("builtin", engine, validators=set(VALIDATORS))
    return Scanner(ruleset, ScanSettings(number_search="off"))


def scan_stream(engine: str, data: bytes, rule: str = BINARY_RULE) -> list[KeyFinding]:
    return [f for f in _scanner(engine).scan_bytes(data, name="export.gpg") if f.rule == rule]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "data",
    [
        b"\x95\x01\x00\x04" + bytes(300),  # a packet header, then nothing that parses
        b"\x95\xff\xff\x04" + os.urandom(64),  # length past the end
        b"\x94\x05\x04\x00",  # truncated inside the header
        b"\xc5\xdf\xff\x05" + os.urandom(4096),  # new format, v5, random body
        b"\x94\x10\x04" + os.urandom(13) + b"\x99\x01\x0d\x04",  # then a public-key packet
    ],
    ids=["header-then-zeros", "length-past-end", "truncated-header", "v5-random", "then-public"],
)
def test_binary_openpgp_lookalikes_are_refused(engine: str, data: bytes) -> None:
    """A stream that starts like a secret-key packet but does not parse gives nothing, no error."""
    assert scan_stream(engine, data) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_openpgp_only_at_the_start_of_a_stream(engine: str) -> None:
    """The rule reads a stream's first bytes: the same packets further in are not its hit."""
    key = make("ed25519")
    packets = text_samples.pgp_packets(key)
    (finding,) = scan_stream(engine, packets)
    assert finding.fingerprint == fingerprint(key) and finding.offset == 0
    assert scan_stream(engine, b"\0" * 64 + packets) == []
