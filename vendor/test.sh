#!/usr/bin/env bash
# vendor/test.sh — the unit tests that vendored pingora-core carries for Arena's patches
# (patch 5: connectors::idle, patch 8: services::listening; see vendor/README.md).
#
# They cannot run inside the workspace: cargo does not resolve the dev-dependencies of a
# [patch.crates-io] crate. So pingora-core is copied to a scratch directory and made its own
# workspace, with the workspace's Cargo.lock (the same dependency versions as the gateway) and
# Arena's pingora-http patch; its build is kept in target/vendor-tests for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

cp -r vendor/pingora-core "$SCRATCH/pingora-core"
cat >>"$SCRATCH/pingora-core/Cargo.toml" <<EOF

[workspace]

[patch.crates-io]
pingora-http = { path = "$ROOT/vendor/pingora-http" }
EOF
cp Cargo.lock "$SCRATCH/pingora-core/Cargo.lock"
cd "$SCRATCH/pingora-core"
CARGO_TARGET_DIR="$ROOT/target/vendor-tests" cargo test --lib -- services::listening connectors::idle
