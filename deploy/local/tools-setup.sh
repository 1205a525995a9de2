#!/usr/bin/env bash
# Installs the checkers the deploy-file tests (gateway/tests/deploy.rs) run:
#   - kubernetes-validate (PyPI, pinned in deploy/local/tools-requirements.txt) in a venv at
#     target/tools/venv: the Kubernetes manifests against the API's schemas, strictly, offline;
#     opentelemetry-proto in the same venv: the trace tests' OTLP receiver decodes with it;
#   - systemd-analyze (Debian `systemd`): the systemd unit;
#   - promtool, extracted from Debian's `prometheus` package into target/tools/prometheus without
#     installing it (installing would enable a Prometheus server and pull in node-exporter, whose
#     port 9100 is the demo pods' port): the dashboards' rules (gateway/tests/dashboards.rs);
#   - headless Chromium (Debian `chromium`) and playwright-core (npm, pinned in
#     gateway/tests/ui/package-lock.json) in target/tools/ui, which drives /usr/bin/chromium and
#     downloads no browser: the admin web UI in a real browser (gateway/tests/ui.rs).
# Idempotent: the venv is rebuilt only when the requirements or the interpreter change; Debian
# packages are installed only when missing (`apt-get update` only then). Works from any directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
venv="$root/target/tools/venv"
reqs="$root/deploy/local/tools-requirements.txt"
# shellcheck source=deploy/local/lib.sh source-path=SCRIPTDIR
. deploy/local/lib.sh

# shellcheck disable=SC2207 # word splitting of package names is intended
need=($(python_venv_needs))
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
apt_install tools "${need[@]}"
python_venv tools "$venv" "$reqs" kubernetes-validate

promtool="$root/target/tools/prometheus/usr/bin/promtool"
if [ -x "$promtool" ]; then
  echo "==> tools: promtool present ($("$promtool" --version 2>&1 | head -n1))"
else
  echo "==> tools: extracting promtool from Debian's prometheus package"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # apt-get download needs package lists: update only when they do not know the package.
  (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null) || {
    if [ "$(id -u)" -ne 0 ]; then sudo apt-get update -qq; else apt-get update -qq; fi
    (cd "$tmp" && apt-get download -qq prometheus)
  }
  rm -rf "$root/target/tools/prometheus"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$root/target/tools/prometheus"
  "$promtool" --version >/dev/null
fi

# playwright-core for the UI test, keyed on its lock file and the node version.
ui_src="$root/gateway/tests/ui"
ui_dir="$root/target/tools/ui"
want_ui="$(node --version)-$(sha256sum "$ui_src/package-lock.json" | awk '{print $1}')"
stamp_ui="$ui_dir/.arena-lock.stamp"
if [ -f "$ui_dir/node_modules/playwright-core/package.json" ] && [ -f "$stamp_ui" ] && [ "$(cat "$stamp_ui")" = "$want_ui" ]; then
  echo "==> tools: target/tools/ui up to date (playwright-core $(node -p "require('$ui_dir/node_modules/playwright-core/package.json').version"), $(/usr/bin/chromium --version 2>/dev/null))"
else
  echo "==> tools: npm ci of playwright-core in target/tools/ui"
  rm -rf "$ui_dir"
  mkdir -p "$ui_dir"
  cp "$ui_src/package.json" "$ui_src/package-lock.json" "$ui_dir/"
  # No install scripts, no browser download: the test drives Debian's /usr/bin/chromium.
  (cd "$ui_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  echo "$want_ui" >"$stamp_ui"
fi
