"""Command line: one module per subcommand, the COMMANDS table, and exit codes decided here only.

Exit codes (stable, like clamscan): 0 nothing found / success, 1 key material
found, 2 error. `--debug` shows tracebacks; a closed stdout (`| head`) is quiet.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from agent import __version__, logs
from agent.errors import EgressGuardError

EXIT_ERROR = 2  # same value as agent.cli.common.EXIT_ERROR, without importing the scanner

# subcommand -> (module with register(subparsers), one-line help). Only the module of the
# command being run is imported: `collector events` need not load YARA, numpy and friends.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("agent.cli.run", "run the watching daemon in the foreground"),
    "sweep": ("agent.cli.sweep", "scan files and folders once (incident response)"),
    "scan": ("agent.cli.sweep", "scan one file"),
    "quarantine": ("agent.cli.quarantine", "list, show, restore, export and purge the vault"),
    "rules": ("agent.cli.rules_cmd", "check rule files"),
    "keys": ("agent.cli.keys", "the known-key inventory (public halves only)"),
    "config": ("agent.cli.config_cmd", "check a config file"),
    "collector": ("agent.cli.collector", "the reference collector"),
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; the chosen subcommand's module is loaded, the others only named."""
    parser = argparse.ArgumentParser(
        prog="egress-guard",
        description="Find private keys in crash dumps and other files; quarantine and report them.",
    )
    parser.add_argument("--version", action="version", version=f"egress-guard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="stderr log format (default: console on a terminal, JSON otherwise)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    if chosen is not None:
        importlib.import_module(COMMANDS[chosen][0]).register(sub)
    for name, (_, help_text) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `egress-guard` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    logs.configure(level="debug" if args.debug else "info", json=json_logs)
    try:
        code: int = args.func(args)
    except EgressGuardError as exc:
        if args.debug:
            raise
        print(f"egress-guard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `sweep --format jsonl | head` closed our stdout: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
