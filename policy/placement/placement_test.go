package placement

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	virt "libvirt.org/go/libvirt"

	"github.com/tether-net/tether/policy"
)

// memSink is an in-memory Sink: the store is tested on its own
// (policy/store) and with the writer end to end in policy/policyd.
type memSink struct {
	mu      sync.Mutex
	m       map[string]policy.Placement
	batches int
}

func (s *memSink) Placements(context.Context) ([]policy.Placement, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]policy.Placement, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, p)
	}
	return out, nil
}

func (s *memSink) ApplyPlacements(_ context.Context, host string, put []policy.Placement, del []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range put {
		if err := p.Validate(); err != nil {
			return err
		}
		s.m[p.VM] = p
	}
	for _, vm := range del {
		if s.m[vm].Host == host {
			delete(s.m, vm)
		}
	}
	s.batches++
	return nil
}

func (s *memSink) get(vm string) (policy.Placement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[vm]
	return p, ok
}

const (
	uuidWeb = "11111111-2222-3333-4444-000000000001"
	uuidDB  = "11111111-2222-3333-4444-000000000002"
	uuidNew = "11111111-2222-3333-4444-000000000003"
	uuidOld = "11111111-2222-3333-4444-0000000000ff"
	uuidB   = "11111111-2222-3333-4444-0000000000bb"
)

func domainXMLDoc(name, uuid string, macs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type></os><devices>", name, uuid)
	for _, m := range macs {
		fmt.Fprintf(&b, "<interface type='bridge'><mac address='%s'/><source bridge='br0'/></interface>", m)
	}
	b.WriteString("</devices></domain>")
	return b.String()
}

// testConn opens libvirt's test driver on a node file holding doms.
func testConn(t *testing.T, doms ...string) *virt.Connect {
	t.Helper()
	if err := RegisterEventLoop(); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(node, []byte("<node>"+strings.Join(doms, "")+"</node>"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := virt.NewConnect("test://" + node)
	if err != nil {
		t.Fatalf("libvirt test driver on %s: %v", node, err)
	}
	t.Cleanup(func() { _, _ = c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a loaded 2-core machine
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriterFollowsLibvirt(t *testing.T) {
	conn := testConn(t,
		domainXMLDoc("web-01", uuidWeb, "52:54:00:00:00:02", "52:54:00:00:00:01"),
		domainXMLDoc("db-01", uuidDB, "52:54:00:00:01:01"))
	sink := &memSink{m: map[string]policy.Placement{
		// A VM this host ran before the writer started, now gone.
		uuidOld: {VM: uuidOld, Host: "hv1", State: policy.StateRunning},
		// Another host's VM: never touched.
		uuidB: {VM: uuidB, Host: "hv2", State: policy.StateRunning},
	}}
	w, err := New(Config{
		Host: "hv1", URI: "test:///node", Sink: sink,
		ResyncInterval: time.Hour, // only the first resync: the rest must come from events
		Dial: func(context.Context, string) (*virt.Connect, error) {
			if err := conn.Ref(); err != nil {
				return nil, err
			}
			return conn, nil
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()

	waitFor(t, "the first resync", func() bool { _, ok := sink.get(uuidDB); return ok })
	web, _ := sink.get(uuidWeb)
	if web.Host != "hv1" || web.Name != "web-01" || web.State != policy.StateRunning ||
		!slices.Equal(web.MACs, []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}) || web.Source != "libvirt:test:///node" {
		t.Errorf("web-01's placement = %+v", web)
	}
	if _, ok := sink.get(uuidOld); ok {
		t.Error("the placement of a VM gone from hv1 was not removed")
	}
	if _, ok := sink.get(uuidB); !ok {
		t.Error("hv2's placement was removed by hv1's writer")
	}

	// Start a VM: the lifecycle event writes it (no resync is due).
	dom, err := conn.DomainCreateXML(domainXMLDoc("new-01", uuidNew, "52:54:00:00:02:01"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	waitFor(t, "new-01's placement", func() bool { _, ok := sink.get(uuidNew); return ok })

	// Pause it: the record follows.
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new-01 paused", func() bool { p, _ := sink.get(uuidNew); return p.State == policy.StatePaused })

	// Destroy it (transient: it is gone): the record goes.
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new-01's placement removed", func() bool { _, ok := sink.get(uuidNew); return !ok })

	st := w.Stats()
	if st.Resyncs != 1 || st.Events == 0 {
		t.Errorf("stats %+v: want exactly 1 resync and some events", st)
	}
	t.Logf("stats: %+v", st)
}

func TestMigrationRule(t *testing.T) {
	w := &Writer{cfg: Config{Host: "hv1"}}
	cur := map[string]policy.Placement{
		"a": {VM: "a", Host: "hv2", State: policy.StateRunning},
		"b": {VM: "b", Host: "hv2", State: policy.StateMigratingOut},
		"c": {VM: "c", Host: "hv1", State: policy.StateRunning},
	}
	for _, tc := range []struct {
		p    policy.Placement
		want bool
	}{
		{policy.Placement{VM: "a", Host: "hv1", State: policy.StateMigratingOut}, false},
		{policy.Placement{VM: "a", Host: "hv1", State: policy.StatePaused}, false},
		{policy.Placement{VM: "a", Host: "hv1", State: policy.StateRunning}, true},
		{policy.Placement{VM: "b", Host: "hv1", State: policy.StateMigratingIn}, true},
		{policy.Placement{VM: "c", Host: "hv1", State: policy.StateRunning}, false}, // unchanged
		{policy.Placement{VM: "c", Host: "hv1", State: policy.StatePaused}, true},
		{policy.Placement{VM: "d", Host: "hv1", State: policy.StatePaused}, true},
	} {
		if got := w.wants(cur, tc.p); got != tc.want {
			t.Errorf("wants(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestParseDomain(t *testing.T) {
	name, macs, err := parseDomain(domainXMLDoc("x", uuidWeb, "52:54:00:AA:00:01", "52:54:00:aa:00:01", "52:54:00:00:00:00"))
	if err != nil || name != "x" || !slices.Equal(macs, []string{"52:54:00:00:00:00", "52:54:00:aa:00:01"}) {
		t.Errorf("parseDomain = %q %v %v", name, macs, err)
	}
	// An interface without a MAC (libvirt fills one in for a running
	// domain; an inactive definition may have none) is left out.
	name, macs, err = parseDomain(`<domain><name>y</name><devices><interface type='network'/></devices></domain>`)
	if err != nil || name != "y" || len(macs) != 0 {
		t.Errorf("interface without a MAC: %q %v %v", name, macs, err)
	}
}

// TestParseDomainMalformed: domain XML the writer refuses, with the exact
// error (libvirt's answer is outside input).
func TestParseDomainMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "parse: EOF"},
		{"truncated", `<domain`, "parse: XML syntax error on line 1: unexpected EOF"},
		{"unclosed", `<domain><name>x</name>`, "parse: XML syntax error on line 1: unexpected EOF"},
		{"mismatched", `<domain><name>x</domain>`, "parse: XML syntax error on line 1: element <name> closed by </domain>"},
		{"bad MAC", domainXMLDoc("x", uuidWeb, "zz"), `interface MAC "zz" is not a MAC address`},
		{"8-byte MAC", domainXMLDoc("x", uuidWeb, "52:54:00:00:00:00:00:01"), `interface MAC "52:54:00:00:00:00:00:01" is not a MAC address`},
		{"20-byte MAC", domainXMLDoc("x", uuidWeb, "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"),
			`interface MAC "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" is not a MAC address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseDomain(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseDomain = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParseDomain: any document either fails or gives lower-case, sorted,
// unique 6-byte MACs, at most policy.MaxMACs of them.
func FuzzParseDomain(f *testing.F) {
	f.Add(domainXMLDoc("web-01", uuidWeb, "52:54:00:00:00:02", "52:54:00:00:00:01"))
	f.Add(domainXMLDoc("x", uuidWeb, "zz"))
	f.Add(`<domain><name>y</name><devices><interface type='network'/></devices></domain>`)
	f.Add(`<domain`)
	f.Fuzz(func(t *testing.T, doc string) {
		_, macs, err := parseDomain(doc)
		if err != nil {
			return
		}
		if len(macs) > policy.MaxMACs {
			t.Fatalf("%d MACs, at most %d", len(macs), policy.MaxMACs)
		}
		for i, m := range macs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 || hw.String() != m {
				t.Fatalf("MAC %q is not a canonical 6-byte MAC", m)
			}
			if i > 0 && macs[i-1] >= m {
				t.Fatalf("MACs not sorted and unique: %q", macs)
			}
		}
	})
}

// TestTruncateName: a VM name over policy.MaxVMNameLen bytes is cut at a
// rune boundary, so the placement stays valid (a cut inside a rune made
// the whole host's resync fail).
func TestTruncateName(t *testing.T) {
	long := strings.Repeat("a", policy.MaxVMNameLen-1) + "é" + "tail" // é is 2 bytes, straddling the limit
	got := truncateName(long)
	if got != strings.Repeat("a", policy.MaxVMNameLen-1) {
		t.Errorf("truncateName cut to %d bytes, want %d (before the é)", len(got), policy.MaxVMNameLen-1)
	}
	p := policy.Placement{VM: uuidWeb, Name: got, Host: "hv1", State: policy.StateRunning}
	if err := p.Validate(); err != nil {
		t.Errorf("placement with the cut name: %v", err)
	}
	if s := strings.Repeat("b", policy.MaxVMNameLen); truncateName(s) != s {
		t.Error("a name of exactly the limit was cut")
	}
}

// TestResyncSkipsUnreadableDomain: a domain that gives no valid placement
// (libvirt accepts a tab in a name; a placement does not) costs only its
// own record. The host's other VMs are still written, a gone VM's record
// is still deleted, and the unreadable VM's record is kept (it may run
// here); Resync says which domain it could not read.
func TestResyncSkipsUnreadableDomain(t *testing.T) {
	const uuidBad = "11111111-2222-3333-4444-000000000009"
	conn := testConn(t,
		domainXMLDoc("web-01", uuidWeb, "52:54:00:00:00:01"),
		domainXMLDoc("bad&#9;name", uuidBad, "52:54:00:00:00:09"))
	sink := &memSink{m: map[string]policy.Placement{
		uuidOld: {VM: uuidOld, Host: "hv1", State: policy.StateRunning},
		uuidBad: {VM: uuidBad, Host: "hv1", State: policy.StateRunning, Name: "bad"},
	}}
	w, err := New(Config{Host: "hv1", URI: "test:///node", Sink: sink, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Resync(context.Background(), conn)
	want := "placement: host hv1: 1 domains not read: domain " + uuidBad + `: placement "` + uuidBad + `": name: contains a control character or invalid UTF-8`
	if err == nil || err.Error() != want {
		t.Errorf("Resync = %v\nwant %s", err, want)
	}
	if p, ok := sink.get(uuidWeb); !ok || p.Name != "web-01" {
		t.Errorf("web-01's placement not written: %+v", p)
	}
	if _, ok := sink.get(uuidOld); ok {
		t.Error("the record of a VM gone from hv1 was kept")
	}
	if p, ok := sink.get(uuidBad); !ok || p.Name != "bad" {
		t.Errorf("the unreadable VM's record was not kept: %+v, %v", p, ok)
	}
	if st := w.Stats(); st.Errors != 1 || st.Written != 1 || st.Deleted != 1 {
		t.Errorf("stats %+v: want 1 error, 1 written, 1 deleted", st)
	}
}
