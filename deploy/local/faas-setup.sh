#!/usr/bin/env bash
# Installs the real FaaS runtimes the gateway's fallback tests run against (loopback only):
#   - HTTP functions: PyPI functions-framework in a venv at target/faas/venv
#     (serves loadtest/faas/http/main.py);
#   - AWS Lambda: npm serverless@3 + serverless-offline@13 in loadtest/faas/lambda/node_modules
#     (emulates the Lambda Invoke API for loadtest/faas/lambda/handler.js).
# Idempotent: each step is skipped when already satisfied; Debian packages are installed only if
# missing, with `apt-get update` only then. Works from any directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

venv="$root/target/faas/venv"
reqs="$root/loadtest/faas/http/requirements.txt"
lambda_dir="$root/loadtest/faas/lambda"

sha() { sha256sum "$1" | awk '{print $1}'; }
pkg_version() { node -p "require('$lambda_dir/node_modules/$1/package.json').version"; }

# 1. Debian packages, only the missing ones.
need=()
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> faas: installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "==> faas: Debian packages present (python3 venv, node $(node --version), npm $(npm --version 2>/dev/null))"
fi

# 2. Python venv with functions-framework, keyed on requirements.txt and the interpreter.
want_py="$(python3 -c 'import sys; print(sys.version)' | sha256sum | awk '{print $1}')-$(sha "$reqs")"
stamp_py="$venv/.arena-requirements.stamp"
if [ -x "$venv/bin/functions-framework" ] && [ -f "$stamp_py" ] && [ "$(cat "$stamp_py")" = "$want_py" ]; then
  echo "==> faas: venv up to date ($venv)"
else
  echo "==> faas: creating venv $venv and installing $(basename "$reqs")"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$reqs"
  echo "$want_py" >"$stamp_py"
fi

# 3. serverless + serverless-offline, keyed on package-lock.json and the node version.
want_js="$(node --version)-$(sha "$lambda_dir/package-lock.json")"
stamp_js="$lambda_dir/node_modules/.arena-lock.stamp"
if [ -x "$lambda_dir/node_modules/.bin/serverless" ] && [ -f "$stamp_js" ] && [ "$(cat "$stamp_js")" = "$want_js" ]; then
  echo "==> faas: loadtest/faas/lambda/node_modules up to date"
else
  echo "==> faas: npm ci in loadtest/faas/lambda"
  # Install scripts only print banners (serverless, aws-sdk, es5-ext): skip them.
  (cd "$lambda_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$want_js" >"$stamp_js"
fi

echo "==> faas: ready (functions-framework $("$venv/bin/pip" show functions-framework 2>/dev/null | awk '/^Version:/{print $2}'), serverless $(pkg_version serverless), serverless-offline $(pkg_version serverless-offline))"
