#!/usr/bin/env bash
# Installs what building and testing Arena needs on a fresh Debian/Ubuntu machine.
# Idempotent: installs only what is missing; `apt-get update` runs once, and only if needed.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v curl >/dev/null 2>&1 || need+=(curl)          # TLS/h2 listener test client
command -v openssl >/dev/null 2>&1 || need+=(openssl)    # test certificates
for extra in "$@"; do
  case "$extra" in
    redis) command -v redis-server >/dev/null 2>&1 || need+=(redis-server) ;;
    peers) for p in nginx haproxy wrk; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done ;;
  esac
done

apt_install prereqs "${need[@]}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) and retry" >&2
  exit 1
fi
