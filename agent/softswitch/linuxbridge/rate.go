package linuxbridge

import (
	"errors"
	"fmt"
	"math"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Rate limiting with tc: what a VM sends arrives on the host side of its
// tap (or vNIC representor) as received traffic, so the limit sits on the
// port's ingress: an ingress qdisc, one matchall filter at ratePriority with
// one police action whose exceed action drops. What the VM receives is not
// delayed.
const (
	ratePriority = 0x7e01 // filter preference, ours alone on the port
	// maxRateKbps is the most the police action's 32-bit byte rate holds.
	maxRateKbps = math.MaxUint32 / 125
	// policeMTU lets GSO frames through the police action's size check.
	policeMTU = 65535
)

var ingressParent = netlink.MakeHandle(0xffff, 0)

// rateBurst is the police bucket for a rate: 50 ms of traffic, at least 16
// KiB (a few full frames) so slow rates still pass whole frames.
func rateBurst(bytesPerSec uint32) uint32 {
	return max(bytesPerSec/20, 16*1024)
}

// readRate returns the port's rate in kbit/s as the kernel holds it (0:
// no filter of ours), and problems with what is there.
func readRate(h *netlink.Handle, link netlink.Link) (uint32, []string, error) {
	filters, err := h.FilterList(link, ingressParent)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return 0, nil, nil // no ingress qdisc
		}
		return 0, nil, fmt.Errorf("list ingress filters of %s: %w", link.Attrs().Name, err)
	}
	var rate uint32
	var probs []string
	found := 0
	for _, f := range filters {
		if f.Attrs().Priority != ratePriority {
			continue
		}
		found++
		ma, ok := f.(*netlink.MatchAll)
		if !ok {
			probs = append(probs, fmt.Sprintf("filter at preference %#x is %s, want matchall", ratePriority, f.Type()))
			continue
		}
		var pol *netlink.PoliceAction
		for _, a := range ma.Actions {
			if p, ok := a.(*netlink.PoliceAction); ok {
				pol = p
			}
		}
		if pol == nil || len(ma.Actions) != 1 {
			probs = append(probs, fmt.Sprintf("matchall filter has %d actions, want one police action", len(ma.Actions)))
			continue
		}
		if pol.ExceedAction != netlink.TC_POLICE_SHOT {
			probs = append(probs, fmt.Sprintf("police exceed action is %s, want drop", pol.ExceedAction))
		}
		rate = uint32(uint64(pol.Rate) * 8 / 1000)
	}
	if found > 1 {
		probs = append(probs, fmt.Sprintf("%d filters at preference %#x, want one", found, ratePriority))
	}
	return rate, probs, nil
}

// ensureRate makes the port's police rate kbps (0: no limit), and returns
// what it repaired.
func ensureRate(h *netlink.Handle, link netlink.Link, kbps uint32) ([]string, error) {
	if kbps > maxRateKbps {
		return nil, fmt.Errorf("rate %d kbit/s is above the police action's %d kbit/s", kbps, maxRateKbps)
	}
	got, probs, err := readRate(h, link)
	if err != nil {
		return nil, err
	}
	if got == kbps && len(probs) == 0 {
		return nil, nil
	}
	fixed := append([]string{fmt.Sprintf("rate %d kbit/s, want %d", got, kbps)}, probs...)
	name := link.Attrs().Name
	if err := delRateFilters(h, link); err != nil {
		return nil, err
	}
	if kbps == 0 {
		return fixed, nil
	}
	if err := ensureIngress(h, link); err != nil {
		return nil, err
	}
	pol := netlink.NewPoliceAction()
	pol.Rate = kbps * 125
	pol.Burst = rateBurst(pol.Rate)
	pol.Mtu = policeMTU
	pol.ExceedAction = netlink.TC_POLICE_SHOT
	pol.NotExceedAction = netlink.TC_POLICE_OK
	f := &netlink.MatchAll{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: link.Attrs().Index, Parent: ingressParent, Priority: ratePriority, Protocol: unix.ETH_P_ALL},
		Actions:     []netlink.Action{pol},
	}
	if err := h.FilterAdd(f); err != nil {
		return nil, fmt.Errorf("add police filter (%d kbit/s) to %s: %w", kbps, name, err)
	}
	return fixed, nil
}

// delRateFilters deletes the filters at ratePriority.
func delRateFilters(h *netlink.Handle, link netlink.Link) error {
	filters, err := h.FilterList(link, ingressParent)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("list ingress filters of %s: %w", link.Attrs().Name, err)
	}
	for _, f := range filters {
		if f.Attrs().Priority != ratePriority {
			continue
		}
		if err := h.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete police filter of %s: %w", link.Attrs().Name, err)
		}
	}
	return nil
}

// ensureIngress adds the port's ingress qdisc unless it has one.
func ensureIngress(h *netlink.Handle, link netlink.Link) error {
	qs, err := h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("list qdiscs of %s: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Type() == "ingress" {
			return nil
		}
	}
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: ingressParent, Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add ingress qdisc to %s: %w", link.Attrs().Name, err)
	}
	return nil
}
