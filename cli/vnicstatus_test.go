package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/apiserver"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// staticSource is an event source whose status is fixed: what the
// datapath reports for its vNICs, served through the real API server.
type staticSource api.SourceStatus

func (s staticSource) Status() api.SourceStatus { return api.SourceStatus(s) }

// TestStatusVNICs: `tetherctl status` shows each vNIC the datapath
// configures, its state and, for a drifted or failed one, the differences
// or the failure, under the sources table that carries the datapath's last
// failure; -o json carries them as the API does.
func TestStatusVNICs(t *testing.T) {
	dir := t.TempDir()
	st, err := inventory.Open(context.Background(), filepath.Join(dir, "inv.db"), inventory.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sock := filepath.Join(dir, "tetherd.sock")
	l, err := api.Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	dp := api.SourceStatus{Name: "datapath", Connected: true, Events: 7,
		LastError: "VIF 52:54:00:00:00:03: ensure partition vNIC: uplink eth9 missing (retry in 1s)",
		VNICs: []api.VNICStatus{
			{VIF: "52:54:00:00:00:01", Kind: "partition", Device: "tp2.300+tq2.300", State: "drifted",
				Drift: []string{"tq2.300: mtu 1400, want 1500", "tp2.300: down"}},
			{VIF: "52:54:00:00:00:02", Kind: "vf", Device: "ens1f0/vf3", State: "ok"},
			{VIF: "52:54:00:00:00:03", Kind: "partition", State: "error", LastError: "uplink eth9 missing"},
		}}
	srv := &http.Server{Handler: (&apiserver.Server{Store: st, Version: "1.2.3", Started: time.Now(),
		Sources: []apiserver.SourceStatus{staticSource{Name: "libvirt", Connected: true}, staticSource(dp)}}).Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	r := tetherctl(t, nil, "status", "--socket", sock)
	if r.code != 0 {
		t.Fatalf("status: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "VNIC ") })
	if i < 0 || len(lines) != i+4 {
		t.Fatalf("no vNIC table of 3 rows:\n%s", r.stdout)
	}
	for _, want := range []string{"datapath  connected", "uplink eth9 missing (retry in 1s)"} {
		if !strings.Contains(strings.Join(lines[:i], "\n"), want) {
			t.Errorf("sources table lacks %q:\n%s", want, r.stdout)
		}
	}
	fields := func(l string) []string { return strings.Fields(l) }
	if got := fields(lines[i]); !slices.Equal(got, []string{"VNIC", "KIND", "DEVICE", "STATE", "DRIFT", "OR", "LAST", "ERROR"}) {
		t.Errorf("header %q", lines[i])
	}
	for j, want := range []string{
		"52:54:00:00:00:01 partition tp2.300+tq2.300 drifted tq2.300: mtu 1400, want 1500; tp2.300: down",
		"52:54:00:00:00:02 vf ens1f0/vf3 ok -",
		"52:54:00:00:00:03 partition - error uplink eth9 missing",
	} {
		if got := strings.Join(fields(lines[i+1+j]), " "); got != want {
			t.Errorf("row %d\n got  %s\n want %s", j, got, want)
		}
	}

	r = tetherctl(t, nil, "status", "--socket", sock, "-o", "json")
	var got api.Status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got.Sources) != 2 {
		t.Fatalf("status -o json: %+v", r)
	}
	if v := got.Sources[1].VNICs; len(v) != 3 || v[0].State != "drifted" || len(v[0].Drift) != 2 || v[2].LastError != "uplink eth9 missing" {
		t.Errorf("vNICs in JSON: %+v", v)
	}
}
