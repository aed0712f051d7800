"""packaging/: the systemd unit verifies, the tmpfiles entry creates the state folders, the default config loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent import config as config_mod

REPO = Path(__file__).parents[2]
PACKAGING = REPO / "packaging"
AGENT_BIN = Path(sys.executable).parent / "egress-guard"


def _unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (PACKAGING / "egress-guard.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` prints nothing and exits 0 for the unit (ExecStart pointed at this venv's agent)."""
    assert AGENT_BIN.exists(), AGENT_BIN
    unit = tmp_path / "egress-guard.service"
    text = (PACKAGING / "egress-guard.service").read_text()
    assert "ExecStart=/opt/egress-guard/bin/egress-guard run" in text
    # /opt/egress-guard exists only on an installed host: verify checks ExecStart is executable
    unit.write_text(text.replace("/opt/egress-guard/bin/egress-guard", str(AGENT_BIN)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # no output accepted at all: unknown keys and bad values are only warnings (exit 0)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_unit_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The verify check above can fail: a misspelt directive makes systemd-analyze print a warning."""
    unit = tmp_path / "egress-guard.service"
    text = (PACKAGING / "egress-guard.service").read_text()
    text = text.replace("/opt/egress-guard/bin/egress-guard", str(AGENT_BIN))
    unit.write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key" in proc.stdout + proc.stderr


def test_unit_has_the_service_contract_and_sandbox() -> None:
    """The unit is Type=notify with a watchdog, reloads with HUP, and keeps the sandbox settings."""
    s = _unit_settings()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "60",
        "ExecStart": "/opt/egress-guard/bin/egress-guard run --config /etc/egress-guard/agent.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "StateDirectory": "egress-guard",
        "LimitCORE": "0",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "IOSchedulingClass": "idle",
    }
    assert {k: s.get(k, [None])[0] for k in expected} == expected
    assert set(s["CapabilityBoundingSet"][0].split()) == {
        "CAP_DAC_READ_SEARCH",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_CHOWN",
        "CAP_SYS_PTRACE",
    }
    assert "/var/crash" in s["ReadWritePaths"][0]
    assert s["MemoryDenyWriteExecute"] == ["no"]


def test_yara_x_cannot_run_under_write_xor_execute() -> None:
    """yara-x JIT-compiles its rules, so MemoryDenyWriteExecute=yes would break the agent (why the unit leaves it off)."""
    # the probe runs in a child: W^X set by prctl cannot be undone, so never in the test process
    probe = (
        "import ctypes, sys\n"
        "if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, Linux >= 6.3\n"
        "    sys.exit(3)\n"
        "import yara_x\n"
        "yara_x.compile('rule t { condition: true }')\n"
    )
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode != 3, "this kernel has no PR_SET_MDWE (Linux >= 6.3) to emulate W^X"
    assert proc.returncode != 0
    assert "unable to make memory executable" in proc.stderr


def test_tmpfiles_entry_creates_private_state_folders(tmp_path: Path) -> None:
    """systemd-tmpfiles --create builds /var/lib/egress-guard and its quarantine as 0700 and /etc/egress-guard as 0750."""
    subprocess.run(
        ["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(PACKAGING / "tmpfiles.conf")],
        check=True,
        timeout=60,
        capture_output=True,
    )
    modes = {
        p: (tmp_path / p).stat().st_mode & 0o7777
        for p in ("var/lib/egress-guard", "var/lib/egress-guard/quarantine", "etc/egress-guard")
    }
    assert modes == {
        "var/lib/egress-guard": 0o700,
        "var/lib/egress-guard/quarantine": 0o700,
        "etc/egress-guard": 0o750,
    }


def test_default_config_loads_and_watches_the_dump_folders() -> None:
    """packaging/agent.toml passes the config loader: /var/crash and the coredump folder watched, no sink enabled."""
    cfg = config_mod.load(PACKAGING / "agent.toml")
    assert [w.path for w in cfg.watch] == ["/var/crash", "/var/lib/systemd/coredump"]
    assert cfg.sink == ()
    assert cfg.quarantine.dir == "/var/lib/egress-guard/quarantine"


def test_install_script_is_valid_bash_and_refuses_non_root_and_old_python(tmp_path: Path) -> None:
    """install.sh parses, and with a too-old Python it stops before touching the system."""
    script = PACKAGING / "install.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "PREFIX": str(tmp_path / "opt")}
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=30, check=False, env=env
    )
    assert proc.returncode == 2
    assert ("needs Python >= 3.11" in proc.stderr) or ("run as root" in proc.stderr)
    assert not (tmp_path / "opt").exists()
    assert shutil.which("systemd-analyze")
