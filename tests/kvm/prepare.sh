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
# netdevsim is not in Debian's kernel: it is built out of tree below (the
# netdevsim block) and put in lib/modules/$K/extra/; psample is its one
# dependency (modinfo -F depends).
MODULES_VNIC=(psample)
LOAD_VNIC=(netdevsim)
# agent/softswitch/linuxbridge (vlan_filtering bridge, nftables bridge family, tc).
# nf_tables (+ nfnetlink, libcrc32c, whose softdep crc32c is crc32c_generic
# here: LOAD it first, modprobe does not follow softdeps through busybox),
# nft_objref (named counters; counter, lookup, hash sets are built into
# nf_tables), nft_meta_bridge (with NFT_BRIDGE_META=m, nf_tables refuses
# `meta` in the bridge family until it is loaded), tc: sch_ingress,
# cls_matchall, act_police.
MODULES_BRIDGE=(nfnetlink nf_tables libcrc32c crc32c_generic nft_objref nft_meta_bridge sch_ingress cls_matchall act_police)
LOAD_BRIDGE=(crc32c_generic nf_tables nft_objref nft_meta_bridge sch_ingress cls_matchall act_police)
# agent/softswitch/ovs (openvswitch kernel datapath): openvswitch and its
# depends (modinfo -F depends: nf_conntrack, nsh, nf_nat, nf_defrag_ipv6,
# nf_conncount, libcrc32c; nf_conntrack adds nf_defrag_ipv4); libcrc32c's
# softdep crc32c is crc32c_generic, LOADed first (busybox modprobe does not
# follow softdeps). The userspace daemons come from the OVS block below.
MODULES_OVS=(openvswitch nsh nf_conntrack nf_nat nf_defrag_ipv4 nf_defrag_ipv6 nf_conncount libcrc32c crc32c_generic)
LOAD_OVS=(crc32c_generic openvswitch)
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

# netdevsim (agent/vnic/sriov: SR-IOV VFs for real). Debian builds its kernel
# without it, so it is built out of tree from linux-source-6.1 (only
# drivers/net/netdevsim) against the pinned kernel's own headers, once per
# kernel version: $CACHE/netdevsim/$KERNEL_RELEASE=$KERNEL_DEBVER/netdevsim.ko
# survives the rebuilds a change to this script causes (other versions' are
# pruned). Needs gcc-12 and make
# (tests/install-deps.sh) and the mirror the first time. When it cannot be
# built the rest of the cache is still prepared: /init does not load it and
# /etc/tether-kvm/netdevsim.missing in the initramfs says why, so the tests
# that need netdevsim skip with that reason.
NSIM_CACHE=$CACHE/netdevsim/$KERNEL_RELEASE=$KERNEL_DEBVER
build_netdevsim() {
  local series=${KERNEL_RELEASE%%.0-*}             # 6.1
  local abi=${KERNEL_RELEASE%-amd64}               # 6.1.0-56
  local b=$work/nsim
  mkdir -p "$b/debs" "$b/tree" "$b/src"
  chmod 0777 "$b/debs" 2>/dev/null || true
  command -v gcc-12 >/dev/null || { echo "gcc-12 not installed (tests/install-deps.sh installs it)"; return 1; }
  command -v make >/dev/null || { echo "make not installed (tests/install-deps.sh installs it)"; return 1; }
  (cd "$b/debs" && apt-get download -q "linux-source-$series=$KERNEL_DEBVER" \
      "linux-headers-$KERNEL_RELEASE=$KERNEL_DEBVER" "linux-headers-$abi-common=$KERNEL_DEBVER" \
      "linux-kbuild-$series=$KERNEL_DEBVER" >&2) ||
    { echo "apt-get download of linux-source-$series, linux-headers-$KERNEL_RELEASE, linux-headers-$abi-common, linux-kbuild-$series (all $KERNEL_DEBVER) failed (needs the Debian mirror)"; return 1; }
  local d
  for d in "$b"/debs/linux-headers-*.deb "$b"/debs/linux-kbuild-*.deb; do dpkg-deb -x "$d" "$b/tree"; done
  # The -amd64 headers' Makefile includes the -common one by absolute path.
  sed -i "s|/usr/src/|$b/tree/usr/src/|g" "$b/tree/usr/src/linux-headers-$KERNEL_RELEASE/Makefile"
  dpkg-deb --fsys-tarfile "$b"/debs/linux-source-*.deb |
    tar -xO "./usr/src/linux-source-$series.tar.xz" |
    tar -xJ -C "$b/src" --strip-components=3 "linux-source-$series/drivers/net/netdevsim" ||
    { echo "could not extract drivers/net/netdevsim from linux-source-$series"; return 1; }
  make -s -C "$b/tree/usr/src/linux-headers-$KERNEL_RELEASE" M="$b/src/netdevsim" CONFIG_NETDEVSIM=m modules >&2 ||
    { echo "make netdevsim.ko against linux-headers-$KERNEL_RELEASE failed"; return 1; }
  # The kernel loads only a module built for exactly its release.
  grep -qa "vermagic=$KERNEL_RELEASE " "$b/src/netdevsim/netdevsim.ko" ||
    { echo "netdevsim.ko's vermagic is not $KERNEL_RELEASE"; return 1; }
  mkdir -p "$NSIM_CACHE"
  # Without debug info: 5.5 MB -> 0.2 MB.
  strip --strip-debug -o "$NSIM_CACHE/.netdevsim.ko" "$b/src/netdevsim/netdevsim.ko" ||
    cp "$b/src/netdevsim/netdevsim.ko" "$NSIM_CACHE/.netdevsim.ko"
  mv "$NSIM_CACHE/.netdevsim.ko" "$NSIM_CACHE/netdevsim.ko"
  rm -rf "$b"
}
nsim_missing=
if [ ! -f "$NSIM_CACHE/netdevsim.ko" ]; then
  echo "prepare: building netdevsim.ko for $KERNEL_RELEASE out of tree" >&2
  if ! nsim_missing=$(build_netdevsim 2>>"$work/nsim.log"); then
    nsim_missing="netdevsim.ko could not be built for $KERNEL_RELEASE: ${nsim_missing:-see the log}; $(tail -3 "$work/nsim.log" | tr '\n' ' ')"
    echo "prepare: $nsim_missing (the cache is prepared without netdevsim; remove $CACHE/VERSION to retry)" >&2
  fi
fi
find "$CACHE/netdevsim" -mindepth 1 -maxdepth 1 ! -name "${NSIM_CACHE##*/}" -exec rm -rf {} + 2>/dev/null || true
if [ -f "$NSIM_CACHE/netdevsim.ko" ]; then
  mkdir -p "$root/lib/modules/$KERNEL_RELEASE/extra"
  cp "$NSIM_CACHE/netdevsim.ko" "$root/lib/modules/$KERNEL_RELEASE/extra/netdevsim.ko"
else
  mkdir -p "$root/etc/tether-kvm"
  echo "${nsim_missing:-netdevsim.ko missing}" > "$root/etc/tether-kvm/netdevsim.missing"
  load=()
  for m in "${LOAD[@]}"; do [ "$m" = netdevsim ] || load+=("$m"); done
  LOAD=("${load[@]}")
fi

# Open vSwitch userspace (agent/softswitch/ovs, its kernel-datapath test):
# ovsdb-tool, ovsdb-server, ovs-vswitchd, ovs-ofctl, ovs-vsctl, ovs-appctl with the
# shared libraries ldd lists (and the loader), and the Open_vSwitch schema,
# taken from the host when openvswitch-switch is installed there
# (tests/install-deps.sh). Otherwise /etc/tether-kvm/ovs.missing in the
# initramfs says why, and that test skips with the reason.
ovs_bins=(/usr/bin/ovsdb-tool /usr/sbin/ovsdb-server /usr/sbin/ovs-vswitchd /usr/bin/ovs-ofctl /usr/bin/ovs-vsctl /usr/bin/ovs-appctl)
ovs_schema=/usr/share/openvswitch/vswitch.ovsschema
ovs_missing=
for f in "${ovs_bins[@]}" "$ovs_schema"; do
  [ -e "$f" ] || ovs_missing="${ovs_missing:+$ovs_missing, }$f"
done
if [ -z "$ovs_missing" ] && command -v ldd >/dev/null; then
  for f in "${ovs_bins[@]}"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
  done | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  mkdir -p "$root$(dirname "$ovs_schema")"
  cp "$ovs_schema" "$root$ovs_schema"
else
  mkdir -p "$root/etc/tether-kvm"
  echo "Open vSwitch is not installed on the host (missing ${ovs_missing:-ldd}): apt-get install openvswitch-switch (tests/install-deps.sh), then rerun tests/kvm/prepare.sh" > "$root/etc/tether-kvm/ovs.missing"
fi

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
