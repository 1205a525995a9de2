#!/usr/bin/env bash
# Runs a bundled load scenario end to end with one command, e.g.
#   deploy/local/loadtest.sh stuck-pod            # or a path to any scenario file
# Installs prerequisites, builds release binaries, then `arena-loadtest run`: scenarios with a
# `fleet:` start their own gateway, pods, functions and DNS on loopback. Reports (terminal
# summary, JSON, self-contained HTML) go to loadtest/results/. Exit code: 0 thresholds passed,
# 1 a threshold failed, 2 invalid run or bad input.
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario=${1:?usage: deploy/local/loadtest.sh SCENARIO [arena-loadtest run options]}
shift
[ -f "$scenario" ] || scenario="loadtest/scenarios/${scenario%.yaml}.yaml"
[ -f "$scenario" ] || { echo "no such scenario: $scenario (see loadtest/scenarios/)" >&2; exit 2; }

deploy/local/prereqs.sh
if grep -q 'faas:' "$scenario"; then deploy/local/faas-setup.sh; fi
echo "==> building release binaries"
cargo build --release --locked -p arena-gateway -p arena-loadtest -p arena-pod --bins
exec target/release/arena-loadtest run "$scenario" "$@"
