package cli

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/edge/switchapi"
)

// fakeSwitchd serves canned answers on a unix socket, as tether-switchd's
// API does (the real daemon is exercised end to end in edge/switchd's
// network namespace tests).
func fakeSwitchd(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "switchd.sock")
	l, err := api.Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	// ago is 90 s before each request, so "1m30s ago" holds however long
	// the test takes to get here on a loaded machine.
	ago := func() time.Time { return time.Now().Add(-90 * time.Second) }
	mux := http.NewServeMux()
	mux.HandleFunc(switchapi.PathPorts, func(w http.ResponseWriter, _ *http.Request) {
		api.WriteJSON(w, 200, []switchapi.Port{
			{Name: "swA", Running: true, Neighbor: &switchapi.Neighbor{SystemName: "hostA", Signed: true, KeyID: "00112233aabbccdd"},
				Neighbors: 1, EVB: switchapi.EVB{PeerSeen: true, R: 3, RTE: 12, RWD: 20, RKA: 17}, Associated: 1,
				Counters: &switchapi.Counters{AcceptedPackets: 7, DroppedPackets: 3}},
			{Name: "swB", Error: "open port swB: no such device"},
		})
	})
	mux.HandleFunc(switchapi.PathVMs, func(w http.ResponseWriter, _ *http.Request) {
		since := ago()
		api.WriteJSON(w, 200, []switchapi.VM{
			{MAC: "52:54:00:00:00:01", VID: 100, VM: "6f1d0000-0000-4000-8000-000000000001", Host: "hostA", Port: "swA",
				State: "associated", Since: since, Verified: switchapi.Verification{KeyID: "00112233aabbccdd", VMManager: "running on hostA"}},
			{MAC: "52:54:00:00:00:02", VM: "6f1d0000-0000-4000-8000-000000000002", Host: "hostB", Port: "swB",
				State: "pre-associated", Since: since, Verified: switchapi.Verification{KeyID: "99", VMManager: "migrating-in on hostB", Migration: true}},
		})
	})
	mux.HandleFunc(switchapi.PathRejects, func(w http.ResponseWriter, _ *http.Request) {
		since := ago()
		api.WriteJSON(w, 200, []switchapi.Reject{
			{Time: since, Port: "swB", Mode: "ASSOCIATE", MAC: "52:54:00:00:00:01", VM: "6f1d0000-0000-4000-8000-000000000002",
				Host: "hostB", Reason: "mac-live-elsewhere", Message: "MAC 52:54:00:00:00:01 is live at tor1/swA"},
			{Time: since, Port: "swA", Reason: "bad-signature", Message: "identity: bad signature"},
		})
	})
	mux.HandleFunc(switchapi.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		since := ago()
		api.WriteJSON(w, 200, switchapi.Status{Switch: "tor1", KeyID: "abcd", Version: "1.0", Started: since, Bridge: "br0", Table: "tether",
			Grace: switchapi.Grace{Done: true, Inherited: 2, Removed: 1}, Ports: 2, VMs: 1, Accepted: 5,
			Refused:     map[string]uint64{"mac-live-elsewhere": 1, "bad-signature": 2},
			RuleLatency: switchapi.Latency{Count: 5, P50: 110, P99: 900, Max: 1000}})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestSwitchCommands(t *testing.T) {
	sock := fakeSwitchd(t)

	r := tetherctl(t, nil, "switch", "ports", "--socket", sock)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "PORT") ||
		!strings.Contains(lines[1], "hostA") || !strings.Contains(lines[1], "00112233aabbccdd") || !strings.Contains(lines[1], "rka=17") ||
		!strings.Contains(lines[2], "DOWN (open port swB: no such device)") {
		t.Fatalf("switch ports: %+v", r)
	}

	r = tetherctl(t, nil, "switch", "vms", "--socket", sock)
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "swA") || !strings.Contains(lines[1], "100") ||
		!strings.Contains(lines[1], "1m30s ago") || !strings.Contains(lines[1], "key 00112233aabbccdd, running on hostA") ||
		!strings.Contains(lines[2], "untagged") || !strings.Contains(lines[2], "migration") {
		t.Fatalf("switch vms: %+v", r)
	}
	r = tetherctl(t, nil, "switch", "vms", "--socket", sock, "--port", "swA", "-o", "json")
	var vms []switchapi.VM
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vms) != nil || len(vms) != 1 || vms[0].Port != "swA" {
		t.Fatalf("switch vms --port swA -o json: %+v", r)
	}

	r = tetherctl(t, nil, "switch", "rejects", "--socket", sock, "--reason", "mac-live-elsewhere")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "mac-live-elsewhere") || !strings.Contains(lines[1], "hostB") {
		t.Fatalf("switch rejects: %+v", r)
	}
	r = tetherctl(t, nil, "switch", "rejects", "--socket", sock, "-o", "json")
	var rjs []switchapi.Reject
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rjs) != nil || len(rjs) != 2 {
		t.Fatalf("switch rejects -o json: %+v", r)
	}

	r = tetherctl(t, nil, "switch", "status", "--socket", sock)
	if r.code != 0 || !strings.Contains(r.stdout, "tether-switchd 1.0 on tor1") ||
		!strings.Contains(r.stdout, "bad-signature=2 mac-live-elsewhere=1") || !strings.Contains(r.stdout, "p50 110us, p99 900us") {
		t.Fatalf("switch status: %+v", r)
	}
}

func TestSwitchCommandsErrors(t *testing.T) {
	down := filepath.Join(t.TempDir(), "none.sock")
	r := tetherctl(t, nil, "switch", "vms", "--socket", down)
	if r.code != 1 || !strings.Contains(r.stderr, "tether-switchd is not running (no one listens on "+down+")") ||
		!strings.Contains(r.stderr, "systemctl start tether-switchd") {
		t.Fatalf("daemon down: %+v", r)
	}
	r = tetherctl(t, nil, "switch", "ports", "-o", "yaml")
	if r.code != 2 || !strings.Contains(r.stderr, `--output "yaml" is not one of table, json`) {
		t.Fatalf("bad -o: %+v", r)
	}
	r = tetherctl(t, nil, "switch")
	if r.code != 2 || !strings.Contains(r.stderr, "ports") || !strings.Contains(r.stderr, "rejects") {
		t.Fatalf("switch without a subcommand: %+v", r)
	}
	r = tetherctl(t, nil, "switch", "vms", "extra")
	if r.code != 2 {
		t.Fatalf("extra argument: %+v", r)
	}
	// The default socket is switchd's, not tetherd's.
	r = tetherctl(t, nil, "switch", "rejects", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, switchapi.DefaultSocket) {
		t.Fatalf("--help: %+v", r)
	}
}
