"""Sweep throughput: egress-guard vs `yara -r -p 2`, bare YARA-X, `cat` and the decompressors, in one run.

    .venv/bin/python bench/sweep_speed.py [/tmp/eg-corpus] [--jobs 2] [--rules-dir rules]

Needs a corpus from bench/corpus.py (with --big for the 4 GiB RSS row). Warms
the page cache, then times every tool on the same files and prints one table
with MB/s, speed ratios, peak memory, files with findings, and the recall of the
planted keys listed in the corpus manifest. Never asserts: targets are printed
beside the figures as MET / MISSED.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import measure
from measure import EGRESS_GUARD, MB, PYTHON, MiB, Run

BARE = str(Path(__file__).resolve().parent / "bare_yarax.py")
_RULE_HEAD = re.compile(r"^\s*(?:private\s+|global\s+)*rule\s+(\w+)", re.MULTILINE)
_YARA_ERR = re.compile(r"\((\d+)\): error: (.*)")


@dataclass
class Row:
    tool: str
    files: str  # which set
    run: Run
    nbytes: int
    findings: int | None = None
    output: Path | None = None  # egress-guard's jsonl

    @property
    def mbps(self) -> float:
        return self.nbytes / MB / max(self.run.seconds, 1e-9)


# -- rules for Debian's yara 4.2 -------------------------------------------------------


def yara_compatible(rule_files: list[Path], out_dir: Path) -> tuple[list[Path], list[str]]:
    """Copies of the rule files holding only the rules yara 4.2 compiles; the refused ones, with why."""
    kept: list[Path] = []
    refused: list[str] = []
    for path in rule_files:
        text = path.read_text()
        for _ in range(200):
            trial = out_dir / path.name
            trial.write_text(text)
            res = measure.run(["yara", "-w", str(trial), "/dev/null"])
            if res.returncode == 0:
                break
            m = _YARA_ERR.search(res.stderr)
            heads = list(_RULE_HEAD.finditer(text))
            if not m or not heads:
                refused.append(f"{path.name}: whole file ({res.stderr.strip()[:120]})")
                text = ""
                break
            line = int(m.group(1))
            offset = sum(len(x) + 1 for x in text.split("\n")[: line - 1])
            victim = max(
                (h for h in heads if h.start() <= offset), default=heads[0], key=lambda h: h.start()
            )
            end = next((h.start() for h in heads if h.start() > victim.start()), len(text))
            refused.append(f"{path.name}: rule {victim.group(1)} ({m.group(2).strip()[:100]})")
            text = text[: victim.start()] + text[end:]
        if _RULE_HEAD.search(text):
            kept.append(out_dir / path.name)
        else:
            (out_dir / path.name).unlink(missing_ok=True)
    return kept, refused


# -- egress-guard output ---------------------------------------------------------------------


def parse_findings(jsonl: Path) -> dict[str, set[str]]:
    """file path -> fingerprints reported with key material (from sweep --format jsonl)."""
    out: dict[str, set[str]] = {}
    for line in jsonl.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        path = doc.get("file", {}).get("path")
        if not path:
            continue
        fps = out.setdefault(path, set())
        for f in doc.get("egress_guard", {}).get("findings", []):
            if f.get("fingerprint") and not f.get("allowlisted"):
                fps.add(f["fingerprint"])
    return out


def recall(
    manifest: dict, corpus: Path, under: str, found: dict[str, set[str]]
) -> tuple[Counter, Counter]:
    """(planted, found) counts per encoding for planted keys under `under`."""
    planted: Counter = Counter()
    hit: Counter = Counter()
    for p in manifest["planted"]:
        if not p["path"].startswith(under):
            continue
        label = p["encoding"] + (" (in archive)" if p["member"] else "")
        planted[label] += 1
        if p["fingerprint"] in found.get(str(corpus / p["path"]), set()):
            hit[label] += 1
    return planted, hit


def yara_matched_files(out: Path) -> int:
    files = set()
    for line in out.read_text(errors="replace").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and not line.startswith("0x"):
            files.add(parts[1])
    return len(files)


# -- the decompressors alone -------------------------------------------------------------------

DECOMP = r"""
case "$1" in
  *.tar.gz|*.gz) zcat -- "$1" ;;
  *.xz) xzcat -- "$1" ;;
  *.bz2) bzcat -- "$1" ;;
  *.zst) zstdcat -q -- "$1" ;;
  *.zip) unzip -p -- "$1" ;;
esac > /dev/null
"""


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("corpus", nargs="?", default="/tmp/eg-corpus")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rules-dir", default=str(measure.REPO / "rules"))
    ap.add_argument(
        "--skip-yara-engine", action="store_true", help="skip the yara-python engine row"
    )
    ap.add_argument("--repeat", type=int, default=1, help="run each tool N times, keep the fastest")
    args = ap.parse_args()
    corpus = Path(args.corpus).resolve()
    manifest = json.loads((corpus / "manifest.json").read_text())
    for tool in ("yara", "zcat", "xzcat", "bzcat", "zstdcat", "unzip"):
        measure.need(tool, "apt-get install yara gzip xz-utils bzip2 zstd unzip")
    rule_files = sorted(Path(args.rules_dir).glob("*.yar"))
    if not rule_files:
        sys.exit(f"no rule files in {args.rules_dir}")
    tmp = Path(tempfile.mkdtemp(prefix="eg-bench-"))
    yara_rules, refused = yara_compatible(rule_files, tmp)
    jobs = str(args.jobs)

    plain, packed, big = corpus / "plain", corpus / "packed", corpus / "big"
    plain_files = measure.files_under(plain)
    packed_files = measure.files_under(packed)
    big_files = measure.files_under(big) if big.is_dir() else []
    nplain, npacked = measure.total_bytes(plain_files), measure.total_bytes(packed_files)
    print(
        f"corpus {corpus}: plain {len(plain_files)} files {nplain / MB:.0f} MB, packed {len(packed_files)} files {npacked / MB:.0f} MB, big {measure.total_bytes(big_files) / MB:.0f} MB",
        flush=True,
    )
    print(
        f"rules: {', '.join(p.name for p in rule_files)}; yara 4.2 runs {len(yara_rules)} file(s)",
        flush=True,
    )
    for r in refused:
        print(f"  yara 4.2 refused: {r} (benched without it)", flush=True)
    measure.warm(plain_files + packed_files + big_files)
    print(f"page cache warm; {measure.load_note()}", flush=True)

    rows: list[Row] = []

    def eg(label: str, target: Path, nbytes: int, *extra: str) -> Row:
        out = tmp / f"{label.replace(' ', '_').replace(',', '')}-{target.name}.jsonl"
        cmd = [
            EGRESS_GUARD,
            "--log-format",
            "json",
            "sweep",
            "--dry-run",
            "--format",
            "jsonl",
            "--jobs",
            jobs,
            *extra,
            str(target),
        ]
        print(f"running: {label} ...", flush=True)
        res = measure.best_of(args.repeat, cmd, stdout=out)
        if res.returncode not in (0, 1) or "Traceback" in res.stderr:
            print(
                f"  {label} FAILED (exit {res.returncode}): {res.stderr.strip()[-600:]}", flush=True
            )
            res.returncode = res.returncode or 2
            label += " (FAILED)"
        row = Row(
            label,
            target.name,
            res,
            nbytes,
            len([p for p, f in parse_findings(out).items() if f]),
            output=out,
        )
        rows.append(row)
        return row

    def tool(
        label: str,
        cmd: list[str],
        target: Path,
        nbytes: int,
        *,
        shell: bool = False,
        out: Path | None = None,
    ) -> Row:
        print(f"running: {label} ...", flush=True)
        res = measure.best_of(args.repeat, cmd, shell=shell, stdout=out)
        row = Row(label, target.name, res, nbytes)
        rows.append(row)
        return row

    plain_list = tmp / "plain.list"
    plain_list.write_bytes(b"\0".join(str(p).encode() for p in plain_files))
    cat = tool(
        "cat",
        ["xargs", "-0", "cat", "<", shlex.quote(str(plain_list)), ">", "/dev/null"],
        plain,
        nplain,
        shell=True,
    )
    yout = tmp / "yara_plain.txt"
    yara = tool(
        "yara -r -p 2",
        ["yara", "-w", "-r", "-p", jobs, *map(str, yara_rules), str(plain)],
        plain,
        nplain,
        out=yout,
    )
    yara.findings = yara_matched_files(yout)
    bout = tmp / "bare_plain.txt"
    bare = tool(
        "bare yara-x (2 procs)",
        [PYTHON, BARE, "--jobs", jobs, "--rules", *map(str, rule_files), "--", str(plain)],
        plain,
        nplain,
        out=bout,
    )
    m = re.search(r"matched (\d+)", bout.read_text())
    bare.findings = int(m.group(1)) if m else None
    eg_x = eg("egress-guard yara-x", plain, nplain)
    nosearch = tmp / "no-number-search.toml"
    nosearch.write_text(
        f'[agent]\nstate_dir = "{tmp / "state"}"\n\n[scan]\nnumber_search = "off"\n'
    )
    eg("egress-guard yara-x, number search off", plain, nplain, "--config", str(nosearch))
    eg_y = (
        None
        if args.skip_yara_engine
        else eg("egress-guard --engine yara", plain, nplain, "--engine", "yara")
    )

    packed_list = tmp / "packed.list"
    packed_list.write_bytes(b"\0".join(str(p).encode() for p in packed_files))
    script = tmp / "decomp.sh"
    script.write_text(DECOMP)
    dec1 = tool(
        "decompressors (1 proc)",
        ["xargs", "-0", "-n", "1", "-P", "1", "sh", str(script), "<", str(packed_list)],
        packed,
        npacked,
        shell=True,
    )
    dec2 = tool(
        f"decompressors (-P {jobs})",
        ["xargs", "-0", "-n", "1", "-P", jobs, "sh", str(script), "<", str(packed_list)],
        packed,
        npacked,
        shell=True,
    )
    eg_p = eg("egress-guard yara-x", packed, npacked)
    eg("egress-guard yara-x, number search off", packed, npacked, "--config", str(nosearch))

    eg_big = yara_big = None
    if big_files:
        nbig = measure.total_bytes(big_files)
        yara_big = tool(
            "yara -r -p 2",
            ["yara", "-w", "-r", "-p", jobs, *map(str, yara_rules), str(big)],
            big,
            nbig,
        )
        eg_big = eg("egress-guard yara-x", big, nbig)

    print()
    print(
        "speed ratios are throughput ratios (higher is faster): x yara = MB/s / MB/s of `yara -r -p 2` on the same set"
    )
    table_rows = []
    for r in rows:
        ref_y = yara if r.files == "plain" else yara_big if r.files == "big" else None
        ref_b = bare if r.files == "plain" else None
        table_rows.append(
            [
                r.tool,
                r.files,
                round(r.run.seconds, 2),
                round(r.mbps, 1),
                round(r.mbps / ref_y.mbps, 2) if ref_y else None,
                round(r.mbps / ref_b.mbps, 2) if ref_b else None,
                round(r.run.rss_tree / MiB),
                round(r.run.pss_tree / MiB),
                round(r.run.rss_max / MiB),
                r.findings,
                r.run.returncode,
            ]
        )
    print(
        measure.table(
            [
                "tool",
                "set",
                "seconds",
                "MB/s",
                "x yara",
                "x bare-yx",
                "RSS tree MiB",
                "PSS tree MiB",
                "RSS max MiB",
                "files w/ hits",
                "rc",
            ],
            table_rows,
        )
    )

    print()
    found: dict[str, set[str]] = {}
    for r in (eg_x, eg_p, eg_big):
        if r is not None and r.output is not None:
            found.update(parse_findings(r.output))
    planted: Counter = Counter()
    hit: Counter = Counter()
    for under in ("plain/", "packed/", "big/"):
        p, h = recall(manifest, corpus, under, found)
        planted += p
        hit += h
    print(
        measure.table(
            ["planted encoding", "planted", "found (egress-guard yara-x)", "recall %"],
            [[k, planted[k], hit[k], round(100 * hit[k] / planted[k])] for k in sorted(planted)]
            + [
                [
                    "total",
                    sum(planted.values()),
                    sum(hit.values()),
                    round(100 * sum(hit.values()) / max(sum(planted.values()), 1)),
                ]
            ],
        )
    )
    benign = [p for p, f in found.items() if f and "/plain/bin/" in p]
    print(
        f"binaries (negatives) with non-allowlisted findings: {len(benign)}"
        + (f": {', '.join(Path(b).name for b in benign[:8])}" if benign else "")
    )

    print()
    print("targets")
    eg_runs = [r for r in (eg_x, eg_y, eg_p, eg_big) if r is not None]
    peak = max(r.run.pss_tree for r in eg_runs)
    failed = any(r.tool.endswith("(FAILED)") for r in eg_runs)
    if failed:
        print("an egress-guard run FAILED: its figures below are not valid")
    targets = [
        (
            "egress-guard >= 3x `yara -r -p 2` (plain files)",
            f"{eg_x.mbps / yara.mbps:.2f}x",
            eg_x.mbps / yara.mbps >= 3,
        ),
        (
            "egress-guard >= 0.5x bare yara-x (plain files)",
            f"{eg_x.mbps / bare.mbps:.2f}x",
            eg_x.mbps / bare.mbps >= 0.5,
        ),
        (
            f"egress-guard <= 1.25x decompressors -P {jobs} (packed)",
            f"{eg_p.run.seconds / dec2.run.seconds:.2f}x time",
            eg_p.run.seconds <= 1.25 * dec2.run.seconds,
        ),
        (
            "  (for reference: vs decompressors, 1 proc)",
            f"{eg_p.run.seconds / dec1.run.seconds:.2f}x time",
            None,
        ),
        (
            "peak memory <= 512 MiB (PSS of the process tree, every egress-guard run"
            + (", 4 GiB file incl.)" if eg_big else "; no --big corpus)"),
            f"{peak / MiB:.0f} MiB",
            peak <= 512 * MiB,
        ),
        (
            "recall of planted keys",
            f"{sum(hit.values())}/{sum(planted.values())}",
            sum(hit.values()) == sum(planted.values()),
        ),
        ("cat (page-cache floor) for reference", f"{cat.mbps:.0f} MB/s", None),
    ]
    print(
        measure.table(
            ["target", "measured", "status"],
            [[t, m_, measure.verdict(ok)] for t, m_, ok in targets],
        )
    )
    print(f"\n{measure.load_note()}; raw outputs kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
