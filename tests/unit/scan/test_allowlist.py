"""Public test-key allowlist: the shipped file and the user's files parse, and bad lines name their place."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.scan import allowlist as allowlist_mod
from agent.scan.allowlist import (
    SHIPPED_NAME,
    Allowlist,
    AllowlistError,
    load_allowlist,
    parse_allowlist,
)
from agent.scan.rules import builtin_rules_dir

FP_A = "sha256:" + "ab" * 32
FP_B = "sha256:" + "0f" * 32


def test_entries_comments_and_blank_lines_parse() -> None:
    """Fingerprints with trailing comments count; blank and comment lines are ignored."""
    text = f"# header\n\n{FP_A}  # openssl speed rsa2048\n  {FP_B.upper().replace('SHA256', 'sha256')}\n"
    assert parse_allowlist(text.splitlines(), "x") == frozenset({FP_A, FP_B})


@pytest.mark.parametrize(
    "line",
    ["sha256:abc", "md5:" + "a" * 32, FP_A + " trailing words", "ab" * 32, FP_A + "00"],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    """A line that is not `sha256:<64 hex>` is refused with the file name and line number."""
    f = tmp_path / "site-allowlist.txt"
    f.write_text(f"# ok\n{FP_A}\n{line}\n")
    with pytest.raises(AllowlistError) as info:
        load_allowlist([str(f)])
    assert f"{f}:3:" in str(info.value)
    assert info.value.hint


def test_user_files_extend_the_shipped_list(tmp_path: Path) -> None:
    """load_allowlist merges the user's files with the shipped list; lookups ignore case."""
    f = tmp_path / "extra.txt"
    f.write_text(f"{FP_A}\n")
    allow = load_allowlist([str(f)])
    assert allow.contains(FP_A)
    assert allow.contains(FP_A.upper().replace("SHA256", "sha256"))
    assert not allow.contains(FP_B)
    assert allow.fingerprints >= load_allowlist().fingerprints


def test_missing_user_file_is_a_clear_error(tmp_path: Path) -> None:
    """A configured allowlist file that does not exist is refused with its path."""
    with pytest.raises(AllowlistError, match="does not exist"):
        load_allowlist([str(tmp_path / "nope.txt")])


def test_shipped_allowlist_exists_and_parses() -> None:
    """The shipped allowlist.txt sits beside the rules and is valid."""
    shipped = builtin_rules_dir() / SHIPPED_NAME
    assert shipped.is_file()
    allowlist_mod.read_allowlist_file(shipped)


def test_empty_allowlist_contains_nothing() -> None:
    """An empty Allowlist contains no fingerprint."""
    assert not Allowlist().contains(FP_A)
    assert len(Allowlist()) == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=5))
def test_arbitrary_text_parses_or_raises_allowlist_error(lines: list[str]) -> None:
    """Any text either parses into fingerprints or raises AllowlistError."""
    try:
        parsed = parse_allowlist(lines, "fuzz")
    except AllowlistError:
        return
    assert all(fp.startswith("sha256:") and len(fp) == 71 for fp in parsed)
