"""Fixtures for the vault tests: the security team's key pair (and a wrong one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.quarantine import seal


@dataclass(frozen=True)
class TeamKeys:
    """The security team's sealing key pair, written as `quarantine keygen` would."""

    private: Path
    public: Path


@pytest.fixture
def team_keys(tmp_path: Path) -> TeamKeys:
    """A fresh X25519 team key pair in tmp_path."""
    private, public = seal.generate_keypair()
    d = tmp_path / "team"
    d.mkdir()
    (d / "team.key").write_bytes(private)
    (d / "team.pub").write_bytes(public)
    return TeamKeys(private=d / "team.key", public=d / "team.pub")


@pytest.fixture
def other_keys(tmp_path: Path) -> TeamKeys:
    """A second, unrelated key pair (the wrong key)."""
    private, public = seal.generate_keypair()
    d = tmp_path / "other"
    d.mkdir()
    (d / "other.key").write_bytes(private)
    (d / "other.pub").write_bytes(public)
    return TeamKeys(private=d / "other.key", public=d / "other.pub")
