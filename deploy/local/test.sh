#!/usr/bin/env bash
# Runs every check and test of the workspace, installing prerequisites first.
# Integration tests start real processes (gateway, sample pods, dnsmasq) on loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."

deploy/local/prereqs.sh redis
deploy/local/faas-setup.sh
deploy/local/tools-setup.sh

echo "==> format"
cargo fmt --all -- --check
echo "==> build (all binaries: integration tests run arena-pod and arena-gateway)"
cargo build --workspace --bins --locked
echo "==> lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> tests"
cargo test --workspace --locked
echo "==> the vendored pingora patches' own unit tests (outside the workspace: vendor/test.sh)"
vendor/test.sh
echo "==> all tests passed"
