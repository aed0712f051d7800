"""The collector's SQLite store: events as received (de-duplicated by id) and per-agent state.

One writer at a time (a lock around each ingest transaction): a batch is
checked and stored in one transaction, so a crash never leaves an event
stored without its agent state advanced, or the reverse.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.collector.checks import (
    DATASET_ALERT,
    AgentState,
    canonical,
    check_event,
    check_silence,
)
from agent.errors import CollectorError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT,
    dataset TEXT NOT NULL,
    sequence INTEGER,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    forwarded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unforwarded ON events (forwarded, rowid);
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, state TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingested:
    """What one batch did: counts, and the new documents (events + alerts) to forward."""

    accepted: int
    duplicates: int
    alerts: tuple[dict[str, Any], ...]


def _state_from_json(text: str) -> AgentState:
    raw = json.loads(text)
    raw["missing"] = tuple(tuple(r) for r in raw.get("missing", ()))
    return AgentState(**raw)


class Store:
    """SQLite (WAL) at `path`; thread-safe through one lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CollectorError(
                f"cannot open the collector database {self.path}: {exc}",
                hint="check collector.db: its folder must exist and be writable",
            ) from None

    @contextmanager
    def _begin(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _state(self, conn: sqlite3.Connection, agent_id: str) -> AgentState:
        row = conn.execute("SELECT state FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        return AgentState(agent_id=agent_id) if row is None else _state_from_json(row[0])

    def _save_state(self, conn: sqlite3.Connection, state: AgentState) -> None:
        conn.execute(
            "INSERT INTO agents (agent_id, state) VALUES (?, ?) "
            "ON CONFLICT(agent_id) DO UPDATE SET state = excluded.state",
            (state.agent_id, json.dumps(asdict(state))),
        )

    def _insert(self, conn: sqlite3.Connection, doc: dict[str, Any], now: float) -> bool:
        event = doc["event"]
        agent = doc.get("agent")
        agent_id = agent.get("id") if isinstance(agent, dict) else None
        seq = event.get("sequence")
        cursor = conn.execute(
            "INSERT OR IGNORE INTO events (id, agent_id, dataset, sequence, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                str(event["id"]),
                agent_id if isinstance(agent_id, str) else None,
                str(event["dataset"]),
                seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                canonical(doc),
            ),
        )
        return cursor.rowcount == 1

    def ingest(self, documents: Sequence[dict[str, Any]], now: float) -> Ingested:
        """Store new events (by id), run the per-agent checks, store their alerts."""
        accepted = duplicates = 0
        alerts: list[dict[str, Any]] = []
        with self._lock:
            try:
                with self._begin() as conn:
                    states: dict[str, AgentState] = {}
                    for doc in documents:
                        if not self._insert(conn, doc, now):
                            duplicates += 1
                            continue
                        accepted += 1
                        agent = doc.get("agent")
                        agent_id = agent.get("id") if isinstance(agent, dict) else None
                        if doc["event"]["dataset"] == DATASET_ALERT or not isinstance(
                            agent_id, str
                        ):
                            continue
                        state = states.get(agent_id) or self._state(conn, agent_id)
                        states[agent_id], raised = check_event(state, doc, now)
                        alerts.extend(raised)
                    for state in states.values():
                        self._save_state(conn, state)
                    for doc in alerts:
                        self._insert(conn, doc, now)
            except sqlite3.Error as exc:
                raise CollectorError(
                    f"cannot store events in {self.path}: {exc}",
                    hint="check the disk holding collector.db; the agent will resend",
                ) from None
        return Ingested(accepted=accepted, duplicates=duplicates, alerts=tuple(alerts))

    def check_silence(self, now: float, timeout_seconds: float) -> list[dict[str, Any]]:
        """Raise `agent-silent` alerts for agents without a recent heartbeat; store them."""
        alerts: list[dict[str, Any]] = []
        with self._lock, self._begin() as conn:
            for (text,) in conn.execute("SELECT state FROM agents").fetchall():
                state, raised = check_silence(_state_from_json(text), now, timeout_seconds)
                if raised:
                    self._save_state(conn, state)
                    alerts.extend(raised)
            for doc in alerts:
                self._insert(conn, doc, now)
        return alerts

    # -- reading ------------------------------------------------------------------

    def events(self, *, dataset: str | None = None) -> list[str]:
        """Every stored event body, in arrival order (optionally one dataset)."""
        query = "SELECT body FROM events"
        args: tuple[str, ...] = ()
        if dataset is not None:
            query += " WHERE dataset = ?"
            args = (dataset,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY rowid", args).fetchall()
        return [str(r[0]) for r in rows]

    def agents(self) -> list[AgentState]:
        """The state of every agent seen, by id."""
        with self._lock:
            rows = self._conn.execute("SELECT state FROM agents ORDER BY agent_id").fetchall()
        return [_state_from_json(r[0]) for r in rows]

    def unforwarded(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """(rowid, document) of the oldest events not yet forwarded."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT rowid, body FROM events WHERE forwarded = 0 ORDER BY rowid LIMIT ?",
                (limit,),
            ).fetchall()
        return [(int(r), json.loads(b)) for r, b in rows]

    def mark_forwarded(self, rowids: Sequence[int]) -> None:
        """Remember that these events reached every forward sink."""
        with self._lock, self._begin() as conn:
            conn.executemany(
                "UPDATE events SET forwarded = 1 WHERE rowid = ?", [(r,) for r in rowids]
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
