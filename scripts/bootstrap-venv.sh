#!/bin/sh
# Create a virtual environment with the given Python, installing Debian's venv support
# first when it is missing (a fresh Debian has python3 without ensurepip).
set -eu
py=${1:-python3}; venv=${2:-.venv}
if ! "$py" -m venv --help >/dev/null 2>&1 || ! "$py" -c 'import ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install "python$ver-venv" >/dev/null || \
      DEBIAN_FRONTEND=noninteractive apt-get -q -y install python3-venv >/dev/null
  else
    echo "bootstrap-venv: '$py -m venv' is unavailable; install your distribution's python3-venv" >&2
    exit 1
  fi
fi
"$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
