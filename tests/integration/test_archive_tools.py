"""Archives made by the real tools (7z, gcab, dpkg-deb, rpmbuild) holding keys, through `egress-guard scan`.

Also what a host without libarchive gets: the archive scanned as raw bytes,
and a problem that says how to fix it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import libarchive
import pytest
from cryptography.hazmat.primitives import serialization

from tests.keys import fingerprint, rsa2048


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    assert not missing, f"{missing} must be installed (scripts/check installs them as root)"


def _run(*argv: str, cwd: Path | None = None) -> None:
    subprocess.run(
        argv, check=True, capture_output=True, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL
    )


def _scan(path: Path, env: dict[str, str] | None = None) -> tuple[set[tuple[str, str]], list[str]]:
    """`egress-guard scan --dry-run` of one file: (fingerprint, container) found, problem types logged."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "--log-format",
            "json",
            "scan",
            "--format",
            "jsonl",
            "--dry-run",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    found = {
        (f["fingerprint"], f["container"])
        for line in done.stdout.splitlines()
        if line.strip()
        for f in json.loads(line)["egress_guard"]["findings"]
    }
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    (scanned,) = [e for e in logs if e.get("event") == "scan.file_scanned"]
    return found, list(scanned["problems"])


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, str]:
    """A folder with a PEM key (and a harmless file) to pack; the key's fingerprint."""
    src = tmp_path / "src"
    (src / "etc" / "ssl" / "private").mkdir(parents=True)
    key = rsa2048()
    (src / "etc" / "ssl" / "private" / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (src / "README").write_text("nothing secret\n")
    return src, fingerprint(key)


def test_7z_archives_made_by_7z(key_files: tuple[Path, str], tmp_path: Path) -> None:
    """Plain and solid 7z are unpacked; a passphrase-protected one (contents, or names too) is said."""
    _need("7z")
    src, fp = key_files
    plain, protected, hidden = tmp_path / "bundle.7z", tmp_path / "enc.7z", tmp_path / "hidden.7z"
    _run("7z", "a", "-ms=on", str(plain), "etc", "README", cwd=src)
    _run("7z", "a", "-phunter2", str(protected), "etc", cwd=src)
    _run("7z", "a", "-phunter2", "-mhe=on", str(hidden), "etc", cwd=src)
    assert _scan(plain) == ({(fp, "bundle.7z!etc/ssl/private/server.key")}, [])
    for path in (protected, hidden):
        assert _scan(path) == (set(), ["encrypted_member"])


def test_cabinet_made_by_gcab(key_files: tuple[Path, str], tmp_path: Path) -> None:
    _need("gcab")
    src, fp = key_files
    cab = tmp_path / "support.cab"
    _run("gcab", "-c", "-z", str(cab), "etc/ssl/private/server.key", "README", cwd=src)
    found, trouble = _scan(cab)
    assert {f for f, _ in found} == {fp} and trouble == []


def test_debian_package_made_by_dpkg_deb(key_files: tuple[Path, str], tmp_path: Path) -> None:
    """A .deb is an ar archive holding data.tar.xz: ar, then xz, then tar."""
    _need("dpkg-deb")
    src, fp = key_files
    (src / "DEBIAN").mkdir()
    (src / "DEBIAN" / "control").write_text(
        "Package: demo\nVersion: 1\nArchitecture: all\nMaintainer: x <x@example.com>\nDescription: demo\n"
    )
    deb = tmp_path / "demo.deb"
    _run("dpkg-deb", "--build", "--root-owner-group", str(src), str(deb))
    assert _scan(deb) == ({(fp, "demo.deb!data.tar.xz!data.tar!./etc/ssl/private/server.key")}, [])


def test_rpm_made_by_rpmbuild(key_files: tuple[Path, str], tmp_path: Path) -> None:
    """An RPM's payload is a compressed cpio after the package header."""
    _need("rpmbuild")
    src, fp = key_files
    top = tmp_path / "rpm"
    (top / "SOURCES").mkdir(parents=True)
    shutil.copy(src / "etc" / "ssl" / "private" / "server.key", top / "SOURCES" / "server.key")
    spec = top / "demo.spec"
    spec.write_text(
        "Name: demo\nVersion: 1\nRelease: 1\nSummary: demo\nLicense: none\nBuildArch: noarch\n"
        "Source0: server.key\n%description\ndemo\n%install\nmkdir -p %{buildroot}/etc/demo\n"
        "cp %{SOURCE0} %{buildroot}/etc/demo/server.key\n%files\n/etc/demo/server.key\n"
    )
    _run("rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec))
    (rpm,) = (top / "RPMS" / "noarch").glob("*.rpm")
    assert _scan(rpm) == ({(fp, f"{rpm.name}!./etc/demo/server.key")}, [])


def test_without_libarchive_the_archive_is_scanned_raw_and_said(
    key_files: tuple[Path, str], tmp_path: Path
) -> None:
    """A host without libarchive13: a cpio (keys stored as they are) is still found, with a hint."""
    src, fp = key_files
    cpio = tmp_path / "initrd.cpio"
    with libarchive.file_writer(str(cpio), "cpio_newc") as writer:
        writer.add_files(str(src / "etc" / "ssl" / "private" / "server.key"))
    env = {**os.environ, "LIBARCHIVE": str(tmp_path / "no-such-libarchive.so")}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "scan", "--format", "jsonl", "--dry-run", str(cpio)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    (event,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert {f["fingerprint"] for f in event["egress_guard"]["findings"]} == {fp}
    (problem,) = event["egress_guard"]["problems"]
    assert problem["error_type"] == "not_deep_scanned" and "libarchive13" in problem["detail"]
