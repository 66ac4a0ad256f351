package vmmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	virt "libvirt.org/go/libvirt"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustUUID(t testing.TB, s string) verify.UUID {
	t.Helper()
	u, err := verify.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustMAC(t testing.TB, s string) verify.MAC {
	t.Helper()
	m, err := verify.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// domainXML returns a test-driver domain; runstate 5 is shut off, 0 the
// default (running). ifaces are raw <interface> elements.
func testDomain(name, uuid string, runstate int, ifaces ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>%s</name><uuid>%s</uuid>", name, uuid)
	b.WriteString("<memory>1024</memory><os><type>hvm</type></os><devices>")
	for _, i := range ifaces {
		b.WriteString(i)
	}
	b.WriteString("</devices>")
	if runstate != 0 {
		fmt.Fprintf(&b, "<test:runstate>%d</test:runstate>", runstate)
	}
	b.WriteString("</domain>")
	return b.String()
}

func bridgeIf(mac string) string {
	return fmt.Sprintf("<interface type='bridge'><mac address='%s'/><source bridge='br0'/></interface>", mac)
}

func qbgIf(mac, instance string) string {
	return fmt.Sprintf("<interface type='direct'><mac address='%s'/><source dev='eth0' mode='vepa'/>"+
		"<virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' typeidversion='2' instanceid='%s'/></virtualport></interface>", mac, instance)
}

func writeNode(t testing.TB, doms ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.xml")
	if err := os.WriteFile(p, []byte("<node>"+strings.Join(doms, "")+"</node>"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "test://" + p
}

const (
	uuidRun  = "11111111-0000-4000-8000-000000000001"
	uuidOff  = "11111111-0000-4000-8000-000000000002"
	uuidPaus = "11111111-0000-4000-8000-000000000003"
	uuidQbg  = "11111111-0000-4000-8000-000000000004"
	instQbg  = "22222222-0000-4000-8000-000000000004"
	macRun   = "52:54:00:00:00:01"
	macOff   = "52:54:00:00:00:02"
	macPaus  = "52:54:00:00:00:03"
	macQbg   = "52:54:00:00:00:04"
)

func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestConfirmNodeFile confirms against a test-driver node file: running,
// shut off, paused (runstate 3), an 802.1Qbg instance ID, absent, wrong
// MAC, unmanaged host; and that present answers are cached.
func TestConfirmNodeFile(t *testing.T) {
	uri := writeNode(t,
		testDomain("run", uuidRun, 0, bridgeIf(macRun)),
		testDomain("off", uuidOff, 5, bridgeIf(macOff)),
		testDomain("paused", uuidPaus, 3, bridgeIf(macPaus)),
		testDomain("qbg", uuidQbg, 0, qbgIf(macQbg, instQbg)),
	)
	m := newManager(t, Config{Hosts: map[string]string{"hv1": uri}})
	ctx := context.Background()
	for _, tc := range []struct {
		name, host, vm, mac string
		ok                  bool
		state               verify.VMState
	}{
		{"running", "hv1", uuidRun, macRun, true, verify.VMRunning},
		{"running, other MAC", "hv1", uuidRun, macOff, false, verify.VMRunning},
		{"shut off", "hv1", uuidOff, macOff, false, verify.VMInactive},
		{"paused", "hv1", uuidPaus, macPaus, true, verify.VMPaused},
		{"by domain UUID with a virtual port", "hv1", uuidQbg, macQbg, true, verify.VMRunning},
		{"by 802.1Qbg instance ID", "hv1", instQbg, macQbg, true, verify.VMRunning},
		{"absent", "hv1", "11111111-0000-4000-8000-0000000000ff", macRun, false, verify.VMAbsent},
		{"unmanaged host", "hv9", uuidRun, macRun, false, verify.VMAbsent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := m.Confirm(ctx, tc.host, mustUUID(t, tc.vm), mustMAC(t, tc.mac))
			if err != nil {
				t.Fatal(err)
			}
			if c.Confirmed != tc.ok || c.State != tc.state || (!c.Confirmed && c.Reason == "") {
				t.Errorf("%+v, want confirmed %v state %s", c, tc.ok, tc.state)
			}
		})
	}
	before := m.Stats()
	for range 10 {
		if c, err := m.Confirm(ctx, "hv1", mustUUID(t, uuidRun), mustMAC(t, macRun)); err != nil || !c.Confirmed {
			t.Fatal(c, err)
		}
	}
	after := m.Stats()
	if after.CacheHits-before.CacheHits != 10 || after.Lookups != before.Lookups || after.Dials != 1 {
		t.Errorf("stats before %+v after %+v", before, after)
	}
	m.Forget("hv1", mustUUID(t, uuidRun))
	if _, err := m.Confirm(ctx, "hv1", mustUUID(t, uuidRun), mustMAC(t, macRun)); err != nil {
		t.Fatal(err)
	}
	if m.Stats().Lookups != after.Lookups+1 {
		t.Error("Forget did not make Confirm ask libvirt")
	}
}

// TestRefresh fills the cache from a listing: afterwards every present
// domain answers without a lookup, and absent ones are still looked up.
func TestRefresh(t *testing.T) {
	var doms []string
	for i := range 50 {
		doms = append(doms, testDomain(fmt.Sprintf("vm%d", i), fmt.Sprintf("33333333-0000-4000-8000-%012d", i), 0,
			bridgeIf(fmt.Sprintf("52:54:00:33:00:%02x", i))))
	}
	m := newManager(t, Config{Hosts: map[string]string{"hv1": writeNode(t, doms...)}, CacheTTL: time.Hour})
	ctx := context.Background()
	if err := m.Refresh(ctx, "hv1"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		c, err := m.Confirm(ctx, "hv1", mustUUID(t, fmt.Sprintf("33333333-0000-4000-8000-%012d", i)), mustMAC(t, fmt.Sprintf("52:54:00:33:00:%02x", i)))
		if err != nil || !c.Confirmed {
			t.Fatal(i, c, err)
		}
	}
	if st := m.Stats(); st.Lookups != 0 || st.CacheHits != 50 || st.Refreshes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestConfirmDefaultDriver follows one domain of test:///default through
// its life: defined (inactive), started (running), suspended (paused),
// destroyed (inactive), undefined (absent), with Forget between steps.
func TestConfirmDefaultDriver(t *testing.T) {
	conn, err := virt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const uuid, mac = "44444444-0000-4000-8000-000000000001", "52:54:00:44:00:01"
	dom, err := conn.DomainDefineXML(testDomain("life", uuid, 0, bridgeIf(mac)))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	m := newManager(t, Config{Hosts: map[string]string{"hv1": "test:///default"}})
	ctx := context.Background()
	vm, hw := mustUUID(t, uuid), mustMAC(t, mac)
	step := func(name string, ok bool, state verify.VMState) {
		t.Helper()
		m.Forget("hv1", vm)
		c, err := m.Confirm(ctx, "hv1", vm, hw)
		if err != nil || c.Confirmed != ok || c.State != state {
			t.Errorf("%s: %+v %v, want confirmed %v state %s", name, c, err, ok, state)
		}
	}
	step("defined", false, verify.VMInactive)
	if err := dom.Create(); err != nil {
		t.Fatal(err)
	}
	step("started", true, verify.VMRunning)
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	step("suspended", true, verify.VMPaused)
	if err := dom.Destroy(); err != nil {
		t.Fatal(err)
	}
	step("destroyed", false, verify.VMInactive)
	if err := dom.Undefine(); err != nil {
		t.Fatal(err)
	}
	step("undefined", false, verify.VMAbsent)
}

// TestClassify covers the migration states the test driver cannot
// produce.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		st      virt.DomainState
		reason  int
		op      virt.DomainJobOperationType
		opKnown bool
		want    verify.VMState
	}{
		{virt.DOMAIN_RUNNING, int(virt.DOMAIN_RUNNING_BOOTED), 0, false, verify.VMRunning},
		{virt.DOMAIN_RUNNING, int(virt.DOMAIN_RUNNING_MIGRATED), 0, false, verify.VMMigratedIn},
		{virt.DOMAIN_RUNNING, int(virt.DOMAIN_RUNNING_POSTCOPY), 0, false, verify.VMMigratedIn},
		{virt.DOMAIN_RUNNING, int(virt.DOMAIN_RUNNING_BOOTED), virt.DOMAIN_JOB_OPERATION_MIGRATION_OUT, true, verify.VMMigratingOut},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_MIGRATION), 0, false, verify.VMMigratingIn},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_MIGRATION), virt.DOMAIN_JOB_OPERATION_MIGRATION_IN, true, verify.VMMigratingIn},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_MIGRATION), virt.DOMAIN_JOB_OPERATION_MIGRATION_OUT, true, verify.VMMigratingOut},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_POSTCOPY), 0, false, verify.VMMigratingOut},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_USER), 0, false, verify.VMPaused},
		{virt.DOMAIN_PAUSED, int(virt.DOMAIN_PAUSED_STARTING_UP), virt.DOMAIN_JOB_OPERATION_MIGRATION_IN, true, verify.VMMigratingIn},
		{virt.DOMAIN_SHUTOFF, int(virt.DOMAIN_SHUTOFF_MIGRATED), 0, false, verify.VMInactive},
		{virt.DOMAIN_SHUTOFF, 0, virt.DOMAIN_JOB_OPERATION_MIGRATION_IN, true, verify.VMInactive},
		{virt.DOMAIN_CRASHED, 0, 0, false, verify.VMInactive},
		{virt.DOMAIN_PMSUSPENDED, 0, 0, false, verify.VMRunning},
	} {
		got, detail := classify(tc.st, tc.reason, tc.op, tc.opKnown)
		if got != tc.want || detail == "" {
			t.Errorf("classify(%d, %d, %d, %v) = %s %q, want %s", tc.st, tc.reason, tc.op, tc.opKnown, got, detail, tc.want)
		}
	}
}

// TestUnreachable: a host whose libvirt cannot be opened answers with an
// error at once, and is not dialled again within the backoff.
func TestUnreachable(t *testing.T) {
	m := newManager(t, Config{Hosts: map[string]string{"hv1": "test:///nonexistent/node.xml"},
		ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	ctx := context.Background()
	for range 3 {
		if _, err := m.Confirm(ctx, "hv1", mustUUID(t, uuidRun), mustMAC(t, macRun)); err == nil {
			t.Fatal("no error")
		}
	}
	if st := m.Stats(); st.Dials != 1 || st.DialFailures != 1 || st.Errors != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestTimeout: a host whose dial hangs makes Confirm fail within Timeout,
// however many callers wait, and with at most one dial in flight.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	dials := 0
	m := newManager(t, Config{
		Hosts:   map[string]string{"hv1": "qemu+ssh://hv1/system"},
		Timeout: 50 * time.Millisecond,
		Dial: func(ctx context.Context, uri string) (*virt.Connect, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("hung")
		},
	})
	defer close(release)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm := mustUUID(t, fmt.Sprintf("55555555-0000-4000-8000-%012d", i))
			if _, err := m.Confirm(context.Background(), "hv1", vm, mustMAC(t, macRun)); err == nil {
				t.Error("no error")
			}
		}()
	}
	wg.Wait()
	if el := time.Since(start); el > time.Second {
		t.Errorf("20 Confirms took %s", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 1 {
		t.Errorf("%d dials in flight, want 1", dials)
	}
}

// TestURITemplate: hosts not in Hosts get the template's URI; names that
// do not fit in a URI are not managed.
func TestURITemplate(t *testing.T) {
	m := newManager(t, Config{URITemplate: "test:///nonexistent/{host}.xml", ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	h, err := m.host("hv7")
	if err != nil || h == nil || h.uri != "test:///nonexistent/hv7.xml" {
		t.Fatalf("%+v %v", h, err)
	}
	if h, _ := m.host("hv7/../../etc"); h != nil {
		t.Error("a host name with a slash was managed")
	}
	if _, err := New(Config{URITemplate: "qemu+ssh://x/system"}); err == nil {
		t.Error("template without {host} accepted")
	}
}

// TestClose: Confirm after Close fails.
func TestClose(t *testing.T) {
	m := newManager(t, Config{Hosts: map[string]string{"hv1": writeNode(t, testDomain("run", uuidRun, 0, bridgeIf(macRun)))}})
	ctx := context.Background()
	if c, err := m.Confirm(ctx, "hv1", mustUUID(t, uuidRun), mustMAC(t, macRun)); err != nil || !c.Confirmed {
		t.Fatal(c, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Confirm(ctx, "hv1", mustUUID(t, uuidRun), mustMAC(t, macRun)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
