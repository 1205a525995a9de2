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
# shellcheck source=deploy/local/lib.sh source-path=SCRIPTDIR
. deploy/local/lib.sh

venv="$root/target/faas/venv"
reqs="$root/loadtest/faas/http/requirements.txt"
lambda_dir="$root/loadtest/faas/lambda"

sha() { sha256sum "$1" | awk '{print $1}'; }
pkg_version() { node -p "require('$lambda_dir/node_modules/$1/package.json').version"; }

# 1. Debian packages, only the missing ones.
# shellcheck disable=SC2207 # word splitting of package names is intended
need=($(python_venv_needs))
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt_install faas "${need[@]}"
else
  echo "==> faas: Debian packages present (python3 venv, node $(node --version), npm $(npm --version 2>/dev/null))"
fi

# 2. Python venv with functions-framework, keyed on requirements.txt and the interpreter.
python_venv faas "$venv" "$reqs" functions-framework

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
