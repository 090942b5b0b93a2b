#!/usr/bin/env bash
# Fetches the pppd 2.5 plugin headers (Debian 13 "trixie" ppp-dev) into
# .e2e/pppd25/, so that the plugin's compile test covers pppd's 2.5 API as
# well as the installed 2.4.9 one (tests/host/test_plugin_build.py).
# Also unpacks trixie's pppd 2.5 itself with the libraries it needs newer than
# bookworm's (libc6, libssl3t64, libpcap0.8t64) into .e2e/pppd25/rt/root, so
# tests/e2e/test_plugin.py can run the 2.5 plugin in a real pppd 2.5 through
# trixie's ld.so (rt/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2).
#
# The system's apt configuration is never touched: apt-get runs with a
# private source list, state and cache below the output directory, and only
# downloads ppp-dev, which dpkg -x unpacks there (nothing is installed).
#
# Idempotent: once .e2e/pppd25/root/usr/include/pppd/pppd.h exists it does
# nothing. Environment: PPPD25_DIR (default <repo>/.e2e/pppd25),
# PPPD25_MIRROR (default http://deb.debian.org/debian).
# Prints the include directory on success.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${PPPD25_DIR:-$repo/.e2e/pppd25}
mirror=${PPPD25_MIRROR:-http://deb.debian.org/debian}
include=$out/root/usr/include

runtime=$out/rt/root
if [ -f "$include/pppd/pppd.h" ] && [ -x "$runtime/usr/sbin/pppd" ]; then
    echo "$include"
    exit 0
fi

keyring=""
for k in /usr/share/keyrings/debian-archive-keyring.gpg \
    /usr/share/keyrings/debian-archive-trixie-stable.gpg; do
    if [ -f "$k" ]; then keyring=$k; break; fi
done
if [ -z "$keyring" ]; then
    echo "fetch-pppd25: no Debian archive keyring (install debian-archive-keyring)" >&2
    exit 1
fi

apt_dir=$out/apt
mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/parts" "$apt_dir/prefs" "$out/debs"
: >"$apt_dir/status"
cat >"$apt_dir/sources.list" <<LIST
deb [signed-by=$keyring] $mirror trixie main
LIST

# Everything apt would read from /etc/apt or /var/lib/apt is redirected here.
apt_opts=(
    -o "Dir::State=$apt_dir/state"
    -o "Dir::State::status=$apt_dir/status"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=$apt_dir/parts"
    -o "Dir::Etc::PreferencesParts=$apt_dir/prefs"
    -o "Dir::Etc::Preferences=$apt_dir/prefs/none"
    -o "APT::Architectures=amd64"
    -o "Acquire::Languages=none"
    -o "Debug::NoLocking=1"
)
# apt's _apt sandbox user could not write into the work tree anyway.
[ "$(id -u)" -ne 0 ] || apt_opts+=(-o "APT::Sandbox::User=root")

apt-get "${apt_opts[@]}" -qq update
(cd "$out/debs" && apt-get "${apt_opts[@]}" -qq download ppp-dev)
rm -rf "$out/rt" && mkdir -p "$out/rt/debs"
(cd "$out/rt/debs" && apt-get "${apt_opts[@]}" -qq download ppp libc6 libssl3t64 libpcap0.8t64)
for d in "$out"/rt/debs/*.deb; do dpkg -x "$d" "$out/rt/root.tmp"; done
mv "$out/rt/root.tmp" "$runtime"

deb=$(ls "$out"/debs/ppp-dev_*.deb | head -n 1)
rm -rf "$out/root.tmp"
dpkg -x "$deb" "$out/root.tmp"
if [ ! -f "$out/root.tmp/usr/include/pppd/pppd.h" ]; then
    echo "fetch-pppd25: $deb has no usr/include/pppd/pppd.h" >&2
    exit 1
fi
rm -rf "$out/root"
mv "$out/root.tmp" "$out/root"
# The lists are ~10 MB and only needed for the download.
rm -rf "$apt_dir/state/lists"
echo "$include"
