package switchd

import (
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/vdp"
)

// recKey names one VSI on one port.
type recKey struct {
	port string
	vsi  vdp.Key
}

// record is one association switchd holds: a VSI the verifier accepted and
// whose pairs are installed in the enforcer (allowed when associated, held
// back when pre-associated).
type record struct {
	port    string
	key     vdp.Key
	vm      verify.UUID
	host    string
	state   vdp.State
	pairs   []enforce.Pair
	profile string
	// group and typeID are the request's port group and VSI type, which
	// the profile is re-resolved with when profiles change (profile.go).
	group  string
	typeID uint32
	since  time.Time
	// signer is the key that signed the request (and the port's LLDP
	// neighbour); counter its replay counter.
	signer  identity.KeyID
	counter uint64
	vmm     string
	migr    bool
	note    string
	at      time.Time
	// gen distinguishes successive records of one VSI, so that an event
	// about an older association never removes a newer one.
	gen uint64
	// overlapUntil, when set, makes the record the source side of a live
	// migration the VM manager confirmed (overlap.go): its pairs still
	// pass while the VM, already associated on port overlapTo, may still
	// run here; the record ends at the source's DE-ASSOCIATE, its
	// keep-alive timeout, when the VM manager no longer reports the VM on
	// this host, or at overlapUntil at the latest.
	overlapUntil time.Time
	overlapTo    string
}

// table holds the records. Its mutex guards only the maps: the work on a
// VSI (verifier, enforcer) is serialized by the VSI's stripe (see
// Daemon.stripe), never under mu.
type table struct {
	mu     sync.Mutex
	gen    uint64
	byPort map[string]map[vdp.Key]*record
}

func newTable() *table { return &table{byPort: make(map[string]map[vdp.Key]*record)} }

// get returns the record of k, or nil.
func (t *table) get(k recKey) *record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byPort[k.port][k.vsi]
}

// genOf returns the generation of k's record, 0 when there is none.
func (t *table) genOf(k recKey) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.byPort[k.port][k.vsi]; r != nil {
		return r.gen
	}
	return 0
}

// put stores r (a new generation) in place of k's record.
func (t *table) put(r *record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	r.gen = t.gen
	m := t.byPort[r.port]
	if m == nil {
		m = make(map[vdp.Key]*record)
		t.byPort[r.port] = m
	}
	m[r.key] = r
}

// remove deletes k's record if its generation is gen (0: any) and returns
// it.
func (t *table) remove(k recKey, gen uint64) *record {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.byPort[k.port][k.vsi]
	if r == nil || (gen != 0 && r.gen != gen) {
		return nil
	}
	delete(t.byPort[k.port], k.vsi)
	if len(t.byPort[k.port]) == 0 {
		delete(t.byPort, k.port)
	}
	return r
}

// setOverlap marks k's record, if its generation is gen, as the source
// side of a migration to port to until until; a record already marked
// keeps its first bound. It returns the record's bound, zero when the
// record is gone.
func (t *table) setOverlap(k recKey, gen uint64, to string, until time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.byPort[k.port][k.vsi]
	if r == nil || r.gen != gen {
		return time.Time{}
	}
	if r.overlapUntil.IsZero() {
		r.overlapUntil, r.overlapTo = until, to
	}
	return r.overlapUntil
}

// port returns copies of the records of port.
func (t *table) port(port string) []record {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]record, 0, len(t.byPort[port]))
	for _, r := range t.byPort[port] {
		out = append(out, *r)
	}
	return out
}

// all returns copies of every record, by port then VM.
func (t *table) all() []record {
	t.mu.Lock()
	out := make([]record, 0, 64)
	for _, m := range t.byPort {
		for _, r := range m {
			out = append(out, *r)
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].port != out[j].port {
			return out[i].port < out[j].port
		}
		return slices.Compare(out[i].key.ID[:], out[j].key.ID[:]) < 0
	})
	return out
}

// desired returns the enforcement state the records call for, with every
// port of ports listed (closed when it has no pairs).
func (t *table) desired(ports []string) enforce.State {
	st := make(enforce.State, len(ports))
	for _, p := range ports {
		st[p] = enforce.PortPairs{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for port, m := range t.byPort {
		pp, ok := st[port]
		if !ok {
			continue
		}
		for _, r := range m {
			if r.state == vdp.StateAssociated {
				pp.Allowed = append(pp.Allowed, r.pairs...)
			} else {
				pp.Pending = append(pp.Pending, r.pairs...)
			}
		}
		// A pair both allowed and pending is allowed.
		pp.Pending = slices.DeleteFunc(pp.Pending, func(p enforce.Pair) bool { return slices.Contains(pp.Allowed, p) })
		st[port] = pp
	}
	return st
}

// stripes serializes the work on one VSI of one port: its decisions, and
// the removals that DE-ASSOCIATE, keep-alive expiry, a lost neighbour or a
// migration away cause.
type stripes struct {
	seed maphash.Seed
	mu   [256]sync.Mutex
}

func newStripes() *stripes { return &stripes{seed: maphash.MakeSeed()} }

// of returns the lock of k.
func (s *stripes) of(k recKey) *sync.Mutex {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(k.port)
	h.WriteByte(byte(k.vsi.Format))
	h.Write(k.vsi.ID[:])
	return &s.mu[h.Sum64()%uint64(len(s.mu))]
}

// rejects is a ring of the last refusals.
type rejects struct {
	mu   sync.Mutex
	buf  []switchapi.Reject
	next int
	full bool
}

func newRejects(n int) *rejects { return &rejects{buf: make([]switchapi.Reject, n)} }

// add records r, dropping the oldest when full.
func (r *rejects) add(x switchapi.Reject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = x
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// list returns the refusals, oldest first.
func (r *rejects) list() []switchapi.Reject {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return slices.Clone(r.buf[:r.next])
	}
	return append(slices.Clone(r.buf[r.next:]), r.buf[:r.next]...)
}

// latencies keeps the last samples of a duration.
type latencies struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	full bool
}

func newLatencies(n int) *latencies { return &latencies{buf: make([]time.Duration, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = d
	l.next++
	if l.next == len(l.buf) {
		l.next, l.full = 0, true
	}
}

// summary returns the percentiles of the samples kept.
func (l *latencies) summary() switchapi.Latency {
	l.mu.Lock()
	s := slices.Clone(l.buf[:l.next])
	if l.full {
		s = slices.Clone(l.buf)
	}
	l.mu.Unlock()
	if len(s) == 0 {
		return switchapi.Latency{}
	}
	slices.Sort(s)
	at := func(q float64) int64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return s[i].Microseconds()
	}
	return switchapi.Latency{Count: len(s), P50: at(0.50), P99: at(0.99), Max: s[len(s)-1].Microseconds()}
}
