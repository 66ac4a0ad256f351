package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/placement"
	"github.com/tether-net/tether/policy/server"
	"github.com/tether-net/tether/policy/store"
)

// Store is what tether-policyd needs of the policy store: the API's
// operations and the placement writers' batch.
type Store interface {
	server.Store
	placement.Sink
}

// storeAdapter fits policy/store's *Store to Store.
type storeAdapter struct{ s *store.Store }

var _ Store = storeAdapter{}

// NewStore returns the etcd-backed store under prefix.
func NewStore(cli *clientv3.Client, prefix string, log *slog.Logger) (Store, error) {
	s, err := store.New(cli, store.Options{Prefix: prefix, Log: log})
	if err != nil {
		return nil, err
	}
	return storeAdapter{s}, nil
}

func (a storeAdapter) Create(ctx context.Context, obj policy.Object) (int64, error) {
	return a.s.Create(ctx, obj)
}

func (a storeAdapter) Get(ctx context.Context, kind policy.Kind, key string) (policy.Object, int64, error) {
	it, err := a.s.Get(ctx, kind, key)
	return it.Object, it.Revision, err
}

func (a storeAdapter) List(ctx context.Context, kind policy.Kind) ([]server.Versioned, error) {
	items, _, err := a.s.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]server.Versioned, len(items))
	for i, it := range items {
		out[i] = server.Versioned{Object: it.Object, Revision: it.Revision}
	}
	return out, nil
}

func (a storeAdapter) Update(ctx context.Context, obj policy.Object, expected int64) (int64, error) {
	return a.s.Update(ctx, obj, expected)
}

func (a storeAdapter) Delete(ctx context.Context, kind policy.Kind, key string, expected int64) error {
	_, err := a.s.Delete(ctx, kind, key, expected)
	return err
}

func (a storeAdapter) Placements(ctx context.Context) ([]policy.Placement, error) {
	items, _, err := a.s.List(ctx, policy.KindPlacements)
	if err != nil {
		return nil, err
	}
	out := make([]policy.Placement, 0, len(items))
	for _, it := range items {
		if p, ok := it.Object.(*policy.Placement); ok {
			out = append(out, *p)
		}
	}
	return out, nil
}

// ApplyPlacements writes put in batches (store.PutPlacements) and deletes
// each record of del only while it still names host: read, then delete at
// the revision read, so a record another host's writer took over in
// between (a migration) survives.
func (a storeAdapter) ApplyPlacements(ctx context.Context, host string, put []policy.Placement, del []string) error {
	if len(put) > 0 {
		if _, err := a.s.PutPlacements(ctx, put); err != nil {
			return err
		}
	}
	for _, vm := range del {
		it, err := a.s.Get(ctx, policy.KindPlacements, vm)
		if errors.Is(err, policy.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read placement %s before deleting it: %w", vm, err)
		}
		if p, ok := it.Object.(*policy.Placement); !ok || p.Host != host {
			continue
		}
		if _, err := a.s.Delete(ctx, policy.KindPlacements, vm, it.Revision); err != nil &&
			!errors.Is(err, policy.ErrConflict) && !errors.Is(err, policy.ErrNotFound) {
			return fmt.Errorf("delete placement %s: %w", vm, err)
		}
	}
	return nil
}
