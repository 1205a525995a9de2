# shellcheck shell=bash
# lib.sh — helpers shared by the deploy/local setup scripts (sourced, never run).

# apt_install TAG PACKAGE... — installs the packages with apt-get (sudo when not root), after an
# `apt-get update`; does nothing without packages. TAG prefixes the progress line.
apt_install() {
  local tag=$1
  shift
  [ $# -gt 0 ] || return 0
  echo "==> $tag: installing Debian packages: $*"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# python_venv_needs — prints the Debian packages a Python venv needs and are missing.
python_venv_needs() {
  if ! command -v python3 >/dev/null 2>&1; then
    echo python3 python3-venv
  elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo python3-venv
  fi
}

# python_venv TAG VENV REQUIREMENTS BIN — a venv at VENV with REQUIREMENTS installed, rebuilt
# only when the requirements file or the interpreter changed (or VENV/bin/BIN is missing).
python_venv() {
  local tag=$1 venv=$2 reqs=$3 bin=$4 want stamp
  want="$(python3 -c 'import sys; print(sys.version)' | sha256sum | awk '{print $1}')-$(sha256sum "$reqs" | awk '{print $1}')"
  stamp="$venv/.arena-requirements.stamp"
  if [ -x "$venv/bin/$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "==> $tag: venv up to date ($venv)"
    return 0
  fi
  echo "==> $tag: creating venv $venv and installing $(basename "$reqs")"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$reqs"
  echo "$want" >"$stamp"
}
