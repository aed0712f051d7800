"""Tamper evidence: canonical JSON and the per-agent hash chain over stored events.

Each stored event carries `egress_guard.chain = {"prev": <hash of the agent's
previous event or None>, "hash": <sha256 hex>}`. The hash covers the canonical
JSON of the whole document with `chain.hash` left out (so `chain.prev`, the
sequence and every other field are covered). A collector recomputes it with
the same three rules: sort keys, compact separators, ASCII escapes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(document: dict[str, Any]) -> str:
    """The one JSON text of a document: what is hashed, stored and shipped."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def event_hash(document: dict[str, Any]) -> str:
    """sha256 hex of the canonical document without `egress_guard.chain.hash`."""
    eg = dict(document.get("egress_guard") or {})
    chain = dict(eg.get("chain") or {})
    chain.pop("hash", None)
    eg["chain"] = chain
    unhashed = dict(document)
    unhashed["egress_guard"] = eg
    return hashlib.sha256(canonical(unhashed).encode("ascii")).hexdigest()


def seal(document: dict[str, Any], prev: str | None) -> dict[str, Any]:
    """A copy of the document linked after `prev`, with its own hash filled in."""
    sealed = dict(document)
    eg = dict(sealed.get("egress_guard") or {})
    eg["chain"] = {"prev": prev}
    sealed["egress_guard"] = eg
    eg["chain"] = {"prev": prev, "hash": event_hash(sealed)}
    return sealed


def verify(document: dict[str, Any]) -> bool:
    """True when the document's own `chain.hash` matches its content."""
    chain = (document.get("egress_guard") or {}).get("chain")
    if not isinstance(chain, dict) or not isinstance(chain.get("hash"), str):
        return False
    return bool(chain["hash"] == event_hash(document))
