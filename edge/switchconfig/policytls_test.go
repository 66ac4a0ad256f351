package switchconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA and a client certificate and key, PEM encoded.
type testPKI struct {
	ca, cert, key        []byte
	otherKey             []byte // a key that does not match cert
	notBefore, notAfter  time.Time
	expired, notYetValid []byte // certificates of key outside now
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k := newKey()
	leaf := func(nb, na time.Time) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(nb.UnixNano()), Subject: pkix.Name{CommonName: "tor1"},
			NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	nb, na := now.Add(-time.Hour).Truncate(time.Second), now.Add(time.Hour).Truncate(time.Second)
	return testPKI{
		ca:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert:      leaf(nb, na),
		key:       keyPEM(k),
		otherKey:  keyPEM(newKey()),
		notBefore: nb, notAfter: na,
		expired:     leaf(now.Add(-2*time.Hour).Truncate(time.Second), nb),
		notYetValid: leaf(na, na.Add(time.Hour)),
	}
}

// TestPolicyCheckFiles: the policy section's TLS files are opened and
// parsed; each bad file is an error naming the key and the path, with the
// exact message users see from --check-config.
func TestPolicyCheckFiles(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key := file("ca.pem", pki.ca), file("cert.pem", pki.cert), file("key.pem", pki.key)
	other := file("other-key.pem", pki.otherKey)
	missing := filepath.Join(dir, "missing.pem")
	empty := file("empty.pem", nil)
	garbage := file("garbage.pem", []byte("not a certificate\n"))
	keyAsCA := file("key-as-ca.pem", pki.key)
	badDER := file("bad-der.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
	secondBad := file("second-bad.pem", append(append([]byte{}, pki.ca...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})...))
	huge := file("huge.pem", make([]byte, maxTLSFile+1))
	expired, future := file("expired.pem", pki.expired), file("future.pem", pki.notYetValid)
	now := time.Now()

	for _, tc := range []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"good", ca, cert, key, ""},
		{"good, no CA (system roots)", "", cert, key, ""},
		{"good, CA only", ca, "", "", ""},
		{"ca missing", missing, cert, key, "policy.ca: open " + missing + ": no such file or directory"},
		{"ca empty", empty, cert, key, "policy.ca: " + empty + ": no PEM data"},
		{"ca garbage", garbage, cert, key, "policy.ca: " + garbage + ": no PEM data"},
		{"ca holds a key", keyAsCA, cert, key, "policy.ca: " + keyAsCA + `: PEM block 1 is "EC PRIVATE KEY", want CERTIFICATE`},
		{"ca bad DER", badDER, cert, key, "policy.ca: " + badDER + ": certificate 1: x509: malformed tbs certificate"},
		{"ca second certificate bad", secondBad, cert, key, "policy.ca: " + secondBad + ": certificate 2: x509: malformed certificate"},
		{"ca too large", huge, cert, key, "policy.ca: " + huge + ": larger than 1048576 bytes"},
		{"cert and key missing", ca, missing, missing, "policy.cert: open " + missing + ": no such file or directory\npolicy.key: open " + missing + ": no such file or directory"},
		{"key does not match", ca, cert, other, "policy.cert, policy.key: " + cert + ", " + other + ": tls: private key does not match public key"},
		{"cert and key switched", ca, key, cert, "policy.cert, policy.key: " + key + ", " + cert +
			": tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched"},
		{"cert is garbage", ca, garbage, key, "policy.cert, policy.key: " + garbage + ", " + key + ": tls: failed to find any PEM data in certificate input"},
		{"key is garbage", ca, cert, garbage, "policy.cert, policy.key: " + cert + ", " + garbage + ": tls: failed to find any PEM data in key input"},
		{"cert expired", ca, expired, key, "policy.cert: " + expired + ": expired at " + pki.notBefore.UTC().Format(time.RFC3339)},
		{"cert not yet valid", ca, future, key, "policy.cert: " + future + ": not valid before " + pki.notAfter.UTC().Format(time.RFC3339)},
		{"ca and cert both bad", garbage, cert, other, "policy.ca: " + garbage + ": no PEM data\npolicy.cert, policy.key: " + cert + ", " + other +
			": tls: private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.Endpoints = []string{"https://127.0.0.1:2379"}
			p.CA, p.Cert, p.Key = tc.ca, tc.cert, tc.key
			err := p.CheckFiles(now)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("CheckFiles:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

// FuzzPolicyCheckFiles feeds arbitrary CA, certificate and key files to
// CheckFiles: it never panics, and what it accepts, crypto/tls loads.
func FuzzPolicyCheckFiles(f *testing.F) {
	pki := newTestPKI(f)
	f.Add(pki.ca, pki.cert, pki.key)
	f.Add(pki.ca, pki.cert, pki.otherKey)
	f.Add(pki.key, pki.key, pki.cert)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"))
	f.Add(append(append([]byte{}, pki.ca...), "trailing"...), pki.expired, pki.key)
	f.Fuzz(func(t *testing.T, ca, cert, key []byte) {
		dir := t.TempDir()
		p := DefaultPolicy()
		p.CA, p.Cert, p.Key = filepath.Join(dir, "ca"), filepath.Join(dir, "cert"), filepath.Join(dir, "key")
		for path, b := range map[string][]byte{p.CA: ca, p.Cert: cert, p.Key: key} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := p.CheckFiles(time.Now())
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policy.") {
				t.Fatalf("error without its key: %v", err)
			}
			return
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			t.Fatalf("accepted a pair crypto/tls refuses: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			t.Fatal("accepted a CA bundle with no certificate")
		}
	})
}
