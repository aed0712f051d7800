"""Real processes holding fresh keys, captured with gcore: the number search finds every RSA key.

One core per process kind, captured once per module. No inventory is used:
each key must be found from its numbers alone, with the right fingerprint.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import lz4.frame
import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from agent.scan import dumps
from tests import cores, keys

pytestmark = [pytest.mark.slow]


def _require(*tools: str) -> None:
    """Missing tools fail the test (scripts/check installs them as root); never a skip."""
    missing = [t for t in tools if not cores.have(t)]
    assert not missing, f"install {', '.join(missing)} (scripts/check does so when run as root)"


def _fingerprints(printed: str) -> set[str]:
    return {
        "sha256:" + hashlib.sha256(bytes.fromhex(w)).hexdigest()
        for w in printed.split()
        if w != "READY"
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("gcore")
    return tmp_path_factory.mktemp("cores")


def _python_core(workdir: Path, script: str, *args: str) -> tuple[Path, set[str]]:
    """The core of a Python holder script and the fingerprints of the keys it printed."""
    with cores.holder(cores.python_argv(script, *args)) as (proc, out):
        core = cores.gcore(proc.pid, workdir)
    return core, _fingerprints(out)


@pytest.fixture(scope="module")
def python_core(workdir: Path) -> Iterator[tuple[Path, set[str]]]:
    """A Python process that loaded RSA 2048/3072/4096 keys from a buffer it then zeroed."""
    yield _python_core(workdir, cores.PYTHON_RSA, "0", "2048", "3072", "4096")


def test_python_cryptography_keys_are_found_from_numbers_alone(
    python_core: tuple[Path, set[str]],
) -> None:
    """Every RSA key a Python process holds is found in its core, with the dumped process named."""
    core, expected = python_core
    result = cores.scan_numbers(core)
    assert len(expected) == 3
    assert expected <= result.fingerprints
    assert all(f.validated and f.format == "rsa-numbers-le" for f in result.findings)
    assert result.info is not None and result.info.kind == "elf-core"
    assert result.info.process is not None and result.info.process.name and result.info.process.pid
    assert all(result.info.address_of(f.offset) is not None for f in result.findings)
    print(f"python core: {result.size >> 20} MiB at {result.mib_per_second:.0f} MiB/s")


def _scan_one(path: Path, *options: str) -> dict[str, Any]:
    """The one finding event `egress-guard scan --dry-run` prints for a file with keys."""
    cli = [sys.executable, "-m", "agent.cli", "--log-format", "json", "scan"]
    done = subprocess.run(
        [*cli, *options, "--format", "jsonl", "--dry-run", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    (event,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return cast(dict[str, Any], event)


def test_scan_cli_names_the_process_and_the_keys_of_a_gcore_core(
    python_core: tuple[Path, set[str]], tmp_path: Path
) -> None:
    """`egress-guard scan core` as a responder runs it: process, keys, fingerprints, addresses.

    Windows of 4 MiB put gcore's notes (written after the memory) far past the
    first window, as they are in any core of a real server.
    """
    core, expected = python_core
    assert core.stat().st_size > 3 * 4 * 1024 * 1024
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[scan]\nchunk_mib = 4\noverlap_kib = 256\n[agent]\nstate_dir = "{tmp_path / "state"}"\n'
    )
    event = _scan_one(core, "--config", str(config))
    assert event["process"]["name"].startswith("python")
    assert event["process"]["pid"] > 0
    assert "python" in event["process"]["executable"]
    found = event["egress_guard"]["findings"]
    assert expected <= {f["fingerprint"] for f in found}
    assert all(f["address"] for f in found if f["fingerprint"] in expected)
    assert not [
        p for p in event["egress_guard"].get("problems", []) if p["error_type"] == "dump_corrupt"
    ]


def test_ec_keys_held_by_openssl_are_found_from_their_bignums(
    workdir: Path, tmp_path: Path
) -> None:
    """Generated and decoded EC keys of four curves, used once, then only held in memory.

    No PEM or DER of them is left in the process (the decoded ones' buffer was
    zeroed), so each is found as OpenSSL's BIGNUMs and proven by its public point;
    through `egress-guard scan`, as a responder runs it. Ed25519, X25519, Ed448
    and X448 keys are found from OpenSSL's ECX_KEY (private bytes beside the public).
    """
    curves = ("p256", "p384", "p521", "k256", "ed25519", "x25519", "ed448", "x448")
    specs = [f"{how}:{curve}" for how in ("generated", "decoded") for curve in curves]
    core, expected = _python_core(workdir, cores.PYTHON_EC, *specs)
    assert len(expected) == 16
    result = cores.scan_numbers(core)
    by_key = result.by_fingerprint
    assert expected <= set(by_key), sorted(f.curve or "" for f in result.findings)
    assert {by_key[fp].curve or by_key[fp].algorithm for fp in expected} == {
        *("secp256r1", "secp384r1", "secp521r1", "secp256k1"),
        *("ed25519", "x25519", "ed448", "x448"),
    }
    assert {by_key[fp].format for fp in expected} == {"ec-bignum-le", "okp-openssl"}
    assert all(by_key[fp].validated for fp in expected)
    assert result.info is not None
    assert all(result.info.address_of(by_key[fp].offset) for fp in expected)
    event = _scan_one(core, "--config", str(_config(tmp_path)))
    assert expected <= {f["fingerprint"] for f in event["egress_guard"]["findings"]}
    core.unlink()


def test_rsa_keys_held_as_python_ints_are_found(workdir: Path) -> None:
    """A Python process holding keys as ints (private_numbers()), their OpenSSL objects freed."""
    core, expected = _python_core(workdir, cores.PYTHON_INTS, "1024", "2048", "3072")
    found = cores.scan_numbers(core).by_fingerprint
    assert expected <= set(found)
    assert {found[fp].format for fp in expected} == {"rsa-numbers-pylong"}
    assert not any(found[fp].exponent_assumed for fp in expected)  # d is an int there too
    core.unlink()


def test_ec_keys_held_as_python_ints_are_found(workdir: Path) -> None:
    """EC keys as Python ints: private_numbers() of OpenSSL keys (objects freed), and python-ecdsa
    keys (pure Python, behind python-jose), whose point tables hold thousands of ints."""
    curves = ("p256", "p384", "p521", "k256")
    specs = [f"{how}:{curve}" for how in ("numbers", "ecdsa") for curve in curves]
    core, expected = _python_core(workdir, cores.PYTHON_EC_INTS, *specs)
    assert len(expected) == 8
    result = cores.scan_numbers(core)
    found = result.by_fingerprint
    assert expected <= set(found)
    assert {found[fp].format for fp in expected} == {"ec-numbers-pylong"}
    assert {found[fp].curve for fp in expected} == {
        "secp256r1",
        "secp384r1",
        "secp521r1",
        "secp256k1",
    }
    assert not [p for p in result.problems if "budget" in p.detail]
    core.unlink()


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    return config


def test_systemd_coredump_zstd_core_is_an_elf_core_after_decompression(
    python_core: tuple[Path, set[str]], workdir: Path
) -> None:
    """A core in systemd-coredump's zstd form, once decompressed, is read and searched like the raw core."""
    core, expected = python_core
    packed = workdir / "core.python3.0.0123456789abcdef.4242.1700000000000000.zst"
    packed.write_bytes(zstandard.ZstdCompressor(level=1).compress(core.read_bytes()))
    assert dumps.is_dump_name(packed.name)
    with packed.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as reader:
        raw = reader.read()
    result = cores.scan_numbers(raw)
    assert result.info is not None and result.info.kind == "elf-core"
    assert expected <= result.fingerprints


def test_systemd_coredump_lz4_core_is_scanned_through_the_cli(
    python_core: tuple[Path, set[str]], workdir: Path
) -> None:
    """systemd before 246 (RHEL 8) writes cores as LZ4 frames: `egress-guard scan` opens the
    frame, reads the core inside, names its process and finds every key from its numbers."""
    core, expected = python_core
    packed = workdir / "core.python3.0.0123456789abcdef.4242.1700000000000000.lz4"
    packed.write_bytes(lz4.frame.compress(core.read_bytes()))
    event = _scan_one(packed)
    found = event["egress_guard"]["findings"]
    assert expected <= {f["fingerprint"] for f in found}
    assert {f["container"] for f in found if f["fingerprint"] in expected} == {
        f"{packed.name}!{packed.name.removesuffix('.lz4')}"
    }
    assert event["process"]["name"].startswith("python")


def test_key_in_a_core_with_hundreds_of_mib_of_random_heap_is_found(workdir: Path) -> None:
    """200 MiB of random heap around the keys: the keys are found, and nothing is skipped.

    Random memory is a few long islands of random-looking cells, which the
    number search pairs at a cost that follows the islands, not the bytes.
    """
    core, expected = _python_core(workdir, cores.PYTHON_RSA, "200", "2048")
    try:
        result = cores.scan_numbers(core)
        assert expected <= result.fingerprints
        assert result.size >= 200 << 20
        assert not [p for p in result.problems if p.error_type == "not_deep_scanned"]
        print(f"random-heap core: {result.size >> 20} MiB at {result.mib_per_second:.0f} MiB/s")
    finally:
        core.unlink()


def _cert(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openssl_s_server_key_is_found_after_its_files_are_deleted(
    workdir: Path, kind: str
) -> None:
    """openssl s_server's RSA or P-256 key, whose files were deleted after start, is found in its core.

    RSA from its BIGNUM limbs (p * q = n), EC from its BIGNUM scalar and point.
    """
    _require("gcore", "openssl")
    key = keys.rsa_key(2048) if kind == "rsa" else keys.ec_key()
    key_pem = keys.pem(key).data
    kf, cf = workdir / "server.key", workdir / "server.crt"
    kf.write_bytes(key_pem)
    cf.write_bytes(_cert(key_pem))
    port = cores.free_port()
    argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-key", str(kf)]
    argv += ["-cert", str(cf), "-www", "-quiet"]
    core = cores.server_core(argv, port, workdir, remove=(kf, cf))
    result = cores.scan_numbers(core)
    assert keys.fingerprint(key) in result.fingerprints
    assert result.info is not None and result.info.process is not None
    assert result.info.process.name == "openssl"


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=lambda c: c.name)
def test_gnutls_serv_ec_key_is_found_from_its_limbs(workdir: Path, curve: ec.EllipticCurve) -> None:
    """gnutls-serv (nettle on GMP, not OpenSSL) holds the scalar and the point's coordinates
    as little-endian limbs, each in its own allocation: found and proven by the point."""
    _require("gcore", "gnutls-serv", "certtool")
    key = keys.ec_key(curve)
    kf, cf = workdir / "server.key", workdir / "server.crt"
    kf.write_bytes(keys.pem(key).data)
    template = workdir / "cert.cfg"
    template.write_text("cn = egress-guard test\nexpiration_days = 1\n")
    subprocess.run(
        [
            *("certtool", "--generate-self-signed", "--load-privkey", str(kf)),
            *("--template", str(template), "--outfile", str(cf)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = cores.free_port()
    argv = ["gnutls-serv", "--x509keyfile", str(kf), "--x509certfile", str(cf), "-p", str(port)]
    core = cores.server_core(argv, port, workdir, remove=(kf,))
    try:
        result = cores.scan_numbers(core)
        found = result.by_fingerprint
        assert keys.fingerprint(key) in found, [(f.format, f.curve) for f in result.findings]
        assert found[keys.fingerprint(key)].format == "ec-numbers-le"
    finally:
        core.unlink()


def test_node_create_private_key_is_found(workdir: Path) -> None:
    """A key Node loaded with crypto.createPrivateKey is found from its numbers."""
    _require("gcore", "node")
    key = keys.rsa_key(2048)
    pem_file = workdir / "node.pem"
    pem_file.write_bytes(keys.pem(key).data)
    with cores.holder(["node", "-e", cores.NODE_HOLDER, str(pem_file)]) as (proc, _):
        core = cores.gcore(proc.pid, workdir)
    try:
        result = cores.scan_numbers(core)
        assert keys.fingerprint(key) in result.fingerprints
    finally:
        core.unlink()


def test_go_keys_are_found_from_big_int_words(workdir: Path) -> None:
    """RSA 2048 and 3072, P-256 and P-521 keys a Go program generated are found from its heap.

    Go's allocator keeps each size class apart, so p, q and n of one key lie
    far from each other (67 KiB and 4 MiB in a measured core): the RSA keys
    must be found by the stream-wide join of numbers alone in their
    allocations, each with e proven from its d. Not searched, so not held
    here: Go 1.19's P-384 scalar (left inside a longer allocation by the
    reduction that makes it) and Ed25519 (seed and public key in one slice).
    """
    _require("gcore", "go")
    src = workdir / "holder.go"
    src.write_text(cores.GO_HOLDER)
    env = {**os.environ, "GOCACHE": str(workdir / "gocache"), "GOPATH": str(workdir / "gopath")}
    env["GO111MODULE"] = "off"  # one file, standard library only: no module, no network
    subprocess.run(
        ["go", "build", "-o", str(workdir / "go-holder"), str(src)],
        check=True,
        env=env,
        timeout=300,
    )
    with cores.holder([str(workdir / "go-holder")], deadline=120) as (proc, out):
        core = cores.gcore(proc.pid, workdir)
    expected = _fingerprints(out)
    try:
        result = cores.scan_numbers(core)
    finally:
        core.unlink()
    assert len(expected) == 4
    found = result.by_fingerprint
    assert expected <= set(found)
    rsa_found = [found[fp] for fp in expected if found[fp].algorithm == "rsa"]
    assert sorted(f.bits or 0 for f in rsa_found) == [2048, 3072]
    assert all(not f.exponent_assumed for f in rsa_found)
    curves = {found[fp].curve for fp in expected if found[fp].algorithm == "ec"}
    assert curves == {"secp256r1", "secp521r1"}


def _java_rsa_holder(workdir: Path, key_name: str) -> tuple[list[str], rsa.RSAPrivateKey]:
    """The command of a JVM that loads a fresh RSA key from a PKCS#8 file, then deletes it."""
    _require("javac", "java")
    src = workdir / "Holder.java"
    src.write_text(cores.JAVA_HOLDER)
    subprocess.run(["javac", "-d", str(workdir), str(src)], check=True, timeout=120)
    key = keys.rsa_key(2048)
    der_file = workdir / key_name
    der_file.write_bytes(keys.der(key).data)
    argv = ["java", "-Xmx64m", "-Xms16m", "-XX:+UseSerialGC", "-Xshare:off", "-cp", str(workdir)]
    return [*argv, "Holder", str(der_file)], key


def test_java_pkcs8_key_is_found(workdir: Path) -> None:
    """A key a Java program loaded from PKCS#8 is found from its BigInteger numbers."""
    _require("gcore")
    argv, key = _java_rsa_holder(workdir, "key.p8")
    with cores.holder(argv) as (proc, _):
        core = cores.gcore(proc.pid, workdir)
    try:
        result = cores.scan_numbers(core)
        assert keys.fingerprint(key) in result.fingerprints
    finally:
        core.unlink()


def test_java_heap_dump_holds_the_key_found_through_the_cli(workdir: Path) -> None:
    """A heap snapshot (`jmap -dump`, an .hprof) of a JVM holding a key it loaded from a deleted
    PKCS#8 file: `egress-guard scan` names the key (the design counts heap snapshots as dumps)."""
    _require("jmap")
    argv, key = _java_rsa_holder(workdir, "heap-key.p8")
    heap = workdir / "java_pid.hprof"
    with cores.holder(argv) as (proc, _):
        subprocess.run(
            ["jmap", f"-dump:format=b,file={heap}", str(proc.pid)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    try:
        event = _scan_one(heap)
        assert keys.fingerprint(key) in {
            f["fingerprint"] for f in event["egress_guard"]["findings"]
        }
    finally:
        heap.unlink()


def _java_ec_core(workdir: Path, *specs: str) -> tuple[Path, str]:
    _require("gcore", "javac", "java")
    src = workdir / "EcHolder.java"
    src.write_text(cores.JAVA_EC_HOLDER)
    subprocess.run(["javac", "-d", str(workdir), str(src)], check=True, timeout=120)
    argv = ["java", "-Xmx64m", "-Xms16m", "-XX:+UseSerialGC", "-Xshare:off"]
    with cores.holder([*argv, "-cp", str(workdir), "EcHolder", *specs]) as (proc, out):
        return cores.gcore(proc.pid, workdir), out


def test_java_ec_keys_are_found_from_the_jdk_objects(workdir: Path) -> None:
    """JDK EC keys (generated on three curves, and one decoded from a deleted PKCS#8 file with
    its certificate's public key, as a server loads them), used once: the scalar is a
    little-endian byte[] and the point BigIntegers, among 200 random 32-byte arrays per key."""
    key = ec.generate_private_key(ec.SECP256R1())
    der_file = workdir / "key.p8"
    der_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (workdir / "key.p8.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    specs = [f"generate:{c}" for c in ("secp256r1", "secp384r1", "secp521r1")]
    core, out = _java_ec_core(workdir, *specs, f"pkcs8:{der_file}")
    expected = _fingerprints(out) | {keys.fingerprint(key)}
    assert len(expected) == 4
    try:
        result = cores.scan_numbers(core)
        found = result.by_fingerprint
        assert expected <= set(found), [(f.format, f.curve) for f in result.findings]
        assert {found[fp].format for fp in expected} == {"ec-numbers-java"}
        assert {found[fp].curve for fp in expected} == {"secp256r1", "secp384r1", "secp521r1"}
    finally:
        core.unlink()


def test_java_holding_ec_public_keys_only_gives_no_ec_key(workdir: Path) -> None:
    """Public points and random 32-byte arrays beside them are not a key."""
    specs = []
    for i, curve in enumerate((ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1())):
        spki = workdir / f"pub{i}.der"
        spki.write_bytes(
            ec.generate_private_key(curve)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        specs.append(f"public:{spki}")
    core, _ = _java_ec_core(workdir, *specs)
    try:
        result = cores.scan_numbers(core)
        assert [f for f in result.findings if f.algorithm == "ec"] == []
    finally:
        core.unlink()


def _no_private_keys(core: Path) -> None:
    result = cores.scan_numbers(core)
    assert result.findings == [], [(f.format, f.bits, f.offset) for f in result.findings]


def test_sleep_core_holds_no_key(workdir: Path) -> None:
    """The core of `sleep` yields no key."""
    proc = subprocess.Popen([shutil.which("sleep") or "sleep", "300"])
    try:
        core = cores.gcore(proc.pid, workdir)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _no_private_keys(core)


def test_idle_python_core_holds_no_key(workdir: Path) -> None:
    """The core of an idle Python yields no key."""
    with cores.holder(
        cores.python_argv("import sys; print('READY', flush=True); sys.stdin.read()")
    ) as (proc, _):
        core = cores.gcore(proc.pid, workdir)
    _no_private_keys(core)


def test_python_holding_only_public_keys_and_certificates_holds_no_private_key(
    workdir: Path,
) -> None:
    """Public keys and certificates in memory never make a private-key finding."""
    with cores.holder(cores.python_argv(cores.PYTHON_PUBLIC_ONLY)) as (proc, _):
        core = cores.gcore(proc.pid, workdir)
    _no_private_keys(core)


def test_ssh_agent_with_keys_added_is_not_claimed(workdir: Path) -> None:
    """ssh-agent shields its keys: with RSA and Ed25519 keys added, no private key is claimed."""
    _require("gcore", "ssh-agent", "ssh-add", "ssh-keygen")
    sock = workdir / "agent.sock"
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for kind in ("rsa", "ed25519"):
            path = workdir / f"id_{kind}"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True, timeout=60
            )
            cores.wait_listening_unix(sock)
            subprocess.run(
                ["ssh-add", str(path)], env=env, capture_output=True, check=True, timeout=30
            )
            path.unlink()
        core = cores.gcore(proc.pid, workdir)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _no_private_keys(core)
