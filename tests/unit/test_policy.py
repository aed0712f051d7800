"""Policy: severity bands and when a file is quarantined."""

from __future__ import annotations

from agent import policy
from agent.values import Action, Arrival, ArrivalCause, FileIdentity, KeyFinding, ScanResult

IDENT = FileIdentity(path="/d/core", device=1, inode=2, size=3, mtime_ns=4, uid=0, mode=0o100600)


def _result(*findings: KeyFinding) -> ScanResult:
    return ScanResult(
        arrival=Arrival(path="/d/core", cause=ArrivalCause.SWEEP),
        identity=IDENT,
        sha256="00",
        findings=findings,
    )


def _finding(**kw: object) -> KeyFinding:
    base: dict[str, object] = {
        "rule": "r",
        "format": "pem-pkcs8",
        "algorithm": "rsa",
        "offset": 0,
        "validated": True,
        "fingerprint": "sha256:aa",
    }
    base.update(kw)
    return KeyFinding(**base)  # type: ignore[arg-type]


def test_registered_key_is_critical_and_quarantined() -> None:
    """A finding matching the inventory is critical and names the key."""
    v = policy.decide(_result(_finding(inventory_name="signing")), quarantine_enabled=True)
    assert (v.action, v.severity) == (Action.QUARANTINE, policy.CRITICAL)
    assert "signing" in v.reason


def test_proven_key_is_high_and_quarantined_when_a_vault_exists() -> None:
    """A validated key is high severity; without a vault it is reported only."""
    assert policy.decide(_result(_finding()), quarantine_enabled=True).action is Action.QUARANTINE
    v = policy.decide(_result(_finding()), quarantine_enabled=False)
    assert (v.action, v.severity) == (Action.REPORT, policy.HIGH)


def test_encrypted_key_is_medium_and_still_quarantined() -> None:
    """An encrypted private key can be attacked offline: medium, quarantined."""
    v = policy.decide(_result(_finding(encrypted=True, fingerprint=None)), quarantine_enabled=True)
    assert (v.action, v.severity) == (Action.QUARANTINE, policy.MEDIUM)


def test_key_under_a_default_password_is_high_and_said() -> None:
    """A keystore opened with `changeit` holds a proven key: high, and the reason says why."""
    v = policy.decide(_result(_finding(default_password=True)), quarantine_enabled=True)
    assert (v.action, v.severity) == (Action.QUARANTINE, policy.HIGH)
    assert "default password" in v.reason


def test_public_test_keys_are_informational_and_never_quarantined() -> None:
    """A file holding only allowlisted keys is reported at low severity, never moved."""
    v = policy.decide(_result(_finding(allowlisted=True)), quarantine_enabled=True)
    assert (v.action, v.severity) == (Action.REPORT, policy.LOW)


def test_unvalidated_candidates_are_never_quarantined() -> None:
    """A candidate that failed validation is reported at low severity at most."""
    v = policy.decide(_result(_finding(validated=False)), quarantine_enabled=True)
    assert v.action is Action.REPORT
    assert v.severity == policy.LOW


def test_nothing_found_means_no_action() -> None:
    """A clean file gets no action."""
    assert policy.decide(_result(), quarantine_enabled=True).action is Action.NONE
