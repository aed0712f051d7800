"""Policy: ScanResult -> Verdict. Decides severity and whether the file is quarantined.

Severity follows ECS `event.severity` (0-100) in four bands the SIEM can map:
critical 99 (a registered crown-jewel key), high 73 (a proven private key),
medium 47 (an encrypted private key: still offline-attackable), low 21
(public test keys and unproven candidates: informational, never quarantined).
"""

from __future__ import annotations

from agent.values import Action, ScanResult, Verdict

CRITICAL = 99
HIGH = 73
MEDIUM = 47
LOW = 21


def decide(result: ScanResult, *, quarantine_enabled: bool) -> Verdict:
    """The verdict for one scan result."""
    keys = result.key_material
    act = Action.QUARANTINE if quarantine_enabled else Action.REPORT
    if any(f.inventory_name for f in keys):
        names = sorted({f.inventory_name for f in keys if f.inventory_name})
        return Verdict(
            result=result,
            action=act,
            severity=CRITICAL,
            reason=f"registered key(s) {', '.join(names)} found",
        )
    plain = [f for f in keys if not f.encrypted]
    if plain:
        weak = sum(1 for f in plain if f.default_password)
        return Verdict(
            result=result,
            action=act,
            severity=HIGH,
            reason=f"{len(plain)} validated private key(s)"
            + (f", {weak} under a published default password" if weak else ""),
        )
    if keys:
        return Verdict(
            result=result,
            action=act,
            severity=MEDIUM,
            reason=f"{len(keys)} encrypted private key(s)",
        )
    if result.findings:
        allowlisted = sum(1 for f in result.findings if f.allowlisted)
        reason = (
            f"{allowlisted} public test key(s) (allowlisted)"
            if allowlisted
            else "unvalidated key-like candidates"
        )
        return Verdict(result=result, action=Action.REPORT, severity=LOW, reason=reason)
    return Verdict(result=result, action=Action.NONE, severity=0, reason="no key material")
