package partition

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/tether-net/tether/agent/vnic"
)

// TestHostConcurrentCalls runs Ensure, Release, Status and the reconcile
// loop at once (go test -race) on this machine's kernel, which has no
// 8021q: every Ensure fails to make its devices, which must leave the vNIC
// desired and bound, in state error, until Release. The happy paths run in
// the kernel VM.
func TestHostConcurrentCalls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	l := newLab(t)
	a := netlink.NewLinkAttrs()
	a.Name = "up0"
	a.Flags = net.FlagUp
	if err := l.h.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "peer0"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := l.open(t, dir, vnic.DriftRepair)
	run(t, m)
	ctx := context.Background()
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("52:54:02:00:%02x:%02x", w, i)
				_, err := m.Ensure(ctx, Spec{ID: id, Uplink: "up0", STag: uint16(2 + w*each + i), CVID: 7})
				if err == nil {
					t.Errorf("Ensure %s succeeded on a kernel without 8021q", id)
				}
				if st, ok := m.Status(id); !ok || st.State != StateError || st.LastError == "" {
					t.Errorf("status of %s: %+v, %v; want state error", id, st, ok)
				}
				_ = m.Statuses()
				if i%2 == 0 {
					if err := m.Release(ctx, id); err != nil {
						t.Errorf("Release %s: %v", id, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if got, want := len(m.Statuses()), workers*(each/2); got != want { // the odd ones stay
		t.Errorf("%d vNICs desired, want %d", got, want)
	}
	// The failed vNICs hold their S-Tags.
	if _, err := m.Ensure(ctx, Spec{ID: "52:54:02:ff:00:00", Uplink: "up0", STag: 3}); err == nil || err.Error() !=
		"partition: S-Tag 3 on uplink up0 is bound to vNIC 52:54:02:00:00:01, not 52:54:02:ff:00:00" {
		t.Errorf("S-Tag of a failed vNIC: %v", err)
	}
	for _, st := range m.Statuses() {
		if err := m.Release(ctx, st.Spec.ID); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, StateDir))
	if err != nil || len(ents) != 0 {
		t.Errorf("state directory after releasing all: %d files, %v", len(ents), err)
	}
}
