// Package nsimtest makes SR-IOV physical functions out of netdevsim for
// tests that run inside the kernel VM (tests/kvm/kvmtest; prepare.sh
// builds netdevsim out of tree): a PF with real VFs whose MAC, VLAN (802.1Q
// or 802.1ad), QoS, spoof checking, trust, link state and rates the kernel
// keeps and reads back.
package nsimtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MissingFile is where the kernel VM's init explains why netdevsim could
// not be loaded.
const MissingFile = "/etc/tether-kvm/netdevsim.missing"

// defaultMaxVFs is how many VFs netdevsim allows before debugfs raises it.
const defaultMaxVFs = 4

// ids numbers the devices of one test binary (netdevsim IDs are global).
var ids atomic.Int32

// Missing says why this kernel has no netdevsim, "" when it has one: the
// reason the kernel VM's init left in MissingFile, or that
// /sys/bus/netdevsim is absent. Tests for which the VFs are optional
// check it instead of letting NewPF skip them.
func Missing() string {
	if _, err := os.Stat("/sys/bus/netdevsim"); err == nil {
		return ""
	}
	if why, err := os.ReadFile(MissingFile); err == nil && len(bytes.TrimSpace(why)) > 0 {
		return string(bytes.TrimSpace(why))
	}
	return "no /sys/bus/netdevsim"
}

// NewPF creates a netdevsim device with one port and n VFs, sets its PF up
// (the kernel announces VF changes only for a PF that is up) and returns
// the PF's netdev name. The device is deleted when the test ends. Without
// netdevsim in this kernel the test is skipped with the reason; call it
// only inside the kernel VM (kvmtest.RequireVM first).
func NewPF(t testing.TB, n int) string {
	t.Helper()
	if why := Missing(); why != "" {
		t.Skipf("no netdevsim in this kernel VM: %s", why)
	}
	id := int(ids.Add(1)) + 10
	write := func(path, v string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			t.Fatalf("echo %s > %s: %v", v, path, err)
		}
	}
	write("/sys/bus/netdevsim/new_device", fmt.Sprintf("%d 1", id))
	t.Cleanup(func() { _ = os.WriteFile("/sys/bus/netdevsim/del_device", []byte(strconv.Itoa(id)), 0) })
	if n > defaultMaxVFs {
		if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			t.Fatalf("mount debugfs: %v", err)
		}
		write(fmt.Sprintf("/sys/kernel/debug/netdevsim/netdevsim%d/max_vfs", id), strconv.Itoa(n))
	}
	ents, err := os.ReadDir(fmt.Sprintf("/sys/bus/netdevsim/devices/netdevsim%d/net", id))
	if err != nil || len(ents) != 1 {
		t.Fatalf("netdevsim%d's netdevs: %v %v", id, ents, err)
	}
	pf := ents[0].Name()
	if l, err := netlink.LinkByName(pf); err != nil || netlink.LinkSetUp(l) != nil {
		t.Fatalf("set %s up: %v", pf, err)
	}
	// The same file as /sys/class/net/PF/device/sriov_numvfs.
	write("/sys/class/net/"+pf+"/device/sriov_numvfs", strconv.Itoa(n))
	return pf
}

// VF reads VF idx of pf as the kernel reports it, through netlink's
// default handle (independent of the code under test).
func VF(t testing.TB, pf string, idx int) netlink.VfInfo {
	t.Helper()
	return VFAt(t, nil, pf, idx)
}

// VFAt is VF through handle h, for a PF moved into another network
// namespace (nil h: netlink's default handle, the caller's namespace).
func VFAt(t testing.TB, h *netlink.Handle, pf string, idx int) netlink.VfInfo {
	t.Helper()
	var (
		l   netlink.Link
		err error
	)
	if h != nil {
		l, err = h.LinkByName(pf)
	} else {
		l, err = netlink.LinkByName(pf)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range l.Attrs().Vfs {
		if v.ID == idx {
			return v
		}
	}
	t.Fatalf("%s has no vf %d (%d VFs)", pf, idx, len(l.Attrs().Vfs))
	return netlink.VfInfo{}
}
