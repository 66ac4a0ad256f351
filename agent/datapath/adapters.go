package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/vnic"
	"github.com/tether-net/tether/agent/vnic/partition"
	"github.com/tether-net/tether/agent/vnic/sriov"
	"github.com/tether-net/tether/api"
)

// SRIOV adapts agent/vnic/sriov to VNICs for vf VIFs. The vNIC name the
// manager records is the VIF's MAC, so a VF is released by its record even
// when the VIF's host device is no longer known.
//
// Before the switch answered, the VF gets the VIF's MAC, spoof checking on
// (the NIC's MAC allow-list) and its link disabled: nothing reaches the
// wire. With the answer: the port VLAN (the granted VID, 802.1Q; or the
// VIF's S-Tag, 802.1ad, for a VIF with one), the profile's priority as
// QoS, its rate as max tx rate (rounded up to Mbit/s), link auto.
type SRIOV struct {
	// Manager configures the VFs; required.
	Manager *sriov.Manager
	// Resolve finds the VF of a VIF; nil means ResolveVF.
	Resolve func(v inventory.VIF) (sriov.VF, error)
	// Watch runs the manager's drift watch (sriov.Manager.Watch) with
	// Drift as its policy.
	Watch bool
	Drift vnic.DriftPolicy
}

var (
	_ VNICs  = (*SRIOV)(nil)
	_ Holder = (*SRIOV)(nil)
	_ Runner = (*SRIOV)(nil)
)

// Settings returns the VF settings for VIF v and answer a (nil: none yet).
func (s *SRIOV) Settings(v inventory.VIF, a *Answer) sriov.Settings {
	want := sriov.Settings{MAC: v.MAC.HardwareAddr(), SpoofCheck: true, LinkState: sriov.LinkStateDisable}
	if a == nil {
		return want
	}
	p := a.profile()
	want.LinkState = sriov.LinkStateAuto
	want.VLAN, want.VLANProto = p.VID, sriov.ProtoDot1Q
	if v.STag != 0 {
		want.VLAN, want.VLANProto = v.STag, sriov.ProtoDot1AD
	}
	if want.VLAN != 0 {
		want.QoS = p.Priority
	}
	want.MaxTxRate = (p.RateKbps + 999) / 1000
	return want
}

// Ensure configures v's VF.
func (s *SRIOV) Ensure(ctx context.Context, v inventory.VIF, a *Answer) (string, error) {
	resolve := s.Resolve
	if resolve == nil {
		resolve = ResolveVF
	}
	vf, err := resolve(v)
	if err != nil {
		return "", err
	}
	return "", s.Manager.Ensure(ctx, v.MAC.String(), vf, s.Settings(v, a))
}

// Release restores the VF v's MAC holds, if any.
func (s *SRIOV) Release(ctx context.Context, v inventory.VIF) error {
	recs, _ := s.Manager.Records()
	for _, rec := range recs {
		if rec.VNIC == v.MAC.String() {
			if err := s.Manager.Release(ctx, rec.VNIC, rec.VF); err != nil {
				return err
			}
		}
	}
	return nil
}

// Held lists the MACs that hold a VF.
func (s *SRIOV) Held(ctx context.Context) ([]inventory.MAC, error) {
	recs, errs := s.Manager.Records()
	var out []inventory.MAC
	for _, rec := range recs {
		if mac, err := inventory.ParseMAC(rec.VNIC); err == nil {
			out = append(out, mac)
		}
	}
	return out, errors.Join(errs...)
}

// Run runs the drift watch when Watch is set, else waits for ctx.
func (s *SRIOV) Run(ctx context.Context) error {
	if !s.Watch {
		<-ctx.Done()
		return nil
	}
	return s.Manager.Watch(ctx, sriov.WatchOptions{Drift: s.Drift})
}

// sysClassNet is where ResolveVF looks netdevs up (tests may not change
// it: it is a constant in effect).
const sysClassNet = "/sys/class/net"

// sysPCI is where ResolveVF looks PCI functions up.
const sysPCI = "/sys/bus/pci/devices"

// ResolveVF finds the VF of a vf VIF from its host device, written as
//
//   - "PF/vfN": the VF with index N of the PF netdev PF (what `ip link set
//     PF vf N` names);
//   - a PCI address "DDDD:BB:DD.F" of the VF (libvirt's <hostdev> source);
//   - the VF's own netdev name, when the host has one.
//
// The last two are looked up in sysfs (physfn and its virtfnN links).
func ResolveVF(v inventory.VIF) (sriov.VF, error) {
	return resolveVFIn(sysClassNet, sysPCI, v)
}

// resolveVFIn is ResolveVF with the sysfs directories as arguments.
func resolveVFIn(classNet, pciDevices string, v inventory.VIF) (sriov.VF, error) {
	dev := v.HostDev
	if dev == "" {
		return sriov.VF{}, fmt.Errorf("vf VIF %s has no host device: want PF/vfN, the VF's PCI address or its netdev", v.MAC)
	}
	if pf, idx, ok := strings.Cut(dev, "/vf"); ok {
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 || pf == "" {
			return sriov.VF{}, fmt.Errorf("vf VIF %s: host device %q is not PF/vfN", v.MAC, dev)
		}
		return sriov.VF{PF: pf, Index: n}, nil
	}
	fn := filepath.Join(classNet, dev, "device")
	if strings.Count(dev, ":") == 2 && strings.Contains(dev, ".") {
		fn = filepath.Join(pciDevices, dev)
	}
	if strings.ContainsAny(dev, "/") || dev == "." || dev == ".." {
		return sriov.VF{}, fmt.Errorf("vf VIF %s: host device %q is not PF/vfN, a PCI address or a netdev", v.MAC, dev)
	}
	return vfFromSysfs(fn)
}

// vfFromSysfs finds PF and index of the PCI function at path fn.
func vfFromSysfs(fn string) (sriov.VF, error) {
	self, err := filepath.EvalSymlinks(fn)
	if err != nil {
		return sriov.VF{}, fmt.Errorf("resolve VF %s: %w", fn, err)
	}
	physfn := filepath.Join(fn, "physfn")
	nets, err := os.ReadDir(filepath.Join(physfn, "net"))
	if err != nil || len(nets) == 0 {
		return sriov.VF{}, fmt.Errorf("resolve VF %s: not a VF with a PF netdev: %v", fn, err)
	}
	links, err := filepath.Glob(filepath.Join(physfn, "virtfn*"))
	if err != nil {
		return sriov.VF{}, fmt.Errorf("resolve VF %s: %w", fn, err)
	}
	for _, l := range links {
		t, err := filepath.EvalSymlinks(l)
		if err != nil || t != self {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "virtfn"))
		if err == nil {
			return sriov.VF{PF: nets[0].Name(), Index: n}, nil
		}
	}
	return sriov.VF{}, fmt.Errorf("resolve VF %s: not among its PF's virtfn links", fn)
}

// Partitions adapts agent/vnic/partition to VNICs for partition VIFs: an
// 802.1ad S-Tag device (the VIF's S-Tag) on Uplink, with an 802.1Q device
// on top for the granted VID (before the answer: the VIF's C-VID), in the
// S-Tag mode of the switch's profile (switch mode until then).
type Partitions struct {
	// Manager makes the devices; required.
	Manager *partition.Manager
	// Uplink is the device the S-Tag devices sit on; required.
	Uplink string
}

var (
	_ VNICs  = (*Partitions)(nil)
	_ Holder = (*Partitions)(nil)
	_ Runner = (*Partitions)(nil)
)

// Spec returns the partition spec of VIF v with answer a (nil: none yet).
func (p *Partitions) Spec(v inventory.VIF, a *Answer) partition.Spec {
	s := partition.Spec{ID: v.MAC.String(), Uplink: p.Uplink, STag: v.STag, CVID: v.CVID}
	if a != nil {
		s.CVID = a.VID
		if a.Profile != nil && a.Profile.Mode != 0 {
			s.Mode = a.Profile.Mode
		}
	}
	return s
}

// Ensure makes v's devices and returns the top one.
func (p *Partitions) Ensure(ctx context.Context, v inventory.VIF, a *Answer) (string, error) {
	devs, err := p.Manager.Ensure(ctx, p.Spec(v, a))
	if err != nil {
		return "", err
	}
	return devs.Top(), nil
}

// Release deletes v's devices.
func (p *Partitions) Release(ctx context.Context, v inventory.VIF) error {
	return p.Manager.Release(ctx, v.MAC.String())
}

// Held lists the MACs with a desired partition.
func (p *Partitions) Held(ctx context.Context) ([]inventory.MAC, error) {
	var out []inventory.MAC
	for _, st := range p.Manager.Statuses() {
		if mac, err := inventory.ParseMAC(st.Spec.ID); err == nil {
			out = append(out, mac)
		}
	}
	return out, nil
}

// Run runs the manager's drift watch (partition.Manager.Run).
func (p *Partitions) Run(ctx context.Context) error { return p.Manager.Run(ctx) }

// Switch adapts a softswitch.Switch (agent/softswitch/linuxbridge,
// agent/softswitch/ovs) to SoftSwitch.
type Switch struct {
	softswitch.Switch
}

var _ SoftSwitch = Switch{}

// EnsurePort makes the port match p.
func (s Switch) EnsurePort(ctx context.Context, p softswitch.Port) error { return s.Ensure(ctx, p) }

// RemovePort takes the port's configuration off the switch.
func (s Switch) RemovePort(ctx context.Context, name string) error { return s.Remove(ctx, name) }

var _ PortLister = Switch{}

// Ports lists the ports marked as tether's when the switch can
// (linuxbridge and ovs can), else none.
func (s Switch) Ports(ctx context.Context) ([]string, error) {
	if pl, ok := s.Switch.(PortLister); ok {
		return pl.Ports(ctx)
	}
	return nil, nil
}

// StatusReporter is implemented by VNICs that report the state of each
// vNIC they hold (Reconciler.Status lists them for the local API).
type StatusReporter interface {
	VNICStatuses() []api.VNICStatus
}

var (
	_ StatusReporter = (*SRIOV)(nil)
	_ StatusReporter = (*Partitions)(nil)
)

// VNICStatuses reports each VF the manager configured or failed to.
func (s *SRIOV) VNICStatuses() []api.VNICStatus {
	var out []api.VNICStatus
	for _, st := range s.Manager.Statuses() {
		out = append(out, api.VNICStatus{
			VIF: st.VNIC, Kind: config.VNICVF, Device: fmt.Sprintf("%s/vf%d", st.VF.PF, st.VF.Index),
			State: st.State, Drift: st.Drift, LastError: st.LastError,
		})
	}
	return out
}

// VNICStatuses reports each desired partition.
func (p *Partitions) VNICStatuses() []api.VNICStatus {
	var out []api.VNICStatus
	for _, st := range p.Manager.Statuses() {
		dev := st.Devices.STag
		if st.Devices.CVLAN != "" {
			dev += "+" + st.Devices.CVLAN
		}
		out = append(out, api.VNICStatus{
			VIF: st.Spec.ID, Kind: config.VNICPartition, Device: dev,
			State: st.State, Drift: st.Drift, LastError: st.LastError,
		})
	}
	return out
}
