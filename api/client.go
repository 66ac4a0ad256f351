package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// maxResponse bounds how much of one (non-streaming) answer the client reads.
const maxResponse = 64 << 20

// Client talks to a tether daemon over its unix socket. The zero value talks
// to tetherd at DefaultSocket; a Client is safe for concurrent use.
type Client struct {
	// Socket is the daemon's unix socket; empty means DefaultSocket.
	Socket string
	// Daemon names the daemon in error messages; empty means "tetherd".
	Daemon string

	once sync.Once
	http *http.Client
}

// DaemonDownError means the daemon's socket could not be reached.
type DaemonDownError struct {
	// Daemon and Socket name what was tried.
	Daemon, Socket string
	// Err is the dial error.
	Err error
}

// Error explains what is wrong and what to do.
func (e *DaemonDownError) Error() string {
	switch {
	case errors.Is(e.Err, os.ErrPermission):
		return fmt.Sprintf("cannot reach %s at %s: permission denied (run as root or join the 'tether' group)", e.Daemon, e.Socket)
	case errors.Is(e.Err, os.ErrNotExist), errors.Is(e.Err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%s is not running (no one listens on %s); start it with 'systemctl start %s', or point --socket at the right path", e.Daemon, e.Socket, e.Daemon)
	}
	return fmt.Sprintf("cannot reach %s at %s: %v", e.Daemon, e.Socket, e.Err)
}

// Unwrap returns the dial error.
func (e *DaemonDownError) Unwrap() error { return e.Err }

// StatusError is a non-2xx answer from the daemon.
type StatusError struct {
	// HTTPStatus is the status code.
	HTTPStatus int
	// Body is the decoded error body.
	Body Error
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Body.Message == "" {
		return fmt.Sprintf("daemon answered %d %s", e.HTTPStatus, http.StatusText(e.HTTPStatus))
	}
	return e.Body.Message
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) daemon() string {
	if c.Daemon == "" {
		return "tetherd"
	}
	return c.Daemon
}

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		sock := c.socket()
		c.http = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableCompression: true,
		}}
	})
	return c.http
}

// do sends one request; body is JSON-encoded when non-nil; out is decoded
// from a 2xx answer when non-nil.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("decode %s answer from %s: %w", path, c.daemon(), err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s request: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.daemon()+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &DaemonDownError{Daemon: c.daemon(), Socket: c.socket(), Err: op.Err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		se := &StatusError{HTTPStatus: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&se.Body)
		return nil, se
	}
	return resp, nil
}

// Status returns the daemon's summary.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, PathStatus, nil, &s)
	return s, err
}

// VMs lists the VMs in the inventory.
func (c *Client) VMs(ctx context.Context) ([]VM, error) {
	var v []VM
	err := c.do(ctx, http.MethodGet, PathVMs, nil, &v)
	return v, err
}

// VIFs lists the VIFs in the inventory.
func (c *Client) VIFs(ctx context.Context) ([]VIF, error) {
	var v []VIF
	err := c.do(ctx, http.MethodGet, PathVIFs, nil, &v)
	return v, err
}

// VIF returns one VIF by MAC.
func (c *Client) VIF(ctx context.Context, mac string) (VIF, error) {
	var v VIF
	err := c.do(ctx, http.MethodGet, PathVIFs+"/"+url.PathEscape(mac), nil, &v)
	return v, err
}

// PostHook forwards one libvirt hook event.
func (c *Client) PostHook(ctx context.Context, ev HookEvent) error {
	return c.do(ctx, http.MethodPost, PathHook, ev, nil)
}

// Events streams inventory events newer than since to fn until ctx ends,
// the daemon closes the stream, or fn returns an error.
func (c *Client) Events(ctx context.Context, since uint64, fn func(Event) error) error {
	resp, err := c.send(ctx, http.MethodGet, PathEvents+"?since="+strconv.FormatUint(since, 10), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decode event from %s: %w", c.daemon(), err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read events from %s: %w", c.daemon(), err)
	}
	return ctx.Err()
}
