package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/tether-net/tether/policy"
)

// maxResponse bounds how much of one answer the client reads.
const maxResponse = 256 << 20

// Client talks to tether-policyd. Set Server (and Token or TLS); a Client
// is safe for concurrent use once in use.
type Client struct {
	// Server is the base URL, "https://policy.example:7480"; empty means
	// DefaultServer.
	Server string
	// Token is the bearer token; empty sends none (client certificates
	// in TLS may authenticate instead).
	Token string
	// TLS configures HTTPS (server CA, client certificate); nil uses the
	// system roots.
	TLS *tls.Config
	// HTTP, when set, is used as it is (TLS is then ignored).
	HTTP *http.Client

	once sync.Once
	hc   *http.Client
}

// UnreachableError means tether-policyd could not be reached at all.
type UnreachableError struct {
	// Server is the URL tried.
	Server string
	// Err is the transport error.
	Err error
}

// Error explains what is wrong and what to do.
func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("tether-policyd is not running at %s (connection refused): start it with 'systemctl start tether-policyd', or point --server (or TETHER_POLICY_SERVER) at it", e.Server)
	}
	return fmt.Sprintf("cannot reach tether-policyd at %s: %v (check --server or TETHER_POLICY_SERVER)", e.Server, e.Err)
}

// Unwrap returns the transport error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// StatusError is an answer other than 2xx.
type StatusError struct {
	// HTTPStatus is the status code.
	HTTPStatus int
	// Body is the decoded error body.
	Body ErrorBody
}

// Error returns the server's message, prefixed with the field when it
// names one.
func (e *StatusError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = fmt.Sprintf("tether-policyd answered %d %s", e.HTTPStatus, http.StatusText(e.HTTPStatus))
	}
	if e.Body.Field != "" && !strings.Contains(msg, e.Body.Field+":") {
		return fmt.Sprintf("%s (field %s)", msg, e.Body.Field)
	}
	return msg
}

// Is lets errors.Is match the policy package's errors by status: 404 is
// policy.ErrNotFound, 409 ErrExists, 412 ErrConflict, 422 ErrInvalid.
func (e *StatusError) Is(target error) bool {
	switch e.HTTPStatus {
	case http.StatusNotFound:
		return target == policy.ErrNotFound
	case http.StatusConflict:
		return target == policy.ErrExists
	case http.StatusPreconditionFailed:
		return target == policy.ErrConflict
	case http.StatusUnprocessableEntity:
		return target == policy.ErrInvalid
	}
	return false
}

func (c *Client) base() string {
	if c.Server == "" {
		return DefaultServer
	}
	return strings.TrimRight(c.Server, "/")
}

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		if c.HTTP != nil {
			c.hc = c.HTTP
			return
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.TLS
		tr.Proxy = nil
		c.hc = &http.Client{Transport: tr}
	})
	return c.hc
}

// do sends one request. body is sent as JSON when not nil; out is decoded
// from a 2xx answer when not nil. It returns the answer's ETag revision
// (0 when none).
func (c *Client) do(ctx context.Context, method, path string, ifMatch int64, body, out any) (int64, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base()+path, rd)
	if err != nil {
		return 0, fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if ifMatch > 0 {
		req.Header.Set("If-Match", ETag(ifMatch))
	}
	resp, err := c.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ctx.Err() == nil {
			var op *net.OpError
			if errors.As(ue.Err, &op) && op.Op == "dial" {
				return 0, &UnreachableError{Server: c.base(), Err: op.Err}
			}
			return 0, &UnreachableError{Server: c.base(), Err: ue.Err}
		}
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		se := &StatusError{HTTPStatus: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&se.Body)
		return 0, se
	}
	rev, _ := ParseRevision(resp.Header.Get("ETag"))
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return rev, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return 0, fmt.Errorf("decode %s answer from tether-policyd: %w", path, err)
	}
	return rev, nil
}

// Health asks /v1/healthz.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	_, err := c.do(ctx, http.MethodGet, PathHealthz, 0, nil, &h)
	return h, err
}

// List returns every object of kind with its revision, undecoded.
func (c *Client) List(ctx context.Context, kind policy.Kind) (List, error) {
	var l List
	_, err := c.do(ctx, http.MethodGet, KindPath(kind), 0, nil, &l)
	return l, err
}

// Objects returns every object of kind, decoded, and their revisions.
func (c *Client) Objects(ctx context.Context, kind policy.Kind) ([]policy.Object, []int64, error) {
	l, err := c.List(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	objs := make([]policy.Object, 0, len(l.Items))
	revs := make([]int64, 0, len(l.Items))
	for i, it := range l.Items {
		o := policy.New(kind)
		if o == nil {
			return nil, nil, fmt.Errorf("unknown kind %q", kind)
		}
		if err := json.Unmarshal(it.Object, o); err != nil {
			return nil, nil, fmt.Errorf("decode %s item %d: %w", kind, i, err)
		}
		objs = append(objs, o)
		revs = append(revs, it.Revision)
	}
	return objs, revs, nil
}

// Get reads one object into out (a *policy.Profile, ...) and returns its
// revision.
func (c *Client) Get(ctx context.Context, kind policy.Kind, key string, out policy.Object) (int64, error) {
	return c.do(ctx, http.MethodGet, ObjectPath(kind, url.PathEscape(key)), 0, nil, out)
}

// Create stores a new object and returns its revision.
func (c *Client) Create(ctx context.Context, obj policy.Object) (int64, error) {
	return c.do(ctx, http.MethodPost, KindPath(obj.Kind()), 0, obj, nil)
}

// Replace replaces an existing object; with ifMatch > 0 only if its
// revision is still ifMatch. It returns the new revision.
func (c *Client) Replace(ctx context.Context, obj policy.Object, ifMatch int64) (int64, error) {
	return c.do(ctx, http.MethodPut, ObjectPath(obj.Kind(), url.PathEscape(obj.Key())), ifMatch, obj, nil)
}

// Delete removes an object; with ifMatch > 0 only if its revision is still
// ifMatch.
func (c *Client) Delete(ctx context.Context, kind policy.Kind, key string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, ObjectPath(kind, url.PathEscape(key)), ifMatch, nil, nil)
	return err
}
