package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-net/tether/internal/testpki"
)

// build builds the real tether-switchd binary into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tether-switchd")
	cmd := exec.Command("go", "build", "-tags", "libvirt_dlopen", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCheckConfigPolicyTLS: --check-config opens and parses the policy
// section's TLS files, so a bad one is reported (exit 2, the key and the
// file named) before the daemon is started with it.
func TestCheckConfigPolicyTLS(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pki := testpki.Write(t, dir, "policyd", "tor1")
	ca, cert, key := pki.CA, pki.ClientCert, pki.ClientKey
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cfg := func(ca, cert, key string) string {
		p := filepath.Join(dir, "switchd.yaml")
		y := "host_keys: {}\npolicy:\n  endpoints: [https://127.0.0.1:2379]\n  ca: " + ca + "\n  cert: " + cert + "\n  key: " + key + "\n"
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	out, err := exec.Command(bin, "--config", cfg(ca, cert, key), "--check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ca: "+ca) || !strings.Contains(string(out), "is valid") {
		t.Fatalf("--check-config with good TLS files: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"ca not PEM", junk, cert, key, "tether-switchd: policy.ca: " + junk + ": no PEM data\n"},
		{"ca missing", missing, cert, key, "tether-switchd: policy.ca: open " + missing + ": no such file or directory\n"},
		{"key missing", ca, cert, missing, "tether-switchd: policy.key: open " + missing + ": no such file or directory\n"},
		{"cert and key switched", ca, key, cert, "tether-switchd: policy.cert, policy.key: " + key + ", " + cert +
			": tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched\n"},
	} {
		cmd := exec.Command(bin, "--config", cfg(tc.ca, tc.cert, tc.key), "--check-config")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || stderr.String() != tc.want || stdout.Len() != 0 {
			t.Errorf("%s: --check-config: %v, stdout %q, stderr %q\nwant exit 2, stderr %q", tc.name, err, stdout.String(), stderr.String(), tc.want)
		}
	}
}
