package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// writePKI writes a self-signed CA, and a client certificate and key it
// signed, under dir; it returns their paths.
func writePKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "tor1"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", kder)
}

// TestCheckConfigPolicyTLS: --check-config opens and parses the policy
// section's TLS files, so a bad one is reported (exit 2, the key and the
// file named) before the daemon is started with it.
func TestCheckConfigPolicyTLS(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	ca, cert, key := writePKI(t, dir)
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
