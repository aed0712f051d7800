"""Real processes for integration tests: the collector and the agent, on 127.0.0.1 only.

Every wait is a poll with a deadline; every process is stopped in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "agent.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until condition() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Setup:
    """Folders, tokens and a config for one agent + collector pair."""

    root: Path
    port: int
    drop: Path = field(init=False)
    state: Path = field(init=False)
    vault: Path = field(init=False)
    config: Path = field(init=False)
    extra: str = ""
    settle_seconds: float = 0.5
    rules: str = "builtin"

    def __post_init__(self) -> None:
        self.drop = self.root / "drop"
        self.state = self.root / "state"
        self.vault = self.root / "vault"
        self.config = self.root / "agent.toml"
        for d in (self.drop, self.state):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "token").write_text("test-token-123\n")
        (self.root / "agent-tokens").write_text("test-token-123 *\n")
        self.write_config()

    def write_config(self) -> None:
        self.config.write_text(
            f"""
[agent]
state_dir = "{self.state}"
heartbeat_seconds = 2.0

[[watch]]
path = "{self.drop}"

[scan]
rules = "{self.rules}"
settle_seconds = {self.settle_seconds}
max_wait_seconds = 10.0
workers = 2

[quarantine]
dir = "{self.vault}"
retry_seconds = 1.0

[outbox]
retry_min_seconds = 0.2
retry_max_seconds = 1.0

[[sink]]
type = "collector"
url = "http://127.0.0.1:{self.port}"
token_file = "{self.root / "token"}"
timeout_seconds = 2.0

[collector]
listen = "127.0.0.1:{self.port}"
db = "{self.root / "collector.db"}"
tokens_file = "{self.root / "agent-tokens"}"
heartbeat_timeout_seconds = 60.0
{self.extra}
"""
        )


class Proc:
    """A child process with its stderr captured to a file."""

    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> Iterator[dict[str, Any]]:
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.log_events())

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


def start_collector(setup: Setup) -> Proc:
    proc = Proc(
        "collector",
        [*CLI, "--log-format", "json", "collector", "serve", "--config", str(setup.config)],
        setup.root,
    )
    wait_for(
        lambda: port_open(setup.port) or proc.popen.poll() is not None, what="collector to listen"
    )
    assert proc.popen.poll() is None, proc.log_text()
    return proc


def start_agent(setup: Setup, *, wait: bool = True, name: str = "agent") -> Proc:
    proc = Proc(
        name, [*CLI, "--log-format", "json", "run", "--config", str(setup.config)], setup.root
    )
    if wait:
        wait_for(
            lambda: proc.saw("daemon.agent_started") or proc.popen.poll() is not None,
            what="agent to start",
        )
        assert proc.popen.poll() is None, proc.log_text()
    return proc


def collector_events(setup: Setup) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*CLI, "collector", "events", "--config", str(setup.config), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def findings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event", {}).get("dataset") == "egress_guard.finding"]


def quarantine_items(setup: Setup) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*CLI, "quarantine", "list", "--config", str(setup.config), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def secret_windows(*secrets: bytes, width: int = 16) -> set[bytes]:
    """Every `width`-byte window of each secret (to prove none leaks anywhere)."""
    out: set[bytes] = set()
    for s in secrets:
        out.update(s[i : i + width] for i in range(max(len(s) - width + 1, 1)))
    return out


def leaks(blob: bytes, windows: set[bytes], width: int = 16) -> bool:
    return any(blob[i : i + width] in windows for i in range(max(len(blob) - width + 1, 1)))


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())
