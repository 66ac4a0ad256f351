package verify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// releaseTimeout bounds a release started by a bridge event.
const releaseTimeout = 10 * time.Second

// ParseChannel splits a VDP bridge's channel name, "PORT" or
// "PORT/svid=N" (package identity's naming), into the switch port and the
// S-Tag (0 without one).
func ParseChannel(channel string) (port string, stag uint16, err error) {
	port, rest, ok := strings.Cut(channel, "/")
	if port == "" {
		return "", 0, fmt.Errorf("verify: channel %q names no port", channel)
	}
	if !ok {
		return port, 0, nil
	}
	num, ok := strings.CutPrefix(rest, "svid=")
	if !ok {
		return "", 0, fmt.Errorf("verify: channel %q: want PORT or PORT/svid=N", channel)
	}
	n, err := strconv.ParseUint(num, 10, 12)
	if err != nil || n == 0 || n > 4094 {
		return "", 0, fmt.Errorf("verify: channel %q: S-VID %q is not 1-4094", channel, num)
	}
	return port, uint16(n), nil
}

// DeciderConfig configures Verifier.Decider.
type DeciderConfig struct {
	// Port maps the bridge's channel name to the switch port and S-Tag;
	// nil means ParseChannel.
	Port func(channel string) (port string, stag uint16, err error)
	// Next decides what an accepted claim gets (profile, VID for a null
	// VID); nil means vdp.AcceptAll{} (the request's filters, no
	// profile). When Next refuses, the association is released.
	Next vdp.Decider
	// OnReleased, if set, hears every location an ASSOCIATE took over
	// under a confirmed migration: the old port must stop passing the
	// MAC. It is called on the deciding goroutine.
	OnReleased func(Released)
}

// Decider returns the verifier as the Decider of VDP bridges (package
// l2/vdp) whose Security.Verify is vdp.IdentityVerifier(v.Signatures(),
// channel): the bridge checks each frame's signature and counter once,
// and the Decider runs the remaining checks for each VSI (CheckVerified).
// A refusal keeps a VSI's previous association (KEEP) when it is not
// hard; a hard one ends it. Pair it with BridgeEvents so that what the
// bridge releases on its own is released here too.
func (v *Verifier) Decider(cfg DeciderConfig) vdp.Decider {
	portOf := cfg.Port
	if portOf == nil {
		portOf = ParseChannel
	}
	next := cfg.Next
	if next == nil {
		next = vdp.AcceptAll{}
	}
	return vdp.DeciderFunc(func(ctx context.Context, req vdp.DecideRequest) vdp.Decision {
		port, stag, err := portOf(req.Channel)
		if err != nil {
			v.log.Error("VDP channel does not name a port", "channel", req.Channel, "err", err)
			return vdp.Decision{Code: wire.VDPOtherFailure, Hard: true}
		}
		c := Claim{Port: port, Channel: req.Channel, VSI: req.VSI, STag: stag}
		d, _ := v.CheckVerified(ctx, c, req.Peer)
		if !d.Accepted {
			code, hard := d.Reason.VDPCode()
			return vdp.Decision{Code: code, Hard: hard, Keep: !hard && req.Current != vdp.StateNone}
		}
		if cfg.OnReleased != nil {
			for _, r := range d.Released {
				cfg.OnReleased(r)
			}
		}
		nd := next.Decide(ctx, req)
		if nd.Code != wire.VDPSuccess && req.VSI.Mode == wire.VSIAssociate {
			if err := v.Release(context.WithoutCancel(ctx), port, d.VM); err != nil {
				v.log.Error("release after the policy refused failed", "port", port, "vm", d.VM.String(), "err", err)
			}
			nd.Keep = false
		}
		return nd
	})
}

// BridgeEvents returns an OnEvent hook for the VDP bridge of channel that
// releases an association when the bridge ends it on its own: the
// station's DE-ASSOCIATE, a keep-alive timeout, or a refusal that drops
// the VSI. It never blocks: the release runs on its own goroutine and only
// undoes the association the event was about, not a newer one made in
// between.
func (v *Verifier) BridgeEvents(channel string, portOf func(channel string) (string, uint16, error)) func(vdp.Event) {
	if portOf == nil {
		portOf = ParseChannel
	}
	return func(e vdp.Event) {
		switch e.Kind {
		case vdp.EventDeassociated, vdp.EventKeepaliveExpired:
		case vdp.EventRejected:
			if e.State != vdp.StateNone {
				return
			}
		default:
			return
		}
		if e.Key.Format != wire.VSIIDUUID {
			return
		}
		port, _, err := portOf(channel)
		if err != nil {
			return
		}
		vm := UUID(e.Key.ID)
		gen := v.assocGen(port, vm)
		if gen == 0 {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			if err := v.releaseGen(ctx, port, vm, gen); err != nil {
				v.log.Error("release after a bridge event failed", "port", port, "vm", vm.String(), "event", e.Kind.String(), "err", err)
			}
		}()
	}
}
