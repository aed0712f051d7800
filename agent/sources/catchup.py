"""Catch-up at start: every file under the watched roots that is new or changed since its last scan.

Runs once after the watches are placed (so nothing falls between the walk and
the watch) and yields Arrivals with cause CATCHUP; unchanged versions, as the
scan-state store remembers them, are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from agent.config import WatchSection
from agent.sources.state import ScanState, identity_of
from agent.sources.sweep import Excluder, files
from agent.values import Arrival, ArrivalCause


def catchup(
    watches: Sequence[WatchSection],
    state: ScanState,
    *,
    exclude: Sequence[str] = (),
    on_problem: Callable[[str, str], None] | None = None,
) -> Iterator[Arrival]:
    """Arrivals (cause CATCHUP) for files whose (device, inode, size, mtime) was never scanned."""
    for watch in watches:
        root = os.path.abspath(watch.path)
        excluder = Excluder((*watch.exclude, *exclude))
        for path, st in files(
            root, excluder=excluder, recursive=watch.recursive, on_problem=on_problem
        ):
            if not state.unchanged(identity_of(path, st)):
                yield Arrival(path=path, cause=ArrivalCause.CATCHUP, root=root)
