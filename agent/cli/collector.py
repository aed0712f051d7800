"""`egress-guard collector serve|events|agents`: run the reference collector and read what it holds.

This module composes two stages, which only the CLI may do: the collector
(agent.collector) and the agent's sinks (agent.report.sinks), to forward
what the collector stores to the site's SIEM (`[[collector.sink]]`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import config as config_mod
from agent import logs
from agent.collector.checks import AgentState
from agent.collector.server import Collector, Forward
from agent.collector.store import Store
from agent.config import AgentConfig, SecretFile
from agent.errors import CollectorError, DeliveryError, EgressGuardError
from agent.logs import get_logger
from agent.report.chain import canonical
from agent.report.sinks import Partial, build_sinks
from agent.values import Event, Rejected, Retry

log = get_logger(__name__)

EXIT_OK = 0
EXIT_ERROR = 2


def _config(args: argparse.Namespace) -> AgentConfig:
    cfg = config_mod.load(args.config) if args.config else AgentConfig()
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "db", None):
        overrides["db"] = args.db
    if getattr(args, "tokens_file", None):
        overrides["tokens_file"] = SecretFile(args.tokens_file)
    if overrides:
        cfg = dataclasses.replace(cfg, collector=dataclasses.replace(cfg.collector, **overrides))
    return cfg


def build_forward(cfg: AgentConfig) -> tuple[Forward | None, list[Any]]:
    """A forward callable over the `[[collector.sink]]` sinks (None when there are none).

    It raises DeliveryError while any sink asks for a retry, so the collector
    keeps the events unforwarded and tries again; rejected events are logged
    and stay in the collector's database.
    """
    sinks = build_sinks(cfg.collector.sink)
    if not sinks:
        return None, []

    def forward(documents: list[dict[str, Any]]) -> None:
        batch = [
            Event(
                id=str(doc["event"]["id"]),
                dataset=str(doc["event"]["dataset"]),
                sequence=int(doc["event"].get("sequence") or 0),
                body=canonical(doc),
            )
            for doc in documents
        ]
        for sink in sinks:
            outcome = sink.send(batch)
            if isinstance(outcome, Retry) or (isinstance(outcome, Partial) and outcome.retry):
                raise DeliveryError(f"sink {sink.label} asked for a retry", sink=sink.label)
            if isinstance(outcome, Rejected | Partial):
                log.error("collector.forward_failed", sink=sink.label, error_type="rejected")

    return forward, sinks


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the collector until SIGTERM or SIGINT."""
    cfg = _config(args)
    forward, sinks = build_forward(cfg)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()  # the handler records; the main thread acts

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        collector = Collector(cfg.collector, forward=forward)
        collector.start()
        try:
            stop.wait()
        finally:
            collector.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for sink in sinks:
            sink.close()
    return EXIT_OK


def _open_store(args: argparse.Namespace) -> Store:
    db = Path(_config(args).collector.db)
    if not db.exists():
        raise CollectorError(
            f"no collector database at {db}", hint="pass --db or the collector's --config"
        )
    return Store(db)


def _want_jsonl(args: argparse.Namespace) -> bool:
    return bool(args.format == "jsonl" or (args.format is None and not sys.stdout.isatty()))


def cmd_events(args: argparse.Namespace) -> int:
    """Print every stored event as received: JSONL (default off a terminal) or a short table."""
    store = _open_store(args)
    try:
        bodies = store.events(dataset=args.dataset)
    finally:
        store.close()
    if _want_jsonl(args):
        for body in bodies:
            sys.stdout.write(body + "\n")
        sys.stdout.flush()
        return EXIT_OK
    print(f"{'@timestamp':<25} {'dataset':<24} {'agent':<38} {'seq':>6}  message")
    for body in bodies:
        doc = json.loads(body)
        event = doc.get("event") or {}
        print(
            f"{doc.get('@timestamp', '')!s:<25} {event.get('dataset', '')!s:<24} "
            f"{(doc.get('agent') or {}).get('id', '')!s:<38} "
            f"{event.get('sequence', '')!s:>6}  {str(doc.get('message', ''))[:80]}"
        )
    return EXIT_OK


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def agent_summary(state: AgentState) -> dict[str, Any]:
    """What `collector agents` prints for one agent."""
    return {
        "agent_id": state.agent_id,
        "last_heartbeat": _iso(state.last_heartbeat),
        "last_seen": _iso(state.last_seen),
        "last_sequence": state.last_sequence,
        "events": state.events,
        "gaps": state.gaps,
        "missing": [list(r) for r in state.missing],
        "reorders": state.reorders,
        "chain": state.chain_status,
        "chain_breaks": state.chain_breaks,
        "health": "silent" if state.silent else "ok",
        "agent_health": state.health,
    }


def cmd_agents(args: argparse.Namespace) -> int:
    """Print per agent: last heartbeat, last sequence, gaps, chain status, health."""
    store = _open_store(args)
    try:
        summaries = [agent_summary(s) for s in store.agents()]
    finally:
        store.close()
    if _want_jsonl(args):
        for summary in summaries:
            sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()
        return EXIT_OK
    print(f"{'agent':<38} {'last heartbeat':<21} {'seq':>7} {'gaps':>5} {'chain':<7} health")
    for s in summaries:
        print(
            f"{s['agent_id']:<38} {s['last_heartbeat'] or '-':<21} "
            f"{s['last_sequence'] if s['last_sequence'] is not None else '-':>7} "
            f"{s['gaps']:>5} {s['chain']:<7} {s['health']}"
        )
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `collector serve|events|agents` to the top-level parser."""
    parser = subparsers.add_parser("collector", help="run the reference collector, read its events")
    sub = parser.add_subparsers(dest="collector_command", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="take event batches over HTTP(S) until SIGTERM")
    serve.add_argument("--config", help="TOML config with a [collector] table")
    serve.add_argument("--listen", help="HOST:PORT (overrides collector.listen)")
    serve.add_argument("--db", help="SQLite database path (overrides collector.db)")
    serve.add_argument("--tokens-file", help="agent tokens file (overrides collector.tokens_file)")
    serve.set_defaults(func=cmd_serve)

    for name, func, what in (
        ("events", cmd_events, "print the stored events, one JSON object per line"),
        ("agents", cmd_agents, "print per agent: heartbeat, sequence, gaps, chain, health"),
    ):
        cmd = sub.add_parser(name, help=what)
        cmd.add_argument("--config", help="TOML config with a [collector] table")
        cmd.add_argument("--db", help="SQLite database path (overrides collector.db)")
        cmd.add_argument(
            "--format",
            choices=("jsonl", "table"),
            default=None,
            help="jsonl (default when stdout is not a terminal) or table",
        )
        if name == "events":
            cmd.add_argument("--dataset", help="only this event.dataset")
        cmd.set_defaults(func=func)


def main(argv: list[str] | None = None) -> int:
    """Run `collector ...` alone (without the other subcommands): `python agent/cli/collector.py`."""
    parser = argparse.ArgumentParser(prog="egress-guard")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["collector", *(sys.argv[1:] if argv is None else argv)])
    logs.configure()
    try:
        code: int = args.func(args)
    except EgressGuardError as exc:
        print(f"egress-guard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
