package switchd

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
)

// PolicyLookup is what PolicyProfiles asks of tether-policyd's data:
// policy/cache.Cache, the local copy fed by the store's watch.
type PolicyLookup interface {
	Lookup(vm policy.VMRef) (cache.Result, error)
}

// PolicyProfiles is the DC-wide ProfileSource: the VM's port group and
// its profile from tether-policyd's store, as the local watch-fed cache
// holds them (a lookup never waits on the database; while it is
// unreachable the cache serves what it last applied). The request's port
// group and VSI type are not used: the policy resolves the group from the
// VM (UUID, name from its placement record, labels). Pass OnChange as the
// cache's Options.OnChange, so that every change the cache applies makes
// switchd re-apply the profiles of its live associations.
type PolicyProfiles struct {
	c       PolicyLookup
	changed chan struct{}
}

// NewPolicyProfiles returns the source over c.
func NewPolicyProfiles(c PolicyLookup) *PolicyProfiles {
	return &PolicyProfiles{c: c, changed: make(chan struct{}, 1)}
}

// Profile implements ProfileSource. A VM in no port group, or whose group's
// profile does not exist, gets ErrNoProfile (wrapped with the cache's
// reason).
func (p *PolicyProfiles) Profile(_ context.Context, req ProfileRequest) (Profile, error) {
	r, err := p.c.Lookup(policy.VMRef{UUID: req.VM.String()})
	if err != nil {
		if errors.Is(err, cache.ErrNoGroup) || errors.Is(err, cache.ErrNoProfile) {
			return Profile{}, fmt.Errorf("%w: %w", ErrNoProfile, err)
		}
		return Profile{}, fmt.Errorf("switchd: policy lookup: %w", err)
	}
	return Profile{Group: r.Group, TLV: r.Profile.Wire()}, nil
}

// OnChange is policy/cache's Options.OnChange: it announces the change
// (coalesced: one re-application covers every change before it).
func (p *PolicyProfiles) OnChange(cache.Change) {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Changed implements ProfileNotifier.
func (p *PolicyProfiles) Changed() <-chan struct{} { return p.changed }
