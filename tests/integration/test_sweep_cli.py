"""`egress-guard sweep` and `scan` as a responder runs them: exit codes, jsonl, quarantine."""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import keys
from tests.harness import leaks, secret_windows

CLI = [sys.executable, "-m", "agent.cli"]


def _sweep(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, "--log-format", "json", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with keys in a few encodings and containers, and clean files."""
    root = tmp_path / "evidence"
    (root / "nested" / "deeper").mkdir(parents=True)
    rsa = keys.cached_rsa(2048)
    eckey = keys.ec_key(ec.SECP384R1())
    pem = keys.pem(rsa)
    der = keys.der(eckey)
    (root / "core.777").write_bytes(keys.plant(pem.data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bundle/heap.bin", keys.plant(der.data, seed=7))
    (root / "nested" / "support-bundle.zip").write_bytes(buf.getvalue())
    (root / "nested" / "deeper" / "clean.log").write_bytes(keys.filler(200_000, seed=9))
    (root / "nested" / "notes.md").write_text(
        "Paste your key like this:\n-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n"
    )
    (root / "trace.gz").write_bytes(gzip.compress(keys.filler(100_000, seed=3)))
    expected = {
        str(root / "core.777"): pem.fingerprint,
        str(root / "nested" / "support-bundle.zip"): der.fingerprint,
    }
    return root, expected


def test_sweep_reports_each_key_once_as_jsonl_and_exits_1(
    corpus: tuple[Path, dict[str, str]],
) -> None:
    """Files with keys give one finding event each on stdout, with fingerprints; exit code 1."""
    root, expected = corpus
    out = _sweep("sweep", "--format", "jsonl", "--jobs", "2", str(root))
    assert out.returncode == 1, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    got = {
        e["file"]["path"]: [f["fingerprint"] for f in e["egress_guard"]["findings"]] for e in events
    }
    assert got == {path: [fp] for path, fp in expected.items()}
    zipped = next(e for e in events if e["file"]["path"].endswith(".zip"))
    assert (
        zipped["egress_guard"]["findings"][0]["container"] == "support-bundle.zip!bundle/heap.bin"
    )
    assert all(e["event"]["action"] == "key-material-detected" for e in events)
    assert all(Path(p).exists() for p in expected)  # report only: nothing moved


def test_parallel_sweep_of_many_small_files_reports_each_file_once(tmp_path: Path) -> None:
    """Workers take small files in batches: 150 files (keys among them, and one big dump)
    give the same findings with --jobs 2 as with --jobs 1, every file counted once."""
    root = tmp_path / "many"
    root.mkdir()
    expected: dict[str, str] = {}
    for i in range(150):
        path = root / f"f{i:03}.bin"
        if i % 37 == 5:
            key = (
                keys.pem(keys.cached_rsa(2048)) if i % 2 else keys.der(keys.ec_key(ec.SECP256R1()))
            )
            path.write_bytes(keys.plant(key.data, before=10_000, after=10_000, seed=i))
            expected[str(path)] = key.fingerprint
        else:
            path.write_bytes(keys.filler(5_000 + 97 * i, seed=i))
    big_key = keys.pem(keys.ec_key(ec.SECP384R1()))
    (root / "core.big").write_bytes(keys.plant(big_key.data, before=12 * 1024 * 1024, seed=1))
    expected[str(root / "core.big")] = big_key.fingerprint
    runs = {}
    for jobs in ("1", "2"):
        out = _sweep("sweep", "--dry-run", "--format", "jsonl", "--jobs", jobs, str(root))
        assert out.returncode == 1, out.stderr
        assert "scanned 151 file(s)" in out.stderr, out.stderr[-400:]
        events = [json.loads(line) for line in out.stdout.splitlines()]
        runs[jobs] = {
            e["file"]["path"]: [f["fingerprint"] for f in e["egress_guard"]["findings"]]
            for e in events
        }
        assert len(events) == len(runs[jobs])  # one event per file
    assert runs["1"] == runs["2"] == {path: [fp] for path, fp in expected.items()}


# binaries of a normal Debian host that embed published test keys (openssl speed,
# gnutls-cli's and libgcrypt's self-test keys): a debug host has them, a sweep must not flag them
_KEY_BEARING_BINARIES = (
    "/usr/bin/openssl",
    "/usr/bin/gnutls-cli",
    "/usr/bin/certtool",
    "/usr/bin/age-keygen",  # an age identity (public: every Debian install of age has it)
    "/usr/share/man/man8/wg.8.gz",  # the manual's example WireGuard configuration
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
    "/usr/lib/x86_64-linux-gnu/libgcrypt.so.20",
    # Go's own tests (golang-go's source tree): hex DER and PEM keys of crypto/x509 and crypto/tls
    *glob.glob("/usr/share/go-*/src/crypto/x509/*_test.go"),
    *glob.glob("/usr/share/go-*/src/crypto/tls/*_test.go"),
)


def test_host_binaries_with_embedded_test_keys_are_only_allowlisted() -> None:
    """Real binaries as negatives: their embedded test keys are found, and every one is allowlisted."""
    # sonames are links, and a sweep never follows one: the files they name
    present = sorted({os.path.realpath(p) for p in _KEY_BEARING_BINARIES if os.path.exists(p)})
    assert "/usr/bin/openssl" in present and "/usr/bin/gnutls-cli" in present, present
    out = _sweep("sweep", "--dry-run", "--format", "jsonl", "--show-allowlisted", *present)
    assert out.returncode == 0, out.stdout[-2000:]  # 0: nothing but allowlisted keys
    findings = [
        (e["file"]["path"], f)
        for line in out.stdout.splitlines()
        for e in [json.loads(line)]
        for f in e["egress_guard"]["findings"]
    ]
    assert {path for path, _ in findings} >= {"/usr/bin/openssl", "/usr/bin/gnutls-cli"}
    flagged = [
        (path, f["fingerprint"], f["format"]) for path, f in findings if not f["allowlisted"]
    ]
    assert flagged == []


def test_sweep_of_clean_files_exits_0_and_prints_nothing(tmp_path: Path) -> None:
    """A folder without keys (placeholders included) exits 0 with empty stdout."""
    (tmp_path / "a.bin").write_bytes(keys.filler(300_000))
    (tmp_path / "doc.txt").write_text(
        "-----BEGIN RSA PRIVATE KEY-----\n<your key here>\n-----END RSA PRIVATE KEY-----\n"
    )
    pub = keys.rsa_key(2048).public_key()
    from cryptography.hazmat.primitives import serialization as s

    (tmp_path / "key.pub").write_bytes(
        pub.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    )
    out = _sweep("sweep", "--format", "jsonl", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_sweep_with_quarantine_moves_files_and_says_so(
    corpus: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """With --quarantine, files holding keys are moved into the vault; text output names the item."""
    root, expected = corpus
    vault = tmp_path / "vault"
    out = _sweep("sweep", "--quarantine", str(vault), str(root))
    assert out.returncode == 1, out.stderr
    assert out.stdout.count("quarantined as") == len(expected)
    for path in expected:
        assert not Path(path).exists()
    assert (root / "nested" / "deeper" / "clean.log").exists()


def test_dry_run_never_moves_anything(corpus: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """--dry-run reports but leaves every file in place even with a quarantine folder."""
    root, expected = corpus
    out = _sweep("sweep", "--dry-run", "--quarantine", str(tmp_path / "vault"), str(root))
    assert out.returncode == 1
    assert all(Path(p).exists() for p in expected)


def test_scan_one_file_exits_1_and_output_holds_no_key_bytes(tmp_path: Path) -> None:
    """`scan FILE` reports the key; neither stdout nor stderr holds any 16-byte window of it."""
    key = keys.cached_rsa(2048)
    pem = keys.pem(key)
    target = tmp_path / "dump.bin"
    target.write_bytes(keys.plant(pem.data))
    out = _sweep("scan", "--format", "jsonl", str(target))
    assert out.returncode == 1
    windows = secret_windows(pem.data, keys.der(key).data)
    assert not leaks(out.stdout.encode(), windows)
    assert not leaks(out.stderr.encode(), windows)


def test_missing_path_is_an_error_exit_2(tmp_path: Path) -> None:
    """A path that does not exist is reported on stderr and the exit code is 2."""
    out = _sweep("sweep", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "no such file" in out.stderr


def test_unreadable_file_is_an_error_but_the_sweep_goes_on() -> None:
    """An unreadable file gives exit 2 when nothing else was found, and the other files are still scanned."""
    assert os.geteuid() == 0, "this test drops from root to nobody to make a file unreadable"
    root = Path(tempfile.mkdtemp(prefix="eg-unreadable-"))  # pytest's tmp tree is root-only
    try:
        root.chmod(0o755)
        secret = root / "private.core"
        secret.write_bytes(b"x" * 1000)
        secret.chmod(0o600)
        (root / "ok.bin").write_bytes(b"y" * 1000)
        out = _sweep("sweep", str(root), user="nobody")
        assert out.returncode == 2, out.stderr
        assert "private.core: ERROR cannot read" in out.stdout
        assert "scanned 2 file(s)" in out.stderr
    finally:
        shutil.rmtree(root)


def test_closed_stdout_is_quiet(corpus: tuple[Path, dict[str, str]]) -> None:
    """`sweep --format jsonl | head -1` ends without a traceback."""
    root, _ = corpus
    proc = subprocess.run(
        f"{sys.executable} -m agent.cli sweep --format jsonl --jobs 1 {root} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr


def test_scan_refuses_anything_but_one_regular_file(tmp_path: Path) -> None:
    """`scan` on a folder, a symlink, a FIFO or a missing path exits 2 and says why."""
    target = tmp_path / "real.bin"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    cases = {
        str(tmp_path): "use `egress-guard sweep` for folders",
        str(tmp_path / "link"): "links are never followed",
        str(tmp_path / "fifo"): "is not a regular file",
        str(tmp_path / "missing"): "no such file",
    }
    for path, reason in cases.items():
        out = _sweep("scan", path)
        assert out.returncode == 2, path
        assert reason in out.stderr, out.stderr


@pytest.mark.parametrize("packed", [False, True], ids=["loose-object", "after-git-gc"])
def test_a_key_deleted_from_a_git_checkout_is_found_in_its_history(
    tmp_path: Path, packed: bool
) -> None:
    """A key committed then `git rm`-ed lives on in .git/objects (a zlib loose object, or a blob in a
    pack after `git gc`, as in every clone): the sweep finds it there."""
    git = shutil.which("git")
    assert git, "git must be installed (CI clones the repository with it)"
    repo = tmp_path / "service"
    repo.mkdir()
    planted = keys.pem(keys.cached_rsa(2048))

    identity = ["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]

    def run(*args: str) -> None:
        subprocess.run(
            [git, "-C", str(repo), *identity, "-c", "commit.gpgsign=false", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    run("init", "-q")
    (repo / "deploy.key").write_bytes(planted.data)
    run("add", "deploy.key")
    run("commit", "-q", "-m", "add key")
    run("rm", "-q", "deploy.key")
    run("commit", "-q", "-m", "remove key")
    if packed:
        run("gc", "-q", "--prune=now")
        assert not list((repo / ".git" / "objects").glob("??/*")), "objects left loose"
    assert not (repo / "deploy.key").exists()

    out = _sweep("sweep", "--format", "jsonl", str(repo))
    assert out.returncode == 1, out.stderr
    (event,) = [json.loads(line) for line in out.stdout.splitlines()]
    (finding,) = event["egress_guard"]["findings"]
    assert finding["fingerprint"] == planted.fingerprint
    assert "/.git/objects/" in event["file"]["path"]
    assert finding["container"].startswith(Path(event["file"]["path"]).name + "!")
    assert event["file"]["path"].endswith(".pack") is packed
    assert ("!blob@" in finding["container"]) is packed
