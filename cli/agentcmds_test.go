package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/apiserver"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// agent serves a real inventory through the real API server and returns
// its socket path.
func agent(t *testing.T) (*inventory.Store, string) {
	t.Helper()
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
	srv := &http.Server{Handler: (&apiserver.Server{Store: st, Version: "1.2.3", Started: time.Now()}).Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	id, _ := inventory.ParseUUID("0b6e5c1a-4f0e-4c53-9a7a-1d2e3f405061")
	a, _ := inventory.ParseMAC("52:54:00:00:00:01")
	b, _ := inventory.ParseMAC("00:16:3e:00:00:02")
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(
		inventory.UpsertVM(inventory.VM{UUID: id, Name: "web-01", State: inventory.VMStateRunning, Source: "libvirt"}),
		inventory.UpsertVIF(inventory.VIF{MAC: a, VM: id, HostDev: "vnet0", Kind: inventory.KindTap, STag: 100, PortGroup: "web"}),
		inventory.UpsertVIF(inventory.VIF{MAC: b, VM: id, HostDev: "macvtap3", Kind: inventory.KindMacvtap}),
	)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(inventory.SetState(b, inventory.StateGone, "domain stopped"))); err != nil {
		t.Fatal(err)
	}
	return st, sock
}

func TestAgentCommands(t *testing.T) {
	_, sock := agent(t)

	r := tetherctl(t, nil, "status", "--socket", sock)
	if r.code != 0 || !strings.Contains(r.stdout, "tetherd 1.2.3 on ") || !strings.Contains(r.stdout, "inventory: 1 VMs, 2 VIFs, generation 2") {
		t.Fatalf("status: %+v", r)
	}
	if strings.Contains(r.stdout, "VNIC") {
		t.Errorf("status shows a vNIC table without vNICs:\n%s", r.stdout)
	}

	r = tetherctl(t, nil, "vms", "--socket", sock)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "web-01") || !strings.Contains(lines[1], "00:16:3e:00:00:02,52:54:00:00:00:01") {
		t.Fatalf("vms: %+v", r)
	}

	r = tetherctl(t, nil, "vifs", "--socket", sock, "-o", "json")
	var vifs []api.VIF
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vifs) != nil || len(vifs) != 2 {
		t.Fatalf("vifs -o json: %+v", r)
	}
	r = tetherctl(t, nil, "vifs", "--socket", sock, "--state", "gone")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "00:16:3e:00:00:02") || !strings.Contains(lines[1], "domain stopped") {
		t.Fatalf("vifs --state gone: %+v", r)
	}
	r = tetherctl(t, nil, "vifs", "--socket", sock, "--vm", "web-01")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("vifs --vm: %+v", r)
	}

	r = tetherctl(t, nil, "vif", "52:54:00:00:00:01", "--socket", sock)
	for _, want := range []string{"vendor:", "qemu", "stag:", "100", "port group:", "web", "state:", "pending"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("vif: missing %q in %+v", want, r)
		}
	}
}

func TestAgentCommandErrors(t *testing.T) {
	_, sock := agent(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"vifs", "--socket", missing}, 1, "tetherctl: tetherd is not running (no one listens on " + missing + "); start it with 'systemctl start tetherd', or point --socket at the right path\n"},
		{[]string{"status", "--socket", missing, "-o", "yaml"}, 2, "tetherctl: --output \"yaml\" is not one of table, json\nRun 'tetherctl status --help' for usage.\n"},
		{[]string{"vifs", "--socket", sock, "--state", "happy"}, 2, "tetherctl: --state \"happy\" is not one of pending, pre-associated, associated, verified, rejected, gone\nRun 'tetherctl vifs --help' for usage.\n"},
		{[]string{"vif", "--socket", sock}, 2, "tetherctl: accepts 1 arg(s), received 0\nRun 'tetherctl vif --help' for usage.\n"},
		{[]string{"vif", "52:54:00:00:00:09", "--socket", sock}, 1, "tetherctl: no VIF with MAC 52:54:00:00:00:09 in the inventory\n"},
		{[]string{"vif", "bogus", "--socket", sock}, 2, ""},
	}
	for _, tc := range cases {
		r := tetherctl(t, nil, tc.args...)
		if r.code != tc.code || (tc.stderr != "" && r.stderr != tc.stderr) {
			t.Errorf("tetherctl %v: code %d stderr %q\nwant code %d stderr %q", tc.args, r.code, r.stderr, tc.code, tc.stderr)
		}
	}
}

func TestEventsCommand(t *testing.T) {
	st, sock := agent(t)
	done := make(chan result, 1)
	go func() { done <- tetherctl(t, nil, "events", "--socket", sock, "--timeout", "3s") }()
	for st.Stats().Subscribers == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	mac, _ := inventory.ParseMAC("52:54:00:00:00:01")
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(inventory.SetState(mac, inventory.StateGone, "domain stopped"))); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "gen=3 vif transition 52:54:00:00:00:01 pending -> gone (domain stopped)") {
		t.Fatalf("events: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	r := tetherctl(t, nil, "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "bash completion") {
		t.Fatalf("completion bash: code %d, %d bytes", r.code, len(r.stdout))
	}
}
