package verify

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tether-net/tether/identity"
)

// StaticKeys is a Keys table held in memory: tests, labs, and the local
// cache that tether-policyd's enrolment feeds. It is safe for concurrent
// use.
type StaticKeys struct {
	mu   sync.RWMutex
	keys map[identity.KeyID]Enrolment
}

var _ Keys = (*StaticKeys)(nil)

// NewStaticKeys returns a table holding es.
func NewStaticKeys(es ...Enrolment) (*StaticKeys, error) {
	k := &StaticKeys{keys: make(map[identity.KeyID]Enrolment, len(es))}
	for _, e := range es {
		if err := k.Enrol(e); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Enrol adds or replaces the enrolment of e's key.
func (k *StaticKeys) Enrol(e Enrolment) error {
	if len(e.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: enrol key of host %q: public key is %d bytes, want %d", e.Host, len(e.Public), ed25519.PublicKeySize)
	}
	e.Public = slices.Clone(e.Public)
	k.mu.Lock()
	k.keys[identity.KeyIDOf(e.Public)] = e
	k.mu.Unlock()
	return nil
}

// Revoke removes the key with ID id.
func (k *StaticKeys) Revoke(id identity.KeyID) {
	k.mu.Lock()
	delete(k.keys, id)
	k.mu.Unlock()
}

// Enrolment implements Keys.
func (k *StaticKeys) Enrolment(ctx context.Context, id identity.KeyID) (Enrolment, error) {
	if err := ctx.Err(); err != nil {
		return Enrolment{}, err
	}
	k.mu.RLock()
	e, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok {
		return Enrolment{}, fmt.Errorf("%w: %s", identity.ErrUnknownKey, id)
	}
	return e, nil
}

// keyStore adapts Keys to identity.KeyStore, so the signature check and
// the host check read the same enrolment.
type keyStore struct{ keys Keys }

// PublicKey implements identity.KeyStore.
func (s keyStore) PublicKey(ctx context.Context, id identity.KeyID) (ed25519.PublicKey, error) {
	e, err := s.keys.Enrolment(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.Public, nil
}

// NeighbourTable is a Neighbours table set by hand, for tests and for a
// caller that tracks LLDP events itself. It is safe for concurrent use.
type NeighbourTable struct {
	mu sync.RWMutex
	m  map[string]Neighbour
}

var _ Neighbours = (*NeighbourTable)(nil)

// NewNeighbourTable returns an empty table.
func NewNeighbourTable() *NeighbourTable {
	return &NeighbourTable{m: make(map[string]Neighbour)}
}

// Set records n as port's neighbour.
func (t *NeighbourTable) Set(port string, n Neighbour) {
	t.mu.Lock()
	t.m[port] = n
	t.mu.Unlock()
}

// Delete forgets port's neighbour.
func (t *NeighbourTable) Delete(port string) {
	t.mu.Lock()
	delete(t.m, port)
	t.mu.Unlock()
}

// Neighbour implements Neighbours.
func (t *NeighbourTable) Neighbour(port string) (Neighbour, bool) {
	t.mu.RLock()
	n, ok := t.m[port]
	t.mu.RUnlock()
	return n, ok
}

// MemoryLocations is the Locations table of a single switch, in memory.
// It is safe for concurrent use. The data-centre-wide table (etcd) comes
// with issue 5.
type MemoryLocations struct {
	now func() time.Time

	mu  sync.Mutex
	rev uint64
	m   map[MAC]Location
}

var _ Locations = (*MemoryLocations)(nil)

// NewMemoryLocations returns an empty table; now (nil: time.Now) stamps
// Location.Since.
func NewMemoryLocations(now func() time.Time) *MemoryLocations {
	if now == nil {
		now = time.Now
	}
	return &MemoryLocations{now: now, m: make(map[MAC]Location)}
}

// Lookup implements Locations.
func (l *MemoryLocations) Lookup(ctx context.Context, mac MAC) (Location, bool, error) {
	if err := ctx.Err(); err != nil {
		return Location{}, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	loc, ok := l.m[mac]
	return loc, ok, nil
}

// Claim implements Locations.
func (l *MemoryLocations) Claim(ctx context.Context, mac MAC, loc Location, prev uint64) (Location, error) {
	if err := ctx.Err(); err != nil {
		return Location{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.m[mac] // cur.Rev is 0 when there is no entry
	if cur.Rev != prev {
		return cur, fmt.Errorf("%w: MAC %s has revision %d, not %d", ErrConflict, mac, cur.Rev, prev)
	}
	if ok && cur.samePlace(loc) {
		loc.Since = cur.Since
	} else {
		loc.Since = l.now()
	}
	l.rev++
	loc.Rev = l.rev
	l.m[mac] = loc
	return loc, nil
}

// Release implements Locations.
func (l *MemoryLocations) Release(ctx context.Context, mac MAC, loc Location) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.m[mac]; ok && cur.samePlace(loc) {
		delete(l.m, mac)
	}
	return nil
}

// Len returns the number of live MACs.
func (l *MemoryLocations) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// All returns a copy of the table.
func (l *MemoryLocations) All() map[MAC]Location {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[MAC]Location, len(l.m))
	for k, v := range l.m {
		out[k] = v
	}
	return out
}

// stagKey indexes MemorySTags.
type stagKey struct {
	port string
	stag uint16
}

// MemorySTags is the S-Tag table of a single switch, in memory. It is safe
// for concurrent use.
type MemorySTags struct {
	mu sync.Mutex
	m  map[stagKey]VNIC
}

var _ STags = (*MemorySTags)(nil)

// NewMemorySTags returns an empty table.
func NewMemorySTags() *MemorySTags {
	return &MemorySTags{m: make(map[stagKey]VNIC)}
}

// Lookup implements STags.
func (s *MemorySTags) Lookup(ctx context.Context, port string, stag uint16) (VNIC, bool, error) {
	if err := ctx.Err(); err != nil {
		return VNIC{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[stagKey{port, stag}]
	return n, ok, nil
}

// Bind implements STags.
func (s *MemorySTags) Bind(ctx context.Context, port string, stag uint16, n VNIC) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := stagKey{port, stag}
	if cur, ok := s.m[k]; ok {
		if cur == n {
			return false, nil
		}
		return false, &STagBoundError{Port: port, STag: stag, Holder: cur}
	}
	s.m[k] = n
	return true, nil
}

// Release implements STags.
func (s *MemorySTags) Release(ctx context.Context, port string, stag uint16, n VNIC) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := stagKey{port, stag}
	if cur, ok := s.m[k]; ok && cur == n {
		delete(s.m, k)
	}
	return nil
}

// Len returns the number of bindings.
func (s *MemorySTags) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
