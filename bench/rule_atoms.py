"""How close the shipped rules are to YARA-X's fast path: atoms of headroom, and each rule's cost.

    .venv/bin/python bench/rule_atoms.py [RULES_DIR] [--per-rule] [--corpus /tmp/eg-corpus]

YARA-X 1.x finds the atoms (short literal pieces) of every pattern with one
SIMD multi-literal search while the set has at most about 64 atoms; past
that it falls back to a search several times slower (measured here: 5.1 GB/s
-> 0.9 GB/s over the 1 GB bench corpus when `more.yar` pushed the set over).
An alternation such as `( 32 | 34 | 36 | 56 )` or a regex class at the atom
multiplies atoms. This script finds the cliff by adding dummy 8-byte literals
until the scan of real binaries slows by more than 2.5x, and prints how many
fit ("headroom"); with --per-rule, what each rule costs (headroom without
it, minus headroom with it). Keep the headroom at 5 or more.
Never asserts; times are noisy, the cliff is not (about 5x).
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

import yara_x

REPO = Path(__file__).resolve().parent.parent


def _rules(folder: Path) -> list[tuple[str, str]]:
    out = []
    for f in sorted(folder.glob("*.yar")):
        for part in re.split(r"(?m)^(?=rule )", f.read_text()):
            m = re.match(r"rule (\w+)", part)
            if m:
                out.append((m.group(1), part))
    return out


def _speed(sources: list[str], extra: int, data: list[bytes]) -> float:
    compiler = yara_x.Compiler()
    for src in sources:
        compiler.add_source(src)
    if extra:
        rng = random.Random(extra)
        strings = "\n".join(
            f"$s{i} = {{ {' '.join(f'{rng.randrange(256):02X}' for _ in range(8))} }}"
            for i in range(extra)
        )
        compiler.add_source(f"rule dummy {{ strings: {strings} condition: any of them }}")
    scanner = yara_x.Scanner(compiler.build())
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        for d in data:
            scanner.scan(d)
        best = min(best, time.perf_counter() - started)
    return sum(map(len, data)) / best / 1e6


def headroom(sources: list[str], data: list[bytes]) -> tuple[int, float]:
    """(dummy literal atoms the set takes before the scan slows by more than 2.5x, its MB/s).

    A slow reading is taken again before it counts: a busy host slows single runs too.
    """
    fast = max(_speed(sources, 0, data) for _ in range(3))

    def still_fast(extra: int) -> bool:
        return any(_speed(sources, extra, data) > fast / 2.5 for _ in range(2))

    lo, hi = 0, 64
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if still_fast(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo, fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rules", nargs="?", default=str(REPO / "rules"))
    ap.add_argument("--corpus", default="/tmp/eg-corpus")
    ap.add_argument("--per-rule", action="store_true")
    args = ap.parse_args()
    binaries = sorted(p for p in (Path(args.corpus) / "plain" / "bin").glob("*") if p.is_file())
    if not binaries:
        binaries = sorted(p for p in Path("/usr/bin").glob("*") if p.is_file())
    data = [p.read_bytes() for p in binaries[:120]]
    rules = _rules(Path(args.rules))
    sources = [src for _, src in rules]
    total, speed = headroom(sources, data)
    print(f"{len(rules)} rules, {sum(map(len, data)) >> 20} MiB of binaries, {speed:.0f} MB/s")
    if total >= 64:
        print("no cliff within 64 atoms: either far from it, or already past it (MB/s tells)")
    else:
        print(f"headroom: {total} atoms before YARA-X leaves its fast path (keep >= 5)")
    if args.per_rule:
        for name, _ in rules:
            rest = [src for n, src in rules if n != name]
            print(f"  {name:36} ~{headroom(rest, data)[0] - total} atoms")


if __name__ == "__main__":
    main()
