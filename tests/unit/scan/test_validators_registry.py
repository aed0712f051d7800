"""The validator table: every name resolves, modules load only when first asked for."""

from __future__ import annotations

import subprocess
import sys

from agent.scan.validators import VALIDATORS


def test_every_validator_name_resolves_to_a_function() -> None:
    """A typo in the table would only surface at the first hit in production: resolve them all here."""
    assert len(VALIDATORS) >= 17
    for name in VALIDATORS:
        assert callable(VALIDATORS[name]), name
    assert VALIDATORS.get("no-such-validator") is None


def test_validator_modules_are_not_imported_at_start() -> None:
    """Importing the table imports no validator module (and so not cryptography's x509)."""
    code = (
        "import sys; import agent.scan.validators as v; "
        "print(sorted(m for m in sys.modules if m.startswith('agent.scan.validators.')"
        " or m == 'cryptography.x509'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
