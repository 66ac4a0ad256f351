package uplink

import (
	"errors"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// Datapath is told of the switch's answers and holds VIFs back from
// verified until their vNIC datapath and soft-switch port agree with the
// answer (agent/datapath's Reconciler implements it).
type Datapath interface {
	// Granted hands over the switch's answer for VIF v, on every
	// reconcile pass while the switch holds it: the granted VID, and the
	// profile when the answer was verified (nil otherwise). It must not
	// block. nil means v's datapath is in place for that answer; an error
	// with a Temporary() bool method returning true means it is being put
	// in place (the VIF stays associated), any other error is a failure
	// (the VIF is rejected with it as the reason until it is in place).
	Granted(v inventory.VIF, vid uint16, profile *wire.TetherProfile) error
}

// SetDatapath makes dp the datapath the uplink hands the switch's answers
// to. Call it before Run.
func (u *Uplink) SetDatapath(dp Datapath) { u.dp = dp }

// Kick asks the running session for a reconcile pass (the datapath calls
// it when a VIF's datapath changed).
func (u *Uplink) Kick() {
	if s := u.cur.Load(); s != nil {
		s.markDirty()
	}
}

// prepareDatapath hands a PRE-ASSOCIATE's answer to the datapath, so the
// soft-switch port of a VM migrating in is in place before it runs; the
// VIF stays pre-associated whatever the datapath says.
func (s *session) prepareDatapath(v *inventory.VIF, info *vdp.VSIInfo, f wire.Filter, p *peer) {
	dp := s.u.dp
	if dp == nil {
		return
	}
	var profile *wire.TetherProfile
	if to, _ := s.judgeGrant(info, f, p); to == inventory.StateVerified {
		profile = info.Profile
	}
	_ = dp.Granted(*v, f.VID, profile)
}

// judgeWithDatapath is judgeGrant, then the datapath's say: a VIF is
// verified only once its datapath is in place for the answer.
func (s *session) judgeWithDatapath(v *inventory.VIF, info *vdp.VSIInfo, f wire.Filter, p *peer) (inventory.State, string) {
	to, reason := s.judgeGrant(info, f, p)
	dp := s.u.dp
	if dp == nil {
		return to, reason
	}
	var profile *wire.TetherProfile
	if to == inventory.StateVerified {
		profile = info.Profile // only a verified profile is applied
	}
	err := dp.Granted(*v, f.VID, profile)
	if err == nil {
		return to, reason
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		if to == inventory.StateVerified {
			return inventory.StateAssociated, reason + "; not verified yet: datapath: " + err.Error()
		}
		return to, reason + "; datapath: " + err.Error()
	}
	return inventory.StateRejected, reason + "; datapath failed: " + err.Error()
}
