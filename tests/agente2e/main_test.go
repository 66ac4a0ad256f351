package agente2e

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the tests, then deletes the binaries Build made.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := RemoveBuild(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// slow skips tb unless TETHER_TEST_ALL=1 (make test-all).
func slow(tb testing.TB) {
	tb.Helper()
	if !all() {
		tb.Skip("slow: set TETHER_TEST_ALL=1 (make test-all)")
	}
}

// all reports whether the full, slow rounds were asked for.
func all() bool { return os.Getenv("TETHER_TEST_ALL") == "1" }
