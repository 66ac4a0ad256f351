package partition

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// lookupFunc finds a link by name; a missing link is a
// netlink.LinkNotFoundError.
type lookupFunc func(name string) (netlink.Link, error)

// devWant is the desired state of one VLAN device.
type devWant struct {
	id     string
	name   string
	proto  netlink.VlanProtocol
	vid    int
	parent int
	mtu    int
	// master: -1 leaves it alone, 0 means none, else the master's ifindex.
	master int
}

// convergeLocked reads s's devices back through lookup and returns how
// they differ from the desired state; with repair it makes them agree
// (creating, fixing in place, or deleting and re-creating what cannot be
// changed in place). It never touches a device tether did not mark.
func (m *Manager) convergeLocked(ctx context.Context, s Spec, repair bool, lookup lookupFunc) (Devices, []string, error) {
	if err := ctx.Err(); err != nil {
		return Devices{}, nil, err
	}
	up, err := lookup(s.Uplink)
	if err != nil {
		return Devices{}, nil, fmt.Errorf("uplink %s: %w", s.Uplink, err)
	}
	sname, cname := Names(up.Attrs().Index, s.STag)
	devs := Devices{STag: sname}
	if s.CVID != 0 {
		devs.CVLAN = cname
	}
	mtu, err := desiredMTU(s, up.Attrs().MTU)
	if err != nil {
		return devs, nil, fmt.Errorf("uplink %s: %w", s.Uplink, err)
	}
	topMaster := -1
	if s.Master != "" {
		ml, err := lookup(s.Master)
		if err != nil {
			return devs, nil, fmt.Errorf("master %s: %w", s.Master, err)
		}
		topMaster = ml.Attrs().Index
	}
	sWant := devWant{id: s.ID, name: sname, proto: netlink.VLAN_PROTOCOL_8021AD, vid: int(s.STag),
		parent: up.Attrs().Index, mtu: mtu, master: topMaster}
	if s.CVID != 0 {
		sWant.master = 0 // a lower device is never a bridge port
	}
	var drift []string
	sl, d, err := m.convergeDev(ctx, sWant, repair, lookup)
	drift = append(drift, d...)
	if err != nil {
		return devs, drift, err
	}
	cl, err := lookupOpt(lookup, cname)
	if err != nil {
		return devs, drift, err
	}
	if s.CVID == 0 {
		// A C-VLAN device of ours that the spec no longer asks for.
		if cl != nil && cl.Attrs().Alias == AliasPrefix+s.ID && isVLAN(cl) {
			drift = append(drift, fmt.Sprintf("%s: not wanted (no C-VID)", cname))
			if repair {
				if err := m.delLink(cl); err != nil {
					return devs, drift, err
				}
			}
		}
		return devs, drift, nil
	}
	if sl == nil { // report-only and the S-Tag device is missing
		if cl == nil {
			drift = append(drift, fmt.Sprintf("%s: missing", cname))
		}
		return devs, drift, nil
	}
	cWant := devWant{id: s.ID, name: cname, proto: netlink.VLAN_PROTOCOL_8021Q, vid: int(s.CVID),
		parent: sl.Attrs().Index, mtu: mtu, master: topMaster}
	_, d, err = m.convergeDev(ctx, cWant, repair, lookup)
	drift = append(drift, d...)
	return devs, drift, err
}

// convergeDev converges one VLAN device and returns it as it now is (nil
// when it is missing and not repaired).
func (m *Manager) convergeDev(ctx context.Context, w devWant, repair bool, lookup lookupFunc) (netlink.Link, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	l, err := lookupOpt(lookup, w.name)
	if err != nil {
		return nil, nil, err
	}
	mark := AliasPrefix + w.id
	var drift []string
	if l != nil {
		alias := l.Attrs().Alias
		bad := vlanMismatch(l, w)
		switch {
		case alias == mark:
		case alias == "" && len(bad) == 0:
			// Made by us, crashed before it was marked.
			drift = append(drift, w.name+": not marked")
			if repair {
				if err := m.write(func() error { return m.h.LinkSetAlias(l, mark) }); err != nil {
					return l, drift, fmt.Errorf("mark %s: %w", w.name, err)
				}
			}
		case strings.HasPrefix(alias, AliasPrefix) && isVLAN(l):
			// Ours, left from another vNIC's binding: replace it.
			bad = append(bad, fmt.Sprintf("marked for %s", strings.TrimPrefix(alias, AliasPrefix)))
		default:
			return nil, nil, &ForeignDeviceError{Name: w.name, Alias: alias, Kind: l.Type(), Want: w.id}
		}
		if len(bad) > 0 {
			for _, b := range bad {
				drift = append(drift, w.name+": "+b)
			}
			if !repair {
				return l, drift, nil
			}
			if err := m.delLink(l); err != nil {
				return nil, drift, err
			}
			l = nil
		}
	} else {
		drift = append(drift, w.name+": missing")
		if !repair {
			return nil, drift, nil
		}
	}
	if l == nil {
		nl, err := m.createVLAN(w, lookup)
		return nl, drift, err
	}
	a := l.Attrs()
	if a.MTU != w.mtu {
		drift = append(drift, fmt.Sprintf("%s: MTU %d, want %d", w.name, a.MTU, w.mtu))
		if repair {
			if err := m.write(func() error { return m.h.LinkSetMTU(l, w.mtu) }); err != nil {
				return l, drift, fmt.Errorf("set MTU of %s to %d: %w", w.name, w.mtu, err)
			}
		}
	}
	if w.master >= 0 && a.MasterIndex != w.master {
		drift = append(drift, fmt.Sprintf("%s: master ifindex %d, want %d", w.name, a.MasterIndex, w.master))
		if repair {
			if err := m.setMaster(l, w.master); err != nil {
				return l, drift, err
			}
		}
	}
	if a.Flags&net.FlagUp == 0 {
		drift = append(drift, w.name+": down")
		if repair {
			if err := m.write(func() error { return m.h.LinkSetUp(l) }); err != nil {
				return l, drift, fmt.Errorf("set %s up: %w", w.name, err)
			}
		}
	}
	return l, drift, nil
}

// vlanMismatch lists what of l cannot be changed in place and differs from
// w: kind, protocol, VLAN ID, parent.
func vlanMismatch(l netlink.Link, w devWant) []string {
	v, ok := l.(*netlink.Vlan)
	if !ok {
		return []string{fmt.Sprintf("kind %s, want vlan", l.Type())}
	}
	var bad []string
	if v.VlanProtocol != w.proto {
		bad = append(bad, fmt.Sprintf("protocol %s, want %s", v.VlanProtocol, w.proto))
	}
	if v.VlanId != w.vid {
		bad = append(bad, fmt.Sprintf("VLAN ID %d, want %d", v.VlanId, w.vid))
	}
	if v.Attrs().ParentIndex != w.parent {
		bad = append(bad, fmt.Sprintf("parent ifindex %d, want %d", v.Attrs().ParentIndex, w.parent))
	}
	return bad
}

// createVLAN makes the device up with its MTU, then marks it (the kernel
// ignores an alias in the create request) and enslaves it when asked. The
// device has loose binding (VLAN_FLAG_LOOSE_BINDING): its administrative
// state does not follow its parent's, so an uplink (or S-Tag device) going
// down and up leaves the vNIC's devices up, with their operational state
// following the carrier; without it every uplink flap would be drift.
func (m *Manager) createVLAN(w devWant, lookup lookupFunc) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = w.name
	attrs.ParentIndex = w.parent
	attrs.MTU = w.mtu
	attrs.Flags = net.FlagUp
	loose := true
	v := &netlink.Vlan{LinkAttrs: attrs, VlanId: w.vid, VlanProtocol: w.proto, LooseBinding: &loose}
	if err := m.write(func() error { return m.h.LinkAdd(v) }); err != nil {
		return nil, fmt.Errorf("create %s (%s VLAN %d on ifindex %d): %w", w.name, w.proto, w.vid, w.parent, err)
	}
	l, err := lookup(w.name)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", w.name, err)
	}
	if l.Attrs().Alias != AliasPrefix+w.id {
		if err := m.write(func() error { return m.h.LinkSetAlias(l, AliasPrefix+w.id) }); err != nil {
			return l, fmt.Errorf("mark %s: %w", w.name, err)
		}
	}
	if w.master > 0 {
		if err := m.setMaster(l, w.master); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (m *Manager) setMaster(l netlink.Link, master int) error {
	if master == 0 {
		if err := m.write(func() error { return m.h.LinkSetNoMaster(l) }); err != nil {
			return fmt.Errorf("release %s from its master: %w", l.Attrs().Name, err)
		}
		return nil
	}
	if err := m.write(func() error { return m.h.LinkSetMasterByIndex(l, master) }); err != nil {
		return fmt.Errorf("enslave %s to ifindex %d: %w", l.Attrs().Name, master, err)
	}
	return nil
}

// write runs one state-changing netlink request and counts it.
func (m *Manager) write(f func() error) error {
	m.writes.Add(1)
	return f()
}

// delLink deletes l; a link already gone (deleted with its parent, or by
// someone else) is not an error.
func (m *Manager) delLink(l netlink.Link) error {
	err := m.write(func() error { return m.h.LinkDel(l) })
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// deleteMarkedLocked deletes id's devices for S-Tag stag on uplink, if
// they are marked as id's.
func (m *Manager) deleteMarkedLocked(ctx context.Context, id, uplink string, stag uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	up, err := lookupOpt(m.h.LinkByName, uplink)
	if err != nil || up == nil {
		return err // uplink gone: its VLAN devices went with it
	}
	sname, cname := Names(up.Attrs().Index, stag)
	for _, name := range []string{cname, sname} {
		l, err := lookupOpt(m.h.LinkByName, name)
		if err != nil {
			return err
		}
		if l != nil && l.Attrs().Alias == AliasPrefix+id && isVLAN(l) {
			if err := m.delLink(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepLocked deletes the VLAN devices marked as tether's that no desired
// vNIC has under that name.
func (m *Manager) sweepLocked(ctx context.Context) error {
	links, err := m.linkList(ctx)
	if err != nil {
		return fmt.Errorf("partition: sweep: %w", err)
	}
	wanted := map[string]string{} // device name -> vNIC ID
	for _, s := range m.desired.byID {
		for _, l := range links {
			if l.Attrs().Name == s.Uplink {
				sname, cname := Names(l.Attrs().Index, s.STag)
				wanted[sname] = s.ID
				if s.CVID != 0 {
					wanted[cname] = s.ID
				}
			}
		}
	}
	for _, l := range orderUppersFirst(links) {
		a := l.Attrs()
		if !isVLAN(l) || !strings.HasPrefix(a.Alias, AliasPrefix) {
			continue
		}
		if wanted[a.Name] == strings.TrimPrefix(a.Alias, AliasPrefix) {
			continue
		}
		m.log.Info("sweep: deleting a device no vNIC wants", "device", a.Name, "alias", a.Alias)
		if err := m.delLink(l); err != nil {
			return fmt.Errorf("partition: sweep: %w", err)
		}
		m.swept.Add(1)
	}
	return nil
}

// linkList dumps the links, retrying a dump interrupted by concurrent
// changes.
func (m *Manager) linkList(ctx context.Context) ([]netlink.Link, error) {
	for try := 0; ; try++ {
		links, err := m.h.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try >= 5 {
			return nil, fmt.Errorf("list links: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// orderUppersFirst returns links with VLAN devices whose parent is itself
// a VLAN device first, so deleting in this order never deletes a device
// twice.
func orderUppersFirst(links []netlink.Link) []netlink.Link {
	vlan := map[int]bool{}
	for _, l := range links {
		if isVLAN(l) {
			vlan[l.Attrs().Index] = true
		}
	}
	out := slices.Clone(links)
	slices.SortStableFunc(out, func(a, b netlink.Link) int {
		ua, ub := vlan[a.Attrs().ParentIndex], vlan[b.Attrs().ParentIndex]
		switch {
		case ua && !ub:
			return -1
		case ub && !ua:
			return 1
		}
		return 0
	})
	return out
}

func isVLAN(l netlink.Link) bool {
	_, ok := l.(*netlink.Vlan)
	return ok
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV)
}

// lookupOpt is lookup with a missing link as nil, nil.
func lookupOpt(lookup lookupFunc, name string) (netlink.Link, error) {
	l, err := lookup(name)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return l, nil
}
