package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Cluster is an N-node embedded etcd cluster in one process, for tests:
// every member on 127.0.0.1 with free ports and its own data directory.
// Clients reach each member through a TCP proxy (Endpoints,
// MemberEndpoints) that Kill cuts, so a killed member's clients lose
// their connections at once, as after a crash.
type Cluster struct {
	mu      sync.Mutex
	cfgs    []Config
	members []*Server // nil while a member is stopped
	proxies []*Proxy
}

// StartCluster starts n members with data under dir/m0 ... dir/m<n-1>
// and waits until all serve clients. base supplies the logging, timing
// and fsync settings; its Name, Dir, ports and cluster fields are set per
// member, and Unix and Remote are not used. The ports are picked free
// before the members bind them; one taken meanwhile (by another process,
// or as the source port of a member's own connection: both come from the
// same ephemeral range) fails the start with "address already in use",
// so StartCluster then starts over on new ports, up to startAttempts
// times.
func StartCluster(ctx context.Context, dir string, n int, base Config) (*Cluster, error) {
	var err error
	for range startAttempts {
		var cl *Cluster
		cl, err = startCluster(ctx, dir, n, base)
		if err == nil || !isAddrInUse(err) || ctx.Err() != nil {
			return cl, err
		}
		for i := range n {
			if rerr := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("m%d", i))); rerr != nil {
				return nil, fmt.Errorf("policy etcd cluster: start over: %w", rerr)
			}
		}
	}
	return nil, err
}

// startAttempts is how many times StartCluster tries before it gives up on
// ports taken between their pick and their bind.
const startAttempts = 3

// isAddrInUse reports whether err is a bind to an address in use (etcd
// does not always wrap the syscall error, hence the text).
func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// startCluster is one attempt of StartCluster.
func startCluster(ctx context.Context, dir string, n int, base Config) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("policy etcd cluster: %d members, want at least 1", n)
	}
	token := fmt.Sprintf("tether-test-%s", filepath.Base(dir))
	cfgs := make([]Config, n)
	var initial []string
	for i := range cfgs {
		c := base
		c.Name = fmt.Sprintf("m%d", i)
		c.Dir = filepath.Join(dir, c.Name)
		c.Unix, c.Remote = false, nil
		c.ClientPort, c.PeerPort = 0, 0
		var err error
		if c, err = c.withDefaults(); err != nil {
			return nil, fmt.Errorf("policy etcd cluster: %w", err)
		}
		u := c.peerURL()
		initial = append(initial, c.Name+"="+u.String())
		cfgs[i] = c
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		cfgs[i].ClusterToken = token
		cfgs[i].ClusterState = "new"
	}
	cl := &Cluster{cfgs: cfgs, members: make([]*Server, n)}
	for _, c := range cfgs {
		u := c.clientURL()
		px, err := NewProxy(u.Host)
		if err != nil {
			cl.closeProxies()
			return nil, fmt.Errorf("policy etcd cluster: %w", err)
		}
		cl.proxies = append(cl.proxies, px)
	}
	for i, c := range cfgs {
		s, err := start(c)
		if err != nil {
			for _, s := range cl.members[:i] {
				s.Kill()
			}
			cl.closeProxies()
			return nil, fmt.Errorf("policy etcd cluster: %w", err)
		}
		cl.members[i] = s
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range cl.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.wait(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range cl.members {
			s.Kill()
		}
		cl.closeProxies()
		return nil, fmt.Errorf("policy etcd cluster: %w", err)
	}
	// Restarts join the existing cluster.
	for i := range cl.cfgs {
		cl.cfgs[i].ClusterState = "existing"
	}
	return cl, nil
}

// Size returns the number of members, running or not.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Endpoints returns the client endpoints (proxies) of every member,
// running or not, so that a client fails over between them.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, p := range c.proxies {
		eps = append(eps, p.Endpoint())
	}
	return eps
}

// MemberEndpoints returns the client endpoint (proxy) of member i alone.
func (c *Cluster) MemberEndpoints(i int) []string { return []string{c.proxies[i].Endpoint()} }

// closeProxies stops every proxy.
func (c *Cluster) closeProxies() {
	for _, p := range c.proxies {
		p.Close()
	}
}

// Member returns member i, or nil while it is stopped.
func (c *Cluster) Member(i int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

// Leader returns the index of the running member that is the leader.
func (c *Cluster) Leader() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.members {
		if s != nil && s.IsLeader() {
			return i, nil
		}
	}
	return -1, ErrNoLeader
}

// Kill stops member i as a crash would: its clients' connections drop,
// and it stops without handing over leadership.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	c.proxies[i].Cut()
	if s != nil {
		s.Kill()
	}
}

// Restart starts stopped member i again on its data directory and ports
// and waits until it serves clients.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	if c.members[i] != nil {
		c.mu.Unlock()
		return fmt.Errorf("policy etcd cluster: member %d is running", i)
	}
	cfg := c.cfgs[i]
	c.mu.Unlock()
	s, err := Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("policy etcd cluster: restart member %d: %w", i, err)
	}
	c.mu.Lock()
	c.members[i] = s
	c.mu.Unlock()
	c.proxies[i].Restore()
	return nil
}

// Close stops every running member, all at once and without leadership
// hand-over (a graceful stop of members that leave together waits for
// hand-overs that cannot happen), and the proxies.
func (c *Cluster) Close() {
	c.mu.Lock()
	ms := append([]*Server(nil), c.members...)
	for i := range c.members {
		c.members[i] = nil
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ms {
		if s != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.Kill() }()
		}
	}
	for _, p := range c.proxies {
		p.Cut()
	}
	wg.Wait()
	c.closeProxies()
}
