package etcdembed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// writePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate under dir and returns their file names.
func writePKI(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tether test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// TestRemoteMTLS: a unix-socket member also serves https with client
// certificates; a client without one is refused.
func TestRemoteMTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pki := t.TempDir()
	ca, sc, sk, cc, ck := writePKI(t, pki)
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Config{Dir: t.TempDir(), Unix: true, UnsafeNoFsync: true, Log: testLog(t),
		Remote: &Remote{Addr: fmt.Sprintf("127.0.0.1:%d", port), CertFile: sc, KeyFile: sk, CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dial := func(info transport.TLSInfo) (*clientv3.Client, error) {
		tc, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: s.RemoteEndpoints(), TLS: tc, DialTimeout: 2 * time.Second, Logger: NewZapLogger(nil, 0)})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err = c.Put(pctx, "remote", "ok")
		return c, err
	}
	if _, err := dial(transport.TLSInfo{CertFile: cc, KeyFile: ck, TrustedCAFile: ca}); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if _, err := dial(transport.TLSInfo{TrustedCAFile: ca}); err == nil {
		t.Fatal("client without a certificate was served")
	}
	// The local socket still works and sees the remote write.
	c := client(t, s.Endpoints())
	if r, err := c.Get(ctx, "remote"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("local read: %v %v", r, err)
	}
}
