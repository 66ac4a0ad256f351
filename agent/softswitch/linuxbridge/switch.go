package linuxbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/softswitch"
)

// DefaultBridge is the bridge's name when Options.Bridge is empty.
const DefaultBridge = "tetherbr0"

// netlinkTimeout bounds one rtnetlink call of the netlink handle, whose
// methods take no context.
const netlinkTimeout = 10 * time.Second

// Options configure a Switch.
type Options struct {
	// Bridge is the bridge's name; DefaultBridge when empty. It is created
	// when missing.
	Bridge string
	// Uplink is the port toward the edge switch (a NIC, bond, or the S-Tag
	// side of a partition), enslaved to the bridge and given the union of
	// the VM ports' VLANs tagged. Empty: no uplink (VM-to-VM only).
	Uplink string
	// STag makes the bridge an 802.1ad bridge (vlan_protocol 802.1ad): the
	// ports' S-Tags cross it and leave the uplink as 0x88a8 tags. Every
	// port must then have an S-Tag, and none otherwise.
	STag bool
	// UntaggedVID is the bridge VLAN ports with VID 0 are PVID members of,
	// carried untagged on the uplink; 1 when 0. No port may use it as its
	// VID, S-Tag or trunk.
	UntaggedVID uint16
	// Table is the nftables bridge-family table of the allow-lists;
	// "tether-sw-" + Bridge when empty.
	Table string
	// NetNS is a file descriptor of the network namespace to work in; 0
	// means the current one. The caller keeps it open.
	NetNS int
	// Logger receives what the switch repairs; slog.Default() when nil.
	Logger *slog.Logger
}

// Switch is the Linux bridge soft switch: it keeps VM ports consistent with
// their softswitch.Port. Its methods are safe for concurrent use; they run
// one at a time.
type Switch struct {
	opts  Options
	log   *slog.Logger
	allow *allowList

	mu sync.Mutex
	h  *netlink.Handle
}

var _ softswitch.Switch = (*Switch)(nil)

// New checks opts, then creates or repairs the bridge (vlan_filtering,
// vlan_protocol, uplink) and the allow-list table.
func New(ctx context.Context, opts Options) (*Switch, error) {
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if len(opts.Bridge) > softswitch.MaxIfname {
		return nil, fmt.Errorf("linuxbridge: bridge name %q longer than %d bytes", opts.Bridge, softswitch.MaxIfname)
	}
	if len(opts.Uplink) > softswitch.MaxIfname {
		return nil, fmt.Errorf("linuxbridge: uplink name %q longer than %d bytes", opts.Uplink, softswitch.MaxIfname)
	}
	if opts.UntaggedVID == 0 {
		opts.UntaggedVID = 1
	}
	if opts.UntaggedVID > softswitch.MaxVID {
		return nil, fmt.Errorf("linuxbridge: untagged VID %d out of range 1-%d", opts.UntaggedVID, softswitch.MaxVID)
	}
	if opts.Table == "" {
		opts.Table = "tether-sw-" + opts.Bridge
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var h *netlink.Handle
	var err error
	if opts.NetNS != 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(opts.NetNS), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("linuxbridge: open netlink handle: %w", err)
	}
	// The handle's calls take no context: bound each one instead.
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("linuxbridge: netlink socket timeout: %w", err)
	}
	s := &Switch{
		opts:  opts,
		log:   opts.Logger.With("component", "agent/softswitch/linuxbridge", "bridge", opts.Bridge),
		allow: newAllowList(opts.NetNS, opts.Table),
		h:     h,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ensureBridge(ctx); err != nil {
		h.Close()
		return nil, err
	}
	if fixed, err := s.allow.ensureBase(ctx); err != nil {
		h.Close()
		return nil, fmt.Errorf("linuxbridge: %w", err)
	} else if len(fixed) > 0 {
		s.log.Info("allow-list table repaired", "table", opts.Table, "fixed", fixed)
	}
	return s, nil
}

// Close releases the netlink handle; the kernel state stays.
func (s *Switch) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		s.h.Close()
		s.h = nil
	}
	return nil
}

func (s *Switch) tpid() uint16 {
	if s.opts.STag {
		return tpidSTag
	}
	return tpidCTag
}

// ensureBridge creates or repairs the bridge and the uplink and returns
// the bridge's index. s.mu must be held.
func (s *Switch) ensureBridge(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("linuxbridge: %w", err)
	}
	name := s.opts.Bridge
	l, err := s.h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		on, pvid := true, uint16(0)
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, VlanFiltering: &on, VlanDefaultPVID: &pvid}
		if err := s.h.LinkAdd(br); err != nil {
			return 0, fmt.Errorf("linuxbridge: create bridge %s: %w", name, err)
		}
		s.log.Info("bridge created", "vlan_protocol", fmt.Sprintf("%#04x", s.tpid()))
		l, err = s.h.LinkByName(name)
	}
	if err != nil {
		return 0, fmt.Errorf("linuxbridge: find bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return 0, fmt.Errorf("linuxbridge: %s is a %s device, not a bridge", name, l.Type())
	}
	idx := l.Attrs().Index
	bi, err := readBridgeInfo(ctx, s.opts.NetNS, idx)
	if err != nil {
		return 0, fmt.Errorf("linuxbridge: %w", err)
	}
	if !bi.vlanFiltering {
		if err := s.h.BridgeSetVlanFiltering(l, true); err != nil {
			return 0, fmt.Errorf("linuxbridge: set vlan_filtering on %s: %w", name, err)
		}
		s.log.Info("bridge repaired", "vlan_filtering", true)
	}
	if bi.vlanProtocol != s.tpid() {
		if err := setBridgeVLANProtocol(ctx, s.opts.NetNS, idx, s.tpid()); err != nil {
			return 0, fmt.Errorf("linuxbridge: %w", err)
		}
		s.log.Info("bridge repaired", "vlan_protocol", fmt.Sprintf("%#04x", s.tpid()), "was", fmt.Sprintf("%#04x", bi.vlanProtocol))
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := s.h.LinkSetUp(l); err != nil {
			return 0, fmt.Errorf("linuxbridge: set %s up: %w", name, err)
		}
	}
	if s.opts.Uplink != "" {
		up, err := s.h.LinkByName(s.opts.Uplink)
		if err != nil {
			return 0, fmt.Errorf("linuxbridge: find uplink %s: %w", s.opts.Uplink, err)
		}
		if up.Attrs().MasterIndex != idx {
			if err := s.h.LinkSetMasterByIndex(up, idx); err != nil {
				return 0, fmt.Errorf("linuxbridge: enslave uplink %s to %s: %w", s.opts.Uplink, name, err)
			}
		}
		if up.Attrs().Flags&net.FlagUp == 0 {
			if err := s.h.LinkSetUp(up); err != nil {
				return 0, fmt.Errorf("linuxbridge: set uplink %s up: %w", s.opts.Uplink, err)
			}
		}
	}
	return idx, nil
}

// bridgeProblems reports what is wrong with the bridge, without changing
// anything. s.mu must be held.
func (s *Switch) bridgeProblems(ctx context.Context) (int, []string, error) {
	l, err := s.h.LinkByName(s.opts.Bridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return 0, []string{"bridge " + s.opts.Bridge + " missing"}, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("linuxbridge: find bridge %s: %w", s.opts.Bridge, err)
	}
	if l.Type() != "bridge" {
		return 0, []string{fmt.Sprintf("%s is a %s device", s.opts.Bridge, l.Type())}, nil
	}
	bi, err := readBridgeInfo(ctx, s.opts.NetNS, l.Attrs().Index)
	if err != nil {
		return 0, nil, fmt.Errorf("linuxbridge: %w", err)
	}
	var probs []string
	if !bi.vlanFiltering {
		probs = append(probs, "vlan_filtering off")
	}
	if bi.vlanProtocol != s.tpid() {
		probs = append(probs, fmt.Sprintf("vlan_protocol %#04x, want %#04x", bi.vlanProtocol, s.tpid()))
	}
	return l.Attrs().Index, probs, nil
}

// checkPort validates p against the switch's options.
func (s *Switch) checkPort(p softswitch.Port) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	switch {
	case s.opts.STag && p.STag == 0:
		return fmt.Errorf("linuxbridge: %w: %s has no S-Tag but bridge %s is an 802.1ad bridge", softswitch.ErrInvalidPort, p.Name, s.opts.Bridge)
	case !s.opts.STag && p.STag != 0:
		return fmt.Errorf("linuxbridge: %w: %s has S-Tag %d but bridge %s is an 802.1Q bridge", softswitch.ErrInvalidPort, p.Name, p.STag, s.opts.Bridge)
	case p.Name == s.opts.Bridge || p.Name == s.opts.Uplink:
		return fmt.Errorf("linuxbridge: %w: %s is the bridge or its uplink", softswitch.ErrInvalidPort, p.Name)
	case p.BridgeVID() == s.opts.UntaggedVID:
		return fmt.Errorf("linuxbridge: %w: %s: VLAN %d is the bridge's untagged VLAN", softswitch.ErrInvalidPort, p.Name, s.opts.UntaggedVID)
	case slices.Contains(p.Trunks, s.opts.UntaggedVID):
		return fmt.Errorf("linuxbridge: %w: %s: trunk %d is the bridge's untagged VLAN", softswitch.ErrInvalidPort, p.Name, s.opts.UntaggedVID)
	}
	return nil
}

// wantVLANs is the port's bridge VLANs: its VLAN as PVID, egress untagged,
// and its trunks tagged.
func (s *Switch) wantVLANs(p softswitch.Port) vlanSet {
	pvid := p.BridgeVID()
	if pvid == 0 {
		pvid = s.opts.UntaggedVID
	}
	want := vlanSet{pvid: {pvid: true, untagged: true}}
	for _, t := range p.Trunks {
		want[t] = vlanEntry{}
	}
	return want
}

// portVLANs decodes a port's bridge VLANs into the Port fields they carry.
func (s *Switch) portVLANs(obs *softswitch.Port, have vlanSet) {
	obs.VID, obs.STag, obs.Trunks = 0, 0, nil
	for vid, e := range have {
		if e.pvid {
			v := vid
			if v == s.opts.UntaggedVID {
				v = 0
			}
			if s.opts.STag {
				obs.STag = v
			} else {
				obs.VID = v
			}
			continue
		}
		obs.Trunks = append(obs.Trunks, vid)
	}
	obs.Normalize()
}

// observe reads the port back: its Port as the kernel holds it (fields the
// soft switch does not enforce copied from desired) and the differences
// Port fields cannot show. s.mu must be held.
func (s *Switch) observe(ctx context.Context, desired softswitch.Port) (softswitch.Port, []softswitch.Difference, error) {
	name := desired.Name
	diff := func(field, want, got string) softswitch.Difference {
		return softswitch.Difference{Port: name, Field: field, Want: want, Got: got}
	}
	obs := softswitch.Port{Name: name, Mode: desired.Mode, Priority: desired.Priority}
	var extra []softswitch.Difference
	brIdx, probs, err := s.bridgeProblems(ctx)
	if err != nil {
		return obs, nil, err
	}
	if len(probs) > 0 {
		extra = append(extra, diff("bridge", "vlan_filtering on, vlan_protocol "+fmt.Sprintf("%#04x", s.tpid()), strings.Join(probs, "; ")))
	}
	l, err := s.h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return obs, append(extra, diff("present", "interface "+name, "no such interface")), nil
	}
	if err != nil {
		return obs, nil, fmt.Errorf("linuxbridge: find %s: %w", name, err)
	}
	if brIdx == 0 || l.Attrs().MasterIndex != brIdx {
		extra = append(extra, diff("master", s.opts.Bridge, fmt.Sprintf("ifindex %d", l.Attrs().MasterIndex)))
	}
	all, err := s.h.BridgeVlanList()
	if err != nil {
		return obs, nil, fmt.Errorf("linuxbridge: bridge vlan show: %w", err)
	}
	have := observedVLANs(all[int32(l.Attrs().Index)])
	s.portVLANs(&obs, have)
	if s.opts.STag {
		obs.VID = desired.VID // the C-VLAN rides inside the S-Tag untouched
	}
	if want := s.wantVLANs(desired); want.String() != have.String() {
		extra = append(extra, diff("bridge vlans", want.String(), have.String()))
	}
	if s.opts.Uplink != "" {
		if up, err := s.h.LinkByName(s.opts.Uplink); err == nil {
			upHave := observedVLANs(all[int32(up.Attrs().Index)])
			var missing []string
			for vid := range s.wantVLANs(desired) {
				if vid == s.opts.UntaggedVID {
					continue
				}
				if e, ok := upHave[vid]; !ok || e.untagged || e.pvid {
					missing = append(missing, fmt.Sprint(vid))
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				extra = append(extra, diff("uplink", "tagged "+strings.Join(missing, ","), upHave.String()))
			}
		} else {
			extra = append(extra, diff("uplink", s.opts.Uplink, err.Error()))
		}
	}
	st, err := s.allow.check(ctx, name, desired.MAC)
	if err != nil {
		return obs, nil, fmt.Errorf("linuxbridge: %w", err)
	}
	if len(st.macs) == 1 {
		obs.MAC = st.macs[0]
	}
	if len(st.problems) > 0 {
		extra = append(extra, diff("allow-list", "source MAC "+desired.MAC.String()+" alone", strings.Join(st.problems, "; ")))
	}
	rate, rprobs, err := readRate(s.h, l)
	if err != nil {
		return obs, nil, fmt.Errorf("linuxbridge: %w", err)
	}
	obs.RateKbps = rate
	if len(rprobs) > 0 {
		extra = append(extra, diff("rate", "police drop", strings.Join(rprobs, "; ")))
	}
	return obs, extra, nil
}

// Check reads the port back from the kernel (bridge, bridge VLANs, uplink
// VLANs, allow-list set and chain, tc police) and returns how it differs
// from p; nil means the soft switch's port equals the profile.
func (s *Switch) Check(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error) {
	if err := s.checkPort(p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil, errors.New("linuxbridge: switch closed")
	}
	return s.check(ctx, p)
}

func (s *Switch) check(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error) {
	obs, extra, err := s.observe(ctx, p)
	if err != nil {
		return nil, err
	}
	return append(softswitch.Compare(p, obs), extra...), nil
}

// Ensure makes the port match p (see EnsurePort).
func (s *Switch) Ensure(ctx context.Context, p softswitch.Port) error {
	_, err := s.EnsurePort(ctx, p)
	return err
}

// EnsurePort makes the port match p and returns the differences it
// repaired; none when the port was already right, in which case nothing is
// written. The interface must exist. Order: the port joins the bridge (with
// no VLAN it forwards nothing), then the allow-list and the rate, then the
// VLANs, so no frame is forwarded before the allow-list is in place.
func (s *Switch) EnsurePort(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error) {
	if err := s.checkPort(p); err != nil {
		return nil, err
	}
	p.Normalize()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil, errors.New("linuxbridge: switch closed")
	}
	diffs, err := s.check(ctx, p)
	if err != nil || len(diffs) == 0 {
		return nil, err
	}
	if err := s.repair(ctx, p); err != nil {
		return diffs, err
	}
	s.log.Info("port repaired", "port", p.Name, "differences", diffStrings(diffs))
	return diffs, nil
}

func diffStrings(d []softswitch.Difference) []string {
	out := make([]string, len(d))
	for i, x := range d {
		out[i] = x.String()
	}
	return out
}

// repair writes the whole port. s.mu must be held.
func (s *Switch) repair(ctx context.Context, p softswitch.Port) error {
	brIdx, err := s.ensureBridge(ctx)
	if err != nil {
		return err
	}
	if _, err := s.allow.ensureBase(ctx); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	l, err := s.h.LinkByName(p.Name)
	if err != nil {
		return fmt.Errorf("linuxbridge: port %s: %w", p.Name, err)
	}
	if l.Attrs().MasterIndex != brIdx {
		// A port joining a bridge whose vlan_default_pvid is 0 has no
		// VLAN: it forwards nothing until ensureVLANs below.
		if err := s.h.LinkSetMasterByIndex(l, brIdx); err != nil {
			return fmt.Errorf("linuxbridge: enslave %s to %s: %w", p.Name, s.opts.Bridge, err)
		}
	}
	if _, err := s.allow.ensure(ctx, p.Name, p.MAC); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	if _, err := ensureRate(s.h, l, p.RateKbps); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	all, err := s.h.BridgeVlanList()
	if err != nil {
		return fmt.Errorf("linuxbridge: bridge vlan show: %w", err)
	}
	if err := ensureVLANs(s.h, l, observedVLANs(all[int32(l.Attrs().Index)]), s.wantVLANs(p)); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := s.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("linuxbridge: set %s up: %w", p.Name, err)
		}
	}
	return s.syncUplink(brIdx)
}

// syncUplink gives the uplink the union of the VM ports' VLANs: tagged,
// except UntaggedVID which is its PVID, untagged. s.mu must be held.
func (s *Switch) syncUplink(brIdx int) error {
	if s.opts.Uplink == "" {
		return nil
	}
	up, err := s.h.LinkByName(s.opts.Uplink)
	if err != nil {
		return fmt.Errorf("linuxbridge: find uplink %s: %w", s.opts.Uplink, err)
	}
	links, err := s.h.LinkList()
	if err != nil {
		return fmt.Errorf("linuxbridge: list links: %w", err)
	}
	all, err := s.h.BridgeVlanList()
	if err != nil {
		return fmt.Errorf("linuxbridge: bridge vlan show: %w", err)
	}
	want := vlanSet{}
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != brIdx || a.Index == up.Attrs().Index {
			continue
		}
		for vid := range observedVLANs(all[int32(a.Index)]) {
			if vid == s.opts.UntaggedVID {
				want[vid] = vlanEntry{pvid: true, untagged: true}
			} else {
				want[vid] = vlanEntry{}
			}
		}
	}
	if err := ensureVLANs(s.h, up, observedVLANs(all[int32(up.Attrs().Index)]), want); err != nil {
		return fmt.Errorf("linuxbridge: uplink: %w", err)
	}
	return nil
}

// Remove takes the port off the soft switch: its allow-list objects, its
// police filter, its bridge VLANs, its membership of the bridge; then
// prunes the uplink's VLANs no port uses any more. A port that is not
// there, or whose interface is gone, is not an error.
func (s *Switch) Remove(ctx context.Context, name string) error {
	if name == "" || len(name) > softswitch.MaxIfname {
		return fmt.Errorf("linuxbridge: %w: bad port name %q", softswitch.ErrInvalidPort, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return errors.New("linuxbridge: switch closed")
	}
	return s.remove(ctx, name)
}

func (s *Switch) remove(ctx context.Context, name string) error {
	if err := s.allow.remove(ctx, name); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	brIdx, _, err := s.bridgeProblems(ctx)
	if err != nil {
		return err
	}
	l, err := s.h.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return s.syncUplink(brIdx)
	}
	if err != nil {
		return fmt.Errorf("linuxbridge: find %s: %w", name, err)
	}
	if err := delRateFilters(s.h, l); err != nil {
		return fmt.Errorf("linuxbridge: %w", err)
	}
	if brIdx != 0 && l.Attrs().MasterIndex == brIdx {
		all, err := s.h.BridgeVlanList()
		if err != nil {
			return fmt.Errorf("linuxbridge: bridge vlan show: %w", err)
		}
		if err := ensureVLANs(s.h, l, observedVLANs(all[int32(l.Attrs().Index)]), vlanSet{}); err != nil {
			return fmt.Errorf("linuxbridge: %w", err)
		}
		if err := s.h.LinkSetNoMaster(l); err != nil {
			return fmt.Errorf("linuxbridge: release %s from %s: %w", name, s.opts.Bridge, err)
		}
	}
	s.log.Info("port removed", "port", name)
	return s.syncUplink(brIdx)
}

// SyncReport is what Sync did.
type SyncReport struct {
	// Repaired maps each port that differed to its differences.
	Repaired map[string][]softswitch.Difference
	// Removed lists ports an earlier instance left that are not desired.
	Removed []string
}

// Sync is the start-up (and periodic) reconcile: it repairs the bridge and
// every desired port from what the kernel holds, and removes the ports in
// the allow-list table or on the bridge that are not desired (the uplink
// excepted). Errors on one port do not stop the others; they are joined.
func (s *Switch) Sync(ctx context.Context, desired []softswitch.Port) (SyncReport, error) {
	rep := SyncReport{Repaired: map[string][]softswitch.Difference{}}
	var errs []error
	want := map[string]bool{}
	for _, p := range desired {
		want[p.Name] = true
		d, err := s.EnsurePort(ctx, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s: %w", p.Name, err))
		}
		if len(d) > 0 {
			rep.Repaired[p.Name] = d
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return rep, errors.New("linuxbridge: switch closed")
	}
	managed, err := s.allow.managedPorts(ctx)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("linuxbridge: %w", err))...)
	}
	if brIdx, _, err := s.bridgeProblems(ctx); err == nil && brIdx != 0 {
		links, err := s.h.LinkList()
		if err != nil {
			return rep, errors.Join(append(errs, fmt.Errorf("linuxbridge: list links: %w", err))...)
		}
		for _, l := range links {
			if a := l.Attrs(); a.MasterIndex == brIdx && a.Name != s.opts.Uplink {
				managed = append(managed, a.Name)
			}
		}
	}
	slices.Sort(managed)
	for _, name := range slices.Compact(managed) {
		if want[name] {
			continue
		}
		if err := s.remove(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
			continue
		}
		rep.Removed = append(rep.Removed, name)
	}
	return rep, errors.Join(errs...)
}

// Counters returns the port's allow-list counters: frames accepted with the
// VM's MAC, frames dropped with another.
func (s *Switch) Counters(ctx context.Context, name string) (PortCounters, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, err := s.allow.counters(ctx, name)
	if err != nil {
		return pc, fmt.Errorf("linuxbridge: %w", err)
	}
	return pc, nil
}
