package uplink

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/wire"
)

// noDowngrade wraps the LLDP signature check: an unsigned LLDPDU that
// carries the MSAP (chassis ID and port ID) of a neighbour the agent holds
// as signed is refused. Unsigned LLDPDUs are accepted otherwise (a plain
// 802.1Qbg switch is a peer in interop mode), so without this one forged
// or truncated LLDPDU in the switch's name would replace the switch's
// signed entry and leave the uplink without a usable switch until the
// switch's next LLDPDU (found by TestHostileFloodAgainstUplink).
func (s *session) noDowngrade(check lldpagent.CheckFunc) lldpagent.CheckFunc {
	return func(ctx context.Context, frame []byte, du *wire.LLDPDU) (lldpagent.CheckResult, error) {
		res, err := check(ctx, frame, du)
		if err != nil || res.Signed || du == nil || s.agent == nil {
			return res, err
		}
		for _, n := range s.agent.Neighbors() {
			if n.Check.Signed && sameMSAP(&n, du) {
				return lldpagent.CheckResult{}, fmt.Errorf("uplink: unsigned LLDPDU in the name of the signed neighbour %s refused (a downgrade or a forgery)",
					neighborName(&n))
			}
		}
		return res, nil
	}
}

// sameMSAP reports whether du comes from the LLDP agent n is (IEEE
// 802.1AB-2016 8.5.2: chassis ID and port ID identify it).
func sameMSAP(n *lldpagent.Neighbor, du *wire.LLDPDU) bool {
	return n.ChassisID.Subtype == du.ChassisID.Subtype && bytes.Equal(n.ChassisID.ID, du.ChassisID.ID) &&
		n.PortID.Subtype == du.PortID.Subtype && bytes.Equal(n.PortID.ID, du.PortID.ID)
}
