package policyd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/client"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/server"
)

const (
	writeToken = "w-secret-token"
	readToken  = "r-secret-token"
)

// testDaemon is a tether-policyd run in-process on a real embedded etcd.
type testDaemon struct {
	url    string
	ca     *testCA // signed the server's and the good clients' certificates
	rootCA *x509.CertPool
	etcd   *clientv3.Client // straight to the DB, to see what was written
	dir    string
	tokens string        // the tokens file
	reload chan struct{} // Options.Reload
	stop   func()
}

// startDaemon runs tether-policyd with TLS, mutual TLS (CN admin: write,
// OU switches: read) and tokens (writeToken: write, readToken: read).
func startDaemon(t *testing.T, mutate func(*Config)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "policy-test-ca")
	srvCert, srvKey := writePair(t, dir, "server", ca.issue(t, certOpts{cn: "localhost", server: true}))
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("# test tokens\nwrite %s ops\nread %s ci-reader\n",
		server.HashToken(writeToken), server.HashToken(readToken))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS = TLS{Cert: srvCert, Key: srvKey, ClientCA: caPath, ClientRoles: []server.CertRole{
		{CN: "admin", Role: "write"}, {OU: "switches", Role: "read"},
	}}
	cfg.TokensFile = tokens
	cfg.Etcd.Embedded.DataDir = filepath.Join(dir, "db")
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{})
	ready := make(chan time.Duration, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{
			Version: "test", Listener: ln, EmbeddedNoFsync: true, Reload: reload,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_ net.Addr, d time.Duration) { ready <- d },
		})
	}()
	select {
	case d := <-ready:
		t.Logf("embedded etcd started in %v", d)
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("tether-policyd not ready after 60s")
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	d := &testDaemon{url: scheme + "://" + ln.Addr().String(), ca: ca, dir: dir, rootCA: x509.NewCertPool(), tokens: tokens, reload: reload}
	d.rootCA.AppendCertsFromPEM(ca.pem)
	if cfg.Etcd.Embedded != nil {
		d.etcd, err = clientv3.New(clientv3.Config{
			Endpoints:   []string{"unix://" + filepath.Join(cfg.Etcd.Embedded.DataDir, etcdembed.SocketName)},
			DialTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			if d.etcd != nil {
				d.etcd.Close()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(d.stop)
	return d
}

// revision is the etcd store revision: any write at all moves it.
func (d *testDaemon) revision(t *testing.T) int64 {
	t.Helper()
	r, err := d.etcd.Get(context.Background(), "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// req is one request: credentials, headers and body.
type req struct {
	method, path string
	token        string
	cert         *tls.Certificate
	contentType  string
	body         string
	header       map[string]string
}

// answer is what came back.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    client.ErrorBody
}

func (d *testDaemon) do(t *testing.T, r req) answer {
	t.Helper()
	tc := &tls.Config{RootCAs: d.rootCA}
	if r.cert != nil {
		tc.Certificates = []tls.Certificate{*r.cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, d.url+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode/100 != 2 && len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a.err); err != nil {
			t.Errorf("%s %s: error body %q is not an ErrorBody: %v", r.method, r.path, b, err)
		}
	}
	return a
}

const profileWeb = `{"name":"web","vid":100,"mode":"switch","ether_types":[2048,34525]}`

// TestAPIRefusals: every refused request with its exact status, message
// and field, and the store's revision unchanged after each.
func TestAPIRefusals(t *testing.T) {
	d := startDaemon(t, nil)
	admin := d.ca.issue(t, certOpts{cn: "admin"})
	sw := d.ca.issue(t, certOpts{cn: "sw1", ou: "switches"})
	nobody := d.ca.issue(t, certOpts{cn: "intern", ou: "guests"})
	expired := d.ca.issue(t, certOpts{cn: "admin", expired: true})
	serverOnly := d.ca.issue(t, certOpts{cn: "admin", noClient: true})
	rogue := newCA(t, "rogue").issue(t, certOpts{cn: "admin"})

	// One object to conflict with, replace and delete; it moves the
	// revision the refusals below must leave alone.
	rev0 := d.revision(t)
	a := d.do(t, req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: "application/json", body: profileWeb})
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	rev, ok := client.ParseRevision(a.header.Get("ETag"))
	if !ok {
		t.Fatalf("create: ETag %q", a.header.Get("ETag"))
	}
	if now := d.revision(t); now != rev || now <= rev0 {
		t.Fatalf("store revision %d -> %d after a create answered with ETag %d", rev0, now, rev)
	}
	const ctJSON = "application/json"
	stale := client.ETag(rev - 1)
	for _, tc := range []struct {
		name   string
		r      req
		status int
		field  string
		msg    string
		chal   string // WWW-Authenticate
	}{
		{"no credentials", req{method: "GET", path: "/v1/profiles"}, 401, "",
			"authentication required: send Authorization: Bearer TOKEN or a client certificate", `Bearer realm="tether-policyd"`},
		{"no credentials write", req{method: "POST", path: "/v1/profiles", contentType: ctJSON, body: `{"name":"x","mode":"switch"}`}, 401, "",
			"authentication required: send Authorization: Bearer TOKEN or a client certificate", `Bearer realm="tether-policyd"`},
		{"basic auth", req{method: "GET", path: "/v1/profiles", header: map[string]string{"Authorization": "Basic YTpi"}}, 401, "",
			`malformed Authorization header: want "Bearer TOKEN"`, `Bearer realm="tether-policyd", error="invalid_request"`},
		{"wrong token", req{method: "POST", path: "/v1/profiles", token: "guess", contentType: ctJSON, body: `{"name":"x","mode":"switch"}`}, 401, "",
			"invalid bearer token", `Bearer realm="tether-policyd", error="invalid_token"`},
		{"token hash as token", req{method: "GET", path: "/v1/profiles", token: server.HashToken(writeToken)}, 401, "",
			"invalid bearer token", `Bearer realm="tether-policyd", error="invalid_token"`},
		{"reader creates", req{method: "POST", path: "/v1/profiles", token: readToken, contentType: ctJSON, body: `{"name":"x","mode":"switch"}`}, 403, "",
			"ci-reader may only read: POST needs the write role", ""},
		{"reader replaces", req{method: "PUT", path: "/v1/profiles/web", token: readToken, contentType: ctJSON, body: profileWeb}, 403, "",
			"ci-reader may only read: PUT needs the write role", ""},
		{"reader deletes", req{method: "DELETE", path: "/v1/profiles/web", token: readToken}, 403, "",
			"ci-reader may only read: DELETE needs the write role", ""},
		{"reader cert creates", req{method: "POST", path: "/v1/profiles", cert: &sw, contentType: ctJSON, body: `{"name":"x","mode":"switch"}`}, 403, "",
			"cert CN=sw1 may only read: POST needs the write role", ""},
		{"cert without role", req{method: "GET", path: "/v1/profiles", cert: &nobody}, 403, "",
			`client certificate "intern" has no role: no client_roles entry matches its CN or OU`, ""},
		{"cert of another CA", req{method: "POST", path: "/v1/profiles", cert: &rogue, contentType: ctJSON, body: `{"name":"x","mode":"switch"}`}, 401, "",
			`client certificate "admin" not trusted: signed by an unknown authority`, `Bearer realm="tether-policyd"`},
		{"expired cert", req{method: "GET", path: "/v1/profiles", cert: &expired}, 401, "",
			`client certificate "admin" not trusted: expired or not yet valid`, `Bearer realm="tether-policyd"`},
		{"server-only cert", req{method: "GET", path: "/v1/profiles", cert: &serverOnly}, 401, "",
			`client certificate "admin" not trusted: not valid for client authentication`, `Bearer realm="tether-policyd"`},
		{"rogue cert with good token", req{method: "GET", path: "/v1/profiles", cert: &rogue, token: writeToken}, 401, "",
			`client certificate "admin" not trusted: signed by an unknown authority`, `Bearer realm="tether-policyd"`},
		{"unknown kind", req{method: "GET", path: "/v1/vlans", token: readToken}, 404, "",
			`no collection "vlans": want one of profiles, groups, hosts, placements`, ""},
		{"unknown path", req{method: "GET", path: "/v2/profiles", token: readToken}, 404, "",
			"/v2/profiles is not part of tether-policyd's API (v1)", ""},
		{"missing object", req{method: "GET", path: "/v1/profiles/nope", token: readToken}, 404, "", "profiles/nope: not found", ""},
		{"replace missing", req{method: "PUT", path: "/v1/profiles/nope", token: writeToken, contentType: ctJSON, body: `{"name":"nope","mode":"switch"}`}, 404, "",
			"profiles/nope: not found", ""},
		{"delete missing", req{method: "DELETE", path: "/v1/profiles/nope", token: writeToken}, 404, "", "profiles/nope: not found", ""},
		{"method", req{method: "PATCH", path: "/v1/profiles/web", token: writeToken}, 405, "",
			"PATCH /v1/profiles/web: allowed: GET, HEAD, PUT, DELETE", ""},
		{"create exists", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: ctJSON, body: profileWeb}, 409, "",
			"profiles/web already exists: use PUT to replace it", ""},
		{"stale If-Match", req{method: "PUT", path: "/v1/profiles/web", token: writeToken, contentType: ctJSON, body: profileWeb, header: map[string]string{"If-Match": stale}}, 412, "",
			"profiles/web was changed since the revision in If-Match: read it again", ""},
		{"stale If-Match delete", req{method: "DELETE", path: "/v1/profiles/web", token: writeToken, header: map[string]string{"If-Match": stale}}, 412, "",
			"profiles/web was changed since the revision in If-Match: read it again", ""},
		{"bad If-Match", req{method: "PUT", path: "/v1/profiles/web", token: writeToken, contentType: ctJSON, body: profileWeb, header: map[string]string{"If-Match": "*"}}, 400, "",
			`If-Match "*" is not a revision (the ETag of a GET, such as "42")`, ""},
		{"rename by PUT", req{method: "PUT", path: "/v1/profiles/web", token: writeToken, contentType: ctJSON, body: `{"name":"web2","mode":"switch"}`}, 422, "name",
			`"web2" does not match the path's "web" (renaming is delete and create)`, ""},
		{"wrong type", req{method: "PUT", path: "/v1/profiles/web", token: writeToken, contentType: ctJSON, body: `{"name":"web","mode":"switch","vid":"100"}`}, 400, "vid",
			"want a non-negative integer in range, got string", ""},
		{"unknown field", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: ctJSON, body: `{"name":"x","mode":"switch","vlan":1}`}, 400, "vlan", "unknown field", ""},
		{"trailing data", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: ctJSON, body: `{"name":"x","mode":"switch"} {}`}, 400, "",
			"trailing data after the JSON object", ""},
		{"oversize", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: ctJSON, body: `{"name":"x","mode":"switch","acl":"` + strings.Repeat("a", 2<<20) + `"}`}, 413, "",
			"request body over 1048576 bytes", ""},
		{"content type", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: "application/x-www-form-urlencoded", body: `name=x`}, 415, "",
			`Content-Type "application/x-www-form-urlencoded" is not application/json`, ""},
		{"validation", req{method: "POST", path: "/v1/profiles", token: writeToken, contentType: ctJSON, body: `{"name":"x","mode":"switch","vid":4095}`}, 422, "vid",
			`profile "x": vid: 4095 is not 0-4094`, ""},
		{"validation nested", req{method: "POST", path: "/v1/groups", cert: &admin, contentType: ctJSON, body: `{"name":"g","profile":"web","match":{"name_patterns":["web-*","[x"]}}`}, 422, "match.name_patterns[1]",
			`group "g": match.name_patterns[1]: "[x": syntax error in pattern`, ""},
		{"validation placement", req{method: "POST", path: "/v1/placements", token: writeToken, contentType: ctJSON,
			body: `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"asleep"}`}, 422, "state",
			`placement "11111111-2222-3333-4444-555555555555": state: "asleep" is not one of running, paused, migrating-in, migrating-out, shut-off`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := d.revision(t)
			a := d.do(t, tc.r)
			if a.status != tc.status || a.err.Error != tc.msg || a.err.Field != tc.field {
				t.Errorf("got %d field %q %q\nwant %d field %q %q", a.status, a.err.Field, a.err.Error, tc.status, tc.field, tc.msg)
			}
			if got := a.header.Get("WWW-Authenticate"); got != tc.chal {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.chal)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if after := d.revision(t); after != before {
				t.Errorf("the store changed: revision %d -> %d", before, after)
			}
		})
	}
	// The object is as it was created.
	var p policy.Profile
	a = d.do(t, req{method: "GET", path: "/v1/profiles/web", cert: &admin})
	if err := json.Unmarshal(a.body, &p); err != nil || a.status != 200 || p.VID != 100 || a.header.Get("ETag") != client.ETag(rev) {
		t.Errorf("after the refusals: %d %s ETag %s (want %d)", a.status, a.body, a.header.Get("ETag"), rev)
	}
}

// TestAPILifecycle: create, read, list, replace with and without
// If-Match, delete, by token and by certificate, through the typed client.
func TestAPILifecycle(t *testing.T) {
	d := startDaemon(t, nil)
	admin := d.ca.issue(t, certOpts{cn: "admin"})
	sw := d.ca.issue(t, certOpts{cn: "sw1", ou: "switches"})
	ctx := context.Background()
	w := &client.Client{Server: d.url, TLS: &tls.Config{RootCAs: d.rootCA, Certificates: []tls.Certificate{admin}}}
	r := &client.Client{Server: d.url, TLS: &tls.Config{RootCAs: d.rootCA, Certificates: []tls.Certificate{sw}}}
	tk := &client.Client{Server: d.url, Token: writeToken, TLS: &tls.Config{RootCAs: d.rootCA}}

	if h, err := r.Health(ctx); err != nil || h.Status != "ok" || h.Version != "test" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	rev1, err := w.Create(ctx, &policy.Profile{Name: "web", VID: 100, Mode: policy.ModeSwitch})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := identity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public()
	pemKey, err := identity.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Create(ctx, &policy.Host{Name: "hv1", Role: policy.RoleHost, PublicKey: string(pemKey)}); err != nil {
		t.Fatal(err)
	}
	var h policy.Host
	if _, err := r.Get(ctx, policy.KindHosts, "hv1", &h); err != nil || h.KeyID != identity.KeyIDOf(pub).String() {
		t.Errorf("host: %+v %v (KeyID derived by the server: want %s)", h, err, identity.KeyIDOf(pub))
	}
	if _, err := w.Create(ctx, &policy.Placement{VM: "AAAAAAAA-2222-3333-4444-555555555555", Host: "hv1", State: policy.StateRunning,
		MACs: []string{"52:54:00:00:00:01"}, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var pl policy.Placement
	if _, err := r.Get(ctx, policy.KindPlacements, "aaaaaaaa-2222-3333-4444-555555555555", &pl); err != nil || pl.Host != "hv1" {
		t.Errorf("placement by lower-case UUID: %+v %v", pl, err)
	}
	if _, err := r.Create(ctx, &policy.Profile{Name: "db", Mode: policy.ModeSwitch}); err == nil || !strings.Contains(err.Error(), "may only read") {
		t.Errorf("reader create: %v", err)
	}
	var got policy.Profile
	rev, err := r.Get(ctx, policy.KindProfiles, "web", &got)
	if err != nil || rev != rev1 || got.VID != 100 {
		t.Fatalf("Get = %+v rev %d (want %d), %v", got, rev, rev1, err)
	}
	got.VID = 200
	rev2, err := w.Replace(ctx, &got, rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("Replace: rev %d, %v", rev2, err)
	}
	got.VID = 300
	if _, err := w.Replace(ctx, &got, rev1); err == nil || !isStatus(err, 412) {
		t.Errorf("Replace with the old revision: %v, want 412", err)
	}
	if _, err := w.Replace(ctx, &got, 0); err != nil {
		t.Errorf("unconditional Replace: %v", err)
	}
	objs, revs, err := r.Objects(ctx, policy.KindProfiles)
	if err != nil || len(objs) != 1 || objs[0].(*policy.Profile).VID != 300 || revs[0] <= rev2 {
		t.Errorf("Objects = %v %v %v", objs, revs, err)
	}
	if err := w.Delete(ctx, policy.KindProfiles, "web", rev2); err == nil || !isStatus(err, 412) {
		t.Errorf("Delete with a stale revision: %v", err)
	}
	if err := w.Delete(ctx, policy.KindProfiles, "web", 0); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := r.Get(ctx, policy.KindProfiles, "web", &got); !isStatus(err, 404) {
		t.Errorf("Get after Delete: %v", err)
	}
}

func isStatus(err error, status int) bool {
	se, ok := err.(*client.StatusError)
	return ok && se.HTTPStatus == status
}

// TestUnreachable: the client says where it tried and what to do.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := &client.Client{Server: "http://" + addr}
	_, err = c.Health(context.Background())
	want := "tether-policyd is not running at http://" + addr + " (connection refused): start it with 'systemctl start tether-policyd', or point --server (or TETHER_POLICY_SERVER) at it"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestReloadTokens: a reload (SIGHUP in tether-policyd) puts a new tokens
// file in force; a broken one is refused and the old tokens stay.
func TestReloadTokens(t *testing.T) {
	d := startDaemon(t, nil)
	get := func(token string) int {
		return d.do(t, req{method: "GET", path: "/v1/profiles", token: token}).status
	}
	if s := get(writeToken); s != 200 {
		t.Fatalf("before reload: %d", s)
	}
	if err := os.WriteFile(d.tokens, []byte("read "+server.HashToken("rotated")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for get("rotated") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the new token is not accepted after reload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := get(writeToken); s != 401 {
		t.Errorf("the removed token: %d, want 401", s)
	}
	if err := os.WriteFile(d.tokens, []byte("read not-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload <- struct{}{}
	d.reload <- struct{}{} // the first one has been handled once this one is taken
	if s := get("rotated"); s != 200 {
		t.Errorf("after a broken tokens file: %d, want the old tokens to stay (200)", s)
	}
}
