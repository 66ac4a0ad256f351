package policyd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
	"github.com/tether-net/tether/policy/client"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
)

// TestEmbeddedRemote: with etcd.embedded.remote, a switch's cache reaches
// the embedded etcd over https with its client certificate and sees what
// the API writes; a client without a certificate, or with one another CA
// signed, is refused; by default nothing but the unix socket serves etcd.
func TestEmbeddedRemote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port, err := etcdembed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	d := startDaemon(t, func(c *Config) {
		dir := filepath.Dir(c.TLS.Cert)
		caPath := filepath.Join(dir, "ca.pem")
		c.Etcd.Embedded.Remote = &Remote{Listen: addr, Cert: c.TLS.Cert, Key: c.TLS.Key, ClientCA: caPath}
	})
	caPath := filepath.Join(d.dir, "ca.pem")
	swCert, swKey := writePair(t, d.dir, "tor1", d.ca.issue(t, certOpts{cn: "tor1", ou: "switches"}))
	endpoint := "https://" + addr

	// The switch's side: the store over https with its certificate, and
	// the watch-fed cache.
	cli, err := store.Dial(ctx, store.ClientConfig{Endpoints: []string{endpoint}, CAFile: caPath, CertFile: swCert, KeyFile: swKey,
		DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("switch with a client certificate: %v", err)
	}
	defer cli.Close()
	st, err := store.New(cli, store.Options{Prefix: DefaultPrefix})
	if err != nil {
		t.Fatal(err)
	}
	c := cache.New(st, cache.Options{})
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() { _ = c.Run(cctx) }()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	w := &client.Client{Server: d.url, TLS: &tls.Config{RootCAs: d.rootCA, Certificates: []tls.Certificate{d.ca.issue(t, certOpts{cn: "admin"})}}}
	if _, err := w.Create(ctx, &policy.Profile{Name: "web", VID: 100, Mode: policy.ModeSwitch}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Profile("web"); !ok || p.VID != 100 {
		t.Fatalf("the switch's cache: %+v %v", p, ok)
	}

	// No certificate, or one of another CA: refused.
	other := newCA(t, "not-the-policy-ca")
	oCert, oKey := writePair(t, t.TempDir(), "intruder", other.issue(t, certOpts{cn: "tor1", ou: "switches"}))
	for name, cc := range map[string]store.ClientConfig{
		"no certificate":      {CAFile: caPath},
		"another CA's client": {CAFile: caPath, CertFile: oCert, KeyFile: oKey},
	} {
		cc.Endpoints, cc.DialTimeout = []string{endpoint}, 2*time.Second
		if bad, err := store.Dial(ctx, cc); err == nil {
			bad.Close()
			t.Errorf("%s: served", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestEmbeddedLocalOnlyByDefault: without remote, the embedded etcd
// listens on its unix socket and no TCP port.
func TestEmbeddedLocalOnlyByDefault(t *testing.T) {
	before := tcpListeners(t)
	d := startDaemon(t, nil)
	if _, err := os.Stat(filepath.Join(d.dir, "db", etcdembed.SocketName)); err != nil {
		t.Fatalf("no unix socket: %v", err)
	}
	u, err := url.Parse(d.url)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, _ := strconv.Atoi(u.Port())
	// Besides the API's listener, anything new listening on TCP in this
	// process would be etcd's.
	for l := range tcpListeners(t) {
		if _, hexPort, _ := strings.Cut(l, ":"); !before[l] && hexPort != fmt.Sprintf("%04X", apiPort) {
			t.Errorf("a TCP listener appeared: %s", l)
		}
	}
}

// tcpListeners returns the local addresses (hex, as /proc shows them) of
// the TCP sockets in LISTEN state whose inode belongs to this process.
func tcpListeners(t *testing.T) map[string]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && len(l) > 8 && l[:8] == "socket:[" {
			inodes[l[8:len(l)-1]] = true
		}
	}
	out := map[string]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st ... inode (index 9)
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "0A" && inodes[fs[9]] {
				out[fs[1]] = true
			}
		}
	}
	return out
}
