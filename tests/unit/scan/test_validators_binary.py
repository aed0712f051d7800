"""Binary key encodings end to end: rules (yara-x and yara-python) -> VALIDATORS -> KeyFinding."""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from agent.scan import keymath
from agent.scan.engine import CompiledRules, RuleSource, compile_rules
from agent.scan.samples import binary as samples
from agent.scan.validators import VALIDATORS, Hit
from agent.values import KeyFinding
from tests.keys import cached_rsa, fingerprint, plant

RULES_DIR = Path(__file__).resolve().parents[3] / "rules"
RULE_FILES = ("der.yar", "blobs.yar", "openssh.yar", "pkcs12.yar")
BEFORE = 3000  # filler before the key: the expected offset

DER = serialization.Encoding.DER
NONE = serialization.NoEncryption()
PKCS8 = serialization.PrivateFormat.PKCS8
TRAD = serialization.PrivateFormat.TraditionalOpenSSL


@cache
def _rules(engine: str) -> CompiledRules:
    sources = [RuleSource(str(RULES_DIR / n), (RULES_DIR / n).read_text()) for n in RULE_FILES]
    return compile_rules(sources, engine)


@pytest.fixture(params=["yara-x", "yara"])
def rules(request: pytest.FixtureRequest) -> CompiledRules:
    return _rules(request.param)


def scan(rules: CompiledRules, data: bytes) -> list[KeyFinding]:
    """Every finding the validators return for every match of the binary rules."""
    view = memoryview(data)
    out: list[KeyFinding] = []
    for match in rules.scan(data):
        for offset, length in match.spots(0):
            hit = Hit(match.rule, match.meta, view, offset, offset + length, 0)
            out += VALIDATORS[str(match.meta["validator"])](hit)
    return out


def the_finding(rules: CompiledRules, payload: bytes) -> KeyFinding:
    findings = [f for f in scan(rules, plant(payload, before=BEFORE, after=2000)) if f.validated]
    assert len(findings) == 1, findings
    return findings[0]


# --- hand-built DER (only what cryptography cannot write) ------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def der_int(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def pkcs1(n: int, e: int, d: int, p: int, q: int) -> bytes:
    nums = (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))
    return tlv(0x30, b"".join(der_int(v) for v in nums))


def rsa512() -> tuple[bytes, str]:
    """cryptography will not generate 512-bit RSA: old keys are built from primes here."""

    def prime() -> int:
        while True:
            c = secrets.randbits(256) | (3 << 254) | 1
            if keymath.probably_prime(c, 7):
                return c

    e = 65537
    while True:
        p, q = prime(), prime()
        lam = (p - 1) * (q - 1)
        if p != q and lam % e:
            break
    n = p * q
    return pkcs1(n, e, pow(e, -1, lam), max(p, q), min(p, q)), keymath.rsa_fingerprint(n, e)


CURVE_OIDS = {
    "secp256r1": "2a8648ce3d030107",
    "secp384r1": "2b81040022",
    "secp521r1": "2b81040023",
    "secp256k1": "2b8104000a",
}


def sec1(key: ec.EllipticCurvePrivateKey, *, params: bool, public: bool) -> bytes:
    size = (key.curve.key_size + 7) // 8
    body = der_int(1) + tlv(0x04, key.private_numbers().private_value.to_bytes(size, "big"))
    if params:
        body += tlv(0xA0, tlv(0x06, bytes.fromhex(CURVE_OIDS[key.curve.name])))
    if public:
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        body += tlv(0xA1, tlv(0x03, b"\x00" + point))
    return tlv(0x30, body)


def ed25519_v2(key: ed25519.Ed25519PrivateKey) -> bytes:
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, NONE)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    alg = tlv(0x30, tlv(0x06, bytes.fromhex("2b6570")))
    return tlv(0x30, der_int(1) + alg + tlv(0x04, tlv(0x04, seed)) + tlv(0x81, b"\x00" + pub))


def pkcs12_pbe_encrypted(ciphertext_len: int = 1224) -> bytes:
    """EncryptedPrivateKeyInfo with pbeWithSHAAnd3-KeyTripleDES-CBC (what old PFX bags hold)."""
    params = tlv(0x30, tlv(0x04, secrets.token_bytes(8)) + der_int(2048))
    alg = tlv(0x30, tlv(0x06, bytes.fromhex("2a864886f70d010c0103")) + params)
    return tlv(0x30, alg + tlv(0x04, secrets.token_bytes(ciphertext_len)))


@cache
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=2048)


def der_case(key_fn: Callable[[], object], fmt: serialization.PrivateFormat) -> Callable[[], tuple]:
    def make() -> tuple:
        key = key_fn()
        return key.private_bytes(DER, fmt, NONE), fingerprint(key)  # type: ignore[attr-defined]

    return make


def built(key_fn: Callable[[], object], encode: Callable[[object], bytes]) -> Callable[[], tuple]:
    def make() -> tuple:
        key = key_fn()
        return encode(key), fingerprint(key)  # type: ignore[arg-type]

    return make


DER_CASES: dict[str, tuple[Callable[[], tuple], str, str, int | None, str | None]] = {
    # name: (make -> (bytes, fingerprint), format, algorithm, bits, curve)
    "pkcs1-rsa512": (rsa512, "der-pkcs1", "rsa", 512, None),
    "pkcs1-rsa1024": (der_case(lambda: cached_rsa(1024), TRAD), "der-pkcs1", "rsa", 1024, None),
    "pkcs1-rsa2048": (der_case(lambda: cached_rsa(2048), TRAD), "der-pkcs1", "rsa", 2048, None),
    "pkcs1-rsa4096": (der_case(lambda: cached_rsa(4096), TRAD), "der-pkcs1", "rsa", 4096, None),
    "pkcs8-rsa2048": (der_case(lambda: cached_rsa(2048), PKCS8), "der-pkcs8", "rsa", 2048, None),
    "pkcs8-p256": (
        der_case(lambda: ec.generate_private_key(ec.SECP256R1()), PKCS8),
        "der-pkcs8",
        "ec",
        256,
        "secp256r1",
    ),
    "pkcs8-p384": (
        der_case(lambda: ec.generate_private_key(ec.SECP384R1()), PKCS8),
        "der-pkcs8",
        "ec",
        384,
        "secp384r1",
    ),
    "pkcs8-p521": (
        der_case(lambda: ec.generate_private_key(ec.SECP521R1()), PKCS8),
        "der-pkcs8",
        "ec",
        521,
        "secp521r1",
    ),
    "pkcs8-secp256k1": (
        der_case(lambda: ec.generate_private_key(ec.SECP256K1()), PKCS8),
        "der-pkcs8",
        "ec",
        256,
        "secp256k1",
    ),
    "pkcs8-ed25519": (
        der_case(ed25519.Ed25519PrivateKey.generate, PKCS8),
        "der-pkcs8",
        "ed25519",
        None,
        None,
    ),
    "pkcs8-ed448": (
        der_case(ed448.Ed448PrivateKey.generate, PKCS8),
        "der-pkcs8",
        "ed448",
        None,
        None,
    ),
    "pkcs8-x25519": (
        der_case(x25519.X25519PrivateKey.generate, PKCS8),
        "der-pkcs8",
        "x25519",
        None,
        None,
    ),
    "pkcs8-x448": (der_case(x448.X448PrivateKey.generate, PKCS8), "der-pkcs8", "x448", None, None),
    "pkcs8-dsa2048": (der_case(dsa_key, PKCS8), "der-pkcs8", "dsa", 2048, None),
    "pkcs8v2-ed25519": (
        built(ed25519.Ed25519PrivateKey.generate, ed25519_v2),
        "der-pkcs8",
        "ed25519",
        None,
        None,
    ),
    "sec1-p256": (
        der_case(lambda: ec.generate_private_key(ec.SECP256R1()), TRAD),
        "der-sec1",
        "ec",
        256,
        "secp256r1",
    ),
    "sec1-p384": (
        der_case(lambda: ec.generate_private_key(ec.SECP384R1()), TRAD),
        "der-sec1",
        "ec",
        384,
        "secp384r1",
    ),
    "sec1-p521": (
        der_case(lambda: ec.generate_private_key(ec.SECP521R1()), TRAD),
        "der-sec1",
        "ec",
        521,
        "secp521r1",
    ),
    "sec1-secp256k1-no-params": (
        built(
            lambda: ec.generate_private_key(ec.SECP256K1()),
            lambda k: sec1(k, params=False, public=True),
        ),
        "der-sec1",
        "ec",
        256,
        "secp256k1",
    ),
    "sec1-p384-no-public": (
        built(
            lambda: ec.generate_private_key(ec.SECP384R1()),
            lambda k: sec1(k, params=True, public=False),
        ),
        "der-sec1",
        "ec",
        384,
        "secp384r1",
    ),
    "sec1-p256-bare": (
        built(
            lambda: ec.generate_private_key(ec.SECP256R1()),
            lambda k: sec1(k, params=False, public=False),
        ),
        "der-sec1",
        "ec",
        256,
        "secp256r1",
    ),
}


@pytest.mark.parametrize("case", DER_CASES, ids=str)
def test_der_private_key_is_found_validated_and_named(rules: CompiledRules, case: str) -> None:
    """A DER private key in filler gives one validated finding with its fingerprint, size and offset."""
    make, fmt, algorithm, bits, curve = DER_CASES[case]
    payload, fp = make()
    f = the_finding(rules, payload + secrets.token_bytes(64))  # bytes after the key do not matter
    assert (f.format, f.algorithm, f.bits, f.curve) == (fmt, algorithm, bits, curve)
    assert (f.fingerprint, f.offset, f.encrypted) == (fp, BEFORE, False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            DER, PKCS8, serialization.BestAvailableEncryption(b"pw")
        ),
        pkcs12_pbe_encrypted,
    ],
    ids=["pbes2-aes256", "pkcs12-pbe-3des"],
)
def test_encrypted_pkcs8_is_an_encrypted_finding(
    rules: CompiledRules, make: Callable[[], bytes]
) -> None:
    """An EncryptedPrivateKeyInfo that parses completely is a validated, encrypted finding without fingerprint."""
    f = the_finding(rules, make())
    assert (f.format, f.encrypted, f.fingerprint, f.offset) == (
        "der-encrypted-pkcs8",
        True,
        None,
        BEFORE,
    )


@pytest.mark.parametrize(
    ("bits", "header", "alg"),
    [(1024, True, 0xA400), (2048, True, 0x2400), (4096, True, 0xA400), (2048, False, 0xA400)],
    ids=["1024-keyx", "2048-sign", "4096-keyx", "2048-headerless"],
)
def test_capi_privatekeyblob_is_found(
    rules: CompiledRules, bits: int, header: bool, alg: int
) -> None:
    """A CryptoAPI PRIVATEKEYBLOB, with or without its BLOBHEADER, is one validated RSA finding."""
    key = cached_rsa(bits)
    f = the_finding(rules, samples.capi_blob(key, header=header, alg=alg))
    assert (f.format, f.algorithm, f.bits) == ("capi-privatekeyblob", "rsa", bits)
    assert (f.fingerprint, f.offset) == (fingerprint(key), BEFORE)


@pytest.mark.parametrize(("bits", "full"), [(2048, False), (2048, True), (4096, True)])
def test_cng_rsa_blob_is_found(rules: CompiledRules, bits: int, full: bool) -> None:
    """CNG RSAPRIVATE and RSAFULLPRIVATE blobs are validated RSA findings."""
    key = cached_rsa(bits)
    f = the_finding(rules, samples.cng_rsa_blob(key, full=full))
    assert f.format == ("cng-rsafullprivate" if full else "cng-rsaprivate")
    assert (f.algorithm, f.bits, f.fingerprint, f.offset) == ("rsa", bits, fingerprint(key), BEFORE)


@pytest.mark.parametrize(
    ("curve", "usage", "generic"),
    [
        (ec.SECP256R1(), b"ECS", False),
        (ec.SECP384R1(), b"ECK", False),
        (ec.SECP521R1(), b"ECS", False),
        (ec.SECP256R1(), b"ECK", True),
        (ec.SECP521R1(), b"ECS", True),
    ],
    ids=["ECS2", "ECK4", "ECS6", "ECKV-p256", "ECSV-p521"],
)
def test_cng_ecc_blob_is_found(
    rules: CompiledRules, curve: ec.EllipticCurve, usage: bytes, generic: bool
) -> None:
    """A CNG ECC private blob is validated when d*G is the stored point, with the curve named."""
    key = ec.generate_private_key(curve)
    f = the_finding(rules, samples.cng_ecc_blob(key, usage=usage, generic=generic))
    assert (f.format, f.algorithm, f.curve) == ("cng-eccprivate", "ec", curve.name)
    assert (f.fingerprint, f.offset) == (fingerprint(key), BEFORE)


OPENSSH_KEYS: dict[str, tuple[Callable[[], object], str, int | None, str | None]] = {
    "ed25519": (ed25519.Ed25519PrivateKey.generate, "ed25519", None, None),
    "rsa2048": (lambda: cached_rsa(2048), "rsa", 2048, None),
    "p256": (lambda: ec.generate_private_key(ec.SECP256R1()), "ec", 256, "secp256r1"),
    "p384": (lambda: ec.generate_private_key(ec.SECP384R1()), "ec", 384, "secp384r1"),
    "p521": (lambda: ec.generate_private_key(ec.SECP521R1()), "ec", 521, "secp521r1"),
}


@pytest.mark.parametrize("case", OPENSSH_KEYS)
def test_openssh_key_v1_is_found(rules: CompiledRules, case: str) -> None:
    """A raw openssh-key-v1 private key is validated against its public blob and named by it."""
    make, algorithm, bits, curve = OPENSSH_KEYS[case]
    key = make()
    f = the_finding(rules, samples.openssh_blob(key))  # type: ignore[arg-type]
    assert (f.format, f.algorithm, f.bits, f.curve) == ("openssh-key-v1", algorithm, bits, curve)
    assert (f.fingerprint, f.offset, f.encrypted) == (fingerprint(key), BEFORE, False)  # type: ignore[arg-type]


def encrypted_openssh(key: ed25519.Ed25519PrivateKey) -> bytes:
    """What ssh-keygen writes with a passphrase (aes256-ctr + bcrypt), built without the bcrypt module."""
    plain = samples.openssh_blob(key)
    pos = len(b"openssh-key-v1\x00")
    for _ in range(3):
        (size,) = struct.unpack_from(">I", plain, pos)
        pos += 4 + size
    (nkeys,) = struct.unpack_from(">I", plain, pos)
    (pub_len,) = struct.unpack_from(">I", plain, pos + 4)
    public = plain[pos + 4 : pos + 8 + pub_len]

    def s(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    kdf = s(secrets.token_bytes(16)) + struct.pack(">I", 16)
    head = b"openssh-key-v1\x00" + s(b"aes256-ctr") + s(b"bcrypt") + s(kdf)
    return head + struct.pack(">I", nkeys) + public + s(secrets.token_bytes(160))


def test_encrypted_openssh_key_is_named_by_its_public_blob(rules: CompiledRules) -> None:
    """An encrypted openssh-key-v1 key is a validated, encrypted finding with the public blob's fingerprint."""
    key = ed25519.Ed25519PrivateKey.generate()
    f = the_finding(rules, encrypted_openssh(key))
    assert (f.encrypted, f.algorithm, f.fingerprint) == (True, "ed25519", fingerprint(key))


def test_findings_from_blob_reports_the_callers_format() -> None:
    """The PEM validator's entry point reports the format it is given at the hit's offset."""
    from agent.scan.validators import openssh

    key = ed25519.Ed25519PrivateKey.generate()
    hit = Hit("pem_openssh", {"format": "pem-openssh"}, memoryview(b"x" * 64), 10, 20, 1000)
    (f,) = openssh.findings_from_blob(samples.openssh_blob(key), hit, fmt="pem-openssh")
    assert (f.format, f.offset, f.validated, f.fingerprint) == (
        "pem-openssh",
        1010,
        True,
        fingerprint(key),
    )


@pytest.mark.parametrize("password", [None, b""], ids=["no-password", "empty-password"])
def test_pfx_without_a_real_password_yields_its_key(
    rules: CompiledRules, password: bytes | None
) -> None:
    """A PFX that opens with no or an empty password reports its private key, validated and named."""
    key = cached_rsa(2048)
    data = samples.pfx(key, password)
    if password is not None:
        assert (
            pkcs12.load_pkcs12(data, b"").key is not None
        )  # the sample really has an empty password
    findings = [
        f for f in scan(rules, plant(data, before=BEFORE, after=2000)) if f.format == "pkcs12"
    ]
    assert len(findings) == 1
    f = findings[0]
    assert (f.validated, f.encrypted, f.algorithm, f.bits) == (True, False, "rsa", 2048)
    assert (f.fingerprint, f.offset) == (fingerprint(key), BEFORE)


def test_password_protected_pfx_is_an_encrypted_finding(rules: CompiledRules) -> None:
    """A PFX protected by a real password is validated and encrypted, with no fingerprint when certs are encrypted."""
    data = samples.pfx(ec.generate_private_key(ec.SECP256R1()), b"correct horse")
    (f,) = [f for f in scan(rules, plant(data, before=BEFORE, after=2000)) if f.format == "pkcs12"]
    assert (f.validated, f.encrypted, f.fingerprint, f.offset) == (True, True, None, BEFORE)


def test_pfx_with_unknown_password_is_named_by_its_clear_certificate(rules: CompiledRules) -> None:
    """When the MAC needs an unknown password but the certificate bag is clear, the certificate names the key."""
    key = ec.generate_private_key(ec.SECP256R1())
    version, auth_safe = samples._der_children(samples.pfx(key, None))[:2]
    sha256 = tlv(0x30, bytes.fromhex("0609608648016503040201") + b"\x05\x00")
    mac = tlv(
        0x30,
        tlv(0x30, sha256 + tlv(0x04, secrets.token_bytes(32)))
        + tlv(0x04, b"s" * 16)
        + der_int(2048),
    )
    data = tlv(0x30, version + auth_safe + mac)
    (f,) = [f for f in scan(rules, plant(data, before=BEFORE, after=2000)) if f.format == "pkcs12"]
    assert (f.validated, f.encrypted, f.fingerprint) == (True, True, fingerprint(key))


# --- negatives ----------------------------------------------------------------------------------


def self_signed_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return samples.self_signed(key).public_bytes(DER)


def csr_der(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr")])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(DER)
    )


def flipped_prime(key: rsa.RSAPrivateKey) -> bytes:
    nums = key.private_numbers()
    n = nums.public_numbers.n
    good = pkcs1(n, nums.public_numbers.e, nums.d, nums.p, nums.q)
    p_bytes = nums.p.to_bytes(nums.p.bit_length() // 8 + 1, "big")
    at = good.index(p_bytes) + len(p_bytes) // 2
    return good[:at] + bytes([good[at] ^ 0x10]) + good[at + 1 :]


def capi_flipped_prime(key: rsa.RSAPrivateKey) -> bytes:
    blob = samples.capi_blob(key)
    at = 8 + 12 + key.key_size // 8 + 10  # inside prime1, after BLOBHEADER, RSAPUBKEY and n
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


def capi_public(key: rsa.RSAPrivateKey) -> bytes:
    n = key.public_key().public_numbers()
    return (
        struct.pack("<BBHI", 6, 2, 0, 0xA400)
        + b"RSA1"
        + struct.pack("<II", key.key_size, n.e)
        + n.n.to_bytes(key.key_size // 8, "little")
    )


def cng_rsa_public(key: rsa.RSAPrivateKey) -> bytes:
    n = key.public_key().public_numbers()
    return (
        b"RSA1"
        + struct.pack("<5I", key.key_size, 3, key.key_size // 8, 0, 0)
        + n.e.to_bytes(3, "big")
        + n.n.to_bytes(key.key_size // 8, "big")
    )


def cng_ecc_public(magic: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    size = (key.curve.key_size + 7) // 8
    pub = key.public_key().public_numbers()
    return (
        magic + struct.pack("<I", size) + pub.x.to_bytes(size, "big") + pub.y.to_bytes(size, "big")
    )


def ssh_public_blob(key: ed25519.Ed25519PrivateKey) -> bytes:
    import base64

    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return base64.b64decode(line.split()[1])


def openssh_bad_checkints(key: ed25519.Ed25519PrivateKey) -> bytes:
    blob = bytearray(samples.openssh_blob(key))
    marker = blob.rindex(b"\x00\x00\x00\x0bssh-ed25519")  # the private section's key type
    blob[marker - 1] ^= 0xFF  # last byte of the second check integer
    return bytes(blob)


def header_then_random(header: str) -> bytes:
    return bytes.fromhex(header) + secrets.token_bytes(4096)


NEGATIVES: dict[str, Callable[[], bytes]] = {
    "rsa-spki": lambda: (
        cached_rsa(2048)
        .public_key()
        .public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "rsa-pkcs1-public": lambda: (
        cached_rsa(2048).public_key().public_bytes(DER, serialization.PublicFormat.PKCS1)
    ),
    "ec-spki": lambda: (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "x509-certificate": lambda: self_signed_der(ec.generate_private_key(ec.SECP256R1())),
    "csr": lambda: csr_der(cached_rsa(2048)),
    "rsa-one-prime-flipped": lambda: flipped_prime(cached_rsa(2048)),
    "capi-one-prime-flipped": lambda: capi_flipped_prime(cached_rsa(2048)),
    "pkcs1-header-random": lambda: header_then_random("308204a40201000282010100"),
    "pkcs8-rsa-header-random": lambda: header_then_random(
        "308204be020100300d06092a864886f70d0101010500048204a8"
    ),
    "sec1-header-random": lambda: header_then_random("30770201010420"),
    "pkcs8-ed25519-header-random": lambda: header_then_random("302e020100300506032b657004"),
    "epki-pbes2-header-random": lambda: header_then_random("30820100305d06092a864886f70d01050d30"),
    "capi-header-random": lambda: header_then_random("0702000000a40000525341320008000001000100"),
    "capi-publickeyblob": lambda: capi_public(cached_rsa(2048)),
    "cng-rsa2-header-random": lambda: header_then_random(
        "525341320008000003000000000100008000000080000000"
    ),
    "cng-rsa1-public": lambda: cng_rsa_public(cached_rsa(2048)),
    "cng-ecs1-public": lambda: cng_ecc_public(b"ECS1", ec.generate_private_key(ec.SECP256R1())),
    "cng-eck3-public": lambda: cng_ecc_public(b"ECK3", ec.generate_private_key(ec.SECP384R1())),
    "cng-ecs5-public": lambda: cng_ecc_public(b"ECS5", ec.generate_private_key(ec.SECP521R1())),
    "cng-ecs2-header-random": lambda: header_then_random("4543533220000000"),
    "openssh-magic-random": lambda: (
        b"openssh-key-v1\x00\x00\x00\x00\x04none" + secrets.token_bytes(4096)
    ),
    "openssh-bad-checkints": lambda: openssh_bad_checkints(ed25519.Ed25519PrivateKey.generate()),
    "ssh-agent-public-blob": lambda: ssh_public_blob(ed25519.Ed25519PrivateKey.generate()),
    "pfx-header-random": lambda: header_then_random("308209c40201033082098a06092a864886f70d010701"),
    "pfx-certificates-only": lambda: pkcs12.serialize_key_and_certificates(
        None, None, None, [samples.self_signed(ec.generate_private_key(ec.SECP256R1()))], NONE
    ),
    "random": lambda: secrets.token_bytes(1 << 20),
}


@pytest.mark.parametrize("case", NEGATIVES)
def test_look_alikes_are_not_validated_findings(rules: CompiledRules, case: str) -> None:
    """Public keys, certificates, CSRs, broken keys, public blobs and headers before garbage give no validated finding."""
    findings = scan(rules, plant(NEGATIVES[case](), before=BEFORE, after=2000))
    assert [f for f in findings if f.validated] == []


def test_every_binary_selftest_sample_validates_under_its_rule(rules: CompiledRules) -> None:
    """Each rule's selftest samples exist and give a validated finding with the sample's fingerprint."""
    import re

    for name in RULE_FILES:
        text = (RULES_DIR / name).read_text()
        for rule, tests in re.findall(r"rule (\w+).*?selftest = \"([^\"]+)\"", text, re.DOTALL):
            for sample_name in tests.split(","):
                sample = samples.SAMPLES[sample_name]()
                view = memoryview(sample.data)
                found = []
                for m in rules.scan(sample.data):
                    if m.rule != rule:
                        continue
                    for off, ln in m.spots(0):
                        found += VALIDATORS[str(m.meta["validator"])](
                            Hit(m.rule, m.meta, view, off, off + ln, 0)
                        )
                assert any(f.validated and f.fingerprint == sample.fingerprint for f in found), (
                    rule,
                    sample_name,
                )


@pytest.mark.parametrize("engine", ["yara-x", "yara"])
@pytest.mark.parametrize("name", RULE_FILES)
def test_each_rule_file_compiles_alone_and_names_known_validators(engine: str, name: str) -> None:
    """Every binary rule file compiles under both engines and names a validator in VALIDATORS."""
    from agent.scan.rules import check_validators

    source = RuleSource(str(RULES_DIR / name), (RULES_DIR / name).read_text())
    check_validators([source], set(VALIDATORS))
    assert compile_rules([source], engine).scan(b"\x00" * 64) == []


_RSA_ENCRYPTION_ALG = bytes.fromhex("300d06092a864886f70d0101010500")
_RSA_PSS_ALG = bytes.fromhex("300b06092a864886f70d01010a")  # rsassaPss, no parameters


def test_pkcs8_rsa_pss_key_is_found_as_the_rsa_key_it_is(rules: CompiledRules) -> None:
    """`openssl genpkey -algorithm RSA-PSS` writes PKCS#8 with the rsassaPss OID: same numbers,
    same fingerprint as the plain RSA key (the rsaEncryption SPKI)."""
    key = cached_rsa(2048)
    der = key.private_bytes(DER, PKCS8, NONE)
    assert der[4 + 3 : 4 + 3 + len(_RSA_ENCRYPTION_ALG)] == _RSA_ENCRYPTION_ALG
    body = der[4:].replace(_RSA_ENCRYPTION_ALG, _RSA_PSS_ALG, 1)
    pss = b"\x30\x82" + len(body).to_bytes(2, "big") + body
    f = the_finding(rules, pss)
    assert (f.format, f.algorithm, f.bits, f.fingerprint) == (
        "der-pkcs8",
        "rsa",
        2048,
        fingerprint(key),
    )


# --- base64 PFX (rules/pkcs12.yar base64_pkcs12_pfx) --------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "bad-char",
        "certificates-only",
        "random-after-header",
        "binary-pfx-base64-twice",
    ],
)
def test_base64_pfx_look_alikes(rules: CompiledRules, case: str) -> None:
    """Cut short, broken, key-less or doubly encoded PFX text gives no base64-pkcs12 finding."""
    key = ec.generate_private_key(ec.SECP256R1())
    text = base64.b64encode(samples.pfx(key, b""))
    if case == "truncated":
        data = text[: len(text) // 2]
    elif case == "bad-char":
        data = text[:200] + b"*" + text[201:]
    elif case == "certificates-only":
        data = base64.b64encode(NEGATIVES["pfx-certificates-only"]())
    elif case == "random-after-header":
        data = text[:16] + base64.b64encode(secrets.token_bytes(3000))
    else:
        data = base64.b64encode(text)
    assert [f for f in scan(rules, b"x=" + data + b"\n") if f.format == "base64-pkcs12"] == []
