#!/usr/bin/env bash
# Installs the Debian packages tether's tests use. Idempotent: packages
# already present are not fetched again, and apt-get update runs only when
# something is missing. Used by .ci/run and by `make test` / `make demo`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# tshark, tcpdump: independent dissectors, the judges of what tether puts on
#   the wire.
# libvirt0: the library tetherd dlopens (test:///default driver included).
# libvirt-daemon*, libvirt-clients, qemu-system-x86, tini, iproute2: a real
#   libvirtd with TCG domains for tests/libvirtlab (tini is its subreaper).
# lldpd, lldpad: real LLDP and EVB/ECP/VDP peers for interop tests.
# nftables: the nft CLI, to read back what edge/enforce programs.
# xz-utils: tests/kvm unpacks Debian's xz-compressed kernel.
# openvswitch-switch: ovsdb-server + ovs-vswitchd for agent/softswitch/ovs (the
#   tests run private instances; the packaged service is not used).
# gcc-12, make, libelf1 (objtool's): tests/kvm/prepare.sh builds netdevsim.ko
#   out of tree against Debian's kernel headers (agent/vnic/sriov's VFs).
pkgs=(tshark tcpdump libvirt0 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 tini iproute2 lldpd nftables lldpad xz-utils openvswitch-switch gcc-12 make libelf1)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
# wireshark-common asks whether non-root users may capture; answer no.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
