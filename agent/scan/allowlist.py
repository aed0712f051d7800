"""Public test keys: fingerprints of keys whose private halves are already published.

A correct validator finds real private keys on every normal host: the RSA
test keys built into `openssl speed` (inside /usr/bin/openssl, libcrypto and
every core of an OpenSSL process) and the fixture keys that test suites ship.
A finding on one of these is informational (`allowlisted: true`) and never
quarantines a file. The shipped list is `allowlist.txt` beside the rules; a
site adds its own files with `[scan] allowlist_files` (same format).

Format: one `sha256:<64 hex>` per line, optionally followed by `# comment`;
blank lines and lines starting with `#` are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import EgressGuardError
from agent.scan.rules import builtin_rules_dir

SHIPPED_NAME = "allowlist.txt"
_LINE = re.compile(r"(sha256:[0-9a-fA-F]{64})\s*(?:#.*)?")


class AllowlistError(EgressGuardError):
    """An allowlist file could not be read or holds a line that is not a fingerprint."""


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Fingerprints of public test keys (lower-case `sha256:<hex>`)."""

    fingerprints: frozenset[str] = frozenset()

    def contains(self, fingerprint: str) -> bool:
        """True when the key is a known public test key."""
        return fingerprint.lower() in self.fingerprints

    def __len__(self) -> int:
        return len(self.fingerprints)


def parse_allowlist(lines: Iterable[str], source: str) -> frozenset[str]:
    """The fingerprints in an allowlist text; AllowlistError naming `source` and the line."""
    found: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise AllowlistError(
                f"{source}:{number}: not an allowlist entry",
                hint="each line is `sha256:<64 hex digits>` optionally followed by `# comment`",
            )
        found.add(match.group(1).lower())
    return frozenset(found)


def read_allowlist_file(path: Path) -> frozenset[str]:
    """The fingerprints in one allowlist file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AllowlistError(
            f"allowlist file {path} does not exist",
            hint="fix or remove the path in [scan] allowlist_files",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AllowlistError(
            f"cannot read allowlist file {path}: {getattr(exc, 'strerror', None) or exc}",
            hint="the file must be readable UTF-8 text",
        ) from None
    return parse_allowlist(text.splitlines(), str(path))


def load_allowlist(extra_files: Sequence[str] = ()) -> Allowlist:
    """The shipped allowlist plus the user's files from `[scan] allowlist_files`."""
    shipped = builtin_rules_dir() / SHIPPED_NAME
    found = set(read_allowlist_file(shipped)) if shipped.exists() else set()
    for name in extra_files:
        found |= read_allowlist_file(Path(name))
    return Allowlist(frozenset(found))
