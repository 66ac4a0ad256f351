package daemonflags

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestCheckConfig(t *testing.T) {
	write := func(w io.Writer) error { _, err := io.WriteString(w, "a: 1\n"); return err }
	for _, tc := range []struct {
		name   string
		check  func() error
		write  func(io.Writer) error
		code   int
		stdout string
		stderr string
	}{
		{"valid", nil, write, 0, "a: 1\n", "d: configuration /c.yaml is valid\n"},
		{"files valid", func() error { return nil }, write, 0, "a: 1\n", "d: configuration /c.yaml is valid\n"},
		{"files refused", func() error { return errors.New("key: no such file") }, write, ExitUsage, "", "d: key: no such file\n"},
		{"write fails", nil, func(io.Writer) error { return errors.New("stdout closed") }, 1, "", "d: stdout closed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := CheckConfig("d", "/c.yaml", tc.check, tc.write, &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("got %d %q %q, want %d %q %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestNotifyReload sends the process real SIGHUPs: each one reaches the
// channel, and a burst nobody reads yet leaves one reload pending.
func TestNotifyReload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := NotifyReload(ctx, syscall.SIGHUP)
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		hup()
		select {
		case <-reload:
		case <-time.After(10 * time.Second):
			t.Fatalf("SIGHUP %d: no reload", i)
		}
	}
	// A burst while nobody reads: one reload pending, not three.
	hup()
	hup()
	hup()
	select {
	case <-reload:
	case <-time.After(10 * time.Second):
		t.Fatal("burst of SIGHUPs: no reload")
	}
	time.Sleep(200 * time.Millisecond)
	pending := 0
	for len(reload) > 0 {
		<-reload
		pending++
	}
	if pending > 1 {
		t.Errorf("burst of 3 SIGHUPs: %d reloads pending after the first, want at most 1", pending)
	}
}
