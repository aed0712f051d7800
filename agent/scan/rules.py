"""Rule sets: find the .yar files (shipped or the user's), compile them, version them.

Shipped rules live in `rules/` and are never edited in place; a site adds its
own folder with `[scan] rules = "/etc/egress-guard/rules"` (the shipped rules
stay loaded first). Every rule names its validator in metadata; a rule whose
validator is unknown is refused at compile time, not at the first hit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from agent.errors import RuleError
from agent.scan.engine import CompiledRules, RuleSource, compile_rules

_RULE_HEAD = re.compile(r"^\s*(?:private\s+|global\s+)*rule\s+(\w+)", re.MULTILINE)
_META_VALIDATOR = re.compile(r'validator\s*=\s*"([^"]+)"')


def builtin_rules_dir() -> Path:
    """The shipped rules: inside the wheel, or `rules/` beside the package in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_rules", here.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise RuleError(
        "the shipped rules folder is missing",
        hint="reinstall egress-guard; the wheel carries its rules under agent/_rules",
    )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules plus what identifies them in events (`rule.version`)."""

    compiled: CompiledRules
    version: str
    sources: tuple[RuleSource, ...]
    engine: str

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Every rule identifier in the set, in file order."""
        return tuple(n for s in self.sources for n in _RULE_HEAD.findall(s.text))


def read_sources(location: str = "builtin") -> list[RuleSource]:
    """Read the .yar files of the shipped set and, when given, a user's folder or file after them."""
    paths = sorted(builtin_rules_dir().glob("*.yar"))
    if location != "builtin":
        user = Path(location)
        if user.is_dir():
            paths += sorted(user.glob("*.yar")) + sorted(user.glob("*.yara"))
        elif user.is_file():
            paths.append(user)
        else:
            raise RuleError(
                f"rules location {location} does not exist",
                hint='set [scan] rules to "builtin" or to a folder of .yar files',
            )
    sources: list[RuleSource] = []
    for p in paths:
        try:
            sources.append(RuleSource(str(p), p.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"cannot read rule file: {exc}", file=str(p)) from None
    if not sources:
        raise RuleError("no rule files found", hint="the rules folder holds no .yar file")
    return sources


def check_validators(sources: list[RuleSource], known: set[str]) -> None:
    """Refuse a rule that names no validator or one that does not exist."""
    for src in sources:
        heads = list(_RULE_HEAD.finditer(src.text))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(src.text)
            body = src.text[head.start() : end]
            line = src.text.count("\n", 0, head.start()) + 1
            m = _META_VALIDATOR.search(body)
            if m is None:
                raise RuleError(
                    "has no `validator` in its meta section",
                    file=src.path,
                    line=line,
                    rule=head.group(1),
                    hint=f"name one of: {', '.join(sorted(known))}",
                )
            if m.group(1) not in known:
                raise RuleError(
                    f"names unknown validator {m.group(1)!r}",
                    file=src.path,
                    line=line,
                    rule=head.group(1),
                    hint=f"name one of: {', '.join(sorted(known))}",
                )


def load(location: str = "builtin", engine: str = "yara-x", *, validators: set[str]) -> RuleSet:
    """Read, check and compile a rule set; RuleError leaves any previous set untouched."""
    sources = read_sources(location)
    check_validators(sources, validators)
    compiled = compile_rules(sources, engine)
    digest = hashlib.sha256()
    for s in sources:
        digest.update(Path(s.path).name.encode())
        digest.update(s.text.encode())
    return RuleSet(compiled, digest.hexdigest()[:12], tuple(sources), engine)


_META_LINE = re.compile(r'^\s*(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$', re.MULTILINE)


def rule_metas(sources: tuple[RuleSource, ...] | list[RuleSource]) -> dict[str, dict[str, str]]:
    """Each rule's meta section as text (for self-tests and `rules check`), by rule name."""
    out: dict[str, dict[str, str]] = {}
    for src in sources:
        heads = list(_RULE_HEAD.finditer(src.text))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(src.text)
            body = src.text[head.start() : end]
            meta_start = body.find("meta:")
            if meta_start < 0:
                out[head.group(1)] = {}
                continue
            stop = min(
                (
                    x
                    for x in (
                        body.find("strings:", meta_start),
                        body.find("condition:", meta_start),
                    )
                    if x > 0
                ),
                default=len(body),
            )
            section = body[meta_start + len("meta:") : stop]
            out[head.group(1)] = {
                m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                for m in _META_LINE.finditer(section)
            }
    return out
