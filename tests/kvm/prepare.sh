#!/usr/bin/env bash
# Prepares the cache the kernel-VM harness (tests/kvm) boots from: Debian's
# own kernel, the ten modules tether's L2 tests need, and a busybox-static
# initramfs whose /init loads them and runs /test.
#
# Idempotent: when the cache already holds the pinned kernel it exits at
# once. Needs apt (apt-get download, dpkg-deb) and network to the Debian
# mirror the first time; not root (nothing is installed).
#
# Cache: $TETHER_KVM_CACHE, default /var/cache/tether-kvm. Layout:
#   VERSION               pinned package=version, written last
#   vmlinuz               the bzImage as Debian ships it
#   vmlinux               the same kernel uncompressed (ELF, PVH entry):
#                         QEMU boots it ~2 s faster than the bzImage
#   initramfs-base.cpio.gz  busybox, modules, /init (no /test: Run puts an
#                         uncompressed cpio with /test, /test.sh (the
#                         arguments, quoted) and /dev/console in front of it
#                         per boot)
set -euo pipefail

# Pinned kernel: the newest linux-image-6.1.0-*-amd64 (not -cloud, not -rt)
# that `apt-cache search --names-only '^linux-image-6.1.0-.*-amd64$'` showed
# on 2026-11-24. To move the pin: change both lines, rerun this script.
KERNEL_PKG=linux-image-6.1.0-56-amd64
KERNEL_DEBVER=6.1.192-2
KERNEL_RELEASE=${KERNEL_PKG#linux-image-}       # 6.1.0-56-amd64, the modules dir
BUSYBOX_PKG=busybox-static                       # whatever bookworm carries
# The cache is stamped with this script's own checksum: any change to it
# (pin, modules, /init) rebuilds the cache on next use.
SCRIPT_SUM=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)

# The modules the tests need, one list per user so each can grow on its own.
# MODULES are copied into the initramfs (with nothing else: list every
# dependency); LOAD is what /init modprobes (modprobe resolves the rest
# through modules.dep).
# Base (tests/kvm smoke): 8021q (+ garp, mrp, stp, llc), bridge (+ stp,
# llc), psnap and p8022 (llc users 8021q's deps pull in), veth, dummy.
MODULES_BASE=(8021q garp mrp stp psnap p8022 llc bridge veth dummy)
LOAD_BASE=(8021q bridge veth dummy)
# agent/vnic (partitions, SR-IOV VFs on netdevsim).
MODULES_VNIC=()
LOAD_VNIC=()
# agent/softswitch/linuxbridge (vlan_filtering bridge, nftables bridge family, tc).
MODULES_BRIDGE=()
LOAD_BRIDGE=()
# agent/softswitch/ovs (openvswitch kernel datapath).
MODULES_OVS=()
LOAD_OVS=()
MODULES=("${MODULES_BASE[@]}" "${MODULES_VNIC[@]}" "${MODULES_BRIDGE[@]}" "${MODULES_OVS[@]}")
LOAD=("${LOAD_BASE[@]}" "${LOAD_VNIC[@]}" "${LOAD_BRIDGE[@]}" "${LOAD_OVS[@]}")

CACHE=${TETHER_KVM_CACHE:-/var/cache/tether-kvm}
STAMP="$KERNEL_PKG=$KERNEL_DEBVER"
CACHE_STAMP="$STAMP script $SCRIPT_SUM"

if [ -f "$CACHE/VERSION" ] && [ "$(cat "$CACHE/VERSION")" = "$CACHE_STAMP" ] &&
   [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initramfs-base.cpio.gz" ]; then
  exit 0
fi

mkdir -p "$CACHE"
# One preparer at a time (tests on the same machine may race); the second
# finds the cache ready once it gets the lock.
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$CACHE/VERSION" ] && [ "$(cat "$CACHE/VERSION")" = "$CACHE_STAMP" ] &&
   [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initramfs-base.cpio.gz" ]; then
  exit 0
fi
work=$(mktemp -d "$CACHE/.prepare.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "prepare: apt-get download $STAMP $BUSYBOX_PKG" >&2
# apt drops privileges to _apt for downloads; it must be able to write here.
chmod 0777 "$work" 2>/dev/null || true
if ! apt-get download -q "$STAMP" "$BUSYBOX_PKG" >&2; then
  echo "prepare: apt-get download failed (needs network to the Debian mirror via apt;" \
       "if $STAMP is gone from the mirror, move the pin in $0)" >&2
  exit 2
fi
dpkg-deb -x ./linux-image-*.deb k
dpkg-deb -x ./busybox-static_*.deb bb

mods=k/lib/modules/$KERNEL_RELEASE
root=root
mkdir -p $root/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc} "$root/lib/modules/$KERNEL_RELEASE"
cp bb/bin/busybox $root/bin/busybox
ln -s busybox $root/bin/sh

# The deb ships no modules.dep (depmod runs at install); /init runs
# busybox depmod over the ten modules, which takes milliseconds.
for m in "${MODULES[@]}"; do
  p=$(cd "$mods" && find kernel -name "$m.ko" -print -quit)
  if [ -z "$p" ]; then
    echo "prepare: module $m.ko not in $KERNEL_PKG" >&2
    exit 1
  fi
  mkdir -p "$root/lib/modules/$KERNEL_RELEASE/$(dirname "$p")"
  cp "$mods/$p" "$root/lib/modules/$KERNEL_RELEASE/$p"
done
cp "$mods/modules.builtin" "$mods/modules.order" "$root/lib/modules/$KERNEL_RELEASE/"

cat > $root/init <<INIT
#!/bin/sh
# tether kernel-VM init: load modules, run /test.sh (which runs /test with
# the harness's arguments), report its status on the console and through
# QEMU's isa-debug-exit device (port 0xf4), power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
exec </dev/console >/dev/console 2>&1
depmod
modprobe -a ${LOAD[*]} || echo "TETHER-KVM-MODPROBE-FAILED"
ip link set lo up
echo "TETHER-KVM-START"
if [ -f /test.sh ]; then
  sh /test.sh
  status=\$?
else
  echo "TETHER-KVM-NO-TEST"
  status=125
fi
echo "TETHER-KVM-EXIT=\$status"
# isa-debug-exit: QEMU exits with (byte << 1) | 1.
printf "\\\\\$(printf %o \$((status & 255)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
INIT
chmod 0755 $root/init

(cd $root && find . | LC_ALL=C sort | ../bb/bin/busybox cpio -o -H newc 2>/dev/null) | gzip -9 > initramfs-base.cpio.gz

# Uncompressed kernel: the xz payload inside the bzImage (this kernel is
# CONFIG_KERNEL_XZ) is an ELF vmlinux with a PVH entry QEMU can boot.
vmlinuz=k/boot/vmlinuz-$KERNEL_RELEASE
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1 || true)
if [ -n "$off" ]; then
  tail -c +$((off + 1)) "$vmlinuz" | xz -dcq > vmlinux 2>/dev/null || true
  if [ "$(head -c 4 vmlinux | od -An -c | tr -d ' ')" = "177ELF" ]; then
    mv vmlinux "$CACHE/vmlinux.new"
  else
    echo "prepare: could not extract vmlinux; booting the bzImage (slower)" >&2
  fi
fi

mv initramfs-base.cpio.gz "$CACHE/initramfs-base.cpio.gz"
cp "$vmlinuz" "$CACHE/vmlinuz"
if [ -f "$CACHE/vmlinux.new" ]; then mv "$CACHE/vmlinux.new" "$CACHE/vmlinux"; else rm -f "$CACHE/vmlinux"; fi
echo "$CACHE_STAMP" > "$CACHE/VERSION"
echo "prepare: $CACHE ready ($STAMP; initramfs $(stat -c %s "$CACHE/initramfs-base.cpio.gz") bytes)" >&2
