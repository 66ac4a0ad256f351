package policyd

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/client"
)

// TestPlacementWriter: tether-policyd configured with a host's libvirt URI
// (libvirt's test driver on a node file: real libvirt, no daemon) writes
// that host's VMs into the store and removes the record of a VM the host
// no longer runs, leaving other hosts' records alone.
func TestPlacementWriter(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte(`<node>
<domain type='test'><name>web-01</name><uuid>6f1c0a2e-8d1e-4f7a-9b1c-000000000001</uuid><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:10:00:01'/><source bridge='br0'/></interface></devices></domain>
<domain type='test'><name>db-01</name><uuid>6f1c0a2e-8d1e-4f7a-9b1c-000000000002</uuid><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:10:00:02'/><source bridge='br0'/></interface>
<interface type='bridge'><mac address='52:54:00:10:00:03'/><source bridge='br0'/></interface></devices></domain>
</node>`), 0o644); err != nil {
		t.Fatal(err)
	}
	gone := &policy.Placement{VM: "6f1c0a2e-8d1e-4f7a-9b1c-0000000000ff", Host: "hv1", State: policy.StateRunning, Updated: time.Now()}
	other := &policy.Placement{VM: "6f1c0a2e-8d1e-4f7a-9b1c-0000000000bb", Host: "hv2", State: policy.StateRunning, Updated: time.Now()}

	// First run: records left by an earlier writer.
	d := startDaemon(t, func(c *Config) { c.Etcd.Embedded.DataDir = db })
	ctx := context.Background()
	c := &client.Client{Server: d.url, Token: writeToken, TLS: &tls.Config{RootCAs: d.rootCA}}
	for _, p := range []*policy.Placement{gone, other} {
		if _, err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	d.stop()

	// Second run, on the same data, with hv1's libvirt.
	d = startDaemon(t, func(c *Config) {
		c.Etcd.Embedded.DataDir = db
		c.Placement.Hosts = map[string]string{"hv1": "test://" + node}
	})
	c = &client.Client{Server: d.url, Token: readToken, TLS: &tls.Config{RootCAs: d.rootCA}}
	deadline := time.Now().Add(60 * time.Second) // a loaded 2-core machine
	for {
		objs, _, err := c.Objects(ctx, policy.KindPlacements)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*policy.Placement{}
		for _, o := range objs {
			p := o.(*policy.Placement)
			got[p.VM] = p
		}
		db1 := got["6f1c0a2e-8d1e-4f7a-9b1c-000000000002"]
		if len(got) == 3 && got[gone.VM] == nil && got[other.VM] != nil && db1 != nil {
			if db1.Host != "hv1" || db1.Name != "db-01" || db1.State != policy.StateRunning ||
				!slices.Equal(db1.MACs, []string{"52:54:00:10:00:02", "52:54:00:10:00:03"}) || db1.Source != "libvirt:test://"+node {
				t.Errorf("db-01's placement: %+v", db1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("placements after 60s: %d records (want web-01, db-01 and hv2's): %v", len(got), objs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
