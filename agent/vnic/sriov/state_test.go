package sriov

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goodRecord is a state file as Record.MarshalBinary writes it.
const goodRecord = `{
  "version": 1,
  "pf": "eth0",
  "vf": 3,
  "vnic": "vm-a/net0",
  "phase": "configured",
  "original": {
    "mac": "02:00:00:00:aa:01",
    "vlan": 7,
    "qos": 1,
    "vlan_proto": "802.1Q",
    "spoofchk": true,
    "trust": true,
    "link_state": "disable",
    "min_tx_rate": 10,
    "max_tx_rate": 100
  },
  "desired": {
    "mac": "52:54:00:12:34:56",
    "vlan": 100,
    "qos": 5,
    "vlan_proto": "802.1ad",
    "spoofchk": false,
    "trust": false,
    "link_state": "enable",
    "min_tx_rate": 50,
    "max_tx_rate": 500
  }
}
`

func TestRecordRoundTrip(t *testing.T) {
	var r Record
	if err := r.UnmarshalBinary([]byte(goodRecord)); err != nil {
		t.Fatal(err)
	}
	want := Record{VF: VF{PF: "eth0", Index: 3}, VNIC: "vm-a/net0", Phase: PhaseConfigured, Original: operatorOriginal, Desired: tetherWant}
	if r.VF != want.VF || r.VNIC != want.VNIC || r.Phase != want.Phase || !r.Original.Equal(want.Original) || !r.Desired.Equal(want.Desired) {
		t.Fatalf("decoded %+v, want %+v", r, want)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != goodRecord {
		t.Errorf("re-encoded:\n%s\nwant:\n%s", b, goodRecord)
	}
}

// replace returns goodRecord with old replaced by new exactly once.
func replace(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(goodRecord, old) < 1 {
		t.Fatalf("%q not in goodRecord", old)
	}
	return strings.Replace(goodRecord, old, new, 1)
}

func TestRecordMalformed(t *testing.T) {
	for _, c := range []struct {
		name, in, err string
	}{
		{"empty", "", "sriov: state record: EOF"},
		{"truncated", goodRecord[:40], "sriov: state record: unexpected EOF"},
		{"array", "[]", "sriov: state record: json: cannot unmarshal array into Go value of type sriov.recordJSON"},
		{"unknown field", replace(t, `"version": 1,`, `"version": 1, "owner": "x",`), `sriov: state record: json: unknown field "owner"`},
		{"two objects", goodRecord + "{}", "sriov: state record: data after the object"},
		{"too big", goodRecord + strings.Repeat(" ", 64<<10), "sriov: state record: 66085 bytes, more than 65536"},
		{"no version", replace(t, `"version": 1,`, ``), `sriov: state record: missing "version"`},
		{"version 2", replace(t, `"version": 1,`, `"version": 2,`), "sriov: state record: version 2, want 1"},
		{"version string", replace(t, `"version": 1,`, `"version": "1",`), "sriov: state record: json: cannot unmarshal string into Go struct field recordJSON.version of type int"},
		{"no pf", replace(t, `"pf": "eth0",`, ``), `sriov: state record: missing "pf"`},
		{"pf with slash", replace(t, `"pf": "eth0",`, `"pf": "../x",`), `sriov: state record: sriov: bad VF: PF name "../x" is not a valid interface name`},
		{"pf too long", replace(t, `"pf": "eth0",`, `"pf": "abcdefghijklmnop",`), `sriov: state record: sriov: bad VF: PF name "abcdefghijklmnop" is not a valid interface name`},
		{"pf dot", replace(t, `"pf": "eth0",`, `"pf": ".",`), `sriov: state record: sriov: bad VF: PF name "." is not a valid interface name`},
		{"no vf", replace(t, `"vf": 3,`, ``), `sriov: state record: missing "vf"`},
		{"vf -1", replace(t, `"vf": 3,`, `"vf": -1,`), "sriov: state record: sriov: bad VF: index -1 out of range 0-65535"},
		{"vf 65536", replace(t, `"vf": 3,`, `"vf": 65536,`), "sriov: state record: sriov: bad VF: index 65536 out of range 0-65535"},
		{"no vnic", replace(t, `"vnic": "vm-a/net0",`, ``), `sriov: state record: missing "vnic"`},
		{"empty vnic", replace(t, `"vnic": "vm-a/net0",`, `"vnic": "",`), `sriov: state record: empty "vnic"`},
		{"no phase", replace(t, `"phase": "configured",`, ``), `sriov: state record: missing "phase"`},
		{"bad phase", replace(t, `"phase": "configured",`, `"phase": "done",`), `sriov: state record: phase "done" is not configuring, configured or releasing`},
		{"no original", replace(t, `"original"`, `"x_original"`), `sriov: state record: json: unknown field "x_original"`},
		{"null desired", replace(t, "\"desired\": {\n    \"mac\": \"52:54:00:12:34:56\",\n    \"vlan\": 100,\n    \"qos\": 5,\n    \"vlan_proto\": \"802.1ad\",\n    \"spoofchk\": false,\n    \"trust\": false,\n    \"link_state\": \"enable\",\n    \"min_tx_rate\": 50,\n    \"max_tx_rate\": 500\n  }", "\"desired\": null"), `sriov: state record: missing "desired"`},
		{"no desired", replace(t, ",\n  \"desired\": {\n    \"mac\": \"52:54:00:12:34:56\",\n    \"vlan\": 100,\n    \"qos\": 5,\n    \"vlan_proto\": \"802.1ad\",\n    \"spoofchk\": false,\n    \"trust\": false,\n    \"link_state\": \"enable\",\n    \"min_tx_rate\": 50,\n    \"max_tx_rate\": 500\n  }", ""), `sriov: state record: missing "desired"`},
		{"original without mac", replace(t, `"mac": "02:00:00:00:aa:01",`, ``), `sriov: state record: original: missing "mac"`},
		{"original without max rate", replace(t, `"min_tx_rate": 10,
    "max_tx_rate": 100`, `"min_tx_rate": 10`), `sriov: state record: original: missing "max_tx_rate"`},
		{"bad mac", replace(t, `"mac": "02:00:00:00:aa:01",`, `"mac": "02:00:00:00:aa",`), `sriov: state record: original: mac "02:00:00:00:aa" is not a 6-byte MAC address`},
		{"long mac", replace(t, `"mac": "02:00:00:00:aa:01",`, `"mac": "02:00:00:00:aa:01:02:03",`), `sriov: state record: original: mac "02:00:00:00:aa:01:02:03" is not a 6-byte MAC address`},
		{"multicast mac", replace(t, `"mac": "52:54:00:12:34:56",`, `"mac": "33:33:00:00:00:01",`), `sriov: state record: desired: sriov: MAC must be a 6-byte unicast address: "33:33:00:00:00:01"`},
		{"vlan 4096", replace(t, `"vlan": 7,`, `"vlan": 4096,`), "sriov: state record: original: sriov: VLAN must be 0-4094: 4096"},
		{"vlan 70000", replace(t, `"vlan": 7,`, `"vlan": 70000,`), "sriov: state record: json: cannot unmarshal number 70000 into Go struct field settingsJSON.original.vlan of type uint16"},
		{"qos 8", replace(t, `"qos": 1,`, `"qos": 8,`), "sriov: state record: original: sriov: QoS must be 0-7: 8"},
		{"bad proto", replace(t, `"vlan_proto": "802.1ad",`, `"vlan_proto": "0x9100",`), `sriov: state record: desired: vlan_proto "0x9100" is not 802.1Q or 802.1ad`},
		{"bad link state", replace(t, `"link_state": "disable",`, `"link_state": "up",`), `sriov: state record: link state "up": not auto, enable or disable`},
		{"link state number", replace(t, `"link_state": "disable",`, `"link_state": 2,`), "sriov: state record: json: cannot unmarshal number into Go struct field settingsJSON.original.link_state of type *sriov.LinkState"},
		{"min above max", replace(t, `"min_tx_rate": 50,`, `"min_tx_rate": 501,`), "sriov: state record: desired: sriov: min tx rate above max tx rate: min 501, max 500"},
		{"negative rate", replace(t, `"min_tx_rate": 50,`, `"min_tx_rate": -1,`), "sriov: state record: json: cannot unmarshal number -1 into Go struct field settingsJSON.desired.min_tx_rate of type uint32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Record
			err := r.UnmarshalBinary([]byte(c.in))
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", r, c.err)
			}
			if !errors.Is(err, ErrBadRecord) {
				t.Errorf("error %v does not wrap ErrBadRecord", err)
			}
			if err.Error() != c.err {
				t.Errorf("error:\n got %s\nwant %s", err, c.err)
			}
		})
	}
}

func FuzzRecord(f *testing.F) {
	f.Add([]byte(goodRecord))
	f.Add([]byte(strings.Replace(goodRecord, `"configured"`, `"releasing"`, 1)))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		// What decodes re-encodes, and decodes to the same record.
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		var r2 Record
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if r2.VF != r.VF || r2.VNIC != r.VNIC || r2.Phase != r.Phase || !r2.Original.Equal(r.Original) || !r2.Desired.Equal(r.Desired) {
			t.Fatalf("round trip: %+v != %+v", r2, r)
		}
		enc2, _ := r2.MarshalBinary()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// TestStoreFiles checks the directory as a restart sees it: records come
// back sorted, temporaries and strangers are skipped, a corrupt or
// misplaced record is an error that names the file and leaves the others.
func TestStoreFiles(t *testing.T) {
	dir := t.TempDir()
	s := store{dir: dir}
	for _, vf := range []VF{{"eth1", 0}, {"eth0", 10}, {"eth0", 2}} {
		if err := s.save(&Record{VF: vf, VNIC: "v-" + vf.String(), Phase: PhaseConfigured, Original: operatorOriginal, Desired: tetherWant}); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(s.path(VF{"eth0", 2})); err != nil || fi.Mode().Perm() != 0o600 || fi.Name() != "eth0.vf2.json" {
		t.Errorf("state file: %v %v", fi, err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".eth0.vf7.json.tmp-123", "garbage") // a crashed atomicfile write
	write("README", "not a record")
	write("eth2.vf0.json", "{")
	write("eth3.vf0.json", goodRecord) // holds eth0 vf 3
	rs, errs := s.all()
	var got []string
	for _, r := range rs {
		got = append(got, r.VF.String())
	}
	if strings.Join(got, ";") != "eth0 vf 2;eth0 vf 10;eth1 vf 0" {
		t.Errorf("records: %v", got)
	}
	if len(errs) != 2 ||
		errs[0].Error() != filepath.Join(dir, "eth2.vf0.json")+": sriov: state record: unexpected EOF" ||
		errs[1].Error() != filepath.Join(dir, "eth3.vf0.json")+": sriov: state record: holds eth0 vf 3" {
		t.Errorf("errors: %v", errs)
	}
	if r, err := s.load(VF{"eth3", 0}); r != nil || err == nil {
		t.Errorf("load of a misplaced record: %v %v", r, err)
	}
	if r, err := s.load(VF{"eth9", 0}); r != nil || err != nil {
		t.Errorf("load of no record: %v %v", r, err)
	}
	if err := s.remove(VF{"eth9", 0}); err != nil {
		t.Errorf("remove of no record: %v", err)
	}
}

// TestManagerRefusesBeforeKernel checks what the manager decides from its
// records and arguments alone, before it reads any PF (none exists here).
func TestManagerRefusesBeforeKernel(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	vf := VF{PF: "eth0", Index: 3}
	if err := os.WriteFile(filepath.Join(dir, "eth0.vf3.json"), []byte(goodRecord), 0o600); err != nil {
		t.Fatal(err)
	}
	err = m.Ensure(ctx, "vm-b/net0", vf, tetherWant)
	var inUse *InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, ErrInUse) || err.Error() != `sriov: eth0 vf 3 is held by vNIC "vm-a/net0", not "vm-b/net0"` {
		t.Errorf("Ensure of a held VF: %v", err)
	}
	if err := m.Release(ctx, "vm-b/net0", vf); !errors.As(err, &inUse) {
		t.Errorf("Release of a held VF: %v", err)
	}
	if err := m.Release(ctx, "vm-b/net0", VF{PF: "eth0", Index: 4}); err != nil {
		t.Errorf("Release of a VF that is not tether's: %v", err)
	}
	for _, c := range []struct {
		vnic string
		vf   VF
		s    Settings
		err  string
	}{
		{"", vf, tetherWant, "sriov: ensure: empty vNIC name"},
		{"v", VF{PF: "eth0/x", Index: 0}, tetherWant, `ensure eth0/x vf 0: sriov: bad VF: PF name "eth0/x" is not a valid interface name`},
		{"v", VF{PF: "eth0", Index: -2}, tetherWant, "ensure eth0 vf -2: sriov: bad VF: index -2 out of range 0-65535"},
		{"v", VF{PF: "eth0", Index: 1}, Settings{MAC: tetherWant.MAC, VLAN: 5000}, "ensure eth0 vf 1: sriov: VLAN must be 0-4094: 5000"},
	} {
		if err := m.Ensure(ctx, c.vnic, c.vf, c.s); err == nil || err.Error() != c.err {
			t.Errorf("Ensure(%q, %v): %v, want %q", c.vnic, c.vf, err, c.err)
		}
	}
	if err := m.Ensure(ctx, "v", VF{PF: "nosuchpf9", Index: 0}, tetherWant); !errors.Is(err, ErrNoVF) {
		t.Errorf("Ensure on a missing PF: %v, want ErrNoVF", err)
	}
	// One manager per state directory, until it closes.
	if m2, err := New(Options{StateDir: dir}); !errors.Is(err, ErrLocked) || err.Error() != "sriov: state directory in use by another manager: "+dir {
		t.Errorf("second manager on %s: %v, want ErrLocked", dir, err)
		if m2 != nil {
			m2.Close()
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatalf("manager after the first closed: %v", err)
	}
	m2.Close()
	if _, err := New(Options{}); err == nil || err.Error() != "sriov: no state directory" {
		t.Errorf("New without a state directory: %v", err)
	}
}
