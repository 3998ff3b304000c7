#!/usr/bin/env bash
# The demo: builds fileconsul, starts a local 3-agent Consul cluster on 127.0.0.11-13, pushes a
# sample tree from node 1 (executable scripts, JSON configs, a symlink), shows status and pull on
# nodes 2 and 3, pushes an edit from node 2 and pulls it back on node 1. Stops the cluster at the
# end unless --keep is given.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
keep=false
[ "${1:-}" = "--keep" ] && keep=true

cargo build --release --quiet
fc="$root/target/release/fileconsul"
bash scripts/cluster.sh start 3 127.0.0.11
if ! $keep; then trap 'bash scripts/cluster.sh stop' EXIT; fi

demo="$root/.demo"
rm -rf "$demo"
mkdir -p "$demo"/node{1,2,3}
prefix="demo-$(date +%s)"
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { # run NODE ARGS...: fileconsul on node N's agent and directory
  local n=$1; shift
  step "(node$n) fileconsul $*"
  "$fc" --addr "127.0.0.1$n:8500" --prefix "$prefix" --basepath "$demo/node$n" "$@"
}

# A sample tree on node 1.
n1="$demo/node1"
mkdir -p "$n1/bin" "$n1/config/service" "$n1/config/check"
printf '#!/bin/sh\nexec ntpd -q\n' >"$n1/bin/ntp"
printf '#!/bin/sh\nexec apache2ctl -k start\n' >"$n1/bin/apache2"
chmod 755 "$n1/bin/ntp" "$n1/bin/apache2"
printf '{"service": {"name": "ntp", "port": 123}}\n' >"$n1/config/service/ntp.json"
printf '{"check": {"id": "ntp", "args": ["/consul/share/bin/ntp"], "interval": "30s"}}\n' >"$n1/config/check/ntp.json"
ln -s bin/ntp "$n1/ntp-current"

run 1 status
run 1 push
run 2 status
run 2 pull
run 3 pull
step "ls -l node2/bin node2/ntp-current"
ls -l "$demo/node2/bin" "$demo/node2/ntp-current"

# An edit on node 2, pushed there and pulled back on node 1.
printf '#!/bin/sh\nexec apache2ctl -k graceful\n' >"$demo/node2/bin/apache2"
run 2 push
run 1 status
run 1 pull
step "diff -r node1 node2 (without .fileconsul/)"
diff -r --exclude=.fileconsul "$demo/node1" "$demo/node2" && echo "node1 and node2 are identical"
run 3 --format json status
if $keep; then
  echo "cluster left running (scripts/cluster.sh stop ends it); demo tree in $demo"
fi
