"""rules/more.yar: hex DER, .NET XML RSA, `openssl -text`, Java KeyStore, under both engines.

Every key is generated at run time; nothing here is stored. Each positive case
plants one encoding in filler, scans with rules/more.yar under YARA-X and
yara-python, calls the validator each rule names and expects exactly one
validated finding with the key's fingerprint at the expected offset.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa, x448
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan import keymath, samples
from agent.scan.engine import CompiledRules, RuleSource, compile_rules
from agent.scan.rules import rule_metas
from agent.scan.samples import more as enc
from agent.scan.validators import VALIDATORS, Hit
from agent.values import KeyFinding
from tests import keys
from tests.keys import dsa1024, rsa2048
from tests.unit.scan import rulekit

ENGINES = ("yara-x", "yara")
BEFORE = 3000
Enc = serialization.Encoding
Priv = serialization.PrivateFormat
FUZZ = settings(max_examples=50, deadline=None)


def scan(engine: str, data: bytes) -> list[KeyFinding]:
    """Every finding rules/more.yar and their validators produce for `data`."""
    return rulekit.scan(engine, data, ("more.yar",))


def run(validator: str, data: bytes, start: int = 0) -> list[KeyFinding]:
    """The validator called directly on a hit at `start` (for hostile-input tests)."""
    hit = Hit("fuzz", {"validator": validator}, memoryview(data), start, start + 4, 0)
    return list(VALIDATORS[validator](hit))


@dataclass(frozen=True)
class Case:
    """A payload holding one key, where its finding must point, and what it must say."""

    payload: bytes
    anchor: bytes  # the finding's offset is where this first occurs in the payload
    key: PrivateKeyTypes
    fmt: str
    algorithm: str
    encrypted: bool = False


def check_case(engine: str, case: Case) -> None:
    data = keys.plant(case.payload, before=BEFORE, after=BEFORE)
    findings = scan(engine, data)
    assert len(findings) == 1, [(f.rule, f.format, f.offset) for f in findings]
    (f,) = findings
    assert f.validated
    assert (f.format, f.algorithm, f.encrypted) == (case.fmt, case.algorithm, case.encrypted)
    assert f.offset == BEFORE + case.payload.index(case.anchor)
    assert f.fingerprint == keys.fingerprint(case.key)
    assert (f.bits, f.curve) == keys.bits_and_curve(case.key)


# ---- 3. hex DER -----------------------------------------------------------------------


def _hex(key: PrivateKeyTypes, fmt: Priv, spell: Callable[[bytes], bytes], algorithm: str) -> Case:
    text = spell(enc.der(key, fmt))
    anchor = text.lstrip(b'{\n "')[:4]
    return Case(b"data = " + text + b";\n", anchor, key, "hex-der", algorithm)


def _go_concat(data: bytes) -> bytes:
    text = data.hex().encode()
    parts = [b'"' + text[i : i + 64] + b'"' for i in range(0, len(text), 64)]
    return b" +\n\t".join(parts)


HEX_CASES: dict[str, Callable[[], Case]] = {
    "pkcs8-rsa-xxd": lambda: _hex(rsa2048(), Priv.PKCS8, enc.xxd_plain, "rsa"),
    "pkcs1-rsa-one-line-upper": lambda: _hex(
        rsa2048(), Priv.TraditionalOpenSSL, lambda d: d.hex().upper().encode(), "rsa"
    ),
    "pkcs1-rsa-go-concat": lambda: _hex(rsa2048(), Priv.TraditionalOpenSSL, _go_concat, "rsa"),
    "pkcs8-rsa-escaped": lambda: _hex(rsa2048(), Priv.PKCS8, enc.hex_escaped, "rsa"),
    "pkcs1-rsa-c-array": lambda: _hex(rsa2048(), Priv.TraditionalOpenSSL, enc.c_array, "rsa"),
    "pkcs8-rsa-java-array": lambda: _hex(
        rsa2048(), Priv.PKCS8, lambda d: enc.c_array(d, java=True), "rsa"
    ),
    "pkcs8-p256-xxd": lambda: _hex(keys.ec_key(), Priv.PKCS8, enc.xxd_plain, "ec"),
    "pkcs8-p384-array": lambda: _hex(keys.ec_key(ec.SECP384R1()), Priv.PKCS8, enc.c_array, "ec"),
    "sec1-p256-hex": lambda: _hex(
        keys.ec_key(), Priv.TraditionalOpenSSL, lambda d: d.hex().encode(), "ec"
    ),
    "sec1-secp256k1-hex": lambda: _hex(
        keys.ec_key(ec.SECP256K1()), Priv.TraditionalOpenSSL, lambda d: d.hex().encode(), "ec"
    ),
    "sec1-p384-escaped": lambda: _hex(
        keys.ec_key(ec.SECP384R1()), Priv.TraditionalOpenSSL, enc.hex_escaped, "ec"
    ),
    "sec1-p521-xxd": lambda: _hex(
        keys.ec_key(ec.SECP521R1()), Priv.TraditionalOpenSSL, enc.xxd_plain, "ec"
    ),
    "pkcs8-ed25519-hex": lambda: _hex(
        keys.ed25519_key(), Priv.PKCS8, lambda d: d.hex().encode(), "ed25519"
    ),
    "pkcs8-ed25519-escaped": lambda: _hex(
        keys.ed25519_key(), Priv.PKCS8, enc.hex_escaped, "ed25519"
    ),
    "pkcs8-x25519-array": lambda: _hex(keys.x25519_key(), Priv.PKCS8, enc.c_array, "x25519"),
    "pkcs8-ed448-hex": lambda: _hex(
        keys.ed448_key(), Priv.PKCS8, lambda d: d.hex().encode(), "ed448"
    ),
    "pkcs8-x448-xxd": lambda: _hex(
        x448.X448PrivateKey.generate(), Priv.PKCS8, enc.xxd_plain, "x448"
    ),
    "pkcs8-dsa-xxd": lambda: _hex(dsa1024(), Priv.PKCS8, enc.xxd_plain, "dsa"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(HEX_CASES))
def test_hex_der_key_gives_one_validated_finding(engine: str, case_id: str) -> None:
    """Hex DER in any spelling gives one finding, at the key's first byte, naming the key."""
    check_case(engine, HEX_CASES[case_id]())


def _spki(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _tampered_pkcs1_hex() -> bytes:
    text = enc.der(rsa2048(), Priv.TraditionalOpenSSL).hex()
    # flip one digit in the middle of the modulus: p * q no longer equals n
    return (text[:100] + ("0" if text[100] != "0" else "1") + text[101:]).encode()


HEX_NEGATIVES: dict[str, Callable[[], bytes]] = {
    "spki-rsa-hex": lambda: _spki(rsa2048()).hex().encode(),
    "spki-ec-xxd": lambda: enc.xxd_plain(_spki(keys.ec_key())),
    "spki-ed25519-array": lambda: enc.c_array(_spki(keys.ed25519_key())),
    "tampered-pkcs1-hex": _tampered_pkcs1_hex,
    "truncated-pkcs8-hex": lambda: enc.der(rsa2048()).hex().encode()[:1500],
    "prefix-then-garbage": lambda: (
        b"308204bd020100300d06092a864886f70d0101010500" + keys.filler(1200, seed=3).hex().encode()
    ),
    "escaped-prefix-then-text": lambda: b'"\\x30\\x82\\x04\\xbd\\x02\\x01\\x00\\x02\\x82 oops"',
    "random-hex": lambda: keys.filler(20_000, seed=4).hex().encode(),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(HEX_NEGATIVES))
def test_hex_look_alikes_give_no_validated_finding(engine: str, case_id: str) -> None:
    """Public keys, truncated or tampered keys and garbage after a real prefix are no finding."""
    data = keys.plant(HEX_NEGATIVES[case_id](), before=BEFORE, after=BEFORE)
    assert [f for f in scan(engine, data) if f.validated] == []


@cache
def _real_hex() -> bytes:
    return enc.der(keys.ec_key(), Priv.TraditionalOpenSSL).hex().encode()


@FUZZ
@given(
    spelling=st.sampled_from((b"", b"\\x", b"0x")),
    body=st.binary(max_size=600),
    cut=st.integers(min_value=0, max_value=240),
)
def test_hex_der_hostile_input_never_raises(spelling: bytes, body: bytes, cut: int) -> None:
    """A real prefix followed by random or cut-short text never raises and never validates."""
    head = _real_hex()[:cut]
    if spelling:
        head = b", ".join(spelling + head[i : i + 2] for i in range(0, len(head), 2))
    data = b"x" + head + body
    assert [f for f in run("hex_der", data, 1) if f.validated] == []


# ---- 1. .NET XML RSA ------------------------------------------------------------------


def _xml(text: str, anchor: bytes = b"<RSAKeyValue>", key: int = 0) -> Case:
    return Case(text.encode(), anchor, rsa2048(key), "xml-rsa", "rsa")


def _php_json(text: str) -> str:
    # PHP's json_encode escapes every slash
    return json.dumps({"key": text}).replace("/", "\\/")


XML_CASES: dict[str, Callable[[], Case]] = {
    "dotnet-one-line": lambda: _xml(enc.xml_rsa(rsa2048())),
    "reversed-order-indented": lambda: _xml(
        enc.xml_rsa(rsa2048(), order=enc.DOTNET_ORDER[::-1], sep="\n    ")
    ),
    "crlf-in-config": lambda: _xml(
        '<appSettings>\r\n  <add key="k">'
        + enc.xml_rsa(rsa2048(1), sep="\r\n    ")
        + "</add>\r\n</appSettings>",
        key=1,
    ),
    "json-string": lambda: _xml(json.dumps({"PrivateKey": enc.xml_rsa(rsa2048(), sep="\n")})),
    "json-php-escaped-slashes": lambda: _xml(_php_json(enc.xml_rsa(rsa2048(), sep="\n"))),
    "xml-escaped-attribute": lambda: _xml(
        '<add key="k" value="'
        + enc.xml_rsa(rsa2048()).replace("<", "&lt;").replace(">", "&gt;")
        + '" />',
        b"&lt;RSAKeyValue",
    ),
    "without-d": lambda: _xml(
        enc.xml_rsa(rsa2048(), order=("Modulus", "Exponent", "P", "Q", "DP", "DQ", "InverseQ"))
    ),
    "utf16le": lambda: Case(
        enc.xml_rsa(rsa2048()).encode("utf-16-le"),
        "<RSAKeyValue>".encode("utf-16-le"),
        rsa2048(),
        "xml-rsa",
        "rsa",
    ),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(XML_CASES))
def test_xml_rsa_key_gives_one_validated_finding(engine: str, case_id: str) -> None:
    """An <RSAKeyValue> with the private members gives one finding naming the key."""
    check_case(engine, XML_CASES[case_id]())


def _xml_tampered() -> bytes:
    nums = rsa2048().private_numbers()
    text = enc.xml_rsa(rsa2048())
    good = base64.b64encode(nums.p.to_bytes(128, "big")).decode()
    bad = base64.b64encode((nums.p + 2).to_bytes(128, "big")).decode()
    return text.replace(good, bad).encode()


XML_NEGATIVES: dict[str, Callable[[], bytes]] = {
    "public-only": lambda: enc.xml_rsa(rsa2048(), private=False).encode(),
    "tampered-p": _xml_tampered,
    "truncated": lambda: enc.xml_rsa(rsa2048()).encode()[:-30],
    "placeholder": lambda: (
        b"<RSAKeyValue><Modulus>...</Modulus><Exponent>AQAB</Exponent>"
        b"<P>...</P><Q>...</Q><D>...</D></RSAKeyValue>"
    ),
    "duplicate-member": lambda: enc.xml_rsa(rsa2048()).replace("</D>", "</D><P>AQAB</P>").encode(),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(XML_NEGATIVES))
def test_xml_look_alikes_give_no_validated_finding(engine: str, case_id: str) -> None:
    """Public XML keys, tampered numbers, truncated blocks and placeholders are no finding."""
    data = keys.plant(XML_NEGATIVES[case_id](), before=BEFORE, after=BEFORE)
    assert [f for f in scan(engine, data) if f.validated] == []


@FUZZ
@given(body=st.text(alphabet="<>/PQDMdulosExpnetIvr=+AQB \n\\", max_size=3000))
def test_xml_hostile_input_never_raises(body: str) -> None:
    """Random members after a real opening tag never raise and never validate."""
    data = b"x<RSAKeyValue>" + body.encode() + b"</RSAKeyValue>"
    assert run("xml_rsa", data, 1) == []


# ---- 2. openssl -text -------------------------------------------------------------------

OPENSSL = shutil.which("openssl")


def openssl_text(key: PrivateKeyTypes, tmp: Path, *args: str) -> bytes:
    """What the real `openssl <args> -text -noout` prints for the key."""
    assert OPENSSL, "openssl must be installed (scripts/check installs it as root)"
    path = tmp / "key.pem"
    path.write_bytes(key.private_bytes(Enc.PEM, Priv.PKCS8, serialization.NoEncryption()))
    cmd = [str(OPENSSL), *(args or ("pkey",)), "-in", str(path), "-text", "-noout"]
    return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout


def _text_case(key: PrivateKeyTypes, text: bytes, algorithm: str) -> Case:
    kind = {"rsa": "rsa", "ec": "ec", "dsa": "dsa"}.get(algorithm, "okp")
    return Case(text, text[:8], key, f"openssl-text-{kind}", algorithm)


TEXT_KEYS: dict[str, Callable[[], PrivateKeyTypes]] = {
    "rsa": rsa2048,
    "p256": keys.ec_key,
    "p384": lambda: keys.ec_key(ec.SECP384R1()),
    "p521": lambda: keys.ec_key(ec.SECP521R1()),
    "secp256k1": lambda: keys.ec_key(ec.SECP256K1()),
    "ed25519": keys.ed25519_key,
    "x25519": keys.x25519_key,
    "ed448": keys.ed448_key,
    "x448": x448.X448PrivateKey.generate,
    "dsa": keys.dsa1024,
}


def _algorithm(key: PrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa"
    return {
        "Ed25519PrivateKey": "ed25519",
        "X25519PrivateKey": "x25519",
        "Ed448PrivateKey": "ed448",
        "X448PrivateKey": "x448",
    }[next(c.__name__ for c in type(key).__mro__ if c.__name__.endswith("PrivateKey"))]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("key_id", sorted(TEXT_KEYS))
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_openssl_text_from_the_python_printer(engine: str, key_id: str, newline: str) -> None:
    """The in-memory printer's output (LF or CRLF) gives one finding naming the key."""
    key = TEXT_KEYS[key_id]()
    check_case(engine, _text_case(key, enc.openssl_text(key, newline=newline), _algorithm(key)))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("key_id", sorted(TEXT_KEYS))
def test_openssl_text_from_the_real_openssl(engine: str, key_id: str, tmp_path: Path) -> None:
    """`openssl pkey -text` output for every key type gives one finding naming the key."""
    key = TEXT_KEYS[key_id]()
    check_case(engine, _text_case(key, openssl_text(key, tmp_path), _algorithm(key)))


@pytest.mark.parametrize(("tool", "key_id"), [("rsa", "rsa"), ("ec", "p256"), ("dsa", "dsa")])
def test_openssl_rsa_and_ec_text_commands(tool: str, key_id: str, tmp_path: Path) -> None:
    """`openssl rsa -text` and `openssl ec -text` print the same layout and are found too."""
    key = TEXT_KEYS[key_id]()
    text = openssl_text(key, tmp_path, tool).replace(b"\n", b"\r\n")
    check_case("yara-x", _text_case(key, text, _algorithm(key)))


def _text_tampered() -> bytes:
    text = enc.openssl_text(rsa2048())
    head, _, rest = text.partition(b"prime1:\n    ")
    return head + b"prime1:\n    " + (b"01" if rest[:2] != b"01" else b"02") + rest[2:]


def _text_ec_wrong_curve() -> bytes:
    return enc.openssl_text(keys.ec_key(ec.SECP256K1())).replace(b"secp256k1", b"prime256v1")


def _text_okp_other_pub() -> bytes:
    a, b = enc.openssl_text(keys.ed25519_key()), enc.openssl_text(keys.ed25519_key())
    return a.split(b"pub:")[0] + b"pub:" + b.split(b"pub:")[1]


@cache
def _other_dsa() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)


def _text_dsa_other(member: bytes) -> bytes:
    """The session's DSA key printed with `member` and what follows taken from another key."""
    a, b = enc.openssl_text(keys.dsa1024()), enc.openssl_text(_other_dsa())
    return a.split(member)[0] + member + b.split(member)[1]


TEXT_NEGATIVES: dict[str, Callable[[], bytes]] = {
    "dsa-pub-of-another-key": lambda: _text_dsa_other(b"pub:"),
    "dsa-q-and-g-of-another-key": lambda: _text_dsa_other(b"Q:"),
    "tampered-rsa-prime": _text_tampered,
    "rsa-truncated": lambda: enc.openssl_text(rsa2048())[:1500],
    "ec-wrong-curve-name": _text_ec_wrong_curve,
    "ed25519-pub-of-another-key": _text_okp_other_pub,
    "header-then-garbage": lambda: b"Private-Key: (2048 bit, 2 primes)\nmodulus:\n    00:zz\n",
    "placeholder": lambda: b"Private-Key: (256 bit)\npriv:\n    ...\npub:\n    ...\n",
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(TEXT_NEGATIVES))
def test_openssl_text_look_alikes_give_no_validated_finding(engine: str, case_id: str) -> None:
    """Tampered, truncated, mismatched and placeholder printouts are no finding."""
    data = keys.plant(TEXT_NEGATIVES[case_id](), before=BEFORE, after=BEFORE)
    assert [f for f in scan(engine, data) if f.validated] == []


@pytest.mark.parametrize("key_id", ["rsa", "p256", "ed25519", "x448"])
def test_openssl_public_text_is_no_finding(key_id: str, tmp_path: Path) -> None:
    """`openssl pkey -pubin -text` output (the public half) matches no rule and is no finding."""
    assert OPENSSL, "openssl must be installed (scripts/check installs it as root)"
    key = TEXT_KEYS[key_id]()
    path = tmp_path / "pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(Enc.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cmd = [str(OPENSSL), "pkey", "-pubin", "-in", str(path), "-text", "-noout"]
    text = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    data = keys.plant(text, before=BEFORE, after=BEFORE)
    for engine in ENGINES:
        assert scan(engine, data) == []


@FUZZ
@given(
    head=st.sampled_from(("Private-Key: (256 bit)", "ED25519 Private-Key:", "X448 Private-Key:")),
    body=st.text(alphabet="0123456789abcdef: \n\rprivubmdlsASN1OID", max_size=3000),
)
def test_openssl_text_hostile_input_never_raises(head: str, body: str) -> None:
    """Random labels and hex after a real header never raise and never validate."""
    data = b"x" + head.encode() + b"\n" + body.encode()
    assert run("openssl_text", data, 1) == []


# ---- 5. PEM in JSON with escaped slashes and \\uXXXX escapes (rules/pem.yar) -------------


@cache
def pem_rules(engine: str) -> CompiledRules:
    path = Path(__file__).resolve().parents[3] / "rules" / "pem.yar"
    return compile_rules([RuleSource(str(path), path.read_text())], engine)


def _json_pem(escape: Callable[[str], str]) -> bytes:
    pem = rsa2048().private_bytes(Enc.PEM, Priv.PKCS8, serialization.NoEncryption()).decode()
    return escape(json.dumps({"private_key": pem})).encode()


JSON_ESCAPES: dict[str, Callable[[str], str]] = {
    "php-escaped-slash": lambda t: t.replace("/", "\\/"),
    "u002F-slash": lambda t: t.replace("/", "\\u002F"),
    "u002B-plus-system-text-json": lambda t: t.replace("+", "\\u002B"),
    "u002b-lowercase": lambda t: t.replace("+", "\\u002b"),
    "u003D-padding": lambda t: t.replace("=", "\\u003D"),
    "u000a-newline": lambda t: t.replace("\\n", "\\u000a"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(JSON_ESCAPES))
def test_json_escaped_pem_variants_are_found(engine: str, case_id: str) -> None:
    """PHP's `\\/` and `\\uXXXX` escapes inside a JSON PEM string still give the key."""
    data = keys.plant(_json_pem(JSON_ESCAPES[case_id]), before=BEFORE, after=BEFORE)
    found: list[KeyFinding] = []
    for match in pem_rules(engine).scan(data):
        for start, length in match.matches:
            hit = Hit(match.rule, match.meta, memoryview(data), start, start + length, 0)
            found.extend(VALIDATORS[str(match.meta["validator"])](hit))
    assert [f.fingerprint for f in found if f.validated] == [keys.fingerprint(rsa2048())]


# ---- 4. Java KeyStore -------------------------------------------------------------------

KEYTOOL = shutil.which("keytool")
JCEKS = b"\xce\xce\xce\xce"
ENTRY_K = b"\x00\x00\x00\x01\x00\x01k"


def _store(key: PrivateKeyTypes, **kwargs: object) -> Case:
    store = enc.jks([("k", key, [enc.self_signed(key)])], **kwargs)  # type: ignore[arg-type]
    # a finding points at its entry: tag 1, then the alias "k"
    return Case(store, ENTRY_K, key, "jks", _algorithm(key), encrypted=True)


def _store_after_trusted(key: PrivateKeyTypes, **kwargs: object) -> Case:
    ca = keys.ec_key()
    store = enc.jks(
        [
            ("ca", None, [enc.self_signed(ca, "ca")]),
            ("k", key, [enc.self_signed(key), enc.self_signed(ca)]),
        ],
        **kwargs,  # type: ignore[arg-type]
    )
    return Case(store, ENTRY_K, key, "jks", _algorithm(key), encrypted=True)


JKS_CASES: dict[str, Callable[[], Case]] = {
    "jks-v2-rsa": lambda: _store(rsa2048()),
    "jks-v1-rsa": lambda: _store(rsa2048(), version=1),
    "jks-v2-ec-p384": lambda: _store(keys.ec_key(ec.SECP384R1())),
    "jks-v2-ed25519": lambda: _store(keys.ed25519_key()),
    "jks-key-after-trusted-cert-with-chain": lambda: _store_after_trusted(rsa2048()),
    "jceks-ec": lambda: _store(keys.ec_key(), magic=JCEKS),
    "jceks-key-after-trusted-cert": lambda: _store_after_trusted(keys.ec_key(), magic=JCEKS),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(JKS_CASES))
def test_keystore_private_key_entry_gives_one_encrypted_finding(engine: str, case_id: str) -> None:
    """A private-key entry is one validated, encrypted finding named by its certificate's key."""
    check_case(engine, JKS_CASES[case_id]())


def test_keystore_with_two_private_keys_gives_two_findings() -> None:
    """Each private-key entry is its own finding, at its own entry."""
    a, b = rsa2048(), keys.ec_key()
    store = enc.jks([("a", a, [enc.self_signed(a)]), ("b", b, [enc.self_signed(b)])])
    found = scan("yara-x", keys.plant(store, before=BEFORE, after=BEFORE))
    assert sorted(f.fingerprint or "" for f in found) == sorted(
        [keys.fingerprint(a), keys.fingerprint(b)]
    )
    assert len({f.offset for f in found}) == 2


@pytest.mark.parametrize("store_type", ["JKS", "JCEKS"])
def test_keystore_written_by_keytool(store_type: str, tmp_path: Path) -> None:
    """A keystore generated by the JDK's keytool is found, named by its certificate's key."""
    assert KEYTOOL, "a JDK must be installed (scripts/check installs default-jdk-headless)"
    path, cert = tmp_path / "store", tmp_path / "cert.der"
    common = ["-keystore", str(path), "-storepass", "changeit", "-storetype", store_type]
    gen = [str(KEYTOOL), "-genkeypair", "-alias", "app", "-keyalg", "EC", "-groupname", "secp256r1"]
    gen += ["-dname", "CN=self-test", "-keypass", "changeit", "-validity", "1", *common]
    subprocess.run(gen, capture_output=True, check=True, timeout=120)
    export = [str(KEYTOOL), "-exportcert", "-alias", "app", "-file", str(cert), *common]
    subprocess.run(export, capture_output=True, check=True, timeout=120)
    public = x509.load_der_x509_certificate(cert.read_bytes()).public_key()
    data = path.read_bytes()
    # keytool's default password opens a JKS key (Sun's KeyProtector); JCEKS keys stay sealed
    opened = store_type == "JKS"
    for engine in ENGINES:
        (f,) = scan(engine, data)
        assert (f.format, f.algorithm, f.validated) == ("jks", "ec", True)
        assert (f.encrypted, f.default_password) == (not opened, opened)
        assert f.fingerprint == keymath.fingerprint(public)


def test_jks_key_under_a_default_password_is_a_proven_key() -> None:
    """A JKS entry sealed with `changeit` is opened: the key's own fingerprint, not encrypted."""
    key = keys.ec_key(ec.SECP384R1())
    store = enc.jks([("a", key, [enc.self_signed(key)])], password="changeit")
    (f,) = scan("yara-x", keys.plant(store, before=BEFORE, after=BEFORE))
    assert (f.encrypted, f.default_password, f.bits) == (False, True, 384)
    assert f.fingerprint == keys.fingerprint(key)


def test_jks_key_opened_but_not_matching_its_certificate_stays_encrypted() -> None:
    """A default password that opens a key of another certificate proves nothing: encrypted."""
    key, other = rsa2048(), keys.ec_key()
    store = enc.jks([("a", key, [enc.self_signed(other)])], password="changeit")
    (f,) = scan("yara-x", keys.plant(store, before=BEFORE, after=BEFORE))
    assert (f.encrypted, f.default_password) == (True, False)


@pytest.mark.parametrize("password", [b"notasecret", b"changeit"])
def test_pkcs12_under_a_default_password_is_a_proven_key(password: bytes) -> None:
    """Google's service-account .p12 (`notasecret`) and keytool's default: opened, said."""
    key = rsa2048()
    pfx = pkcs12.serialize_key_and_certificates(
        b"privatekey", key, None, None, serialization.BestAvailableEncryption(password)
    )
    (f,) = rulekit.scan("yara-x", keys.plant(pfx, before=BEFORE, after=BEFORE), ("pkcs12.yar",))
    assert (f.format, f.encrypted, f.default_password) == ("pkcs12", False, True)
    assert f.fingerprint == keys.fingerprint(key)
    pfx = pkcs12.serialize_key_and_certificates(
        b"k", key, None, None, serialization.BestAvailableEncryption(b"a real passphrase")
    )
    (f,) = rulekit.scan("yara-x", keys.plant(pfx, before=BEFORE, after=BEFORE), ("pkcs12.yar",))
    assert (f.encrypted, f.default_password) == (True, False)


def _trusted_only() -> bytes:
    a, b = keys.ec_key(), rsa2048()
    return enc.jks([("a", None, [enc.self_signed(a)]), ("b", None, [enc.self_signed(b)])])


def _bad_epki() -> bytes:
    key = keys.ec_key()
    store = enc.jks([("k", key, [enc.self_signed(key)])])
    at = store.index(b"\x04\x82") if b"\x04\x82" in store else store.index(b"\x04\x81")
    return store[:at] + b"\x05" + store[at + 1 :]  # the OCTET STRING tag becomes NULL


JKS_NEGATIVES: dict[str, Callable[[], bytes]] = {
    "trusted-certificates-only": _trusted_only,
    "jceks-trusted-only": lambda: enc.jks(
        [("ca", None, [enc.self_signed(keys.ec_key())])], magic=JCEKS
    ),
    "truncated": lambda: _store(keys.ec_key()).payload[:300],
    "magic-then-garbage": lambda: (
        b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x01"
        + keys.filler(3000, seed=5)
    ),
    "key-blob-not-encrypted-pkcs8": _bad_epki,
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case_id", sorted(JKS_NEGATIVES))
def test_keystore_look_alikes_give_no_finding(engine: str, case_id: str) -> None:
    """Trusted-certificate stores, truncated or garbage stores are no finding."""
    data = keys.plant(JKS_NEGATIVES[case_id](), before=BEFORE, after=BEFORE)
    assert scan(engine, data) == []


def test_keystore_certificate_with_a_bad_version_is_no_finding() -> None:
    """A certificate whose version field was damaged (InvalidVersion, not a ValueError) never raises."""
    store = _store(keys.ec_key()).payload
    at = store.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT version v3
    damaged = store[:at] + bytes.fromhex("a003020103") + store[at + 5 :]
    assert run("jks", damaged) == []


@cache
def _real_store() -> bytes:
    key = keys.ec_key()
    return enc.jks([("k", key, [enc.self_signed(key)])])


@FUZZ
@given(
    cut=st.integers(min_value=8, max_value=600),
    body=st.binary(max_size=2000),
    flip=st.integers(min_value=0, max_value=599),
)
def test_keystore_hostile_input_never_raises(cut: int, body: bytes, flip: int) -> None:
    """A real keystore cut short, followed by random bytes, or with one byte flipped never raises."""
    store = _real_store()
    run("jks", store[:cut] + body)
    flipped = bytearray(store)
    flipped[flip % len(store)] ^= 0xFF
    run("jks", bytes(flipped))


# ---- rules and self-test samples ------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_more_rules_compile_under_both_engines(engine: str) -> None:
    """rules/more.yar compiles with YARA-X and yara-python."""
    assert rulekit.compiled(engine, ("more.yar",)).engine == engine


def test_every_more_rule_names_a_validator_and_existing_selftests() -> None:
    """Each rule's meta names a known validator, a severity and self-test generators that exist."""
    for rule, meta in rule_metas(rulekit.sources(("more.yar",))).items():
        assert meta["validator"] in VALIDATORS, rule
        assert meta["severity"] == "high"
        assert meta["format"] and meta["description"]
        for name in meta["selftest"].split(","):
            assert name in samples.SAMPLES, (rule, name)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_selftest_sample_validates_with_its_rule(engine: str) -> None:
    """Each rule finds each of its self-test samples, validated, with the sample's fingerprint."""
    for rule, meta in rule_metas(rulekit.sources(("more.yar",))).items():
        for name in meta["selftest"].split(","):
            sample = enc.SAMPLES[name]()
            found = [f for f in scan(engine, sample.data) if f.rule == rule and f.validated]
            assert [f.fingerprint for f in found] == [sample.fingerprint], (rule, name)
