package switchd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/verify"
)

// testLogger is quiet unless TETHER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeEnforcer is an in-memory Enforcer: the kernel's sets as maps.
type fakeEnforcer struct {
	mu    sync.Mutex
	state map[string]*fakePort
	calls []string
	fail  error // returned by the next per-pair operations while set
}

type fakePort struct {
	allowed, pending map[enforce.Pair]bool
}

func newFakeEnforcer() *fakeEnforcer { return &fakeEnforcer{state: make(map[string]*fakePort)} }

func (f *fakeEnforcer) port(name string) *fakePort {
	p := f.state[name]
	if p == nil {
		p = &fakePort{allowed: map[enforce.Pair]bool{}, pending: map[enforce.Pair]bool{}}
		f.state[name] = p
	}
	return p
}

func pairOf(mac net.HardwareAddr, vid uint16) enforce.Pair {
	var p enforce.Pair
	copy(p.MAC[:], mac)
	p.VID = vid
	return p
}

func (f *fakeEnforcer) op(name, port string, mac net.HardwareAddr, vid uint16, fn func(p *fakePort, pr enforce.Pair)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name+" "+port+" "+pairOf(mac, vid).String())
	if f.fail != nil {
		return f.fail
	}
	p, ok := f.state[port]
	if !ok {
		return enforce.ErrNotManaged
	}
	fn(p, pairOf(mac, vid))
	return nil
}

func (f *fakeEnforcer) ManagePort(_ context.Context, port string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.port(port)
	return nil
}

func (f *fakeEnforcer) Allow(_ context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	return f.op("allow", port, mac, vid, func(p *fakePort, pr enforce.Pair) { p.allowed[pr] = true })
}

func (f *fakeEnforcer) Pending(_ context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	return f.op("pending", port, mac, vid, func(p *fakePort, pr enforce.Pair) {
		if !p.allowed[pr] {
			p.pending[pr] = true
		}
	})
}

func (f *fakeEnforcer) Activate(_ context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	return f.op("activate", port, mac, vid, func(p *fakePort, pr enforce.Pair) {
		delete(p.pending, pr)
		p.allowed[pr] = true
	})
}

func (f *fakeEnforcer) Revoke(_ context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	return f.op("revoke", port, mac, vid, func(p *fakePort, pr enforce.Pair) {
		delete(p.pending, pr)
		delete(p.allowed, pr)
	})
}

func (f *fakeEnforcer) Sync(_ context.Context, desired enforce.State) (enforce.SyncStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "sync")
	var st enforce.SyncStats
	for name, p := range f.state {
		want, ok := desired[name]
		if !ok {
			st.PortsRemoved++
			delete(f.state, name)
			continue
		}
		for pr := range p.allowed {
			if !slices.Contains(want.Allowed, pr) {
				delete(p.allowed, pr)
				st.Removed++
			}
		}
		for pr := range p.pending {
			if !slices.Contains(want.Pending, pr) {
				delete(p.pending, pr)
				st.Removed++
			}
		}
	}
	for name, want := range desired {
		p := f.port(name)
		for _, pr := range want.Allowed {
			if !p.allowed[pr] {
				p.allowed[pr] = true
				st.Added++
			}
		}
		for _, pr := range want.Pending {
			if !p.pending[pr] {
				p.pending[pr] = true
				st.Added++
			}
		}
	}
	return st, nil
}

func (f *fakeEnforcer) Observed(context.Context) (enforce.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := make(enforce.State)
	for name, p := range f.state {
		var pp enforce.PortPairs
		for pr := range p.allowed {
			pp.Allowed = append(pp.Allowed, pr)
		}
		for pr := range p.pending {
			pp.Pending = append(pp.Pending, pr)
		}
		st[name] = pp
	}
	return st, nil
}

func (f *fakeEnforcer) Counters(context.Context) (map[string]enforce.PortCounters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]enforce.PortCounters)
	for name, p := range f.state {
		out[name] = enforce.PortCounters{Accepted: enforce.Counter{Packets: uint64(len(p.allowed))}}
	}
	return out, nil
}

func (f *fakeEnforcer) Broute() bool { return false }

// allowed reports whether pr is allowed on port; pending whether it is
// held back there.
func (f *fakeEnforcer) allowed(port string, pr enforce.Pair) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.state[port]
	return p != nil && p.allowed[pr]
}

func (f *fakeEnforcer) pending(port string, pr enforce.Pair) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.state[port]
	return p != nil && p.pending[pr]
}

func (f *fakeEnforcer) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeEnforcer) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// fakeVMM is an in-memory VM manager: which VM runs on which host with
// which MACs.
type fakeVMM struct {
	mu  sync.Mutex
	vms map[string]map[verify.UUID]fakeVM
	err error
}

type fakeVM struct {
	state verify.VMState
	macs  []verify.MAC
}

func newFakeVMM() *fakeVMM { return &fakeVMM{vms: make(map[string]map[verify.UUID]fakeVM)} }

func (f *fakeVMM) set(host string, vm verify.UUID, state verify.VMState, macs ...verify.MAC) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vms[host] == nil {
		f.vms[host] = make(map[verify.UUID]fakeVM)
	}
	f.vms[host][vm] = fakeVM{state: state, macs: macs}
}

func (f *fakeVMM) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return verify.Confirmation{}, f.err
	}
	v, ok := f.vms[host][vm]
	switch {
	case !ok:
		return verify.Confirmation{State: verify.VMAbsent, Reason: "no such VM"}, nil
	case !v.state.Present():
		return verify.Confirmation{State: v.state, Reason: "not running"}, nil
	case !slices.Contains(v.macs, mac):
		return verify.Confirmation{State: v.state, Reason: "no interface with that MAC"}, nil
	}
	return verify.Confirmation{Confirmed: true, State: v.state}, nil
}

var errInjected = errors.New("injected failure")
