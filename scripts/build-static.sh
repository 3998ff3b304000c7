#!/usr/bin/env bash
# Builds fileconsul as one static executable (glibc, static-pie) to copy to the nodes: it needs no
# shared library there. Prints the path of the binary. (An explicit --target keeps the
# crt-static flag away from proc-macros, which must stay dynamic.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=$(rustc -vV | awk '/^host:/ {print $2}')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target "$target" >&2
echo "target/$target/release/fileconsul"
