"""One generated test per shipped rule and engine: the rule finds fresh samples of its encoding."""

from __future__ import annotations

import pytest

from agent.cli import rules_cmd
from agent.scan import rules as rules_mod
from agent.scan.engine import ENGINES
from agent.scan.validators import VALIDATORS

_SOURCES = rules_mod.read_sources("builtin")
_METAS = rules_mod.rule_metas(_SOURCES)


def test_every_shipped_rule_names_a_validator_and_self_test_samples() -> None:
    """Each shipped rule has a known validator, a format, a severity and self-test samples."""
    rules_mod.check_validators(_SOURCES, set(VALIDATORS))
    assert len(_METAS) >= 10
    for rule, meta in _METAS.items():
        assert meta.get("format"), rule
        assert meta.get("severity"), rule
        assert meta.get("selftest"), rule


@pytest.mark.parametrize("engine", ENGINES)
def test_shipped_rules_pass_their_self_tests(engine: str) -> None:
    """Every shipped rule compiles under the engine and finds each of its self-test samples."""
    assert rules_cmd.check("builtin", (engine,)) == []
