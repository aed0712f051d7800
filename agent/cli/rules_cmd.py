"""`egress-guard rules check [PATH]`: compile under both engines and run each rule's self-test.

A rule's `selftest` meta names sample generators (agent.scan.samples) that
make a fresh key in the rule's encoding; the check requires a validated
finding with the sample's fingerprint. Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli.common import EXIT_ERROR, EXIT_OK
from agent.errors import RuleError
from agent.scan import rules as rules_mod
from agent.scan.engine import ENGINES
from agent.scan.samples import SAMPLES
from agent.scan.scanner import Scanner, ScanSettings
from agent.scan.validators import VALIDATORS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rules check`."""
    p = sub.add_parser("rules", help="check rule files")
    rsub = p.add_subparsers(dest="rules_command", required=True)
    c = rsub.add_parser("check", help="compile rules with both engines and run their self-tests")
    c.add_argument(
        "path", nargs="?", default="builtin", help="a folder or .yar file (default: shipped)"
    )
    c.add_argument("--engine", choices=(*ENGINES, "both"), default="both")
    c.set_defaults(func=_check)


def check(location: str, engines: tuple[str, ...]) -> list[str]:
    """Every failure as a line; empty when all rules compile and pass their self-tests."""
    failures: list[str] = []
    try:
        sources = rules_mod.read_sources(location)
        rules_mod.check_validators(sources, set(VALIDATORS))
    except RuleError as exc:
        return [str(exc)]
    metas = rules_mod.rule_metas(sources)
    samples = {
        name: SAMPLES[name]() for meta in metas.values() for name in _names(meta) if name in SAMPLES
    }
    for engine in engines:
        try:
            ruleset = rules_mod.load(location, engine, validators=set(VALIDATORS))
        except RuleError as exc:
            failures.append(f"[{engine}] {exc}")
            continue
        scanner = Scanner(ruleset, ScanSettings(number_search="off"))
        for rule, meta in metas.items():
            names = _names(meta)
            if not names:
                failures.append(f"[{engine}] rule {rule}: no `selftest` samples named in its meta")
                continue
            for name in names:
                sample = samples.get(name)
                if sample is None:
                    failures.append(f"[{engine}] rule {rule}: unknown self-test sample {name!r}")
                    continue
                findings = scanner.scan_bytes(sample.data, name=name)
                ok = any(
                    f.validated
                    and f.rule == rule
                    and (sample.fingerprint is None or f.fingerprint == sample.fingerprint)
                    for f in findings
                )
                if not ok:
                    got = sorted({f"{f.rule}:{f.fingerprint}" for f in findings})
                    failures.append(
                        f"[{engine}] rule {rule}: self-test {name} not found "
                        f"(findings: {', '.join(got) or 'none'})"
                    )
    return failures


def _names(meta: dict[str, str]) -> list[str]:
    return [n.strip() for n in meta.get("selftest", "").split(",") if n.strip()]


def _check(args: argparse.Namespace) -> int:
    engines = ENGINES if args.engine == "both" else (args.engine,)
    failures = check(args.path, tuple(engines))
    try:
        sources = rules_mod.read_sources(args.path)
        count = len(rules_mod.rule_metas(sources))
    except RuleError:
        count = 0
    for line in failures:
        print(f"✗ {line}")
    if failures:
        print(f"rules check failed: {len(failures)} problem(s)", file=sys.stderr)
        return EXIT_ERROR
    print(f"✓ {count} rules compile under {', '.join(engines)} and pass their self-tests")
    return EXIT_OK
