package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	virt "libvirt.org/go/libvirt"
)

// testURI is libvirt's in-process test driver. Every connection to it in
// this process sees the same domains while one of them is open.
const testURI = "test:///default"

// waitTimeout bounds every wait for the inventory to follow libvirt.
const waitTimeout = 10 * time.Second

// testLogger logs warnings and errors to the test's log when -v is given.
func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() || os.Getenv("TETHER_TEST_QUIET") != "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// openStore opens a fresh inventory in a temporary directory.
func openStore(tb testing.TB, noSync bool) *inventory.Store {
	tb.Helper()
	st, err := inventory.Open(context.Background(), filepath.Join(tb.TempDir(), "inventory.db"),
		inventory.Options{NoSync: noSync, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// control opens the test's own connection (after the event loop, so that
// the shared test driver state dispatches events).
func control(tb testing.TB) *virt.Connect {
	tb.Helper()
	if err := RegisterEventLoop(); err != nil {
		tb.Fatalf("event loop: %v", err)
	}
	c, err := virt.NewConnect(testURI)
	if err != nil {
		tb.Fatalf("connect %s: %v", testURI, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// env is a running Source on test:///default with its store and the
// test's control connection.
type env struct {
	tb    testing.TB
	ctl   *virt.Connect
	store *inventory.Store
	src   *Source
}

// newEnv starts a Source; cleanup stops it and waits for Run to return.
func newEnv(tb testing.TB, store *inventory.Store, opts ...func(*Source)) *env {
	tb.Helper()
	ctl := control(tb)
	if store == nil {
		store = openStore(tb, true)
	}
	src := &Source{
		URI:          testURI,
		Store:        store,
		ReconnectMin: time.Millisecond,
		ReconnectMax: 20 * time.Millisecond,
		Logger:       testLogger(tb),
	}
	for _, o := range opts {
		o(src)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			tb.Errorf("Run did not return after cancel")
		}
	})
	e := &env{tb: tb, ctl: ctl, store: store, src: src}
	e.waitFor("first reconcile", func() error {
		if st := src.Stats(); !st.Connected || st.Reconciles == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	return e
}

// waitFor polls cond until it returns nil, failing the test at the
// deadline with cond's last error.
func (e *env) waitFor(what string, cond func() error) {
	e.tb.Helper()
	waitFor(e.tb, what, cond)
}

func waitFor(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// testDom describes one test domain: n vNICs out of the four kinds below.
type testDom struct {
	i    int
	name string
	uuid inventory.UUID
	nics int
}

func newTestDom(i, nics int) testDom {
	u, err := inventory.ParseUUID(fmt.Sprintf("7e57d0c0-0000-4000-8000-%012x", i))
	if err != nil {
		panic(err)
	}
	return testDom{i: i, name: fmt.Sprintf("vm-%04d", i), uuid: u, nics: nics}
}

func (d testDom) mac(j int) inventory.MAC {
	return inventory.MAC{0x52, 0x54, 0x00, byte(d.i >> 8), byte(d.i), byte(j)}
}

func (d testDom) instanceID(j int) inventory.UUID {
	u, _ := inventory.ParseUUID(fmt.Sprintf("1a57a9ce-0000-4000-8000-%08x%04x", d.i, j))
	return u
}

// xml is the domain's definition: vNIC j is of kind j%4: a NAT network
// (tap), a Linux bridge with a VLAN tag (tap, C-VID), macvtap in VEPA mode
// with an 802.1Qbg virtual port, an Open vSwitch bridge port. tether
// metadata gives vNIC 1 an S-Tag and a port group.
func (d testDom) xml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test'><name>%s</name><uuid>%s</uuid>", d.name, d.uuid)
	if d.nics > 1 {
		fmt.Fprintf(&b, `<metadata><tether:tether xmlns:tether="https://tether-net.github.io/xmlns/tether/1">`+
			`<tether:vif mac="%s" stag="%d" portgroup="web"/></tether:tether></metadata>`, d.mac(1), 100+d.i%1000)
	}
	b.WriteString("<memory>1024</memory><os><type>hvm</type></os><devices>")
	for j := range d.nics {
		switch j % 4 {
		case 0:
			fmt.Fprintf(&b, "<interface type='network'><mac address='%s'/><source network='default'/></interface>", d.mac(j))
		case 1:
			fmt.Fprintf(&b, "<interface type='bridge'><mac address='%s'/><source bridge='br0'/><vlan><tag id='42'/></vlan></interface>", d.mac(j))
		case 2:
			fmt.Fprintf(&b, "<interface type='direct'><mac address='%s'/><source dev='eth0' mode='vepa'/>"+
				"<virtualport type='802.1Qbg'><parameters managerid='12' typeid='1193046' typeidversion='1' instanceid='%s'/></virtualport></interface>",
				d.mac(j), d.instanceID(j))
		case 3:
			fmt.Fprintf(&b, "<interface type='bridge'><mac address='%s'/><source bridge='ovsbr0'/>"+
				"<virtualport type='openvswitch'><parameters interfaceid='%s'/></virtualport></interface>", d.mac(j), d.instanceID(j))
		}
	}
	b.WriteString("</devices></domain>")
	return b.String()
}

// wantVIFs is what the inventory should hold for d while it runs
// (caller-owned fields only; HostDev is what the test driver assigns).
func (d testDom) wantVIFs() []inventory.VIF {
	var out []inventory.VIF
	for j := range d.nics {
		v := inventory.VIF{MAC: d.mac(j), VM: d.uuid}
		switch j % 4 {
		case 0:
			v.Kind = inventory.KindTap
		case 1:
			v.Kind, v.CVID = inventory.KindTap, 42
			v.STag, v.PortGroup = uint16(100+d.i%1000), "web"
		case 2:
			v.Kind = inventory.KindMacvtap
			v.VirtualPort = inventory.VirtualPort{Type: inventory.VirtualPort8021Qbg, ManagerID: 12, TypeID: 1193046,
				TypeIDVersion: 1, InstanceID: d.instanceID(j)}
		case 3:
			v.Kind = inventory.KindTap
			v.VirtualPort = inventory.VirtualPort{Type: inventory.VirtualPortOpenvswitch, InterfaceID: d.instanceID(j)}
		}
		out = append(out, v)
	}
	return out
}

// define defines d on c and returns its handle (freed at cleanup).
func define(tb testing.TB, c *virt.Connect, d testDom) *virt.Domain {
	tb.Helper()
	dom, err := c.DomainDefineXML(d.xml())
	if err != nil {
		tb.Fatalf("define %s: %v", d.name, err)
	}
	tb.Cleanup(func() { dom.Free() })
	return dom
}

// must fails the test when a libvirt call fails.
func must(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// checkVM compares the stored VM d with want: its run state, and its VIFs
// (attributes and lifecycle state). wantVIFs nil means "no VIF stored".
func checkVM(st *inventory.Store, d testDom, state inventory.VMState, wantVIFs []inventory.VIF, vifState inventory.State) error {
	vm, err := st.VM(d.uuid)
	if err != nil {
		return err
	}
	if vm.Name != d.name || vm.State != state || vm.Source != SourceName {
		return fmt.Errorf("VM %s is %+v, want name %s state %s source %s", d.uuid, vm, d.name, state, SourceName)
	}
	got, err := st.List(context.Background(), inventory.Filter{VM: d.uuid})
	if err != nil {
		return err
	}
	if len(got) != len(wantVIFs) {
		return fmt.Errorf("VM %s has %d VIFs, want %d", d.name, len(got), len(wantVIFs))
	}
	for _, w := range wantVIFs {
		i := slices.IndexFunc(got, func(v inventory.VIF) bool { return v.MAC == w.MAC })
		if i < 0 {
			return fmt.Errorf("VM %s: VIF %s missing", d.name, w.MAC)
		}
		g := got[i]
		if g.State != vifState {
			return fmt.Errorf("VIF %s state %s (%s), want %s", g.MAC, g.State, g.Last.Reason, vifState)
		}
		if g.VM != w.VM || g.Kind != w.Kind || g.STag != w.STag || g.CVID != w.CVID ||
			g.VirtualPort != w.VirtualPort || g.PortGroup != w.PortGroup {
			return fmt.Errorf("VIF %s is %+v, want %+v", g.MAC, g, w)
		}
		if g.HostDev == "" {
			return fmt.Errorf("VIF %s has no host device", g.MAC)
		}
	}
	return nil
}

// absent reports an error while the store still holds VM id.
func absent(st *inventory.Store, id inventory.UUID) error {
	_, err := st.VM(id)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("VM %s still stored", id)
}
