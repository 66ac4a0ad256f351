// Package store keeps the policy model (package policy) in etcd through
// go.etcd.io/etcd/client/v3: the same code whether etcd is the embedded
// single node (policy/etcdembed) or an external cluster.
//
// Layout: one JSON object per key, <prefix><kind>/<key>, e.g.
// /tether/v1/profiles/web or /tether/v1/placements/<vm-uuid>. Keys of
// other shapes under the prefix are ignored by List and Watch.
//
// Every write normalizes and validates first (policy.Normalize, then
// Validate) and writes nothing when that fails. Create, Update and Delete
// are single compare-and-swap transactions. PutPlacements writes a batch
// in transactions of at most MaxTxnOps puts each (etcd's default limit is
// 128 operations per transaction): each chunk is atomic and idempotent
// (an unconditional put of the full record), the batch as a whole is not.
// After a failure some chunks may be written; retrying the same batch
// converges, and a batch that fails validation writes nothing at all.
//
// A write whose outcome the client does not learn (a timeout while the
// leader changes) may have been applied: a retried Create then fails with
// ErrExists and a retried Update with a revision with ErrConflict, while
// a retried PutPlacements or an Update without a revision just writes
// the same value again.
//
// Watch delivers changes in revision order from a given revision,
// resumes from the last delivered revision after a disconnect, and ends
// with an error wrapping ErrCompacted when that revision was compacted
// away (the caller lists again and watches from the list's revision).
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tether-net/tether/policy"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is the key prefix of the policy objects.
const DefaultPrefix = "/tether/v1/"

// MaxTxnOps is the most operations PutPlacements puts in one transaction
// (etcd's default --max-txn-ops is 128).
const MaxTxnOps = 128

// listPage is how many keys one range request of a listing returns.
const listPage = 1000

// MaxValueBytes bounds a stored value; larger values are not decoded.
const MaxValueBytes = 64 << 10

// Store is the policy store. It is safe for concurrent use.
type Store struct {
	c      *clientv3.Client
	prefix string
	log    *slog.Logger
}

// Options configure a Store.
type Options struct {
	// Prefix is the key prefix; empty means DefaultPrefix. It must end
	// with "/".
	Prefix string
	// Log receives warnings (skipped keys, watch reconnects); nil
	// discards.
	Log *slog.Logger
}

// New returns a store on client c, which the caller keeps and closes.
func New(c *clientv3.Client, opts Options) (*Store, error) {
	p := opts.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	if !strings.HasSuffix(p, "/") {
		return nil, fmt.Errorf("policy store: prefix %q does not end with /", p)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{c: c, prefix: p, log: log.With("component", "policy-store")}, nil
}

// ClientConfig names an etcd cluster: its endpoints and, for TLS, the
// client certificate, key and CA files.
type ClientConfig struct {
	// Endpoints are the client URLs (http://, https://, unix://).
	Endpoints []string
	// CertFile and KeyFile are the client certificate and key (PEM).
	CertFile, KeyFile string
	// CAFile is the CA bundle that signs the servers' certificates.
	CAFile string
	// DialTimeout bounds the first connection; zero means 5 s.
	DialTimeout time.Duration
	// Log receives the client's warnings and errors; nil discards.
	Log *slog.Logger
}

// Client returns the Store's etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// key returns the etcd key of an object.
func (s *Store) key(kind policy.Kind, key string) string {
	return s.prefix + string(kind) + "/" + key
}

// parseKey splits an etcd key into kind and object key.
func (s *Store) parseKey(k []byte) (policy.Kind, string, bool) {
	rest, ok := bytes.CutPrefix(k, []byte(s.prefix))
	if !ok {
		return "", "", false
	}
	kind, key, ok := strings.Cut(string(rest), "/")
	if !ok || !policy.Kind(kind).Valid() || key == "" {
		return "", "", false
	}
	return policy.Kind(kind), key, true
}

// Item is a stored object with its revision.
type Item struct {
	// Object is one of *policy.Profile, *policy.PortGroup, *policy.Host
	// and *policy.Placement.
	Object policy.Object
	// Revision is the etcd revision of the object's last change (its
	// ModRevision): pass it to Update or Delete to detect conflicts.
	Revision int64
}

// DecodeValue decodes a stored value of kind under key, checks that it
// names key, normalizes (policy.Normalize) and validates it. Unknown JSON fields are ignored, so older
// readers accept values written by newer versions.
func DecodeValue(kind policy.Kind, key string, value []byte) (policy.Object, error) {
	obj := policy.New(kind)
	if obj == nil {
		return nil, fmt.Errorf("decode %s/%s: unknown kind", kind, key)
	}
	if len(value) > MaxValueBytes {
		return nil, fmt.Errorf("decode %s/%s: value is %d bytes, at most %d allowed", kind, key, len(value), MaxValueBytes)
	}
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", kind, key, err)
	}
	if obj.Key() != key {
		return nil, fmt.Errorf("decode %s/%s: value names %q", kind, key, obj.Key())
	}
	policy.Normalize(obj)
	if err := obj.Validate(); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", kind, key, err)
	}
	return obj, nil
}

// prepare normalizes, validates and encodes obj.
func prepare(obj policy.Object) ([]byte, error) {
	if obj == nil {
		return nil, fmt.Errorf("nil object: %w", policy.ErrInvalid)
	}
	policy.Normalize(obj)
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %q: %w", obj.Kind(), obj.Key(), err)
	}
	if len(b) > MaxValueBytes {
		return nil, fmt.Errorf("%s %q: encoded value is %d bytes, at most %d allowed: %w", obj.Kind(), obj.Key(), len(b), MaxValueBytes, policy.ErrInvalid)
	}
	return b, nil
}

// Create stores a new object and returns its revision; ErrExists when the
// key is taken.
func (s *Store) Create(ctx context.Context, obj policy.Object) (int64, error) {
	val, err := prepare(obj)
	if err != nil {
		return 0, fmt.Errorf("policy store: create: %w", err)
	}
	k := s.key(obj.Kind(), obj.Key())
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("policy store: create %s %q: %w", obj.Kind(), obj.Key(), err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("policy store: create %s %q: %w", obj.Kind(), obj.Key(), policy.ErrExists)
	}
	return resp.Header.Revision, nil
}

// Get returns one object; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, kind policy.Kind, key string) (Item, error) {
	if !kind.Valid() {
		return Item{}, fmt.Errorf("policy store: get: unknown kind %q: %w", kind, policy.ErrInvalid)
	}
	resp, err := s.c.Get(ctx, s.key(kind, key))
	if err != nil {
		return Item{}, fmt.Errorf("policy store: get %s %q: %w", kind, key, err)
	}
	if len(resp.Kvs) == 0 {
		return Item{}, fmt.Errorf("policy store: get %s %q: %w", kind, key, policy.ErrNotFound)
	}
	kv := resp.Kvs[0]
	obj, err := DecodeValue(kind, key, kv.Value)
	if err != nil {
		return Item{}, fmt.Errorf("policy store: get: %w", err)
	}
	return Item{Object: obj, Revision: kv.ModRevision}, nil
}

// List returns every object of kind, sorted by key, and the store
// revision the listing reflects. Undecodable values are skipped with a
// warning.
func (s *Store) List(ctx context.Context, kind policy.Kind) ([]Item, int64, error) {
	if !kind.Valid() {
		return nil, 0, fmt.Errorf("policy store: list: unknown kind %q: %w", kind, policy.ErrInvalid)
	}
	var items []Item
	rev, err := s.scan(ctx, s.prefix+string(kind)+"/", func(k policy.Kind, key string, obj policy.Object, modRev int64) {
		items = append(items, Item{Object: obj, Revision: modRev})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("policy store: list %s: %w", kind, err)
	}
	return items, rev, nil
}

// Snapshot is every object of every kind at one revision.
type Snapshot struct {
	// Revision is the store revision of the snapshot; watch from
	// Revision+1 to follow it.
	Revision int64
	// Items holds the objects by kind, each sorted by key.
	Items map[policy.Kind][]Item
}

// ListAll returns every object at one revision (paged, each page read at
// the first page's revision). It fails with an error wrapping
// ErrCompacted if that revision is compacted while paging.
func (s *Store) ListAll(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Items: make(map[policy.Kind][]Item)}
	rev, err := s.scan(ctx, s.prefix, func(k policy.Kind, key string, obj policy.Object, modRev int64) {
		snap.Items[k] = append(snap.Items[k], Item{Object: obj, Revision: modRev})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("policy store: list all: %w", err)
	}
	snap.Revision = rev
	return snap, nil
}

// scan reads every key under prefix in pages at one revision and calls f
// for each decodable policy object.
func (s *Store) scan(ctx context.Context, prefix string, f func(policy.Kind, string, policy.Object, int64)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.c.Get(ctx, from, opts...)
		if err != nil {
			return 0, wrapEtcd(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			kind, key, ok := s.parseKey(kv.Key)
			if !ok {
				continue
			}
			obj, err := DecodeValue(kind, key, kv.Value)
			if err != nil {
				s.log.Warn("skipping undecodable policy value", "key", string(kv.Key), "err", err)
				continue
			}
			f(kind, key, obj, kv.ModRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Update replaces an existing object and returns its new revision. With
// expectRev > 0 the stored object must be at that revision (ErrConflict
// otherwise); 0 overwrites whatever is stored. ErrNotFound when there is
// no object to update.
func (s *Store) Update(ctx context.Context, obj policy.Object, expectRev int64) (int64, error) {
	val, err := prepare(obj)
	if err != nil {
		return 0, fmt.Errorf("policy store: update: %w", err)
	}
	k := s.key(obj.Kind(), obj.Key())
	rev, err := s.casTxn(ctx, k, expectRev, clientv3.OpPut(k, string(val)))
	if err != nil {
		return 0, fmt.Errorf("policy store: update %s %q: %w", obj.Kind(), obj.Key(), err)
	}
	return rev, nil
}

// Delete removes an object and returns the revision of the deletion,
// with the same expectRev rule as Update.
func (s *Store) Delete(ctx context.Context, kind policy.Kind, key string, expectRev int64) (int64, error) {
	if !kind.Valid() {
		return 0, fmt.Errorf("policy store: delete: unknown kind %q: %w", kind, policy.ErrInvalid)
	}
	k := s.key(kind, key)
	rev, err := s.casTxn(ctx, k, expectRev, clientv3.OpDelete(k))
	if err != nil {
		return 0, fmt.Errorf("policy store: delete %s %q: %w", kind, key, err)
	}
	return rev, nil
}

// casTxn runs op if k exists (at expectRev when non-zero) and tells
// ErrNotFound from ErrConflict when it does not run.
func (s *Store) casTxn(ctx context.Context, k string, expectRev int64, op clientv3.Op) (int64, error) {
	cmp := clientv3.Compare(clientv3.CreateRevision(k), ">", 0)
	if expectRev > 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", expectRev)
	} else if expectRev < 0 {
		return 0, fmt.Errorf("expected revision %d is negative: %w", expectRev, policy.ErrInvalid)
	}
	resp, err := s.c.Txn(ctx).If(cmp).Then(op).Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, wrapEtcd(err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if len(resp.Responses) == 1 {
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			return 0, fmt.Errorf("stored at revision %d, expected %d: %w", r.Kvs[0].ModRevision, expectRev, policy.ErrConflict)
		}
	}
	return 0, policy.ErrNotFound
}

// PutPlacements creates or replaces placements, in transactions of at
// most MaxTxnOps puts each, and returns the revision of the last one. All
// placements are validated before anything is written; a placement listed
// twice is written once (the last one wins). See the package
// documentation for what a failure leaves behind.
func (s *Store) PutPlacements(ctx context.Context, ps []policy.Placement) (int64, error) {
	type kv struct{ k, v string }
	idx := make(map[string]int, len(ps))
	var ops []kv
	for i := range ps {
		p := ps[i]
		val, err := prepare(&p)
		if err != nil {
			return 0, fmt.Errorf("policy store: put placements: [%d]: %w", i, err)
		}
		k := s.key(policy.KindPlacements, p.Key())
		if j, ok := idx[k]; ok {
			ops[j].v = string(val)
			continue
		}
		idx[k] = len(ops)
		ops = append(ops, kv{k, string(val)})
	}
	var rev int64
	for start := 0; start < len(ops); start += MaxTxnOps {
		chunk := ops[start:min(start+MaxTxnOps, len(ops))]
		txn := make([]clientv3.Op, len(chunk))
		for i, o := range chunk {
			txn[i] = clientv3.OpPut(o.k, o.v)
		}
		resp, err := s.c.Txn(ctx).Then(txn...).Commit()
		if err != nil {
			return 0, fmt.Errorf("policy store: put placements: %d of %d written: %w", start, len(ops), wrapEtcd(err))
		}
		rev = resp.Header.Revision
	}
	return rev, nil
}

// ErrCompacted is wrapped by Watch and ListAll when the revision asked
// for was compacted away: list again.
var ErrCompacted = errors.New("revision compacted")

// wrapEtcd maps etcd's compaction error onto ErrCompacted.
func wrapEtcd(err error) error {
	if errors.Is(err, errCompactedRPC) || (err != nil && strings.Contains(err.Error(), "required revision has been compacted")) {
		return fmt.Errorf("%w: %w", ErrCompacted, err)
	}
	return err
}

// IsValidation reports whether err is a validation error (policy.ErrInvalid).
func IsValidation(err error) bool { return errors.Is(err, policy.ErrInvalid) }
