"""Keys written by the real tools (gpg, openssl), found through the real Scanner; start-up imports.

Subprocesses, so integration: the unit tests build the same forms by hand.
Keys are generated at run time in temporary GnuPG homes and folders.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, x25519

from agent.scan import keymath
from agent.scan import rules as rules_mod
from agent.scan.samples import binary as samples
from agent.scan.samples.text import fingerprint
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS, age
from agent.values import KeyFinding
from tests.keys import rsa2048

ENGINES = ("yara-x", "yara")


@cache
def _scanner(engine: str) -> Scanner:
    ruleset = rules_mod.load("builtin", engine, validators=set(VALIDATORS))
    return Scanner(ruleset, ScanSettings(number_search="off"))


def scan(engine: str, data: bytes, rule: str) -> list[KeyFinding]:
    """The findings of one rule for `data` scanned as one file by the real Scanner."""
    return [f for f in _scanner(engine).scan_bytes(data, name="f") if f.rule == rule]


# ---- gpg ---------------------------------------------------------------------------------


def _gpg(home: Path, *args: str) -> bytes:
    """What gpg prints (batch, passphrase on the command line) in the GnuPG home `home`."""
    return subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", *args],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout


@contextlib.contextmanager
def _gpg_home(tmp_path: Path) -> Iterator[Path]:
    """A fresh GnuPG home; its gpg-agent is stopped at the end, whatever happened."""
    assert shutil.which("gpg") is not None, "gpg must be installed (scripts/check installs it)"
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    try:
        yield home
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
            timeout=30,
        )


def _own_rsa_fingerprint(text: bytes) -> str:
    """n and e read straight from the extended-format file, without the validator's parser."""
    flat = re.sub(rb"\s+", b"", text)
    n = re.search(rb"\(n#([0-9A-F]+)#\)", flat)
    e = re.search(rb"\(e#([0-9A-F]+)#\)", flat)
    assert n is not None and e is not None
    return keymath.rsa_fingerprint(int(n.group(1), 16), int(e.group(1), 16))


@pytest.mark.parametrize("passphrase", ["", "correct horse"])
def test_real_gpg_key_file(tmp_path: Path, passphrase: str) -> None:
    """A private-keys-v1.d file written by gpg (clear or protected) is found, named by its n and e."""
    with _gpg_home(tmp_path) as home:
        _gpg(
            home,
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            "ci <ci@example.invalid>",
            "rsa2048",
            "sign",
            "never",
        )
    (path,) = (home / "private-keys-v1.d").glob("*.key")
    data = path.read_bytes()
    for engine in ENGINES:
        (found,) = scan(engine, data, "gnupg_private_key")
        assert found.fingerprint == _own_rsa_fingerprint(data)
        assert found.algorithm == "rsa" and found.bits == 2048 and found.validated
        assert found.encrypted is bool(passphrase)
        assert found.format == ("gnupg-key-protected" if passphrase else "gnupg-key")


@pytest.mark.parametrize(("algo", "passphrase"), [("rsa3072", ""), ("ed25519", "correct horse")])
def test_real_gpg_binary_export(tmp_path: Path, algo: str, passphrase: str) -> None:
    """`gpg --export-secret-keys` without armour: found, the same keys as the armoured export.

    gpg 2.2 writes the secret-key packet in the old format (0x95 / 0x94); the
    public export (`gpg --export`) is no finding.
    """
    with _gpg_home(tmp_path) as home:
        _gpg(home, "--passphrase", passphrase, "--quick-gen-key", "ci <ci@example.invalid>", algo)
        pw = ("--passphrase", passphrase)
        binary = _gpg(home, *pw, "--export-secret-keys")
        armoured = _gpg(home, *pw, "--armor", "--export-secret-keys")
        public = _gpg(home, "--export")
    assert binary[0] in (0x94, 0x95)
    for engine in ENGINES:
        found = scan(engine, binary, "openpgp_binary_secret_key")
        expected = {f.fingerprint for f in scan(engine, armoured, "pgp_private_key_block")}
        assert expected and found
        assert all(f.validated and f.format == "pgp-binary" for f in found)
        assert {f.fingerprint for f in found} == expected  # the primary key and its subkey
        assert all(f.encrypted is bool(passphrase) for f in found)
        assert scan(engine, public, "openpgp_binary_secret_key") == []


# ---- openssl -----------------------------------------------------------------------------

PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
NONE = serialization.NoEncryption()


def _openssl_pfx(tmp_path: Path, key: ec.EllipticCurvePrivateKey, password: str) -> bytes:
    """What `openssl pkcs12 -export` writes for the key and a self-signed certificate."""
    import subprocess

    key_pem = tmp_path / "k.pem"
    cert_pem = tmp_path / "c.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, PKCS8, NONE))
    cert_pem.write_bytes(samples.self_signed(key).public_bytes(serialization.Encoding.PEM))
    command = ["openssl", "pkcs12", "-export", "-inkey", str(key_pem), "-in", str(cert_pem)]
    out = subprocess.run(
        [*command, "-passout", f"pass:{password}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    key_pem.unlink()
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("wrap", [0, 64, 76], ids=["one-line", "wrapped-64", "wrapped-76"])
def test_base64_pfx_from_openssl_is_found(engine: str, tmp_path: Path, wrap: int) -> None:
    """`openssl pkcs12 -export -passout pass:` | base64, in a Kubernetes-Secret-like YAML value."""
    key = ec.generate_private_key(ec.SECP256R1())
    encoded = base64.b64encode(_openssl_pfx(tmp_path, key, ""))
    if wrap:
        encoded = b"\n    ".join(encoded[i : i + wrap] for i in range(0, len(encoded), wrap))
    data = b"apiVersion: v1\nkind: Secret\ndata:\n  tls.pfx: " + encoded + b"\n"
    start = data.index(b"MII")
    (f,) = scan(engine, data, "base64_pkcs12_pfx")
    assert (f.validated, f.encrypted, f.fingerprint, f.offset) == (
        True,
        False,
        fingerprint(key),
        start,
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_base64_pfx_with_a_password_is_an_encrypted_finding(engine: str, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b'{"pfx":"' + base64.b64encode(_openssl_pfx(tmp_path, key, "hunter2")) + b'"}'
    (f,) = scan(engine, data, "base64_pkcs12_pfx")
    assert (f.validated, f.encrypted) == (True, True)


# ---- puttygen: ssh.com (Tectia) keys ----------------------------------------------------


def _puttygen(tmp_path: Path, *args: str) -> bytes:
    """What puttygen writes to `out` (passphrases come from files, never a prompt)."""
    out = tmp_path / "out"
    subprocess.run(
        ["puttygen", *args, "-o", str(out)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    data = out.read_bytes()
    out.unlink()
    return data


@pytest.mark.parametrize("engine", ENGINES)
def test_puttygen_sshcom_keys_are_found(engine: str, tmp_path: Path) -> None:
    """RSA converted from PEM, DSA generated by puttygen, and a passphrase-protected one."""
    key = rsa2048()
    pem = tmp_path / "k.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, TRADITIONAL, NONE))
    empty, secret = tmp_path / "empty", tmp_path / "secret"
    empty.write_bytes(b"")
    secret.write_bytes(b"hunter2\n")
    clear = _puttygen(tmp_path, str(pem), "-O", "private-sshcom")
    (f,) = scan(engine, clear, "sshcom_private_key")
    assert (f.fingerprint, f.encrypted, f.bits) == (fingerprint(key), False, 2048)
    protected = _puttygen(
        tmp_path, str(pem), "-O", "private-sshcom", "--new-passphrase", str(secret)
    )
    (f,) = scan(engine, protected, "sshcom_private_key")
    assert (f.algorithm, f.encrypted, f.fingerprint) == ("rsa", True, None)
    pem.unlink()
    dsa_key = tmp_path / "d.ssh2"
    dsa_key.write_bytes(
        _puttygen(
            tmp_path,
            "-t",
            "dsa",
            "-b",
            "1024",
            "--new-passphrase",
            str(empty),
            "-O",
            "private-sshcom",
        )
    )
    public = _ssh_dss(
        _puttygen(tmp_path, str(dsa_key), "--old-passphrase", str(empty), "-O", "public-openssh")
    )
    (f,) = scan(engine, dsa_key.read_bytes(), "sshcom_private_key")
    assert (f.algorithm, f.bits, f.fingerprint) == ("dsa", 1024, keymath.fingerprint(public))


def _ssh_dss(line: bytes) -> dsa.DSAPublicKey:
    """An `ssh-dss` public key line, read by hand (cryptography's SSH DSA loader is deprecated)."""
    blob = base64.b64decode(line.split()[1])
    fields, at = [], 0
    while at < len(blob):
        n = int.from_bytes(blob[at : at + 4], "big")
        fields.append(blob[at + 4 : at + 4 + n])
        at += 4 + n
    name, p, q, g, y = fields
    assert name == b"ssh-dss"
    p_, q_, g_, y_ = (int.from_bytes(v, "big") for v in (p, q, g, y))
    return dsa.DSAPublicNumbers(y_, dsa.DSAParameterNumbers(p_, q_, g_)).public_key()


# ---- openssl: PVK ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_openssl_encrypted_pvk_is_an_encrypted_finding(engine: str, tmp_path: Path) -> None:
    """`openssl rsa -outform PVK -pvk-strong` (RC4 from the legacy provider); a clear one is the blob."""
    key = rsa2048()
    pem = tmp_path / "k.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, PKCS8, NONE))
    out = tmp_path / "k.pvk"
    base = ["openssl", "rsa", "-in", str(pem), "-outform", "PVK", "-out", str(out)]
    legacy = ["-provider", "legacy", "-provider", "default"]
    subprocess.run(
        [*base, "-pvk-strong", "-passout", "pass:hunter2", *legacy],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (f,) = scan(engine, out.read_bytes(), "pvk_encrypted_private_key")
    assert (f.format, f.algorithm, f.bits, f.encrypted) == ("pvk-encrypted", "rsa", 2048, True)
    subprocess.run([*base, "-pvk-none"], check=True, capture_output=True, timeout=60)
    pem.unlink()
    clear = out.read_bytes()
    assert scan(engine, clear, "pvk_encrypted_private_key") == []
    (f,) = scan(engine, clear, "capi_rsa_privatekeyblob")
    assert f.fingerprint == fingerprint(key)


# ---- openssl: SM2 ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_openssl_sm2_keys_are_found_with_openssls_fingerprint(engine: str, tmp_path: Path) -> None:
    """`openssl genpkey -algorithm SM2` (PKCS#8), `openssl ec` (SM2 PRIVATE KEY) and their DER."""
    pem = tmp_path / "sm2.pem"

    def openssl(*args: str) -> bytes:
        return subprocess.run(
            ["openssl", *args], check=True, capture_output=True, timeout=60
        ).stdout

    openssl("genpkey", "-algorithm", "SM2", "-out", str(pem))
    spki = openssl("pkey", "-in", str(pem), "-pubout", "-outform", "DER")
    expected = "sha256:" + hashlib.sha256(spki).hexdigest()
    forms = {
        "pkcs8-pem": pem.read_bytes(),
        "sec1-pem": openssl("ec", "-in", str(pem)),
        "pkcs8-der": openssl("pkey", "-in", str(pem), "-outform", "DER"),
        "sec1-der": openssl("ec", "-in", str(pem), "-outform", "DER"),
    }
    pem.unlink()
    assert b"SM2 PRIVATE KEY" in forms["sec1-pem"]
    for name, data in forms.items():
        found = [f for f in _scanner(engine).scan_bytes(data, name="k") if f.validated]
        assert [(f.curve, f.fingerprint) for f in found] == [("sm2", expected)], name


# ---- start-up ----------------------------------------------------------------------------


def test_validator_modules_are_not_imported_at_start() -> None:
    """Importing the table imports no validator module (and so not cryptography's x509)."""
    code = (
        "import sys; import agent.scan.validators as v; "
        "print(sorted(m for m in sys.modules if m.startswith('agent.scan.validators.')"
        " or m == 'cryptography.x509'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_rich_is_not_imported_by_the_agent() -> None:
    """structlog would import rich (installed here for import-linter): 60 ms and 5 MB per process.

    The console renderer still prints an exception, the plain way.
    """
    assert importlib.metadata.distribution("rich"), "the dev venv should have rich"
    code = (
        "import sys; import agent.cli.sweep; import structlog; from agent import logs\n"
        "logs.configure(json=False)\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n"
        "    structlog.get_logger().exception('test.failure_logged')\n"
        "print(sys.modules.get('rich'))"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert res.stdout.strip() == "None"
    assert "ZeroDivisionError" in res.stderr
    assert "test.failure_logged" in res.stderr


# ---- age, minisign, signify ------------------------------------------------------------


def _run(*argv: str, stdin: bytes = b"") -> None:
    subprocess.run(argv, input=stdin, check=True, capture_output=True, timeout=120)


def _ed25519_spki_fingerprint(raw: bytes) -> str:
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    return keymath.fingerprint(public)


@pytest.mark.parametrize("engine", ENGINES)
def test_age_keygen_identity_is_found(engine: str, tmp_path: Path) -> None:
    """age-keygen's file and the identity alone in an env file (SOPS_AGE_KEY); the recipient
    line age-keygen prints names the same key."""
    path = tmp_path / "keys.txt"
    _run("age-keygen", "-o", str(path))
    data = path.read_bytes()
    recipient = re.search(rb"age1[0-9a-z]+", data)
    assert recipient is not None
    decoded = age.bech32_decode(recipient.group().decode())
    assert decoded is not None
    expected = keymath.fingerprint(x25519.X25519PublicKey.from_public_bytes(decoded[1]))
    (f,) = scan(engine, data, "age_secret_key")
    assert (f.algorithm, f.validated, f.fingerprint) == ("x25519", True, expected)
    identity = data.splitlines()[-1]
    (f,) = scan(engine, b"export SOPS_AGE_KEY=" + identity + b"\n", "age_secret_key")
    assert f.fingerprint == expected
    broken = identity[:-1] + (b"Q" if identity[-1:] != b"Q" else b"P")  # checksum fails
    assert scan(engine, broken, "age_secret_key") == []
    path.unlink()


@pytest.mark.parametrize("engine", ENGINES)
def test_minisign_and_signify_keys_are_found(engine: str, tmp_path: Path) -> None:
    """Clear keys are proven with the public key the tool wrote; protected ones are encrypted
    findings; public keys and signatures (same comment line) are not keys."""
    ms_pub, ms_key = tmp_path / "m.pub", tmp_path / "m.key"
    _run("minisign", "-G", "-W", "-p", str(ms_pub), "-s", str(ms_key))
    expected = _ed25519_spki_fingerprint(base64.b64decode(ms_pub.read_text().split()[-1])[10:])
    (f,) = scan(engine, ms_key.read_bytes(), "minisign_secret_key")
    assert (f.format, f.validated, f.encrypted, f.fingerprint) == (
        "minisign",
        True,
        False,
        expected,
    )
    message = tmp_path / "msg"
    message.write_bytes(b"release\n")
    _run("minisign", "-S", "-m", str(message), "-s", str(ms_key), "-W")
    signature = (tmp_path / "msg.minisig").read_bytes()
    assert scan(engine, ms_pub.read_bytes() + signature, "minisign_secret_key") == []
    ms_key.unlink()
    ms_pub.unlink()
    _run("minisign", "-G", "-p", str(ms_pub), "-s", str(ms_key), stdin=b"hunter2\nhunter2\n")
    (f,) = scan(engine, ms_key.read_bytes(), "minisign_secret_key")
    assert (f.format, f.encrypted, f.fingerprint) == ("minisign", True, None)
    ms_key.unlink()
    sg_pub, sg_sec = tmp_path / "s.pub", tmp_path / "s.sec"
    _run("signify-openbsd", "-G", "-n", "-p", str(sg_pub), "-s", str(sg_sec))
    expected = _ed25519_spki_fingerprint(base64.b64decode(sg_pub.read_text().split()[-1])[10:])
    (f,) = scan(engine, sg_sec.read_bytes(), "minisign_secret_key")
    assert (f.format, f.validated, f.encrypted, f.fingerprint) == (
        "signify",
        True,
        False,
        expected,
    )
    assert scan(engine, sg_pub.read_bytes(), "minisign_secret_key") == []
    sg_sec.unlink()
    sg_pub.unlink()
    _run("signify-openbsd", "-G", "-p", str(sg_pub), "-s", str(sg_sec), stdin=b"pw\npw\n")
    (f,) = scan(engine, sg_sec.read_bytes(), "minisign_secret_key")
    assert (f.format, f.encrypted, f.fingerprint) == ("signify", True, None)
    sg_sec.unlink()


@pytest.mark.parametrize("engine", ENGINES)
def test_wg_genkey_key_in_a_config_is_found(engine: str, tmp_path: Path) -> None:
    """`wg genkey` in a wg-quick configuration; the fingerprint names what `wg pubkey` prints."""
    secret = subprocess.run(
        ["wg", "genkey"], check=True, capture_output=True, timeout=60
    ).stdout.strip()
    public = subprocess.run(
        ["wg", "pubkey"], input=secret + b"\n", check=True, capture_output=True, timeout=60
    ).stdout.strip()
    expected = keymath.fingerprint(
        x25519.X25519PublicKey.from_public_bytes(base64.b64decode(public))
    )
    config = b"[Interface]\nPrivateKey = " + secret + b"\nListenPort = 51820\n"
    (f,) = scan(engine, config, "wireguard_private_key")
    assert (f.algorithm, f.validated, f.fingerprint) == ("x25519", True, expected)
