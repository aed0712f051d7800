"""Compile shipped rule files under one engine and run their validators over bytes (for tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from agent.scan.engine import CompiledRules, RuleSource, compile_rules
from agent.scan.validators import VALIDATORS, Hit
from agent.values import KeyFinding

RULES = Path(__file__).resolve().parents[3] / "rules"
ENGINES = ("yara-x", "yara")


def sources(files: tuple[str, ...]) -> list[RuleSource]:
    """The named files of rules/ as rule sources."""
    return [RuleSource(str(RULES / n), (RULES / n).read_text()) for n in files]


@cache
def compiled(engine: str, files: tuple[str, ...]) -> CompiledRules:
    """The named files of rules/ compiled under `engine` (cached per engine and file set)."""
    return compile_rules(sources(files), engine)


def scan(engine: str, data: bytes, files: tuple[str, ...]) -> list[KeyFinding]:
    """Every finding those rules and their validators produce for `data`."""
    out: list[KeyFinding] = []
    view = memoryview(data)
    for match in compiled(engine, files).scan(data):
        validator = VALIDATORS[str(match.meta["validator"])]
        for start, length in match.spots(0):
            out.extend(validator(Hit(match.rule, match.meta, view, start, start + length, 0)))
    return out
