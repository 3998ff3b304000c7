#!/usr/bin/env bash
# Makes a `consul` binary available to the demo and the tests.
#
# A consul already on PATH is kept. Otherwise Consul 1.8.7 is taken from Debian's bullseye suite
# (the last release Debian packaged): a temporary apt source list is built from the Debian mirror this
# machine is already configured with, `apt-get download consul` fetches the package, and
# `dpkg-deb -x` unpacks its binary into .tools/ inside the project. Nothing is installed system-wide.
#
# Prints the path of the consul binary on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"

if [ -x "$tools/bin/consul" ]; then
  echo "$tools/bin/consul"
  exit 0
fi
if command -v consul >/dev/null 2>&1; then
  command -v consul
  exit 0
fi

log() { echo "install-consul: $*" >&2; }

# The machine's configured Debian mirror: the first URI of a Debian archive in the apt sources,
# deb822 (*.sources) or one-line (*.list) format. Security and update archives are skipped.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
}
mirror=$(find_mirror | grep -E '/debian/?$' | grep -v -- '-security' | head -n 1 || true)
if [ -z "$mirror" ]; then
  log "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/"
  exit 1
fi
mirror=${mirror%/}
log "using the configured Debian mirror for the bullseye suite"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/etc"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror bullseye main" >"$work/etc/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/etc/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "Dir::Cache::Archives=$work/archives"
  -o "APT::Get::List-Cleanup=0"
)
mkdir -p "$work/cache"
log "apt-get update (temporary bullseye source list)"
apt-get "${apt_opts[@]}" update -qq >&2
log "apt-get download consul"
(cd "$work" && apt-get "${apt_opts[@]}" download consul >&2)
deb=$(ls "$work"/consul_*.deb | head -n 1)
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$tools/bin"
install -m 0755 "$work/root/usr/bin/consul" "$tools/bin/consul"
log "installed $("$tools/bin/consul" version | head -n 1) at $tools/bin/consul"
echo "$tools/bin/consul"
