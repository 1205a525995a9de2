#!/usr/bin/env bash
# Installs the checkers the deploy-file tests (gateway/tests/deploy.rs) run:
#   - kubernetes-validate (PyPI, pinned in deploy/local/tools-requirements.txt) in a venv at
#     target/tools/venv: the Kubernetes manifests against the API's schemas, strictly, offline;
#   - systemd-analyze (Debian `systemd`): the systemd unit.
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
