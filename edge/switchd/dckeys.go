package switchd

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
)

// Enrolled host keys in DC-wide mode.
//
// The keys switchd verifies claims with are the union of the
// configuration file's host_keys: and the policy store's host records of
// role "host" (tetherctl policy host add), read from the policy cache:
//
//   - a host only in the file or only in the store is enrolled with its
//     key;
//   - a host in both with the same key is enrolled once;
//   - a host in both with different keys is a configuration error: it is
//     logged, and the store's key is the one enrolled (the store is where
//     enrolment is managed DC-wide; the file is the bootstrap);
//   - a file entry whose key a store record of another name holds is
//     dropped, logged (a key names one host);
//   - store records of role "switch" enrol nothing (a switch's key never
//     claims a VM); two store records of role host with the same key are
//     both left out, logged, since the key would name either host.
//
// Every change the cache applies to the host records (and every relisting)
// recomputes the union and hands it to Daemon.SetHostKeys: a new record's
// key verifies from then on, without a restart (each port's last LLDPDU
// refused for an unknown key is checked again, so a newly enrolled host is
// the port's neighbour at once, not from its next LLDPDU); a deleted or replaced
// record's key is revoked at once (live associations it signed end, their
// rules go, and its frames are refused as unknown-key). Lookups stay in
// memory (verify.StaticKeys): the association path never waits on etcd.
// Until the cache's first listing only the file's keys are enrolled; while
// etcd is unreachable the cache keeps the records it last applied, so
// nothing is revoked by an outage. SIGHUP re-reads the file's keys and
// merges them the same way. Deleting a store record of a host the file
// also enrols puts the file's key back in force.

// HostRecords is what dcKeys asks of the policy cache.
type HostRecords interface {
	// Objects returns copies of every object of kind, by key.
	Objects(kind policy.Kind) map[string]policy.Object
}

var _ HostRecords = (*cache.Cache)(nil)

// MergeHostKeys returns the host keys to enrol: the file's and the
// store's host records merged as the package documentation on DC-wide
// host keys says, and the conflicts found, one sentence each, sorted.
func MergeHostKeys(file map[string]ed25519.PublicKey, records []policy.Host) (map[string]ed25519.PublicKey, []string) {
	var problems []string
	store := make(map[string]ed25519.PublicKey)
	byID := make(map[identity.KeyID][]string)
	for _, h := range records {
		if h.Role != policy.RoleHost {
			continue
		}
		pub, err := identity.ParsePublicKeyPEM([]byte(h.PublicKey))
		if err != nil {
			// The store validates what it writes; a record that does not
			// parse enrols nothing.
			problems = append(problems, fmt.Sprintf("store host record %q: public key: %v (not enrolled)", h.Name, err))
			continue
		}
		store[h.Name] = pub
		id := identity.KeyIDOf(pub)
		byID[id] = append(byID[id], h.Name)
	}
	for id, names := range byID {
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		for _, n := range names {
			delete(store, n)
		}
		problems = append(problems, fmt.Sprintf("store host records %s have the same key %s: none of them is enrolled",
			quoteAll(names), id))
	}
	out := make(map[string]ed25519.PublicKey, len(file)+len(store))
	for h, pub := range file {
		id := identity.KeyIDOf(pub)
		if spub, ok := store[h]; ok {
			if !spub.Equal(pub) {
				problems = append(problems, fmt.Sprintf("host %q: host_keys has key %s, the policy store %s: the store's is enrolled",
					h, id, identity.KeyIDOf(spub)))
			}
			continue
		}
		if names := byID[id]; len(names) > 0 {
			problems = append(problems, fmt.Sprintf("host %q: its key %s in host_keys is the policy store's key of %s: not enrolled for %q",
				h, id, quoteAll(names), h))
			continue
		}
		out[h] = pub
	}
	maps.Copy(out, store)
	slices.Sort(problems)
	return out, problems
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// hostKeys returns the enrolment of host keys from the store's host
// records merged with file (the configuration's host_keys:), for
// RunConfig: initial gives the Daemon's first keys, run keeps them up to
// date.
func (dc *DCPolicy) hostKeys(file map[string]ed25519.PublicKey) *dcKeys {
	return newDCKeys(dc.cache, dc.keysChanged, file, dc.log)
}

// hostsChanged reports whether ch may change the enrolled host keys.
func hostsChanged(ch cache.Change) bool {
	if ch.Relisted {
		return true
	}
	for _, e := range ch.Events {
		if e.Kind == policy.KindHosts {
			return true
		}
	}
	return false
}

// dcKeys keeps the Daemon's enrolled host keys equal to the merge of the
// file's and the store's.
type dcKeys struct {
	recs    HostRecords
	log     *slog.Logger
	changed <-chan struct{} // a host record changed (or the cache relisted)

	mu       sync.Mutex // serializes apply
	file     map[string]ed25519.PublicKey
	applied  map[string]ed25519.PublicKey
	problems []string
}

func newDCKeys(recs HostRecords, changed <-chan struct{}, file map[string]ed25519.PublicKey, log *slog.Logger) *dcKeys {
	return &dcKeys{recs: recs, changed: changed, file: file, log: log}
}

// merged returns the keys to enrol now, logging conflicts it has not
// logged yet (k.mu held).
func (k *dcKeys) merged() map[string]ed25519.PublicKey {
	var recs []policy.Host
	for _, o := range k.recs.Objects(policy.KindHosts) {
		if h, ok := o.(*policy.Host); ok {
			recs = append(recs, *h)
		}
	}
	keys, problems := MergeHostKeys(k.file, recs)
	if !slices.Equal(problems, k.problems) {
		for _, p := range problems {
			k.log.Error("host keys: configuration error", "problem", p)
		}
		k.problems = problems
	}
	return keys
}

// initial returns the keys to start the Daemon with.
func (k *dcKeys) initial() map[string]ed25519.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.applied = k.merged()
	return k.applied
}

// apply hands the merged keys to set when they differ from the last ones
// it applied.
func (k *dcKeys) apply(ctx context.Context, set func(context.Context, map[string]ed25519.PublicKey) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := k.merged()
	if k.applied != nil && maps.EqualFunc(keys, k.applied, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
		return nil
	}
	if err := set(ctx, keys); err != nil {
		return err
	}
	k.applied = keys
	return nil
}

// setFile replaces the file's keys (SIGHUP) and applies the merge.
func (k *dcKeys) setFile(ctx context.Context, file map[string]ed25519.PublicKey, set func(context.Context, map[string]ed25519.PublicKey) error) error {
	k.mu.Lock()
	k.file = file
	k.applied = nil // apply even if equal: SetHostKeys logs the reload
	k.mu.Unlock()
	return k.apply(ctx, set)
}

// run applies the merge on every change of the host records until ctx
// ends.
func (k *dcKeys) run(ctx context.Context, set func(context.Context, map[string]ed25519.PublicKey) error) {
	for {
		if err := k.apply(ctx, set); err != nil {
			k.log.Error("host keys from the policy store not applied (the previous ones stay)", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-k.changed:
		}
	}
}
