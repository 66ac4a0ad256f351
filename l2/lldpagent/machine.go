package lldpagent

import (
	"bytes"
	"time"

	"github.com/tether-net/tether/wire"
)

// machine holds the agent's protocol state: the TX timer and TX state
// machines (802.1AB-2016 9.2.8, 9.2.9) and the neighbour table of the RX
// state machine (9.2.7). It does no I/O and reads no clock: every method
// takes the current time, so tests drive it step by step. The Agent calls
// it under its mutex.
type machine struct {
	txInterval  time.Duration // msgTxInterval
	fastTx      time.Duration // msgFastTx
	txFastInit  int
	txCreditMax int
	max         int // neighbour table bound

	// TX timer state machine.
	txTTR    time.Time // when the TX timer next expires
	txFast   int       // fast transmissions left
	txCredit int       // transmissions allowed now
	creditAt time.Time // time of the last txTick (credit refill)
	txNow    bool      // a transmission is due

	table map[string]*Neighbor
	cmp   map[string][]byte // per neighbour: the LLDPDU as compared for changes
	full  bool              // the last new neighbour was refused (for logging)

	counters
}

// counters are the agent's statistics kept by the machine.
type counters struct {
	framesIn         uint64
	malformed        uint64
	rejected         uint64
	otherDestination uint64
	tooMany          uint64
	ageouts          uint64
	removed          uint64
	inserts          uint64
	deletes          uint64
}

// newMachine returns a machine for a normalized Config.
func newMachine(c Config) *machine {
	return &machine{
		txInterval:  c.TxInterval,
		fastTx:      c.FastTx,
		txFastInit:  c.TxFastInit,
		txCreditMax: c.TxCreditMax,
		max:         c.MaxNeighbors,
		table:       make(map[string]*Neighbor),
		cmp:         make(map[string][]byte),
	}
}

// start is TX_TIMER_INITIALIZE: full credit, no fast transmission, and the
// TX timer already expired, so the first LLDPDU goes at once.
func (m *machine) start(now time.Time) {
	m.txTTR = now
	m.txFast = 0
	m.txCredit = m.txCreditMax
	m.creditAt = now
	m.txNow = false
}

// fastStart is TX_FAST_START followed by TX_TIMER_EXPIRES: (re)start fast
// transmission unless it is running, and transmit now.
func (m *machine) fastStart(now time.Time) {
	if m.txFast == 0 {
		m.txFast = m.txFastInit
	}
	m.expire(now)
}

// expire is TX_TIMER_EXPIRES then SIGNAL_TX.
func (m *machine) expire(now time.Time) {
	if m.txFast > 0 {
		m.txFast--
	}
	m.txNow = true
	if m.txFast > 0 {
		m.txTTR = now.Add(m.fastTx)
	} else {
		m.txTTR = now.Add(m.txInterval)
	}
}

// localChange handles somethingChangedLocal. 802.1AB-2016 only signals one
// transmission (SIGNAL_TX); tether starts fast transmission (issue 4).
func (m *machine) localChange(now time.Time) { m.fastStart(now) }

// tick adds one credit per whole second since the last tick (TX_TICK,
// txAddCredit), up to txCreditMax.
func (m *machine) tick(now time.Time) {
	n := now.Sub(m.creditAt) / time.Second
	if n <= 0 {
		return
	}
	m.creditAt = m.creditAt.Add(n * time.Second)
	if c := int64(m.txCredit) + int64(n); c < int64(m.txCreditMax) {
		m.txCredit = int(c)
	} else {
		m.txCredit = m.txCreditMax
	}
}

// advance runs the TX timer and TX state machines up to now and reports
// whether an LLDPDU must be sent now (TX_INFO_FRAME, which spends a
// credit).
func (m *machine) advance(now time.Time) bool {
	m.tick(now)
	if !now.Before(m.txTTR) {
		m.expire(now)
	}
	if m.txNow && m.txCredit > 0 {
		m.txNow = false
		m.txCredit--
		return true
	}
	return false
}

// nextWake returns when the machine next needs advance or ageOut: the TX
// timer, the next credit when a transmission waits for one, or the first
// neighbour expiry.
func (m *machine) nextWake() time.Time {
	w := m.txTTR
	if m.txNow && m.txCredit == 0 {
		if c := m.creditAt.Add(time.Second); c.Before(w) {
			w = c
		}
	}
	for _, n := range m.table {
		if n.ExpiresAt.Before(w) {
			w = n.ExpiresAt
		}
	}
	return w
}

// ageOut removes the neighbours whose TTL ran out by now (rxInfoAge) and
// returns their expiry events.
func (m *machine) ageOut(now time.Time, port string) []Event {
	var evs []Event
	for k, n := range m.table {
		if now.Before(n.ExpiresAt) {
			continue
		}
		delete(m.table, k)
		delete(m.cmp, k)
		m.ageouts++
		m.deletes++
		evs = append(evs, Event{Kind: NeighborExpired, Port: port, Neighbor: *n, At: now})
	}
	if len(evs) > 0 {
		m.full = false
	}
	return evs
}

// remove deletes the neighbours match selects and returns their removal
// events.
func (m *machine) remove(now time.Time, port string, match func(*Neighbor) bool) []Event {
	var evs []Event
	for k, n := range m.table {
		if !match(n) {
			continue
		}
		delete(m.table, k)
		delete(m.cmp, k)
		m.removed++
		m.deletes++
		evs = append(evs, Event{Kind: NeighborRemoved, Port: port, Neighbor: *n, At: now})
	}
	if len(evs) > 0 {
		m.full = false
	}
	return evs
}

// msapKey returns the table key of a chassis ID and port ID: subtypes and
// length-prefixed IDs, so distinct pairs never collide.
func msapKey(du *wire.LLDPDU) string {
	b := make([]byte, 0, 6+len(du.ChassisID.ID)+len(du.PortID.ID))
	b = append(b, byte(du.ChassisID.Subtype), byte(len(du.ChassisID.ID)))
	b = append(b, du.ChassisID.ID...)
	b = append(b, byte(du.PortID.Subtype), byte(len(du.PortID.ID)))
	b = append(b, du.PortID.ID...)
	return string(b)
}

// compareBytes encodes du without its TTL and tether signature, the form in
// which two LLDPDUs from one neighbour are compared: a refresh that only
// carries a new signature counter is not a change.
func compareBytes(du *wire.LLDPDU) []byte {
	c := *du
	c.TTL = 0
	c.TLVs = make([]wire.TLV, 0, len(du.TLVs))
	for _, t := range du.TLVs {
		if _, ok := t.(*wire.TetherSignature); !ok {
			c.TLVs = append(c.TLVs, t)
		}
	}
	b, err := c.MarshalBinary()
	if err != nil {
		// Cannot happen for a decoded LLDPDU; compare nothing rather
		// than fail.
		return nil
	}
	return b
}

// apply runs the RX state machine's RX_FRAME processing for an accepted
// LLDPDU du, decoded from frame (which the machine keeps), from src. It
// returns the events and whether the neighbour is new (which starts fast
// transmission, newNeighbor).
func (m *machine) apply(now time.Time, port string, frame []byte, src [6]byte, du wire.LLDPDU, res CheckResult) ([]Event, bool) {
	m.framesIn++
	key := msapKey(&du)
	old := m.table[key]
	if du.TTL == 0 {
		// Shutdown LLDPDU (RX_DELETE_INFO).
		if old == nil {
			return nil, false
		}
		delete(m.table, key)
		delete(m.cmp, key)
		m.deletes++
		m.full = false
		return []Event{{Kind: NeighborShutdown, Port: port, Neighbor: *old, At: now}}, false
	}
	n := &Neighbor{
		ChassisID: du.ChassisID,
		PortID:    du.PortID,
		Source:    src,
		TTL:       du.TTL,
		PDU:       du,
		Frame:     frame,
		Check:     res,
		FirstSeen: now,
		LastSeen:  now,
		ExpiresAt: now.Add(time.Duration(du.TTL) * time.Second),
	}
	cmp := compareBytes(&du)
	if old == nil {
		if len(m.table) >= m.max {
			m.tooMany++
			m.full = true
			return nil, false
		}
		m.table[key] = n
		m.cmp[key] = cmp
		m.inserts++
		return []Event{{Kind: NeighborAdded, Port: port, Neighbor: *n, At: now}}, true
	}
	n.FirstSeen = old.FirstSeen
	m.table[key] = n
	changed := !bytes.Equal(m.cmp[key], cmp) || old.Source != src
	m.cmp[key] = cmp
	if !changed {
		return nil, false
	}
	return []Event{{Kind: NeighborUpdated, Port: port, Neighbor: *n, At: now}}, false
}

// neighbors returns a copy of the table.
func (m *machine) neighbors() []Neighbor {
	out := make([]Neighbor, 0, len(m.table))
	for _, n := range m.table {
		out = append(out, *n)
	}
	return out
}
