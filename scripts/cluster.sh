#!/usr/bin/env bash
# Starts and stops a local Consul cluster on loopback for the demo and the benchmarks.
#
#   scripts/cluster.sh start [NODES] [FIRST_ADDR]   # default: 3 agents from 127.0.0.11
#   scripts/cluster.sh stop
#   scripts/cluster.sh addrs                         # one HTTP address a line, node 1 first
#
# Node 1 is the only server (-bootstrap-expect=1); the others are client agents. Every agent
# listens on its own loopback address with Consul's default ports, so it is a real multi-agent
# cluster, not `-dev`. State (data dirs, logs, pid files) lives in $FILECONSUL_CLUSTER_DIR
# (default: .cluster/ in the project). `stop` ends exactly the agents this script started;
# `start` first stops a cluster that an earlier run left behind in the same directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${FILECONSUL_CLUSTER_DIR:-$root/.cluster}
log() { echo "cluster: $*" >&2; }

stop() {
  [ -d "$dir" ] || return 0
  local pidfile pid
  for pidfile in "$dir"/*/agent.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # Only signal a process that is still the consul agent this script started.
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-data-dir=$(dirname "$pidfile")"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  rm -rf "$dir"
}

addr_of() { # addr_of FIRST_ADDR N -> the N-th address (0-based) after FIRST_ADDR
  local first=$1 n=$2
  echo "${first%.*}.$(( ${first##*.} + n ))"
}

wait_http() { # wait_http ADDR SECONDS CHECK_PATH
  local addr=$1 secs=$2 path=$3 out
  for _ in $(seq $((secs * 10))); do
    if out=$(curl -sf --max-time 1 "http://$addr:8500$path" 2>/dev/null) && [ -n "$out" ] && [ "$out" != '""' ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start() {
  local nodes=${1:-3} first=${2:-127.0.0.11} consul
  consul=$(bash "$root/scripts/install-consul.sh")
  stop
  mkdir -p "$dir"
  local server
  server=$(addr_of "$first" 0)
  for i in $(seq 0 $((nodes - 1))); do
    local addr node data
    addr=$(addr_of "$first" "$i")
    node="node$((i + 1))"
    data="$dir/$node"
    mkdir -p "$data"
    local role=()
    if [ "$i" -eq 0 ]; then
      role=(-server -bootstrap-expect=1)
    else
      role=(-retry-join="$server")
    fi
    "$consul" agent "${role[@]}" -node="$node" -bind="$addr" -client="$addr" \
      -data-dir="$data" -disable-host-node-id -log-level=warn \
      -hcl 'performance { raft_multiplier = 1 }' >"$data/agent.log" 2>&1 &
    echo $! >"$data/agent.pid"
    echo "$addr:8500" >>"$dir/addrs"
  done
  wait_http "$server" 30 /v1/status/leader || { log "no leader after 30 s; see $dir/node1/agent.log"; exit 1; }
  for i in $(seq 1 $((nodes - 1))); do
    local addr
    addr=$(addr_of "$first" "$i")
    # A client is ready when it can reach the servers through its own HTTP API.
    wait_http "$addr" 30 /v1/status/leader || { log "node$((i + 1)) did not join; see $dir/node$((i + 1))/agent.log"; exit 1; }
  done
  log "$nodes agents up: $(tr '\n' ' ' <"$dir/addrs")($($consul version | head -n 1))"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop; log "stopped" ;;
  addrs) cat "$dir/addrs" ;;
  *) echo "usage: $0 start [NODES] [FIRST_ADDR] | stop | addrs" >&2; exit 2 ;;
esac
