"""`egress-guard quarantine list|show|restore|export|purge|keygen`: the vault from the command line.

Exit codes: 0 done, 1 no such item, 2 refused or failed (the reason and a
hint on stderr). restore, export and purge each append an
`egress_guard.audit` event to the agent's outbox (the daemon ships it); the
outbox is opened before the operation, so an operation that cannot be
audited is not done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.cli.common import EXIT_ERROR, EXIT_OK, load_config
from agent.config import AgentConfig
from agent.errors import EgressGuardError, QuarantineError
from agent.quarantine import seal
from agent.quarantine.items import ItemNotFound, to_json
from agent.quarantine.vault import Vault
from agent.report.event import audit_document, load_identity
from agent.report.outbox import Outbox
from agent.sources.state import ScanState, identity_of
from agent.values import Outcome, QuarantineItem

T = TypeVar("T")

EXIT_NOT_FOUND = 1
AUDIT_PRIORITY = 80

KEY_NAME = "team-x25519.key"
PUB_NAME = "team-x25519.pub"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `quarantine` and its subcommands."""
    q = sub.add_parser("quarantine", help="list, show, restore, export and purge quarantined files")
    qsub = q.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = qsub.add_parser(name, help=help_text)
        p.add_argument("--config", help="agent config (default: /etc/egress-guard/agent.toml)")
        p.add_argument("--dir", help="the vault folder (default: [quarantine] dir)")
        return p

    p = add("list", "list quarantined files (a table on a terminal, else JSON lines)")
    p.add_argument("--format", choices=("text", "jsonl"), default=None)
    p.set_defaults(func=_list)
    p = add("show", "print one item's metadata as JSON")
    p.add_argument("id")
    p.set_defaults(func=_show)
    p = add("restore", "put an item back (refuses to overwrite or leave the allowed folders)")
    p.add_argument("id")
    p.add_argument("--to", help="target file or folder (default: the original path)")
    p.add_argument("--private-key", help="the team's X25519 private key (sealed items)")
    p.set_defaults(func=_restore)
    p = add("export", "write a plaintext copy of an item for analysis (0600)")
    p.add_argument("id")
    p.add_argument("--to", required=True, help="target file or folder")
    p.add_argument("--private-key", help="the team's X25519 private key (sealed items)")
    p.set_defaults(func=_export)
    p = add("purge", "delete items older than a number of days")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    p.set_defaults(func=_purge)
    p = qsub.add_parser(
        "keygen",
        help="write a sealing key pair for the security team (run it on THEIR machine)",
    )
    p.add_argument("--out", required=True, help="folder for team-x25519.key and .pub")
    p.set_defaults(func=_keygen)


def _config(args: argparse.Namespace) -> AgentConfig:
    return load_config(args.config)


def _vault(args: argparse.Namespace, cfg: AgentConfig) -> Vault:
    directory = args.dir or cfg.quarantine.dir
    if not directory:
        raise QuarantineError(
            "no quarantine folder given",
            step="config",
            hint="pass --dir DIR or --config FILE with [quarantine] dir",
        )
    # the team key only matters for sealing new files; reading the vault does not need it
    return Vault(Path(directory), restore_roots=cfg.quarantine.restore_roots)


def _fail(exc: EgressGuardError) -> int:
    print(f"egress-guard: {exc}", file=sys.stderr)
    return EXIT_NOT_FOUND if isinstance(exc, ItemNotFound) else EXIT_ERROR


class _Audit:
    """Appends the audit event of one operation; opened first so an unaudited operation fails early."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.agent = load_identity(cfg.state_dir, cfg.agent.id)
        # the same sink labels as the daemon, so its shipper delivers these events too
        labels = [s.label for s in cfg.sink] or ["default"]
        self.outbox = Outbox(cfg.state_dir / "outbox.db", sinks=labels)

    def record(self, action: str, message: str, outcome: Outcome, details: dict[str, Any]) -> None:
        doc = audit_document(
            self.agent, action=action, message=message, outcome=outcome, details=details
        )
        self.outbox.append(doc, priority=AUDIT_PRIORITY)

    def close(self) -> None:
        self.outbox.close()


def _audited(
    args: argparse.Namespace,
    action: str,
    run: Callable[[Vault], T],
    describe: Callable[[T], tuple[str, dict[str, Any]]],
) -> int:
    """Run one vault operation with its audit event (success or failure)."""
    cfg = _config(args)
    try:
        vault = _vault(args, cfg)
    except EgressGuardError as exc:
        return _fail(exc)
    audit = _Audit(cfg)
    try:
        details: dict[str, Any] = {"vault": str(vault.directory)}
        if getattr(args, "id", None):
            details["quarantine_id"] = args.id
        try:
            result = run(vault)
        except EgressGuardError as exc:
            details.update(step=getattr(exc, "step", None), reason=exc.message)
            audit.record(action, f"{action} refused: {exc.message}", Outcome.FAILURE, details)
            return _fail(exc)
        message, extra = describe(result)
        details.update(extra)
        audit.record(action, message, Outcome.SUCCESS, details)
    finally:
        audit.close()
    print(message)
    return EXIT_OK


def _key(args: argparse.Namespace) -> Path | None:
    return Path(args.private_key) if args.private_key else None


def _restore(args: argparse.Namespace) -> int:
    def run(vault: Vault) -> tuple[QuarantineItem, Path]:
        item = vault.show(args.id)
        to = Path(args.to) if args.to else None
        restored = vault.restore(args.id, to=to, private_key=_key(args))
        _mark_released(_config(args), restored)
        return item, restored

    def describe(result: tuple[QuarantineItem, Path]) -> tuple[str, dict[str, Any]]:
        item, path = result
        return f"restored {item.id} to {path}", _item_details(item, path)

    return _audited(args, "quarantine-restore", run, describe)


def _mark_released(cfg: AgentConfig, path: Path) -> None:
    """Tell the daemon this exact file version was reviewed, so a restore into a watched
    folder is not quarantined again (any later change makes it a new version)."""
    state_file = cfg.state_dir / "scan-state.db"
    if not state_file.exists():
        return
    state = ScanState(state_file)
    try:
        state.record(identity_of(str(path), path.lstat()), "released")
    finally:
        state.close()


def _export(args: argparse.Namespace) -> int:
    def run(vault: Vault) -> tuple[QuarantineItem, Path]:
        item = vault.show(args.id)
        return item, vault.export(args.id, to=Path(args.to), private_key=_key(args))

    def describe(result: tuple[QuarantineItem, Path]) -> tuple[str, dict[str, Any]]:
        item, path = result
        return f"exported {item.id} to {path}", _item_details(item, path)

    return _audited(args, "quarantine-export", run, describe)


def _purge(args: argparse.Namespace) -> int:
    def describe(ids: list[str]) -> tuple[str, dict[str, Any]]:
        return f"purged {len(ids)} item(s) older than {args.older_than:g} days", {
            "purged": ids,
            "older_than_days": args.older_than,
        }

    return _audited(
        args, "quarantine-purge", lambda v: v.purge(older_than_days=args.older_than), describe
    )


def _item_details(item: QuarantineItem, path: Path) -> dict[str, Any]:
    return {
        "original_path": item.original_path,
        "target": str(path),
        "sha256": item.sha256,
        "sealed": item.sealed,
        "rules": list(item.rules),
    }


def _list(args: argparse.Namespace) -> int:
    try:
        found = _vault(args, _config(args)).list()
    except EgressGuardError as exc:
        return _fail(exc)
    fmt = args.format or ("text" if sys.stdout.isatty() else "jsonl")
    if fmt == "jsonl":
        for item in found:
            print(json.dumps(to_json(item), sort_keys=True))
        return EXIT_OK
    rows = [("ID", "QUARANTINED", "SIZE", "SEALED", "RULES", "ORIGINAL")]
    rows += [
        (
            i.id,
            i.quarantined_at,
            str(i.size),
            "yes" if i.sealed else "no",
            ",".join(i.rules) or "-",
            i.original_path,
        )
        for i in found
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not found:
        print("(the vault is empty)")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        item = _vault(args, _config(args)).show(args.id)
    except EgressGuardError as exc:
        return _fail(exc)
    print(json.dumps(to_json(item), indent=2, sort_keys=True))
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for name in (KEY_NAME, PUB_NAME):
        if os.path.lexists(out / name):
            print(
                f"egress-guard: refusing to overwrite {out / name}\n"
                "  hint: pick another --out folder; keep the existing key, sealed items need it",
                file=sys.stderr,
            )
            return EXIT_ERROR
    private, public = seal.generate_keypair()
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: never replace a team key; losing it makes every sealed item unreadable
        key_fd = os.open(out / KEY_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(key_fd, "wb") as f:
            f.write(private)
        pub_fd = os.open(out / PUB_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(pub_fd, "wb") as f:
            f.write(public)
    except FileExistsError as exc:
        print(
            f"egress-guard: refusing to overwrite {exc.filename}\n"
            "  hint: pick another --out folder; keep the existing key, sealed items need it",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except OSError as exc:
        print(f"egress-guard: cannot write the key pair in {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    print(f"private key: {out / KEY_NAME} (keep it with the security team, never on a debug host)")
    print(f"public key:  {out / PUB_NAME} (set [quarantine] seal_public_key to it on the hosts)")
    return EXIT_OK
