package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	virt "libvirt.org/go/libvirt"

	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
)

// labelledDomainXML is domainXMLDoc with tether's metadata labels, as an
// operator sets them (tests/lab/demo.sh, libvirthooks/testdata).
func labelledDomainXML(name, uuid, mac string, labels ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type></os>", name, uuid)
	fmt.Fprintf(&b, "<metadata><tether:tether xmlns:tether='%s'>", libvirthooks.MetadataNamespace)
	for _, l := range labels {
		fmt.Fprintf(&b, "<tether:label>%s</tether:label>", l)
	}
	fmt.Fprintf(&b, "</tether:tether></metadata><devices><interface type='bridge'><mac address='%s'/><source bridge='br0'/></interface></devices></domain>", mac)
	return b.String()
}

// setLabels replaces the running domain's tether metadata, as `virsh
// metadata --live` does.
func setLabels(t *testing.T, dom *virt.Domain, labels ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<tether>")
	for _, l := range labels {
		fmt.Fprintf(&b, "<label>%s</label>", l)
	}
	b.WriteString("</tether>")
	if err := dom.SetMetadata(virt.DOMAIN_METADATA_ELEMENT, b.String(), "tether", libvirthooks.MetadataNamespace, virt.DOMAIN_AFFECT_LIVE); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
}

// TestDomainLabels: labels are read with libvirthooks' parser (trimmed,
// the container's and not a vif's), sorted and unique; none is nil.
func TestDomainLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"none", domainXMLDoc("x", uuidWeb, "52:54:00:00:00:01"), nil},
		{"empty container", labelledDomainXML("x", uuidWeb, "52:54:00:00:00:01"), nil},
		{"sorted, trimmed, unique", labelledDomainXML("x", uuidWeb, "52:54:00:00:00:01", "tenant=a", " pci ", "pci"), []string{"pci", "tenant=a"}},
		{"vif labels are not the VM's", `<domain><name>x</name><uuid>` + uuidWeb + `</uuid><metadata><tether:tether xmlns:tether='` + libvirthooks.MetadataNamespace +
			`'><tether:label>vm</tether:label><tether:vif mac='52:54:00:00:00:01'><tether:label>nic</tether:label></tether:vif></tether:tether></metadata></domain>`, []string{"vm"}},
		{"other namespace ignored", `<domain><name>x</name><uuid>` + uuidWeb + `</uuid><metadata><o:tether xmlns:o='urn:other'><o:label>no</o:label></o:tether></metadata></domain>`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domainLabels(tc.doc)
			if err != nil || !slices.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("domainLabels = %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

// TestDomainLabelsMalformed: tether metadata the agent refuses fails the
// domain here too, with the exact error.
func TestDomainLabelsMalformed(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"empty label", labelledDomainXML("x", uuidWeb, "52:54:00:00:00:01", "ok", "  "),
			`tether metadata: domain XML: metadata <tether:label>: invalid tether metadata "  ": empty`},
		{"long label", labelledDomainXML("x", uuidWeb, "52:54:00:00:00:01", strings.Repeat("l", 254)),
			`tether metadata: domain XML: metadata <tether:label>: invalid tether metadata "` + strings.Repeat("l", 254) + `": longer than 253 bytes`},
		{"control character", labelledDomainXML("x", uuidWeb, "52:54:00:00:00:01", "a&#9;b"),
			`tether metadata: domain XML: metadata <tether:label>: invalid tether metadata "a\tb": contains a control character`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := domainLabels(tc.doc)
			if err == nil || err.Error() != tc.want {
				t.Errorf("domainLabels = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestWriterFollowsLabels: the writer records a domain's tether labels,
// and a metadata change (no lifecycle event, no resync due) updates the
// record; a periodic resync picks up a change as well.
func TestWriterFollowsLabels(t *testing.T) {
	conn := testConn(t, labelledDomainXML("web-01", uuidWeb, "52:54:00:00:00:01", "tenant=a", "pci"))
	sink := &memSink{m: map[string]policy.Placement{}}
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
		<-done
	}()
	waitFor(t, "web-01's placement", func() bool { _, ok := sink.get(uuidWeb); return ok })
	if p, _ := sink.get(uuidWeb); !slices.Equal(p.Labels, []string{"pci", "tenant=a"}) {
		t.Errorf("labels %q, want [pci tenant=a]", p.Labels)
	}

	dom, err := conn.LookupDomainByUUIDString(uuidWeb)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	setLabels(t, dom, "tenant=b")
	waitFor(t, "the label change", func() bool { p, _ := sink.get(uuidWeb); return slices.Equal(p.Labels, []string{"tenant=b"}) })
	setLabels(t, dom)
	waitFor(t, "the labels removed", func() bool { p, _ := sink.get(uuidWeb); return p.Labels == nil })
	if st := w.Stats(); st.Resyncs != 1 {
		t.Errorf("stats %+v: the changes came from a resync, not from metadata events", st)
	}

	// The resync path, on a writer without events.
	setLabels(t, dom, "tenant=c")
	r, err := New(Config{Host: "hv1", URI: "test:///node", Sink: sink, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Resync(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	if p, _ := sink.get(uuidWeb); !slices.Equal(p.Labels, []string{"tenant=c"}) {
		t.Errorf("after resync: labels %q, want [tenant=c]", p.Labels)
	}
}

// etcdSink is the policy store as a Sink, as tether-policyd adapts it.
type etcdSink struct{ s *store.Store }

func (e etcdSink) Placements(ctx context.Context) ([]policy.Placement, error) {
	items, _, err := e.s.List(ctx, policy.KindPlacements)
	if err != nil {
		return nil, err
	}
	var out []policy.Placement
	for _, it := range items {
		out = append(out, *it.Object.(*policy.Placement))
	}
	return out, nil
}

func (e etcdSink) ApplyPlacements(ctx context.Context, _ string, put []policy.Placement, del []string) error {
	if len(put) > 0 {
		if _, err := e.s.PutPlacements(ctx, put); err != nil {
			return err
		}
	}
	for _, vm := range del {
		if _, err := e.s.Delete(ctx, policy.KindPlacements, vm, 0); err != nil && !errors.Is(err, policy.ErrNotFound) {
			return err
		}
	}
	return nil
}

// TestLabelGroupEndToEnd: issue 5 through real parts. A port group
// matches a label; the writer records the placement of a labelled domain
// of libvirt's test driver in a real (embedded) etcd; the watch-fed cache
// resolves that VM, asked by UUID only as the switch asks, to the group's
// profile. An unlabelled VM matches nothing, and relabelling the domain
// moves the VM to the other group.
func TestLabelGroupEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, stop, err := etcdembed.StartTemp(ctx, "tether-placement-test-", etcdembed.Config{UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cli, err := store.Dial(ctx, store.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := store.New(cli, store.Options{Prefix: fmt.Sprintf("/test/labels-%d/", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []policy.Object{
		&policy.Profile{Name: "tenant-a", VID: 100, Mode: policy.ModeSwitch},
		&policy.Profile{Name: "tenant-b", VID: 200, Mode: policy.ModeSwitch},
		&policy.PortGroup{Name: "ga", Profile: "tenant-a", Match: policy.Match{Labels: map[string]string{"tenant": "a"}}},
		&policy.PortGroup{Name: "gb", Profile: "tenant-b", Match: policy.Match{Labels: map[string]string{"tenant": "b", "pci": ""}}},
	} {
		if _, err := st.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c := cache.New(st, cache.Options{})
	cctx, ccancel := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	defer func() { ccancel(); <-cdone }()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	conn := testConn(t,
		labelledDomainXML("web-01", uuidWeb, "52:54:00:00:00:01", "tenant=a"),
		domainXMLDoc("db-01", uuidDB, "52:54:00:00:00:02"))
	w, err := New(Config{Host: "hv1", URI: "test:///node", Sink: etcdSink{st}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Resync(ctx, conn); err != nil {
		t.Fatal(err)
	}
	lookup := func() (cache.Result, error) { return c.Lookup(policy.VMRef{UUID: strings.ToUpper(uuidWeb)}) }
	waitFor(t, "web-01 in group ga", func() bool { r, err := lookup(); return err == nil && r.Group == "ga" })
	r, _ := lookup()
	if r.Profile.Name != "tenant-a" || r.Profile.VID != 100 || !r.HasPlacement || !slices.Equal(r.Placement.Labels, []string{"tenant=a"}) {
		t.Errorf("web-01: %+v", r)
	}
	if _, err := c.Lookup(policy.VMRef{UUID: uuidDB}); !errors.Is(err, cache.ErrNoGroup) {
		t.Errorf("unlabelled db-01: %v, want ErrNoGroup", err)
	}
	// Labels given by the caller win over the placement's.
	if r, err := c.Lookup(policy.VMRef{UUID: uuidDB, Labels: []string{"tenant=a"}}); err != nil || r.Group != "ga" {
		t.Errorf("db-01 with the caller's labels: %+v %v", r, err)
	}

	dom, err := conn.LookupDomainByUUIDString(uuidWeb)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	setLabels(t, dom, "tenant=b", "pci")
	if err := w.Resync(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web-01 moved to group gb", func() bool { r, err := lookup(); return err == nil && r.Group == "gb" && r.Profile.VID == 200 })
}
