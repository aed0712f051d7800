"""The validator table: every name resolves, modules load only when first asked for."""

from __future__ import annotations

from agent.scan.validators import VALIDATORS


def test_every_validator_name_resolves_to_a_function() -> None:
    """A typo in the table would only surface at the first hit in production: resolve them all here."""
    assert len(VALIDATORS) >= 17
    for name in VALIDATORS:
        assert callable(VALIDATORS[name]), name
    assert VALIDATORS.get("no-such-validator") is None
