"""`egress-guard run`: the daemon in the foreground (systemd supervises it).

`run --demo` starts the embedded default instead: everything under ./demo, a
watched drop folder, a local quarantine, and the reference collector (SQLite)
as a child process on 127.0.0.1:8765.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import subprocess
import sys
import time
from pathlib import Path

from agent import config as config_mod
from agent.cli.common import DEFAULT_CONFIG, build_scanner
from agent.daemon import Daemon
from agent.errors import EgressGuardError
from agent.logs import configure, get_logger

log = get_logger("agent.run")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `run`."""
    p = sub.add_parser("run", help="run the watching daemon in the foreground")
    p.add_argument("--config", help=f"agent config (default: {DEFAULT_CONFIG})")
    p.add_argument(
        "--demo",
        nargs="?",
        const="demo",
        metavar="DIR",
        help="run the embedded demo set-up under DIR (default ./demo) with a local collector",
    )
    p.set_defaults(func=_run)


def _demo_template() -> str:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_demo.toml", here.parent / "packaging" / "demo.toml"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise EgressGuardError("the demo config is missing", hint="reinstall egress-guard")


def prepare_demo(root: Path) -> Path:
    """Create the demo folders, token and config; returns the config path."""
    root = root.resolve()
    for sub in ("drop", "state", "quarantine"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    token = root / "token"
    if not token.exists():
        value = secrets.token_urlsafe(32)
        token.write_text(value + "\n", encoding="ascii")
        token.chmod(0o600)
        tokens = root / "agent-tokens"
        tokens.write_text(f"{value} *\n", encoding="ascii")
        tokens.chmod(0o600)
    cfg_path = root / "agent.toml"
    cfg_path.write_text(_demo_template().replace("{demo}", str(root)), encoding="utf-8")
    return cfg_path


def _run(args: argparse.Namespace) -> int:
    collector: subprocess.Popen[bytes] | None = None
    if args.demo:
        cfg_path = prepare_demo(Path(args.demo))
        collector = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "collector", "serve", "--config", str(cfg_path)]
        )
        demo = cfg_path.parent
        print(
            f"egress-guard demo: drop files into {demo / 'drop'}\n"
            f"  events:     egress-guard collector events --config {cfg_path}\n"
            f"  quarantine: egress-guard quarantine list --config {cfg_path}\n"
            "  stop:       Ctrl-C",
            file=sys.stderr,
        )
    else:
        cfg_path = Path(args.config or DEFAULT_CONFIG)
    try:
        cfg = config_mod.load(cfg_path)
        configure(level="debug" if args.debug else cfg.agent.log_level)
        daemon = Daemon(cfg, build_scanner)
        return daemon.run()
    finally:
        if collector is not None:
            collector.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                collector.wait(timeout=10)
            if collector.poll() is None:
                collector.kill()
            time.sleep(0)
