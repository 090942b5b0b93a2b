#!/bin/bash
# PID 1 of the User-Mode Linux guest of the end-to-end tests (tests/e2e/uml.py).
#
#   linux.uml ... init=/bin/bash -- /abs/scripts/uml-init.sh RUN_DIR [MODULE...]
#
# MODULE: a path below /usr/lib/uml/modules/VERSION/kernel/ without ".ko"
# (e.g. drivers/net/ppp/ppp_generic), loaded with insmod in the order given.
#
# The guest's root is this machine's own filesystem (hostfs), so every write
# lands in the real file: everything private to the guest lives on tmpfs.
# It sets up the fixed topology, then runs the command server
# (tests/e2e/agent.py), which reads job files from RUN_DIR/guest/jobs, and
# powers off when that server exits, whatever happened.
#
# Topology: network namespaces "srv" and "cli" joined by a veth pair
#   srv: veth-srv 192.0.2.1/24 2001:db8::1/64      cli: veth-cli 192.0.2.2/24 2001:db8::2/64
# Private trees: tmpfs on /run and /etc/ppp (the server's: an empty options
# file, options.sstpd, chap-secrets), and on /tmp unless the work tree is
# under /tmp. The client's /etc/ppp and /etc/hosts are bind-mounted from
# RUN_DIR by the command server for each command it runs in "cli".

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 HOME=/root
umask 022

run_dir=$1
shift
modules=()
for a in "$@"; do
    # The kernel passes on parameters it does not know, such as console=tty0.
    case $a in *=*) ;; *) modules+=("$a") ;; esac
done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ctl=$run_dir/guest
kmods=/usr/lib/uml/modules/$(uname -r)/kernel

say() { echo "uml-init: $(cut -d' ' -f1 /proc/uptime 2>/dev/null) $*"; }

fail() {
    say "FAILED: $*"
    [ -d "$ctl" ] && printf '%s\n' "$*" >"$ctl/init-failed"
    poweroff -f
    exit 1
}

setup() {
    [ -d "$ctl" ] || fail "no control directory $ctl"
    mount -t proc proc /proc || fail "mount /proc"
    say "start"
    mount -t sysfs sysfs /sys || fail "mount /sys"
    mount -t tmpfs -o mode=755 tmpfs /run || fail "mount /run"
    mkdir -p /dev/pts /run/lock /run/netns /run/tmp /run/sstpc
    chmod 1777 /run/tmp /run/lock
    mount -t devpts devpts /dev/pts -o gid=5,mode=620,ptmxmode=666 || fail "mount devpts"
    ln -sf /proc/self/fd /dev/fd
    case "$repo/ $run_dir/" in
    /tmp/* | *" /tmp/"*) say "work tree under /tmp: /tmp stays shared" ;;
    *) mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "mount /tmp" ;;
    esac

    # modprobe finds nothing: /lib/modules has no entry for the guest kernel.
    # Each insmod costs 0.2-1 s of the one slow CPU, so only those asked for.
    local m
    for m in "${modules[@]}"; do
        insmod "$kmods/$m.ko" || fail "insmod $m"
    done
    [ -e /dev/ppp ] || mknod /dev/ppp c 108 0 || fail "mknod /dev/ppp"
    say "modules loaded: ${modules[*]}"

    # One ip process per namespace where possible: every exec is slow here.
    ip link set lo up || fail "lo up"
    ip netns add srv && ip netns add cli || fail "ip netns add"
    ip link add veth-srv netns srv type veth peer name veth-cli netns cli || fail "veth"
    printf '%s\n' "link set lo up" "addr add 192.0.2.1/24 dev veth-srv" \
        "addr add 2001:db8::1/64 dev veth-srv nodad" "link set veth-srv up" |
        ip -n srv -batch - || fail "srv addresses"
    printf '%s\n' "link set lo up" "addr add 192.0.2.2/24 dev veth-cli" \
        "addr add 2001:db8::2/64 dev veth-cli nodad" "link set veth-cli up" |
        ip -n cli -batch - || fail "cli addresses"
    say "network up"

    # The server's private /etc/ppp. An empty options file matters: Debian's
    # stock one says "auth", which makes sstpd's plugin dry run fail and
    # silently turns its crypto binding check off.
    mount -t tmpfs -o mode=755 tmpfs /etc/ppp || fail "mount /etc/ppp"
    mkdir -p /etc/ppp/peers
    : >/etc/ppp/options
    printf '%s\n' 'name sstpd' require-mschap-v2 silent nodefaultroute noccp debug \
        >/etc/ppp/options.sstpd
    printf '"labuser" * "labpass" *\n' >/etc/ppp/chap-secrets
    chmod 600 /etc/ppp/chap-secrets
}

setup
say "setup done, starting the command server"
# -I -S: no site-packages scan, which alone costs about a second here.
/usr/bin/python3 -I -S -u "$repo/tests/e2e/agent.py" "$run_dir" >>"$ctl/agent.log" 2>&1
say "command server exited with status $?"
sync
poweroff -f
