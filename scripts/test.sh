#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the integration tests, which start
# their own real Consul cluster (installed by scripts/install-consul.sh when none is on PATH).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-consul.sh >/dev/null
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets -- -D warnings
echo "== cargo test" >&2
cargo test --all
