"""`egress-guard config check [FILE]`: prints ✓/✗ per step, without starting anything."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent import config as config_mod
from agent.cli.common import DEFAULT_CONFIG, EXIT_ERROR, EXIT_OK, build_scanner
from agent.errors import EgressGuardError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `config check`."""
    p = sub.add_parser("config", help="check a config file")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="parse the config, compile its rules, check paths")
    c.add_argument("file", nargs="?", default=DEFAULT_CONFIG)
    c.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    ok = True

    def step(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        print(f"{'✓' if good else '✗'} {text}")

    try:
        cfg = config_mod.load(args.file)
    except EgressGuardError as exc:
        step(False, str(exc))
        return EXIT_ERROR
    step(True, f"{args.file}: valid ({len(cfg.watch)} watched root(s), {len(cfg.sink)} sink(s))")
    try:
        build_scanner(cfg)
        step(True, f"rules {cfg.scan.rules!r} compile with {cfg.scan.engine}")
    except EgressGuardError as exc:
        step(False, f"rules: {exc}")
    for w in cfg.watch:
        step(
            os.path.isdir(w.path),
            f"watch {w.path}: {'exists' if os.path.isdir(w.path) else 'missing'}",
        )
    if cfg.quarantine.dir:
        parent = Path(cfg.quarantine.dir)
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        good = os.access(parent, os.W_OK)
        step(good, f"quarantine {cfg.quarantine.dir}: {'writable' if good else 'not writable'}")
    else:
        step(True, "quarantine: not configured (report only)")
    for i, s in enumerate(cfg.sink):
        if s.token_file is not None:
            good = os.access(s.token_file.path, os.R_OK)
            step(
                good,
                f"sink[{i}] ({s.label}) token file {s.token_file.path}: "
                f"{'readable' if good else 'unreadable'}",
            )
    return EXIT_OK if ok else EXIT_ERROR
