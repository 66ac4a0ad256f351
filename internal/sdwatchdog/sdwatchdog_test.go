package sdwatchdog

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStartPetsSystemd: under a WatchdogSec= of 200 ms (the environment
// systemd gives the service), WATCHDOG=1 datagrams reach NOTIFY_SOCKET
// until stop; without WATCHDOG_USEC nothing is sent.
func TestStartPetsSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "200000")
	stop := Start(context.Background())
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if got := string(buf[:n]); got != "WATCHDOG=1" {
			t.Fatalf("datagram %d = %q, want WATCHDOG=1", i, got)
		}
	}
	stop()
	// Drain what was in flight, then nothing more comes.
	_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("after stop: %q", buf[:n])
	}

	os.Unsetenv("WATCHDOG_USEC")
	stop = Start(context.Background())
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("without WATCHDOG_USEC: %q", buf[:n])
	}
}
