"""`egress-guard keys` as a real process: add, list, remove, refusals, and openssl's fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.cli import keys as keys_cli
from agent.cli import main
from tests.keys import cached_rsa, ec_key, fingerprint

Enc = serialization.Encoding


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (start-up costs seconds: used sparingly)."""
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def inproc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command line run in this process: exit code, stdout, stderr."""
    code = main(["keys", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def rsa_pub(tmp_path: Path) -> Path:
    p = tmp_path / "signing.pub"
    key = cached_rsa(2048)
    p.write_bytes(
        key.public_key().public_bytes(Enc.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return p


def test_add_list_remove_round_trip_matches_openssl_fingerprint(
    tmp_path: Path, rsa_pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key added by the CLI is listed with the fingerprint openssl computes, then removed."""
    inv = tmp_path / "inv" / "keys.json"
    added = cli("add", str(rsa_pub), "--name", "token-signing", "--file", str(inv))
    assert added.returncode == 0, added.stderr
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(rsa_pub), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    expected = "sha256:" + hashlib.sha256(der).hexdigest()
    assert expected in added.stdout

    listed = cli("list", "--format", "jsonl", "--file", str(inv))
    assert listed.returncode == 0
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["name"], entry["fingerprint"], entry["bits"]) == ("token-signing", expected, 2048)
    code, out, _ = inproc(capsys, "list", "--file", str(inv))
    assert code == 0 and "token-signing" in out and expected in out

    assert inproc(capsys, "remove", expected, "--file", str(inv))[0] == 0
    assert inproc(capsys, "list", "--format", "jsonl", "--file", str(inv))[:2] == (0, "")


def test_private_key_is_refused_with_exit_2_and_never_echoed(tmp_path: Path) -> None:
    """Giving a private key exits 2 with a hint, and no line of the key appears in any output."""
    key_file = tmp_path / "oops.pem"
    data = cached_rsa(2048).private_bytes(
        Enc.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file.write_bytes(data)
    result = cli("add", str(key_file), "--name", "x", "--file", str(tmp_path / "k.json"))
    assert result.returncode == 2
    assert "private key" in result.stderr and "hint:" in result.stderr
    body_lines = [ln for ln in data.decode().splitlines() if "-----" not in ln]
    assert not any(ln in result.stderr or ln in result.stdout for ln in body_lines)
    assert not (tmp_path / "k.json").exists()


def test_config_selects_the_inventory_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --config the inventory is [scan] inventory_file, or state_dir/keys.json."""
    pub = tmp_path / "ec.pub"
    key = ec_key()
    pub.write_bytes(key.public_key().public_bytes(Enc.OpenSSH, serialization.PublicFormat.OpenSSH))
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{state}"\n')
    assert inproc(capsys, "add", str(pub), "--name", "ec", "--config", str(cfg))[0] == 0
    assert json.loads((state / "keys.json").read_text())["keys"][0]["fingerprint"] == fingerprint(
        key
    )
    custom = tmp_path / "elsewhere.json"
    cfg.write_text(f'[agent]\nstate_dir = "{state}"\n[scan]\ninventory_file = "{custom}"\n')
    assert inproc(capsys, "add", str(pub), "--name", "ec", "--config", str(cfg))[0] == 0
    assert custom.exists()


def test_errors_exit_2_with_a_message(
    tmp_path: Path, rsa_pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Duplicate names, unknown keys and a damaged inventory exit 2 with a clear message."""
    inv = str(tmp_path / "keys.json")
    assert inproc(capsys, "add", str(rsa_pub), "--name", "a", "--file", inv)[0] == 0
    code, _, err = inproc(capsys, "add", str(rsa_pub), "--name", "a", "--file", inv)
    assert code == 2 and "already registered" in err
    code, _, err = inproc(capsys, "remove", "nobody", "--file", inv)
    assert code == 2 and "no registered key" in err
    Path(inv).write_text("{broken")
    code, _, err = inproc(capsys, "list", "--file", inv)
    assert code == 2 and "damaged" in err and "hint:" in err


def test_default_state_dir_falls_back_to_xdg_when_system_dir_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a writable /var/lib/egress-guard the inventory goes to $XDG_STATE_HOME/egress-guard."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(keys_cli, "SYSTEM_STATE_DIR", locked / "egress-guard")
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert keys_cli.default_state_dir() == tmp_path / "xdg" / "egress-guard"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert keys_cli.default_state_dir() == Path.home() / ".local" / "state" / "egress-guard"
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    assert keys_cli.default_state_dir() == locked / "egress-guard"
