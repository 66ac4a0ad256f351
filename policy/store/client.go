package store

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-net/tether/policy/etcdembed"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errCompactedRPC is etcd's "required revision has been compacted".
var errCompactedRPC = rpctypes.ErrCompacted

// Dial connects to the etcd cluster cfg names (the embedded one's
// Endpoints or an external cluster's) and checks that it answers before
// ctx ends. The caller closes the client.
func Dial(ctx context.Context, cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("policy store: dial: no endpoints")
	}
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      etcdembed.NewZapLogger(cfg.Log, levelError),
		// Keepalives notice a dead member so the client moves on.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	}
	if cc.DialTimeout == 0 {
		cc.DialTimeout = 5 * time.Second
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("policy store: dial: TLS: %w", err)
		}
		cc.TLS = tc
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("policy store: dial %v: %w", cfg.Endpoints, err)
	}
	sctx, cancel := context.WithTimeout(ctx, cc.DialTimeout)
	defer cancel()
	if _, err := c.Get(sctx, "health-probe", clientv3.WithCountOnly()); err != nil {
		c.Close()
		return nil, fmt.Errorf("policy store: dial %v: %w", cfg.Endpoints, err)
	}
	return c, nil
}
