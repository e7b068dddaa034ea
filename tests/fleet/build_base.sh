#!/bin/bash
# Build (once) the Debian 12 base root the fleet test copies for every host, as a tarball in
# $1 (the cache folder). The namespaces the hosts run in have no route out, so the packages
# the roles name are installed here, from deb.debian.org, while building the base.
set -euo pipefail
cache=$(realpath "$1")
tarball="$cache/bookworm-base.tar"
[ -s "$tarball" ] && { echo "base: cached $tarball"; exit 0; }
mkdir -p "$cache"
mirror=${KONAK_FLEET_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/konak-fleet-base.XXXXXX)
root="$work/root"
cleanup() {
    # unmount anything under the root (deepest first) before removing it
    for m in $(findmnt -rn -o TARGET | grep "^$root" | sort -r); do umount -l "$m" || true; done
    if ! findmnt -rn -o TARGET | grep -q "^$root"; then rm -rf "$work"; fi
}
trap cleanup EXIT
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
# No service starts inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# /proc is mounted in a private mount namespace: it never shows in the host's mount table
# and goes away with the command.
unshare --mount --propagation private sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" \
    /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-server python3 python3-venv python3-apt python3-cryptography mosquitto mosquitto-clients \
    openssl libportaudio2 libsystemd0 procps iproute2' _ "$root" >"$work/apt.log" 2>&1 \
    || { tail -20 "$work/apt.log"; exit 1; }
chroot "$root" apt-get clean
rm -f "$root"/etc/ssh/ssh_host_*   # every host makes its own keys
tar -C "$root" -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
echo "base: built $tarball ($(du -h "$tarball" | cut -f1))"
