// Package ovsdb is a small OVSDB client (RFC 7047): JSON-RPC 1.0 over a
// unix (or TCP) stream socket to ovsdb-server, with list_dbs, get_schema,
// transact (insert, select, update, mutate, delete, wait, comment),
// monitor with update notifications, and echo in both directions.
//
// Replies are decoded strictly (see parseMessage, parseTransactResult,
// parseTableUpdates): a reply that breaks the protocol fails the call with
// an error wrapping ErrProtocol, and a connection that sends one that
// cannot be matched to any request is closed.
package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by calls on a closed client or one whose
// connection failed.
var ErrClosed = errors.New("ovsdb: connection closed")

// MaxMessage bounds one message from the server (a select of thousands of
// rows fits easily).
const MaxMessage = 64 << 20

// Client is one connection to an ovsdb-server. Its methods are safe for
// concurrent use.
type Client struct {
	conn net.Conn
	log  *slog.Logger

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]chan message
	monitors map[string]func(TableUpdates)
	err      error // why the connection ended, once it has

	done chan struct{}
}

// Dial connects to addr: "unix:/path", "tcp:host:port", or a bare path to
// a unix socket. log may be nil.
func Dial(ctx context.Context, addr string, log *slog.Logger) (*Client, error) {
	network, address := "unix", addr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		address = strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp:"):
		network, address = "tcp", strings.TrimPrefix(addr, "tcp:")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: dial %s: %w", addr, err)
	}
	return NewClient(conn, log), nil
}

// NewClient runs the protocol over conn, which the client then owns.
func NewClient(conn net.Conn, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		conn:     conn,
		log:      log.With("component", "ovsdb"),
		pending:  map[uint64]chan message{},
		monitors: map[string]func(TableUpdates){},
		done:     make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Close closes the connection; pending calls fail with ErrClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ovsdb: close: %w", err)
	}
	return nil
}

// Done is closed when the connection has ended; Err then tells why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// readLoop reads messages until the connection ends.
func (c *Client) readLoop() {
	err := c.read()
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.pending = map[uint64]chan message{}
	c.mu.Unlock()
	c.conn.Close()
	close(c.done)
}

// errTooBig ends a connection whose message outgrows MaxMessage.
var errTooBig = fmt.Errorf("%w: message exceeds %d bytes", ErrProtocol, MaxMessage)

// budgetReader lets at most left bytes through until it is refilled.
type budgetReader struct {
	r    io.Reader
	left int
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooBig
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

// read decodes the stream of JSON values and dispatches each. The read
// budget is refilled after every message, so no one message (with what the
// decoder read ahead) can take more than MaxMessage bytes of memory.
func (c *Client) read() error {
	br := &budgetReader{r: c.conn, left: MaxMessage}
	dec := json.NewDecoder(br)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, errTooBig) {
				return errTooBig
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return io.EOF
			}
			return fmt.Errorf("ovsdb: read: %w", err)
		}
		br.left = MaxMessage
		m, err := parseMessage(raw)
		if err != nil {
			return err
		}
		if err := c.dispatch(m); err != nil {
			return err
		}
	}
}

// dispatch hands a response to its caller, answers echo requests and
// delivers monitor updates.
func (c *Client) dispatch(m message) error {
	switch m.kind {
	case kindResponse:
		n, ok := m.id.(json.Number)
		id, err := strconv.ParseUint(string(n), 10, 64)
		if !ok || err != nil {
			return protoErr("response id %s was never sent", m.rawID)
		}
		c.mu.Lock()
		ch, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			return protoErr("response id %d was never sent", id)
		}
		ch <- m // buffered: never blocks, even for a call given up
	case kindRequest:
		if m.method != "echo" {
			c.log.Warn("server request not supported", "method", m.method)
			return c.write(map[string]any{"id": m.rawID, "result": nil, "error": "unknown method"}, time.Time{})
		}
		return c.write(map[string]any{"id": m.rawID, "result": m.params, "error": nil}, time.Time{})
	case kindNotification:
		if m.method != "update" {
			c.log.Debug("notification ignored", "method", m.method)
			return nil
		}
		if len(m.params) != 2 {
			return protoErr("update notification has %d params, want 2", len(m.params))
		}
		key, _ := json.Marshal(m.params[0])
		tu, err := parseTableUpdates(m.params[1])
		if err != nil {
			return err
		}
		c.mu.Lock()
		fn := c.monitors[string(key)]
		c.mu.Unlock()
		if fn == nil {
			c.log.Debug("update for unknown monitor", "monitor", string(key))
			return nil
		}
		fn(tu)
	}
	return nil
}

// write sends one JSON message, with the deadline (if not zero) on the
// socket for this write only.
func (c *Client) write(v any, deadline time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ovsdb: encode: %w", err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !deadline.IsZero() {
		c.conn.SetWriteDeadline(deadline)
		defer c.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := c.conn.Write(b); err != nil {
		// Part of the message may be out: the stream cannot be trusted
		// any more, so the connection ends (calls then fail ErrClosed).
		c.conn.Close()
		return fmt.Errorf("ovsdb: write: %w", err)
	}
	return nil
}

// call sends a request and waits for its response. A call given up
// (ctx ends) leaves its slot in pending, so that the late response is
// taken there rather than read as one to a request never sent.
func (c *Client) call(ctx context.Context, method string, params []any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ovsdb: %s: %w", method, err)
	}
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	if params == nil {
		params = []any{}
	}
	deadline, _ := ctx.Deadline()
	if err := c.write(map[string]any{"id": id, "method": method, "params": params}, deadline); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("ovsdb: %s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.err != nil {
			return nil, fmt.Errorf("ovsdb: %s: %w", method, m.err)
		}
		return m.result, nil
	case <-c.done:
		return nil, fmt.Errorf("ovsdb: %s: %w", method, c.Err())
	case <-ctx.Done():
		return nil, fmt.Errorf("ovsdb: %s: %w", method, ctx.Err())
	}
}

// Echo sends an echo request and checks the server returns the same
// parameters (RFC 7047 4.1.11).
func (c *Client) Echo(ctx context.Context) error {
	res, err := c.call(ctx, "echo", []any{"tether"})
	if err != nil {
		return err
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 1 || arr[0] != "tether" {
		return protoErr("echo returned %s, want [\"tether\"]", jsonText(res))
	}
	return nil
}

// ListDBs returns the names of the server's databases (RFC 7047 4.1.1).
func (c *Client) ListDBs(ctx context.Context) ([]string, error) {
	res, err := c.call(ctx, "list_dbs", nil)
	if err != nil {
		return nil, err
	}
	arr, ok := res.([]any)
	if !ok {
		return nil, protoErr("list_dbs result is %s, want an array", jsonKind(res))
	}
	out := make([]string, 0, len(arr))
	for i, v := range arr {
		s, ok := v.(string)
		if !ok {
			return nil, protoErr("list_dbs element %d is %s, want a string", i, jsonKind(v))
		}
		out = append(out, s)
	}
	return out, nil
}

// Schema is the part of a database schema (RFC 7047 3.2) the client uses:
// its name, version and each table's column names.
type Schema struct {
	// Name is the database's name, e.g. "Open_vSwitch".
	Name string
	// Version is the schema's version, e.g. "8.3.1".
	Version string
	// Tables maps a table's name to its column names.
	Tables map[string][]string
}

// HasColumn reports whether the schema's table has the column.
func (s Schema) HasColumn(table, column string) bool {
	for _, c := range s.Tables[table] {
		if c == column {
			return true
		}
	}
	return false
}

// GetSchema fetches and decodes database db's schema (RFC 7047 4.1.2).
func (c *Client) GetSchema(ctx context.Context, db string) (Schema, error) {
	res, err := c.call(ctx, "get_schema", []any{db})
	if err != nil {
		return Schema{}, err
	}
	return parseSchema(res)
}

// parseSchema checks the schema object's name, version and tables.
func parseSchema(res any) (Schema, error) {
	obj, ok := res.(map[string]any)
	if !ok {
		return Schema{}, protoErr("schema is %s, want an object", jsonKind(res))
	}
	var s Schema
	if s.Name, ok = obj["name"].(string); !ok || s.Name == "" {
		return Schema{}, protoErr("schema has no name")
	}
	if s.Version, ok = obj["version"].(string); !ok {
		return Schema{}, protoErr("schema %s has no version", s.Name)
	}
	tables, ok := obj["tables"].(map[string]any)
	if !ok {
		return Schema{}, protoErr("schema %s has no tables object", s.Name)
	}
	s.Tables = make(map[string][]string, len(tables))
	for name, tv := range tables {
		t, ok := tv.(map[string]any)
		if !ok {
			return Schema{}, protoErr("schema %s table %q is %s, want an object", s.Name, name, jsonKind(tv))
		}
		cols, ok := t["columns"].(map[string]any)
		if !ok {
			return Schema{}, protoErr("schema %s table %q has no columns object", s.Name, name)
		}
		for col := range cols {
			s.Tables[name] = append(s.Tables[name], col)
		}
	}
	return s, nil
}

// Transact runs ops as one transaction on db (RFC 7047 4.1.3) and returns
// one result per operation. A failed operation or commit is returned as
// *OpError (nothing of the transaction is committed then).
func (c *Client) Transact(ctx context.Context, db string, ops ...Operation) ([]OpResult, error) {
	params := make([]any, 0, len(ops)+1)
	params = append(params, db)
	for _, op := range ops {
		params = append(params, op)
	}
	// Encode here so an encoding error names the operation rather than
	// failing the write.
	for i, op := range ops {
		if _, err := json.Marshal(op); err != nil {
			return nil, fmt.Errorf("ovsdb: transact: operation %d (%s): %w", i, op.Op, err)
		}
	}
	res, err := c.call(ctx, "transact", params)
	if err != nil {
		return nil, err
	}
	return parseTransactResult(ops, res)
}

// MonitorRequest asks for a table's columns (all when nil) in a monitor.
type MonitorRequest struct {
	// Columns to monitor; nil means all.
	Columns []string
}

// MarshalJSON encodes the request with the default select (initial,
// insert, delete, modify all true).
func (r MonitorRequest) MarshalJSON() ([]byte, error) {
	obj := map[string]any{}
	if r.Columns != nil {
		obj["columns"] = r.Columns
	}
	return json.Marshal(obj)
}

// Monitor starts monitor id on db for the tables in req (RFC 7047
// 4.1.5): it returns the current contents and then calls fn with every
// change, from the client's reader goroutine (fn must not block or call
// the client). Cancel it with MonitorCancel.
func (c *Client) Monitor(ctx context.Context, db, id string, req map[string]MonitorRequest, fn func(TableUpdates)) (TableUpdates, error) {
	key, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: monitor id: %w", err)
	}
	c.mu.Lock()
	if _, dup := c.monitors[string(key)]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("ovsdb: monitor %q already running", id)
	}
	c.monitors[string(key)] = fn
	c.mu.Unlock()
	res, err := c.call(ctx, "monitor", []any{db, id, req})
	if err != nil {
		c.mu.Lock()
		delete(c.monitors, string(key))
		c.mu.Unlock()
		return nil, err
	}
	tu, err := parseTableUpdates(res)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: monitor %q initial contents: %w", id, err)
	}
	return tu, nil
}

// MonitorCancel stops monitor id (RFC 7047 4.1.7).
func (c *Client) MonitorCancel(ctx context.Context, id string) error {
	key, _ := json.Marshal(id)
	c.mu.Lock()
	delete(c.monitors, string(key))
	c.mu.Unlock()
	res, err := c.call(ctx, "monitor_cancel", []any{id})
	if err != nil {
		return err
	}
	if obj, ok := res.(map[string]any); !ok || len(obj) != 0 {
		return protoErr("monitor_cancel result is %s, want {}", jsonText(res))
	}
	return nil
}
