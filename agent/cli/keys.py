"""`egress-guard keys add|list|remove`: the known-key inventory (public halves of crown jewels).

A finding whose fingerprint is registered is critical and names the key. Only
public keys are accepted; a private key is refused without echoing it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from agent import config as config_mod
from agent.cli.common import EXIT_ERROR, EXIT_OK, inventory_path
from agent.errors import EgressGuardError
from agent.scan import inventory as inventory_mod

SYSTEM_STATE_DIR = Path("/var/lib/egress-guard")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys add`, `keys list` and `keys remove`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="F", help="agent config (its state_dir or inventory)")
    common.add_argument(
        "--file", metavar="INVENTORY", help="inventory file (default: STATE_DIR/keys.json)"
    )
    p = sub.add_parser("keys", help="register public keys whose leak must be named (inventory)")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    add = ksub.add_parser("add", parents=[common], help="register a public key under a name")
    add.add_argument("key_file", metavar="PUBLIC_KEY_FILE", help="public key or certificate")
    add.add_argument("--name", required=True, help="unique name shown in findings")
    add.set_defaults(func=_add)
    ls = ksub.add_parser("list", parents=[common], help="show the registered keys")
    ls.add_argument("--format", choices=("text", "jsonl"), default="text")
    ls.set_defaults(func=_list)
    rm = ksub.add_parser("remove", parents=[common], help="unregister a key")
    rm.add_argument("key", metavar="NAME_OR_FINGERPRINT")
    rm.set_defaults(func=_remove)


def default_state_dir() -> Path:
    """/var/lib/egress-guard when writable, else the user's XDG state folder."""
    probe = SYSTEM_STATE_DIR if SYSTEM_STATE_DIR.exists() else SYSTEM_STATE_DIR.parent
    if os.access(probe, os.W_OK):
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "egress-guard"


def resolve_inventory(args: argparse.Namespace) -> Path:
    """--file, else the config's inventory (or its state_dir), else the default state folder."""
    if args.file:
        return Path(args.file)
    if args.config:
        return inventory_path(config_mod.load(args.config))
    return default_state_dir() / "keys.json"


def _fail(args: argparse.Namespace, exc: EgressGuardError) -> int:
    if getattr(args, "debug", False):
        raise exc
    print(f"egress-guard: error: {exc}", file=sys.stderr)
    return EXIT_ERROR


def _add(args: argparse.Namespace) -> int:
    try:
        path = resolve_inventory(args)
        key = inventory_mod.add_key(path, Path(args.key_file), args.name)
    except EgressGuardError as exc:
        return _fail(args, exc)
    size = f"{key.bits} bits" if key.bits else key.curve or ""
    print(f"registered {key.name!r}: {key.algorithm} {size} {key.fingerprint}".replace("  ", " "))
    print(f"  in {path}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    try:
        path = resolve_inventory(args)
        inventory = inventory_mod.load_inventory(path)
    except EgressGuardError as exc:
        return _fail(args, exc)
    if args.format == "jsonl":
        for key in inventory.keys:
            print(json.dumps(inventory_mod.key_to_json(key), sort_keys=True))
        return EXIT_OK
    if not inventory.keys:
        print(f"no keys registered in {path}", file=sys.stderr)
        return EXIT_OK
    rows = [("NAME", "ALGORITHM", "SIZE", "FINGERPRINT", "ADDED")]
    for k in inventory.keys:
        size = str(k.bits) if k.bits else k.curve or "-"
        rows.append((k.name, k.algorithm, size, k.fingerprint, k.added_at or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    try:
        path = resolve_inventory(args)
        key = inventory_mod.remove_key(path, args.key)
    except EgressGuardError as exc:
        return _fail(args, exc)
    print(f"removed {key.name!r} ({key.fingerprint}) from {path}")
    return EXIT_OK
