"""Every structlog event name in agent/ follows `<stage>.<noun>_<past verb>` (or a few nouns)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

AGENT = Path(__file__).parents[2] / "agent"
PATTERN = re.compile(r"^[a-z]+\.[a-z0-9]+(_[a-z0-9]+)*$")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "msg"}


def _event_names() -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    for path in AGENT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"log", "logger", "_log"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                out.append((str(path.relative_to(AGENT)), node.lineno, node.args[0].value))
    return out


def test_log_event_names_follow_the_stage_noun_verb_pattern() -> None:
    """Each log call's event name is `<stage>.<noun>_<verb>` in lower snake case."""
    names = _event_names()
    assert len(names) > 20
    bad = [f"{f}:{line}: {name}" for f, line, name in names if not PATTERN.match(name)]
    assert not bad, "\n".join(bad)


def test_failure_events_carry_a_bounded_error_type() -> None:
    """Every `*_failed` event is logged with an `error_type` keyword."""
    missing: list[str] = []
    for path in AGENT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and node.args[0].value.endswith("_failed")
                and not any(k.arg in {"error_type", None} for k in node.keywords)
            ):
                missing.append(f"{path.relative_to(AGENT)}:{node.lineno}: {node.args[0].value}")
    assert not missing, "\n".join(missing)
