"""Tree walks for sweeps, rescans and catch-up: regular files only, never through a symlink.

Exclusions are fnmatch globs tested against the path relative to its root and
against the bare name; `*` already crosses `/` in fnmatch, so `**` works as
"any depth". A directory that matches is pruned with everything under it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase

from agent.values import Arrival, ArrivalCause


class Excluder:
    """Decides whether a path under a root is excluded by any glob."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Sequence[str]) -> None:
        # a leading "./" or "/" in a pattern means "relative to the root", as users write it
        self._patterns = tuple(p.removeprefix("./").lstrip("/") for p in patterns if p)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def excluded(self, root: str, path: str, *, is_dir: bool = False) -> bool:
        """True when `path` (under `root`) matches a pattern by relative path or by name."""
        if not self._patterns:
            return False
        rel = os.path.relpath(path, root) if path != root else ""
        if rel.startswith(".."):
            rel = path.lstrip("/")
        name = os.path.basename(path)
        candidates = (rel, name, rel + "/") if is_dir else (rel, name)
        return any(fnmatchcase(c, p) for p in self._patterns for c in candidates if c)


def files(
    root: str,
    *,
    excluder: Excluder | None = None,
    on_problem: Callable[[str, str], None] | None = None,
    top: str | None = None,
    recursive: bool = True,
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (path, lstat) for every regular file under `top` (default `root`), pruning exclusions.

    `root` anchors relative paths for the exclusion globs; `top` may be a
    subfolder of it (a freshly created directory being walked).
    """
    start = top if top is not None else root
    try:
        st = os.lstat(start)
    except OSError as exc:
        if on_problem is not None:
            on_problem(start, exc.strerror or type(exc).__name__)
        return
    if stat.S_ISLNK(st.st_mode):
        if on_problem is not None:
            on_problem(start, "is a symbolic link; not followed")
        return
    if stat.S_ISREG(st.st_mode):
        if excluder is None or not excluder.excluded(root, start):
            yield start, st
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            # vanished folders are normal churn on a dump host; unreadable ones are reported
            if on_problem is not None and not isinstance(exc, FileNotFoundError):
                on_problem(folder, exc.strerror or type(exc).__name__)
            continue
        for entry in entries:
            try:
                entry_st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            mode = entry_st.st_mode
            if stat.S_ISDIR(mode):
                if recursive and (
                    excluder is None or not excluder.excluded(root, entry.path, is_dir=True)
                ):
                    stack.append(entry.path)
            elif stat.S_ISREG(mode) and (
                excluder is None or not excluder.excluded(root, entry.path)
            ):
                yield entry.path, entry_st


def walk(
    paths: Sequence[str],
    *,
    exclude: Sequence[str] = (),
    cause: ArrivalCause = ArrivalCause.SWEEP,
    on_problem: Callable[[str, str], None] | None = None,
) -> Iterator[Arrival]:
    """Every regular file under `paths` as an Arrival; symlinks (files or folders) are never followed."""
    excluder = Excluder(exclude)
    for raw in paths:
        root = os.path.abspath(raw)
        for path, _st in files(root, excluder=excluder, on_problem=on_problem):
            yield Arrival(path=path, cause=cause, root=root)
