package libvirthooks

import (
	"errors"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	good := []struct {
		argv []string
		want Event
	}{
		{[]string{"qemu", "web-01", "prepare", "begin", "-"}, Event{DriverQEMU, "web-01", OpPrepare, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "start", "begin", "-"}, Event{DriverQEMU, "web-01", OpStart, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "started", "begin", "-"}, Event{DriverQEMU, "web-01", OpStarted, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "stopped", "end", "-"}, Event{DriverQEMU, "web-01", OpStopped, SubEnd, "-"}},
		{[]string{"qemu", "web-01", "release", "end", "destroyed"}, Event{DriverQEMU, "web-01", OpRelease, SubEnd, "destroyed"}},
		{[]string{"qemu", "web-01", "release", "end", "from snapshot"}, Event{DriverQEMU, "web-01", OpRelease, SubEnd, "from snapshot"}},
		{[]string{"qemu", "web-01", "migrate", "begin", "-"}, Event{DriverQEMU, "web-01", OpMigrate, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "restore", "begin", "-"}, Event{DriverQEMU, "web-01", OpRestore, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "reconnect", "begin", "-"}, Event{DriverQEMU, "web-01", OpReconnect, SubBegin, "-"}},
		{[]string{"qemu", "web-01", "attach", "begin", "-"}, Event{DriverQEMU, "web-01", OpAttach, SubBegin, "-"}},
		{[]string{"qemu", "vm with spaces", "start", "-", "-"}, Event{DriverQEMU, "vm with spaces", OpStart, SubNone, "-"}},
		{[]string{"network", "default", "start", "begin", "-"}, Event{DriverNetwork, "default", OpStart, SubBegin, "-"}},
		{[]string{"network", "default", "started", "begin", "-"}, Event{DriverNetwork, "default", OpStarted, SubBegin, "-"}},
		{[]string{"network", "default", "stopped", "end", "-"}, Event{DriverNetwork, "default", OpStopped, SubEnd, "-"}},
		{[]string{"network", "default", "port-created", "begin", "-"}, Event{DriverNetwork, "default", OpPortCreated, SubBegin, "-"}},
		{[]string{"network", "default", "port-deleted", "begin", "-"}, Event{DriverNetwork, "default", OpPortDeleted, SubBegin, "-"}},
		{[]string{"network", "default", "updated", "begin", "-"}, Event{DriverNetwork, "default", OpUpdated, SubBegin, "-"}},
	}
	for _, tc := range good {
		t.Run(strings.Join(tc.argv, "_"), func(t *testing.T) {
			got, err := ParseArgs(tc.argv)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.argv, err)
			}
			if got != tc.want {
				t.Fatalf("ParseArgs(%q) = %+v, want %+v", tc.argv, got, tc.want)
			}
		})
	}

	bad := []struct {
		name    string
		argv    []string
		wantErr string
		wantAs  any
	}{
		{"no args", nil, "want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got 0", new(*ArgCountError)},
		{"script args only", []string{"web-01", "start", "begin", "-"}, "want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got 4", new(*ArgCountError)},
		{"too many", []string{"qemu", "web-01", "start", "begin", "-", "x"}, "want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got 6", new(*ArgCountError)},
		{"lxc", []string{"lxc", "c1", "start", "begin", "-"}, `unknown hook driver "lxc" (want qemu or network)`, new(*UnknownDriverError)},
		{"daemon", []string{"daemon", "-", "start", "-", "start"}, `unknown hook driver "daemon" (want qemu or network)`, new(*UnknownDriverError)},
		{"empty driver", []string{"", "vm", "start", "begin", "-"}, `unknown hook driver "" (want qemu or network)`, new(*UnknownDriverError)},
		{"qemu unknown op", []string{"qemu", "vm", "define", "begin", "-"}, `unknown qemu operation "define" (want one of start, stopped, prepare, release, migrate, started, reconnect, attach, restore)`, new(*UnknownOperationError)},
		{"qemu network op", []string{"qemu", "vm", "port-created", "begin", "-"}, `unknown qemu operation "port-created" (want one of start, stopped, prepare, release, migrate, started, reconnect, attach, restore)`, new(*UnknownOperationError)},
		{"network qemu op", []string{"network", "n", "migrate", "begin", "-"}, `unknown network operation "migrate" (want one of start, started, stopped, port-created, port-deleted, updated)`, new(*UnknownOperationError)},
		{"network legacy plugged", []string{"network", "n", "plugged", "begin", "-"}, `unknown network operation "plugged" (want one of start, started, stopped, port-created, port-deleted, updated)`, new(*UnknownOperationError)},
		{"case matters", []string{"qemu", "vm", "Start", "begin", "-"}, `unknown qemu operation "Start" (want one of start, stopped, prepare, release, migrate, started, reconnect, attach, restore)`, new(*UnknownOperationError)},
		{"bad subop", []string{"qemu", "vm", "start", "middle", "-"}, `unknown sub-operation "middle" (want begin, end or -)`, new(*UnknownSubOperationError)},
		{"empty subop", []string{"qemu", "vm", "start", "", "-"}, `unknown sub-operation "" (want begin, end or -)`, new(*UnknownSubOperationError)},
		{"empty object", []string{"qemu", "", "start", "begin", "-"}, `bad OBJECT argument "": empty`, new(*ArgError)},
		{"long object", []string{"qemu", strings.Repeat("a", 1025), "start", "begin", "-"}, `bad OBJECT argument "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...": longer than 1024 bytes`, new(*ArgError)},
		{"invalid utf8 object", []string{"qemu", "vm\xff", "start", "begin", "-"}, `bad OBJECT argument "vm\xff": not valid UTF-8`, new(*ArgError)},
		{"invalid utf8 extra", []string{"qemu", "vm", "release", "end", "\xc3"}, `bad EXTRA argument "\xc3": not valid UTF-8`, new(*ArgError)},
		{"long extra", []string{"qemu", "vm", "release", "end", strings.Repeat("b", 1025)}, `bad EXTRA argument "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...": longer than 1024 bytes`, new(*ArgError)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseArgs(tc.argv)
			if err == nil {
				t.Fatalf("ParseArgs(%q) = %+v, want error", tc.argv, ev)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.wantErr)
			}
			if !errors.As(err, tc.wantAs) {
				t.Errorf("error %T is not %T", err, tc.wantAs)
			}
			if got := ExitCode(err); got != ExitUsage {
				t.Errorf("ExitCode = %d, want %d", got, ExitUsage)
			}
			if ev != (Event{}) {
				t.Errorf("event %+v returned with error", ev)
			}
		})
	}
}

func TestEventXMLFilter(t *testing.T) {
	for _, op := range Operations(DriverQEMU) {
		for _, sub := range []SubOperation{SubBegin, SubEnd, SubNone} {
			ev := Event{DriverQEMU, "vm", op, sub, "-"}
			wantFilter := op == OpMigrate || op == OpRestore
			if ev.IsXMLFilter() != wantFilter {
				t.Errorf("%s: IsXMLFilter = %v", ev, !wantFilter)
			}
			if ev.MustPrintXML() {
				t.Errorf("%s: MustPrintXML = true; tether-hook must never write stdout", ev)
			}
		}
	}
	for _, op := range Operations(DriverNetwork) {
		ev := Event{DriverNetwork, "n", op, SubBegin, "-"}
		if ev.IsXMLFilter() || ev.MustPrintXML() {
			t.Errorf("%s: network hooks have no output", ev)
		}
		if want := op == OpPortCreated || op == OpPortDeleted; ev.HasPort() != want {
			t.Errorf("%s: HasPort = %v", ev, !want)
		}
	}
	if got := (Event{DriverQEMU, "vm", OpMigrate, SubBegin, "-"}).String(); got != "qemu vm migrate begin -" {
		t.Errorf("String = %q", got)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitInternal},
		{&ArgCountError{}, ExitUsage},
		{&XMLError{Doc: "domain", Kind: ErrMalformedXML}, ExitBadXML},
		{&OversizeError{Limit: 1}, ExitOversize},
		{&SpoolFullError{}, ExitSpoolFull},
		{errors.Join(errors.New("ctx"), &OversizeError{Limit: 1}), ExitOversize},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add("qemu", "web-01", "start", "begin", "-")
	f.Add("network", "default", "port-created", "begin", "-")
	f.Add("qemu", "vm", "release", "end", "destroyed")
	f.Add("lxc", "", "x", "y", "")
	f.Fuzz(func(t *testing.T, a, b, c, d, e string) {
		ev, err := ParseArgs([]string{a, b, c, d, e})
		if err != nil {
			if ExitCode(err) != ExitUsage {
				t.Fatalf("error %v has exit code %d", err, ExitCode(err))
			}
			return
		}
		// A good event survives the spool encoding unchanged.
		rec, err := encodeSpoolRecord(ev, []byte("<domain/>"), testTime)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _, err := decodeSpoolRecord(rec)
		if err != nil || got != ev {
			t.Fatalf("spool round trip: %+v, %v; want %+v", got, err, ev)
		}
	})
}
