package etcdembed

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tether-net/tether/internal/testpki"
)

// writePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate under dir and returns their file names.
func writePKI(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	f := testpki.Write(t, dir, "server", "client")
	return f.CA, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey
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
