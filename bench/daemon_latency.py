"""Daemon figures: arrival-to-quarantine latency at 200 files/s, a 10,000-file burst, idle cost.

    .venv/bin/python bench/daemon_latency.py [--rate 200] [--seconds 30] [--idle-seconds 60]

Starts the reference collector and the agent as real processes (config in a
temporary folder, 127.0.0.1 only), then:
  1. latency: writes files at --rate for --seconds (1 in 10 holds a key) and
     measures, per file, close -> gone from the drop folder (polled every ms)
     for key files, close -> `quarantine.file_moved` and close -> `scan.file_scanned`
     from the agent's JSON log (wall-clock timestamps);
  2. burst: 10,000 files in 100 freshly created nested folders written by 4
     processes at once; every path must appear in a `scan.file_scanned` line;
  3. idle: a fresh agent watching 10,000 nested folders; CPU % and RSS over
     --idle-seconds of quiet (psutil on the agent pid).
Prints the figures beside the targets (p99 <= 200 ms, 0 missed, idle <= 0.5 %
CPU and <= 80 MB RSS). Never asserts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import keygen
import measure
import psutil
from cryptography.hazmat.primitives.asymmetric import ec

CLI = [measure.PYTHON, "-m", "agent.cli", "--log-format", "json"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Bench:
    """One collector and one agent in a temporary folder."""

    def __init__(self, root: Path, settle: float) -> None:
        self.root = root
        self.port = free_port()
        self.drop = root / "drop"
        self.vault = root / "vault"
        self.state = root / "state"
        for d in (self.drop / "lat", self.state):
            d.mkdir(parents=True, exist_ok=True)
        (root / "token").write_text("bench-token-123\n")
        (root / "agent-tokens").write_text("bench-token-123 *\n")
        self.config = root / "agent.toml"
        self.config.write_text(
            f"""
[agent]
state_dir = "{self.state}"
heartbeat_seconds = 30.0

[[watch]]
path = "{self.drop}"

[scan]
settle_seconds = {settle}
workers = 2

[quarantine]
dir = "{self.vault}"

[[sink]]
type = "collector"
url = "http://127.0.0.1:{self.port}"
token_file = "{root / "token"}"

[collector]
listen = "127.0.0.1:{self.port}"
db = "{root / "collector.db"}"
tokens_file = "{root / "agent-tokens"}"
"""
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.agent_log = root / "agent.log"
        self._agent_runs = 0

    def start(self, name: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        out = log.open("ab")
        proc = subprocess.Popen(
            [*CLI, *args, "--config", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=measure.REPO,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def start_collector(self) -> None:
        proc = self.start("collector", ["collector", "serve"], self.root / "collector.log")

        def listening() -> bool:
            if proc.poll() is not None:
                raise SystemExit(
                    f"collector exited: {(self.root / 'collector.log').read_text()[-2000:]}"
                )
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, 30, "the collector to listen")

    def start_agent(self, timeout: float = 120) -> psutil.Process:
        self._agent_runs += 1
        log = self.root / f"agent-{self._agent_runs}.log"
        self.agent_log = log
        proc = self.start("agent", ["run"], log)

        def started() -> bool:
            if proc.poll() is not None:
                raise SystemExit(f"agent exited: {log.read_text()[-3000:]}")
            return any(e.get("event") == "daemon.agent_started" for e in self.events())

        wait_for(started, timeout, "the agent to start", interval=0.2)
        return psutil.Process(proc.pid)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        out = []
        try:
            text = self.agent_log.read_text(errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


# -- payloads -------------------------------------------------------------------------------


def key_pems(n: int = 8) -> list[bytes]:
    rng = random.Random(11)
    keys = [keygen.ec_from_seed(ec.SECP256R1(), rng) for _ in range(n // 2)]
    keys += [keygen.rsa_from_seed(2048, rng) for _ in range(n - len(keys))]
    return [keygen.encode(k, "pem-pkcs8", rng).data for k in keys]


def clean_payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size // 2) + b"log line: request ok\n" * (size // 42)


# -- 1. latency ----------------------------------------------------------------------------


def latency(bench: Bench, rate: float, seconds: float) -> dict[str, Any]:
    folder = bench.drop / "lat"  # made before the agent started, so its watch is in place
    rng = random.Random(5)
    pems = key_pems()
    closed: dict[str, float] = {}
    pending: dict[str, float] = {}
    gone: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def poll_gone() -> None:
        while not (done.is_set() and not pending):
            with lock:
                items = list(pending.items())
            for path, t_close in items:
                if not os.path.exists(path):
                    gone[path] = time.time() - t_close
                    with lock:
                        pending.pop(path, None)
            time.sleep(0.001)
            if done.is_set() and time.time() - done_at[0] > 30:
                break

    done_at = [0.0]
    poller = threading.Thread(target=poll_gone, name="gone-poller", daemon=True)
    poller.start()
    total = int(rate * seconds)
    # bodies are made before the clock starts so the writer keeps its schedule
    clean = [clean_payload(rng, rng.randrange(4096, 65536)) for _ in range(256)]
    keyed = []
    for j in range(32):
        body = clean[j]
        cut = rng.randrange(len(body))
        keyed.append(body[:cut] + b"\n" + pems[j % len(pems)] + body[cut:])
    t0 = time.monotonic()
    late = 0
    for i in range(total):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.05:
            late += 1
        has_key = i % 10 == 0
        body = keyed[i % len(keyed)] if has_key else clean[i % len(clean)]
        path = str(folder / f"f{i:06d}{'.key' if has_key else '.log'}")
        with open(path, "wb") as f:
            f.write(body)
        t_close = time.time()
        closed[path] = t_close
        if has_key:
            with lock:
                pending[path] = t_close
    write_seconds = time.monotonic() - t0
    done_at[0] = time.time()
    done.set()
    # drain: every file scanned, or no progress for 20 s
    last, last_change = -1, time.monotonic()
    while True:
        scanned = {
            e["path"]
            for e in bench.events()
            if e.get("event") == "scan.file_scanned" and e.get("path", "").startswith(str(folder))
        }
        if len(scanned) >= total or time.monotonic() - last_change > 20:
            break
        if len(scanned) != last:
            last, last_change = len(scanned), time.monotonic()
        time.sleep(0.5)
    poller.join(timeout=35)
    events = bench.events()
    scan_lat = []
    seen: set[str] = set()
    for e in events:
        if (
            e.get("event") == "scan.file_scanned"
            and e.get("path") in closed
            and e["path"] not in seen
        ):
            seen.add(e["path"])
            scan_lat.append(ts(e) - closed[e["path"]])
    q_lat = [
        ts(e) - closed[e["path"]]
        for e in events
        if e.get("event") == "quarantine.file_moved" and e.get("path") in closed
    ]
    keys = sum(1 for p in closed if p.endswith(".key"))
    return {
        "files": total,
        "key_files": keys,
        "write_rate": total / write_seconds,
        "late_writes": late,
        "scanned": len(seen),
        "gone": list(gone.values()),
        "not_gone": keys - len(gone),
        "scan": scan_lat,
        "quarantine": q_lat,
    }


# -- 2. burst --------------------------------------------------------------------------------


def _burst_writer(args: tuple[str, list[int], bytes]) -> int:
    base, dirs, pem = args
    rng = random.Random(dirs[0])
    n = 0
    for d in dirs:
        folder = Path(base) / f"g{d // 10}" / f"d{d:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(100):
            body = clean_payload(rng, 2048)
            if j == 50 and d % 10 == 0:
                body += pem
            (folder / f"file{j:03d}.bin").write_bytes(body)
            n += 1
    return n


def burst(bench: Bench, timeout: float) -> dict[str, Any]:
    base = bench.drop / "burst"
    pem = key_pems(2)[0]
    chunks = [(str(base), list(range(w, 100, 4)), pem) for w in range(4)]
    t0 = time.monotonic()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        written = sum(pool.map(_burst_writer, chunks))
    write_s = time.monotonic() - t0
    counts: dict[str, int] = {}
    last, last_change = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {}
        for e in bench.events():
            if e.get("event") == "scan.file_scanned" and e.get("path", "").startswith(str(base)):
                counts[e["path"]] = counts.get(e["path"], 0) + 1
        if len(counts) >= written:
            break
        if len(counts) != last:
            last, last_change = len(counts), time.monotonic()
        elif time.monotonic() - last_change > 30:
            break
        time.sleep(0.5)
    drain_s = time.monotonic() - t0
    return {
        "written": written,
        "write_seconds": write_s,
        "scanned": len(counts),
        "missed": written - len(counts),
        "twice": sum(1 for c in counts.values() if c > 1),
        "seconds": drain_s,
    }


# -- 3. idle ---------------------------------------------------------------------------------


def idle(bench: Bench, folders: int, seconds: float) -> dict[str, Any]:
    bench.stop("agent")
    for child in bench.drop.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    per = max(1, round(folders**0.5))
    made = 0
    for i in range(per):
        for j in range(per):
            (bench.drop / f"x{i:03d}" / f"y{j:03d}").mkdir(parents=True)
            made += 1
    t0 = time.monotonic()
    agent = bench.start_agent(timeout=300)
    start_s = time.monotonic() - t0
    # let start-up (watch placement, catch-up) finish: CPU quiet for 5 s in a row
    quiet_deadline = time.monotonic() + 120
    while time.monotonic() < quiet_deadline:
        c0 = sum(agent.cpu_times()[:2])
        time.sleep(5)
        if sum(agent.cpu_times()[:2]) - c0 < 0.05:
            break
    c0 = sum(agent.cpu_times()[:2])
    w0 = time.monotonic()
    peak = 0
    while time.monotonic() - w0 < seconds:
        peak = max(peak, agent.memory_info().rss)
        time.sleep(1)
    cpu = sum(agent.cpu_times()[:2]) - c0
    window = time.monotonic() - w0
    rss = agent.memory_info().rss
    return {
        "folders": made,
        "start_seconds": start_s,
        "cpu_percent": 100 * cpu / window,
        "rss": rss,
        "rss_peak": max(peak, rss),
        "uss": agent.memory_full_info().uss,
        "threads": agent.num_threads(),
        "window": window,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--burst-timeout", type=float, default=300)
    ap.add_argument("--idle-folders", type=int, default=10_000)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--settle", type=float, default=1.0, help="[scan] settle_seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="eg-daemon-bench-"))
    bench = Bench(root, args.settle)
    print(f"work folder {root}", flush=True)
    try:
        bench.start_collector()
        bench.start_agent()
        print(f"latency: {args.rate:.0f} files/s for {args.seconds:.0f} s ...", flush=True)
        lat = latency(bench, args.rate, args.seconds)
        print("burst: 10,000 files in 100 fresh nested folders, 4 writer processes ...", flush=True)
        bur = burst(bench, args.burst_timeout)
        print(
            f"idle: {args.idle_folders} watched folders, {args.idle_seconds:.0f} s ...", flush=True
        )
        idl = idle(bench, args.idle_folders, args.idle_seconds)
    finally:
        bench.stop("agent")
        bench.stop("collector")
    print()
    print(
        f"latency run: {lat['files']} files ({lat['key_files']} with keys) at {lat['write_rate']:.0f} files/s achieved, {lat['late_writes']} writes > 50 ms late; {lat['scanned']} scanned"
    )
    rows = []
    for label, values in (
        ("close -> gone from drop folder (key files, polled 1 ms)", lat["gone"]),
        ("close -> quarantine.file_moved (log timestamp)", lat["quarantine"]),
        ("close -> scan.file_scanned (all files, log timestamp)", lat["scan"]),
    ):
        rows.append(
            [
                label,
                len(values),
                ms(pct(values, 50)),
                ms(pct(values, 99)),
                ms(max(values) if values else None),
            ]
        )
    print(measure.table(["latency", "n", "p50 ms", "p99 ms", "max ms"], rows))
    print()
    print(
        f"burst: {bur['written']} files written in {bur['write_seconds']:.1f} s; {bur['scanned']} scanned, {bur['missed']} missed, {bur['twice']} scanned more than once; all done {bur['seconds']:.1f} s after the burst began ({bur['scanned'] / bur['seconds']:.0f} files/s)"
    )
    print(
        f"idle: {idl['folders']} watched folders (agent ready {idl['start_seconds']:.1f} s after start), over {idl['window']:.0f} s: CPU {idl['cpu_percent']:.2f} % of one core, RSS {idl['rss'] / 1e6:.1f} MB (peak {idl['rss_peak'] / 1e6:.1f} MB, USS {idl['uss'] / 1e6:.1f} MB), {idl['threads']} threads"
    )
    print()
    p99 = pct(lat["gone"], 99)
    targets = [
        (
            "arrival-to-quarantine p99 <= 200 ms (key files gone)",
            f"{ms(p99)} ms",
            None if p99 is None else p99 <= 0.2 and lat["not_gone"] == 0,
        ),
        ("key files never quarantined", str(lat["not_gone"]), lat["not_gone"] == 0),
        ("burst: 0 missed", str(bur["missed"]), bur["missed"] == 0),
        ("idle CPU <= 0.5 % of a core", f"{idl['cpu_percent']:.2f} %", idl["cpu_percent"] <= 0.5),
        ("idle RSS <= 80 MB", f"{idl['rss'] / 1e6:.1f} MB", idl["rss"] <= 80e6),
    ]
    print(
        measure.table(
            ["target", "measured", "status"], [[t, m, measure.verdict(ok)] for t, m, ok in targets]
        )
    )
    if args.keep:
        print(f"logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
