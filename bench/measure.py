"""Shared benchmark plumbing: time a command and poll its process tree's peak RSS; print tables.

Peak memory is sampled with psutil every 20 ms over the whole tree (the
command and every descendant) and reported three ways: the summed RSS of the
tree (shared pages counted once per process, so it errs high), the summed PSS
of the tree (shared pages split between their users: what the host really
pays, and what the 512 MiB targets are judged on), and the largest single RSS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
EGRESS_GUARD = str(VENV_BIN / "egress-guard")
PYTHON = str(VENV_BIN / "python")
MB = 1e6
MiB = 1024 * 1024


@dataclass
class Run:
    """One measured command."""

    seconds: float
    rss_tree: int  # peak of the summed RSS of the process tree, bytes
    rss_max: int  # peak RSS of the largest single process, bytes
    pss_tree: int  # peak of the summed PSS of the process tree, bytes
    returncode: int
    stderr: str


class _Poller(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(name="rss-poller", daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop = threading.Event()
        self.tree = 0
        self.single = 0
        self.pss = 0

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        known: dict[int, psutil.Process] = {self.pid: root}
        while not self.stop.is_set():
            try:
                for child in root.children(recursive=True):
                    known.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                break
            total = pss = 0
            for pid, proc in list(known.items()):
                try:
                    mem = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    known.pop(pid, None)
                    continue
                total += mem.rss
                pss += mem.pss
                self.single = max(self.single, mem.rss)
            self.tree = max(self.tree, total)
            self.pss = max(self.pss, pss)
            self.stop.wait(self.interval)


def run(
    cmd: Sequence[str],
    *,
    stdout: Path | None = None,
    shell: bool = False,
    env: dict[str, str] | None = None,
) -> Run:
    """Run cmd to completion; stdout to a file (or discarded); stderr kept (last 4 KB)."""
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd if not shell else " ".join(cmd),
        stdout=out,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        shell=shell,
        env=env,
    )
    poller = _Poller(proc.pid)
    poller.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    poller.stop.set()
    poller.join()
    if stdout:
        out.close()  # type: ignore[union-attr]
    return Run(
        seconds=seconds,
        rss_tree=poller.tree,
        rss_max=poller.single,
        pss_tree=poller.pss,
        returncode=proc.returncode,
        stderr=err.decode(errors="replace")[-4096:],
    )


def files_under(*roots: Path) -> list[Path]:
    """Every regular file under roots, sorted (symlinks not followed)."""
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
            continue
        for dirpath, _dirs, names in os.walk(root):
            out.extend(Path(dirpath) / n for n in names)
    return sorted(p for p in out if p.is_file() and not p.is_symlink())


def total_bytes(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def warm(paths: Sequence[Path]) -> None:
    """Read every file once so all tools start from a warm page cache.

    Also byte-compiles the agent once, as an installed package is: with
    PYTHONDONTWRITEBYTECODE set (as on this host) every run would otherwise
    recompile every module it imports (0.1-0.3 s a run).
    """
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(REPO / "agent")], check=True, env=_bytecode_env()
    )
    for p in paths:
        with p.open("rb") as f:
            while f.read(8 * MiB):
                pass


def _bytecode_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        sys.exit(f"missing {tool}: {hint}")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table (first column left-aligned)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if c is None:
        return "-"
    if isinstance(c, float):
        return f"{c:.2f}"
    return str(c)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("MET" if ok else "MISSED")


def best_of(repeat: int, cmd: Sequence[str], **kwargs: object) -> Run:
    """Run cmd `repeat` times back to back: the fastest time, the highest memory, the worst exit."""
    runs = [run(cmd, **kwargs) for _ in range(max(1, repeat))]  # type: ignore[arg-type]
    fastest = min(runs, key=lambda r: r.seconds)
    return Run(
        seconds=fastest.seconds,
        rss_tree=max(r.rss_tree for r in runs),
        rss_max=max(r.rss_max for r in runs),
        pss_tree=max(r.pss_tree for r in runs),
        returncode=max(runs, key=lambda r: (r.returncode not in (0, 1), r.returncode)).returncode,
        stderr=fastest.stderr,
    )


def load_note() -> str:
    """The 1/5/15-minute load averages: other work on the host makes figures noisy."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
