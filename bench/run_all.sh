#!/bin/sh
# Runs every egress-guard benchmark in order and prints their tables.
# Usage: bench/run_all.sh [CORPUS_DIR]   (default /tmp/eg-corpus; cores go to /tmp/eg-cores)
# Needs: yara gdb time gzip xz-utils bzip2 zstd unzip (Debian packages) and the dev venv (.venv).
# Takes about 10-15 minutes on 2 cores; the corpus (1.2 GB + a 4 GiB sparse file) is reused when present.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py="$repo/.venv/bin/python"
corpus=${1:-/tmp/eg-corpus}

if [ ! -f "$corpus/manifest.json" ]; then
    "$py" "$here/corpus.py" "$corpus" --big
fi
echo "== sweep throughput =="
"$py" "$here/sweep_speed.py" "$corpus"
echo "== real process cores =="
"$py" "$here/cores.py" /tmp/eg-cores
echo "== daemon latency, burst, idle =="
"$py" "$here/daemon_latency.py"
if [ -f "$here/delivery.py" ]; then
    echo "== delivery =="
    "$py" "$here/delivery.py"
fi
