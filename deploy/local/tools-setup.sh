#!/usr/bin/env bash
# Installs the checkers the deploy-file tests (gateway/tests/deploy.rs) run:
#   - kubernetes-validate (PyPI, pinned in deploy/local/tools-requirements.txt) in a venv at
#     target/tools/venv: the Kubernetes manifests against the API's schemas, strictly, offline;
#   - systemd-analyze (Debian `systemd`): the systemd unit;
#   - promtool, extracted from Debian's `prometheus` package into target/tools/prometheus without
#     installing it (installing would enable a Prometheus server and pull in node-exporter, whose
#     port 9100 is the demo pods' port): the dashboards' rules (gateway/tests/dashboards.rs).
# Idempotent: the venv is rebuilt only when the requirements or the interpreter change; Debian
# packages are installed only when missing (`apt-get update` only then). Works from any directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
venv="$root/target/tools/venv"
reqs="$root/deploy/local/tools-requirements.txt"

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "==> tools: installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

want="$(python3 -c 'import sys; print(sys.version)' | sha256sum | awk '{print $1}')-$(sha256sum "$reqs" | awk '{print $1}')"
stamp="$venv/.arena-requirements.stamp"
if [ -x "$venv/bin/kubernetes-validate" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "==> tools: venv up to date ($venv)"
else
  echo "==> tools: creating venv $venv and installing $(basename "$reqs")"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$reqs"
  echo "$want" >"$stamp"
fi

promtool="$root/target/tools/prometheus/usr/bin/promtool"
if [ -x "$promtool" ]; then
  echo "==> tools: promtool present ($("$promtool" --version 2>&1 | head -n1))"
else
  echo "==> tools: extracting promtool from Debian's prometheus package"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download needs package lists: update only when they do not know the package.
  (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null) || {
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus)
  }
  rm -rf "$root/target/tools/prometheus"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$root/target/tools/prometheus"
  "$promtool" --version >/dev/null
fi
