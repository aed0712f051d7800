"""The floor for egress-guard's scan loop: bare YARA-X bindings, same rules, no validation, no unpacking.

    .venv/bin/python bench/bare_yarax.py --jobs 2 --rules rules/*.yar -- PATH...

Compiles every rule file (one namespace per file, as the agent does), then
scans each file whole with `scan_file` in `--jobs` processes, largest first.
Prints one line: files, files matched, bytes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

import yara_x

_scanner: yara_x.Scanner | None = None


def _compile(rule_files: list[str]) -> yara_x.Rules:
    compiler = yara_x.Compiler()
    for path in rule_files:
        compiler.new_namespace(Path(path).stem.replace("-", "_"))
        compiler.add_source(Path(path).read_text(), origin=path)
    return compiler.build()


def _init(rule_files: list[str]) -> None:
    global _scanner  # noqa: PLW0603 - one scanner per worker process
    _scanner = yara_x.Scanner(_compile(rule_files))
    _scanner.max_matches_per_pattern(1000)


def _scan(path: str) -> tuple[int, int]:
    assert _scanner is not None
    try:
        results = _scanner.scan_file(path)
    except Exception:  # an unreadable file counts as scanned-nothing, as yara -r does
        return 0, 0
    return (1 if results.matching_rules else 0), os.path.getsize(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rules", nargs="+", required=True)
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    files: list[str] = []
    for root in args.paths:
        if os.path.isfile(root):
            files.append(root)
        for dirpath, _dirs, names in os.walk(root):
            files.extend(os.path.join(dirpath, n) for n in names)
    files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
    files.sort(key=lambda f: -os.path.getsize(f))
    with multiprocessing.get_context("fork").Pool(
        args.jobs, initializer=_init, initargs=(args.rules,)
    ) as pool:
        matched = total = 0
        for hit, size in pool.imap_unordered(_scan, files, chunksize=1):
            matched += hit
            total += size
    print(f"files {len(files)} matched {matched} bytes {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
