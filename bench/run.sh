#!/usr/bin/env bash
# Builds the release binary, starts the local 3-agent cluster and runs the benchmarks against it
# (node 1's agent), side by side with the Consul CLI. BENCH_RUNS sets the runs per figure.
# `bench/run.sh sync` runs status/push/pull, `bench/run.sh watch` the watch figures, default both.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build --release --quiet
consul=$(bash scripts/install-consul.sh)
bash scripts/cluster.sh start 3 127.0.0.11
trap 'bash scripts/cluster.sh stop' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); $("$consul" version | head -n 1)"
case "${1:-all}" in
  sync) python3 bench/bench.py "$consul" 127.0.0.11:8500 ;;
  watch) python3 bench/watch.py ;;
  all) python3 bench/bench.py "$consul" 127.0.0.11:8500; python3 bench/watch.py ;;
  *) echo "usage: bench/run.sh [sync|watch|all]" >&2; exit 2 ;;
esac
