#!/usr/bin/env bash
# Prepares a machine for the end-to-end tests in User-Mode Linux (tests/e2e/).
#
# 1. Debian packages: the UML kernel, pppd, the tools the guest runs, and
#    sstp-client (the reference client sstpc and the sstp-pppd-plugin.so that
#    sstp-server needs to verify the crypto binding).
# 2. A venv with sstp-server 0.7.2 at .e2e/sstpd-venv. 0.7.2 needs
#    Python >= 3.12; on Debian's 3.11 pip would silently pick 0.6.0, whose C
#    codec is broken, so the venv is made with the machine's pyenv 3.12.
#
# Idempotent: it does nothing slow when everything is already there.
# Environment: E2E_PYTHON (an interpreter >= 3.12; default: pyenv's 3.12.1),
# E2E_VENV (default: <repo>/.e2e/sstpd-venv).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${E2E_VENV:-$repo/.e2e/sstpd-venv}
sstpd_version=0.7.2
# gcc, libc6-dev: tests/e2e/xstate_shim.c, without which UML 6.1 cannot boot on a host
# CPU with AVX-512 or AMX (see tests/e2e/xstate.py).
packages=(user-mode-linux kmod ppp ppp-dev iproute2 iputils-ping openssl iperf3 sstp-client
    gcc libc6-dev)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-e2e: installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    # --no-install-recommends: sstp-client would pull in NetworkManager and GTK.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

have_version() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" - "$sstpd_version" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(version("sstp-server") != sys.argv[1])
PY
}

if ! have_version; then
    python=${E2E_PYTHON:-}
    if [ -z "$python" ]; then
        if command -v pyenv >/dev/null && prefix=$(pyenv prefix 3.12.1 2>/dev/null); then
            python=$prefix/bin/python3.12
        elif command -v python3.12 >/dev/null; then
            python=$(command -v python3.12)
        else
            echo "setup-e2e: no Python >= 3.12 found (set E2E_PYTHON)" >&2
            exit 1
        fi
    fi
    echo "setup-e2e: creating $venv with $python"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    PYENV_VERSION=3.12.1 "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "sstp-server==$sstpd_version"
    have_version || { echo "setup-e2e: sstp-server $sstpd_version not installed" >&2; exit 1; }
fi

test -x "$venv/bin/sstpd" || { echo "setup-e2e: $venv/bin/sstpd missing" >&2; exit 1; }
echo "setup-e2e: ok (linux.uml $(dpkg-query -W -f='${Version}' user-mode-linux)," \
    "sstp-server $sstpd_version in $venv)"
bash "$repo/scripts/fetch-pppd25.sh" >/dev/null  # pppd 2.5 headers for the plugin compile test
