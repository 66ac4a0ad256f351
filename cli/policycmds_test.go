package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/policyd"
	"github.com/tether-net/tether/policy/server"
)

// startPolicyd runs a real tether-policyd in-process (embedded etcd,
// plain HTTP on loopback, a write and a read token) and returns its URL
// and the token files.
func startPolicyd(t *testing.T) (url, writeFile, readFile string) {
	return startPolicydWith(t, nil)
}

func startPolicydWith(t *testing.T, mutate func(*policyd.Config)) (url, writeFile, readFile string) {
	t.Helper()
	dir := t.TempDir()
	writeFile, readFile = filepath.Join(dir, "write.token"), filepath.Join(dir, "read.token")
	if err := os.WriteFile(writeFile, []byte("w-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readFile, []byte("r-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("write %s ops\nread %s viewer\n", server.HashToken("w-token"), server.HashToken("r-token"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := policyd.Default()
	cfg.TokensFile = tokens
	cfg.Etcd.Embedded.DataDir = filepath.Join(dir, "db")
	if mutate != nil {
		mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- policyd.Run(ctx, cfg, policyd.Options{Listener: ln, EmbeddedNoFsync: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(net.Addr, time.Duration) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("policyd: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("policyd not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("policyd: %v", err)
		}
	})
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String(), writeFile, readFile
}

// ctl runs tetherctl in-process.
func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestPolicyCommands(t *testing.T) {
	url, wf, rf := startPolicyd(t)
	t.Setenv("TETHER_POLICY_SERVER", url)
	t.Setenv("TETHER_POLICY_TOKEN", "")
	t.Setenv("TETHER_POLICY_TOKEN_FILE", wf)

	mustOK := func(args ...string) string {
		t.Helper()
		code, out, errs := ctl(t, args...)
		if code != 0 {
			t.Fatalf("tetherctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	out := mustOK("policy", "profile", "add", "web", "--vid", "100", "--ether-types", "0x0800,0x86dd", "--rate-kbps", "5000")
	if !strings.HasPrefix(out, "profile web created (revision ") {
		t.Errorf("add: %q", out)
	}
	mustOK("policy", "group", "add", "web", "--profile", "web", "--name-pattern", "web-*", "--label", "tenant=a", "--label", "prod", "--priority", "5")
	pub, err := identity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := identity.MarshalPublicKeyPEM(pub.Public())
	keyFile := filepath.Join(t.TempDir(), "hv1.pub")
	if err := os.WriteFile(keyFile, pemKey, 0o644); err != nil {
		t.Fatal(err)
	}
	mustOK("policy", "host", "add", "hv1", "--public-key-file", keyFile)
	mustOK("policy", "placement", "add", "11111111-2222-3333-4444-555555555555", "--host", "hv1", "--mac", "52:54:00:00:00:01", "--name", "web-01")

	// set changes only the given field.
	mustOK("policy", "profile", "set", "web", "--priority", "3")
	out = mustOK("policy", "profile", "list", "--token-file", rf)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "web") || !strings.Contains(lines[1], "100") || !strings.Contains(lines[1], "0x0800,0x86dd") ||
		!strings.Contains(lines[1], "5000") || !strings.Contains(lines[1], " 3 ") {
		t.Errorf("profile list:\n%s", out)
	}
	out = mustOK("policy", "group", "list", "-o", "json")
	var groups []struct {
		Revision int64            `json:"revision"`
		Object   policy.PortGroup `json:"object"`
	}
	if err := json.Unmarshal([]byte(out), &groups); err != nil || len(groups) != 1 || groups[0].Revision == 0 ||
		groups[0].Object.Match.Labels["tenant"] != "a" || groups[0].Object.Match.Labels["prod"] != "" || groups[0].Object.Match.Priority != 5 {
		t.Errorf("group list -o json: %v\n%s", err, out)
	}
	out = mustOK("policy", "host", "list")
	if !strings.Contains(out, identity.KeyIDOf(pub.Public()).String()) {
		t.Errorf("host list lacks the key ID:\n%s", out)
	}
	out = mustOK("policy", "placement", "list")
	if !strings.Contains(out, "web-01") || !strings.Contains(out, "52:54:00:00:00:01") {
		t.Errorf("placement list:\n%s", out)
	}
	// Labels: --label repeats (a comma stays inside a label); set
	// replaces them and leaves the other fields alone.
	mustOK("policy", "placement", "set", "11111111-2222-3333-4444-555555555555", "--label", "tenant=a", "--label", "zone=eu,west")
	out = mustOK("policy", "placement", "list", "-o", "json")
	var places []struct {
		Object policy.Placement `json:"object"`
	}
	if err := json.Unmarshal([]byte(out), &places); err != nil || len(places) != 1 ||
		!slices.Equal(places[0].Object.Labels, []string{"tenant=a", "zone=eu,west"}) || places[0].Object.Name != "web-01" ||
		!slices.Equal(places[0].Object.MACs, []string{"52:54:00:00:00:01"}) {
		t.Errorf("placement set --label: %v\n%s", err, out)
	}
	if out = mustOK("policy", "placement", "list"); !strings.Contains(out, "LABELS") || !strings.Contains(out, "tenant=a,zone=eu,west") {
		t.Errorf("placement list lacks the labels:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		// Validation errors name the field.
		{[]string{"policy", "profile", "add", "bad", "--vid", "4095"}, 1, `tetherctl: profile "bad": vid: 4095 is not 0-4094` + "\n"},
		{[]string{"policy", "profile", "set", "web", "--mode", "bridge"}, 1, `tetherctl: profile "web": mode: "bridge" is not "switch" or "io-extender"` + "\n"},
		{[]string{"policy", "group", "add", "g2", "--profile", "web", "--uuid", "nope"}, 1, `tetherctl: group "g2": match.uuids[0]: "nope" is not a UUID (8-4-4-4-12 hex digits)` + "\n"},
		{[]string{"policy", "placement", "add", "11111111-2222-3333-4444-555555555556", "--host", "hv1", "--mac", "zz"}, 1,
			`tetherctl: placement "11111111-2222-3333-4444-555555555556": macs[0]: "zz" is not a MAC address` + "\n"},
		{[]string{"policy", "placement", "set", "11111111-2222-3333-4444-555555555555", "--label", "ok", "--label", " x"}, 1,
			`tetherctl: placement "11111111-2222-3333-4444-555555555555": labels[1]: " x" has leading or trailing space` + "\n"},
		{[]string{"policy", "profile", "add", "web"}, 1, "tetherctl: profiles/web already exists: use PUT to replace it\n"},
		{[]string{"policy", "profile", "rm", "nope"}, 1, "tetherctl: profiles/nope: not found\n"},
		{[]string{"policy", "profile", "set", "nope", "--vid", "1"}, 1, "tetherctl: profiles/nope: not found\n"},
		// A reader may not write.
		{[]string{"policy", "profile", "add", "db", "--token-file", rf}, 1, "tetherctl: viewer may only read: POST needs the write role\n"},
		// Flags checked before anything is sent.
		{[]string{"policy", "profile", "add", "db", "--ether-types", "ip"}, 2, "tetherctl: --ether-types: \"ip\" is not a 16-bit number (0x0800)\nRun 'tetherctl policy profile add --help' for usage.\n"},
		{[]string{"policy", "profile", "list", "-o", "yaml"}, 2, "tetherctl: --output \"yaml\" is not one of table, json\nRun 'tetherctl policy profile list --help' for usage.\n"},
		{[]string{"policy", "profile", "list", "--server", "policy:7480"}, 2, "tetherctl: --server \"policy:7480\": want a URL such as https://policy.example:7480\nRun 'tetherctl policy profile list --help' for usage.\n"},
	} {
		code, _, errs := ctl(t, tc.args...)
		if code != tc.code || errs != tc.err {
			t.Errorf("tetherctl %s: exit %d %q\nwant %d %q", strings.Join(tc.args, " "), code, errs, tc.code, tc.err)
		}
	}
	// No credentials.
	t.Setenv("TETHER_POLICY_TOKEN_FILE", "")
	code, _, errs := ctl(t, "policy", "profile", "list")
	if code != 1 || errs != "tetherctl: authentication required: send Authorization: Bearer TOKEN or a client certificate\n" {
		t.Errorf("without a token: %d %q", code, errs)
	}
	// The token from the environment.
	t.Setenv("TETHER_POLICY_TOKEN", "w-token")
	mustOK("policy", "placement", "rm", "11111111-2222-3333-4444-555555555555")
	out = mustOK("policy", "placement", "list", "-o", "json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("after rm: %q", out)
	}
}

func TestPolicyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, _, errs := ctl(t, "policy", "profile", "list", "--server", "http://"+addr)
	want := "tetherctl: tether-policyd is not running at http://" + addr + " (connection refused): start it with 'systemctl start tether-policyd', or point --server (or TETHER_POLICY_SERVER) at it\n"
	if code != 1 || errs != want {
		t.Errorf("exit %d %q\nwant %q", code, errs, want)
	}
}

// TestPolicyMutualTLS: --ca, --cert and --key reach a policyd that serves
// HTTPS and maps the client certificate's CN to the write role.
func TestPolicyMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	writePEM := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(name string, serial int64, eku x509.ExtKeyUsage) (crt, key string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, ExtKeyUsage: []x509.ExtKeyUsage{eku},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return writePEM(name+".crt", "CERTIFICATE", der), writePEM(name+".key", "EC PRIVATE KEY", kb)
	}
	ca := writePEM("ca.pem", "CERTIFICATE", caDER)
	srvCrt, srvKey := issue("server", 2, x509.ExtKeyUsageServerAuth)
	cliCrt, cliKey := issue("admin", 3, x509.ExtKeyUsageClientAuth)
	url, _, _ := startPolicydWith(t, func(c *policyd.Config) {
		c.TLS = policyd.TLS{Cert: srvCrt, Key: srvKey, ClientCA: ca, ClientRoles: []server.CertRole{{CN: "admin", Role: "write"}}}
	})
	t.Setenv("TETHER_POLICY_TOKEN", "")
	t.Setenv("TETHER_POLICY_TOKEN_FILE", "")
	code, out, errs := ctl(t, "policy", "profile", "add", "web", "--server", url, "--ca", ca, "--cert", cliCrt, "--key", cliKey)
	if code != 0 || !strings.HasPrefix(out, "profile web created") {
		t.Errorf("with a client certificate: exit %d %q %q", code, out, errs)
	}
	code, _, errs = ctl(t, "policy", "profile", "list", "--server", url, "--ca", ca)
	if code != 1 || errs != "tetherctl: authentication required: send Authorization: Bearer TOKEN or a client certificate\n" {
		t.Errorf("without one: exit %d %q", code, errs)
	}
}
