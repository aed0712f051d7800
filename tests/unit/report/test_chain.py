"""The hash chain: canonical JSON, sealing, verification, and agreement with the collector."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collector.checks import recompute_hash
from agent.report.chain import canonical, event_hash, seal, verify

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_canonical_sorts_keys_and_is_compact() -> None:
    """Canonical JSON sorts keys, has no spaces and escapes non-ASCII."""
    assert canonical({"b": 1, "a": "é"}) == '{"a":"\\u00e9","b":1}'


def test_seal_links_and_verifies() -> None:
    """A sealed document carries prev and a hash that verifies."""
    sealed = seal({"event": {"id": "x"}}, "abc")
    assert sealed["egress_guard"]["chain"]["prev"] == "abc"
    assert verify(sealed)


def test_any_change_breaks_verification() -> None:
    """Changing any field, or the prev link, makes verification fail."""
    sealed = seal({"event": {"id": "x"}, "file": {"path": "/a"}}, None)
    altered = {**sealed, "file": {"path": "/b"}}
    assert not verify(altered)
    relinked = {
        **sealed,
        "egress_guard": {"chain": {**sealed["egress_guard"]["chain"], "prev": "z"}},
    }
    assert not verify(relinked)


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.none() | st.text(max_size=64)
)
def test_collector_recomputes_the_agent_hash(document: dict[str, Any], prev: str | None) -> None:
    """The collector's recomputation equals the agent's hash for any document."""
    sealed = seal(document, prev)
    assert recompute_hash(sealed) == sealed["egress_guard"]["chain"]["hash"] == event_hash(sealed)
