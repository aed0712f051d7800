"""Shared fixtures: an isolated HOME and state_dir per test, loopback-only sockets, no leaked threads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import logs

_real_connect = socket.socket.connect
_LOOPBACK = ("127.", "::1", "localhost")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        if not host.startswith(_LOOPBACK):
            raise RuntimeError(f"test tried to reach {host}: only loopback is allowed")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _logs_to_current_stderr() -> Iterator[None]:
    """Logs go to the current stderr (JSON) before and after every test, whatever a test configured."""
    logs.configure(json=True)
    yield
    logs.configure(json=True)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own HOME and may only connect to loopback."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.daemon
    ]
    assert not leaked, f"test leaked threads: {leaked}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh agent state folder."""
    d = tmp_path / "state"
    d.mkdir()
    return d
