"""The YARA engine seam: compile rule sources, scan a buffer, return rule names and match offsets.

Two implementations behind one interface: YARA-X (default, several times
faster) and yara-python (selectable with `[scan] engine = "yara"`). This is
the only module, with `rules.py`, that imports either library; their
exceptions become `RuleError` / `ScanError` here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import RuleError

ENGINES = ("yara-x", "yara")
MetaValue = str | int | bool | float
# bound on matches per string per buffer: hostile input cannot make a scan unbounded
MAX_MATCHES_PER_STRING = 1000


@dataclass(frozen=True, slots=True)
class RuleSource:
    """One rule file's text and where it came from (for error positions)."""

    path: str
    text: str


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched a buffer, with the (offset, length) of each string match."""

    rule: str
    meta: Mapping[str, MetaValue]
    matches: tuple[tuple[int, int], ...]

    def spots(self, base: int) -> tuple[tuple[int, int], ...]:
        """Where the rule's validator looks in a buffer that starts at stream offset `base`.

        The string matches; for a rule without strings whose meta says
        `anchor = "start"` (a condition on a file's first bytes), offset 0 of
        the stream's first buffer.
        """
        if self.matches or self.meta.get("anchor") != "start":
            return self.matches
        return ((0, 0),) if base == 0 else ()


class CompiledRules(Protocol):
    """A compiled rule set for one engine."""

    engine: str

    def scan(self, data: bytes) -> list[RuleMatch]:
        """Scan one buffer; offsets are relative to its first byte."""
        ...


_YARA_X_POS = re.compile(r"-->\s*(?P<file>[^:\n]+):(?P<line>\d+):\d+")
_YARA_POS = re.compile(r"line (?P<line>\d+)")


class _YaraX:
    engine = "yara-x"

    def __init__(self, sources: Sequence[RuleSource]) -> None:
        import yara_x  # noqa: PLC0415 - optional engines are imported only when chosen

        self._yara_x: Any = yara_x
        compiler = yara_x.Compiler()
        for src in sources:
            try:
                compiler.new_namespace(_namespace(src.path))
                compiler.add_source(src.text, origin=src.path)
            except yara_x.CompileError as exc:
                text = str(exc)
                m = _YARA_X_POS.search(text)
                line = int(m.group("line")) if m else None
                first = text.splitlines()[0] if text else "compile error"
                raise RuleError(
                    first,
                    file=src.path,
                    line=line,
                    hint="fix the rule; the previous rule set stays active",
                ) from None
        self._rules = compiler.build()
        self._local = threading.local()

    def _scanner(self) -> Any:
        scanner = getattr(self._local, "scanner", None)
        if scanner is None:
            scanner = self._yara_x.Scanner(self._rules)
            scanner.max_matches_per_pattern(MAX_MATCHES_PER_STRING)
            self._local.scanner = scanner
        return scanner

    def scan(self, data: bytes) -> list[RuleMatch]:
        results = self._scanner().scan(data)
        out: list[RuleMatch] = []
        for rule in results.matching_rules:
            offsets = sorted(
                (m.offset, m.length) for pattern in rule.patterns for m in pattern.matches
            )
            out.append(RuleMatch(rule.identifier, dict(rule.metadata), tuple(offsets)))
        return out


class _YaraPython:
    engine = "yara"

    def __init__(self, sources: Sequence[RuleSource]) -> None:
        import yara  # noqa: PLC0415 - optional engines are imported only when chosen

        # compile each file alone first so an error names its file and line
        for src in sources:
            try:
                yara.compile(source=src.text)
            except yara.SyntaxError as exc:
                m = _YARA_POS.search(str(exc))
                raise RuleError(
                    str(exc),
                    file=src.path,
                    line=int(m.group("line")) if m else None,
                    hint="fix the rule; the previous rule set stays active",
                ) from None
        try:
            self._rules: Any = yara.compile(sources={_namespace(s.path): s.text for s in sources})
        except yara.Error as exc:
            raise RuleError(str(exc), hint="fix the rule set") from None
        self._error: Any = yara.Error

    def scan(self, data: bytes) -> list[RuleMatch]:
        out: list[RuleMatch] = []
        for match in self._rules.match(data=data):
            offsets = sorted(
                (inst.offset, inst.matched_length)
                for s in match.strings
                for inst in s.instances[:MAX_MATCHES_PER_STRING]
            )
            out.append(RuleMatch(match.rule, dict(match.meta), tuple(offsets)))
        return out


def _namespace(path: str) -> str:
    name = path.rsplit("/", 1)[-1].removesuffix(".yar").removesuffix(".yara")
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "rules"


def compile_rules(sources: Sequence[RuleSource], engine: str = "yara-x") -> CompiledRules:
    """Compile rule sources with the chosen engine; RuleError names file and line."""
    if engine == "yara-x":
        return _YaraX(sources)
    if engine == "yara":
        return _YaraPython(sources)
    raise RuleError(f"unknown engine {engine!r}", hint=f"choose one of {', '.join(ENGINES)}")
