package ovsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrProtocol marks a message from the server that breaks JSON-RPC 1.0 or
// RFC 7047; match with errors.Is.
var ErrProtocol = errors.New("ovsdb: protocol error")

// protoErr wraps ErrProtocol with what was wrong.
func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// messageKind tells the three JSON-RPC 1.0 message shapes apart.
type messageKind int

const (
	kindResponse     messageKind = iota + 1 // id, result, error
	kindRequest                             // id, method, params
	kindNotification                        // id null, method, params
)

// message is one decoded JSON-RPC 1.0 message from the server.
type message struct {
	kind   messageKind
	id     any // json.Number, string, ... (nil for a notification)
	rawID  json.RawMessage
	method string
	params []any
	result any
	err    *RPCError
}

// RPCError is the error member of a JSON-RPC response: ovsdb-server sends
// an object {"error": "<kind>", "details": "<text>"} (RFC 7047 3.1), some
// servers a bare string.
type RPCError struct {
	// Err is the error kind, e.g. "unknown database".
	Err string
	// Details is the optional human-readable text.
	Details string
}

// Error renders the error as ovsdb-server words it.
func (e *RPCError) Error() string {
	if e.Details != "" {
		return "ovsdb: " + e.Err + ": " + e.Details
	}
	return "ovsdb: " + e.Err
}

// parseMessage decodes one message strictly: a JSON object with only the
// members id, method, params, result and error, in one of the three shapes
// of JSON-RPC 1.0.
func parseMessage(b []byte) (message, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return message{}, protoErr("message is not a JSON object: %v", err)
	}
	if obj == nil {
		return message{}, protoErr("message is null")
	}
	for k := range obj {
		switch k {
		case "id", "method", "params", "result", "error":
		default:
			return message{}, protoErr("unknown member %q", k)
		}
	}
	rawID, hasID := obj["id"]
	if !hasID {
		return message{}, protoErr("message has no id")
	}
	id, err := decodeGeneric(rawID)
	if err != nil {
		return message{}, protoErr("id: %v", err)
	}
	var m message
	m.id, m.rawID = id, rawID
	if rawMethod, ok := obj["method"]; ok {
		if _, ok := obj["result"]; ok {
			return message{}, protoErr("request carries a result")
		}
		if _, ok := obj["error"]; ok {
			return message{}, protoErr("request carries an error")
		}
		if err := json.Unmarshal(rawMethod, &m.method); err != nil || m.method == "" {
			return message{}, protoErr("method is not a non-empty string")
		}
		rawParams, ok := obj["params"]
		if !ok {
			return message{}, protoErr("request %q has no params", m.method)
		}
		p, err := decodeGeneric(rawParams)
		if err != nil {
			return message{}, protoErr("params: %v", err)
		}
		params, ok := p.([]any)
		if !ok {
			return message{}, protoErr("params of %q is %s, want an array", m.method, jsonKind(p))
		}
		m.params = params
		m.kind = kindRequest
		if id == nil {
			m.kind = kindNotification
		}
		return m, nil
	}
	if _, ok := obj["params"]; ok {
		return message{}, protoErr("response carries params")
	}
	if id == nil {
		return message{}, protoErr("response has a null id")
	}
	// JSON-RPC 1.0 has both members in every response; ovsdb-server leaves
	// "result" out of error responses, so a missing member reads as null.
	rawResult, hasResult := obj["result"]
	rawErr, hasErr := obj["error"]
	if !hasResult && !hasErr {
		return message{}, protoErr("response has neither result nor error")
	}
	var result, e any
	var err2 error
	if hasResult {
		if result, err2 = decodeGeneric(rawResult); err2 != nil {
			return message{}, protoErr("result: %v", err2)
		}
	}
	if hasErr {
		if e, err2 = decodeGeneric(rawErr); err2 != nil {
			return message{}, protoErr("error: %v", err2)
		}
	}
	switch {
	case e == nil && result == nil:
		return message{}, protoErr("response has neither result nor error")
	case e != nil && result != nil:
		return message{}, protoErr("response has both result and error")
	case e != nil:
		rpcErr, err := decodeRPCError(e)
		if err != nil {
			return message{}, err
		}
		m.err = rpcErr
	}
	m.result = result
	m.kind = kindResponse
	return m, nil
}

// decodeRPCError accepts {"error": string, "details"?: string, ...} or a
// bare string.
func decodeRPCError(e any) (*RPCError, error) {
	switch x := e.(type) {
	case string:
		return &RPCError{Err: x}, nil
	case map[string]any:
		kind, ok := x["error"].(string)
		if !ok {
			return nil, protoErr("error object has no string member \"error\"")
		}
		out := &RPCError{Err: kind}
		if d, ok := x["details"]; ok {
			if ds, ok := d.(string); ok {
				out.Details = ds
			} else {
				return nil, protoErr("error details is %s, want a string", jsonKind(d))
			}
		}
		return out, nil
	default:
		return nil, protoErr("error is %s, want an object or a string", jsonKind(e))
	}
}

// decodeGeneric decodes JSON with numbers kept as json.Number.
func decodeGeneric(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// OpResult is the result of one operation of a transaction (RFC 7047
// 5.2): UUID for insert, Count for update, mutate and delete, Rows for
// select.
type OpResult struct {
	// UUID is the inserted row's UUID (insert).
	UUID UUID
	// Count is the number of rows matched (update, mutate, delete).
	Count int64
	// Rows are the selected rows (select).
	Rows []Row
}

// OpError is an operation of a transaction that failed, or the commit
// itself (Index == len(ops), Op "commit").
type OpError struct {
	// Index is the operation's position in the transaction.
	Index int
	// Op is the operation ("insert", ...), or "commit".
	Op string
	// Err is the error kind, e.g. "constraint violation".
	Err string
	// Details is the server's text.
	Details string
}

// Error renders the error with the operation it belongs to.
func (e *OpError) Error() string {
	s := fmt.Sprintf("ovsdb: transact: operation %d (%s): %s", e.Index, e.Op, e.Err)
	if e.Details != "" {
		s += ": " + e.Details
	}
	return s
}

// parseTransactResult checks the result of a transact against the
// operations sent: one element per operation (an extra one reports a
// commit failure), each of the shape its operation gives. The first
// operation error is returned as *OpError.
func parseTransactResult(ops []Operation, result any) ([]OpResult, error) {
	arr, ok := result.([]any)
	if !ok {
		return nil, protoErr("transact result is %s, want an array", jsonKind(result))
	}
	if len(arr) < len(ops) || len(arr) > len(ops)+1 {
		return nil, protoErr("transact result has %d elements for %d operations", len(arr), len(ops))
	}
	out := make([]OpResult, len(ops))
	for i, el := range arr {
		op := "commit"
		if i < len(ops) {
			op = ops[i].Op
		}
		if el == nil {
			// Operations after a failed one may be null; a null without
			// an earlier error is a protocol violation (checked below).
			continue
		}
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, protoErr("result %d (%s) is %s, want an object", i, op, jsonKind(el))
		}
		if e, ok := obj["error"]; ok && e != nil {
			kind, ok := e.(string)
			if !ok {
				return nil, protoErr("result %d (%s): error is %s, want a string", i, op, jsonKind(e))
			}
			details, _ := obj["details"].(string)
			return nil, &OpError{Index: i, Op: op, Err: kind, Details: details}
		}
		if i == len(ops) {
			return nil, protoErr("result %d follows the last operation but is no error", i)
		}
		r, err := parseOpResult(op, obj)
		if err != nil {
			return nil, protoErr("result %d (%s): %v", i, op, err)
		}
		out[i] = r
	}
	for i := range ops {
		if arr[i] == nil {
			return nil, protoErr("result %d (%s) is null without an earlier error", i, ops[i].Op)
		}
	}
	return out, nil
}

// parseOpResult decodes one successful operation's result object.
func parseOpResult(op string, obj map[string]any) (OpResult, error) {
	var r OpResult
	allowed := map[string]bool{}
	switch op {
	case "insert":
		allowed["uuid"] = true
		v, ok := obj["uuid"]
		if !ok {
			return r, errors.New("insert result has no uuid")
		}
		a, err := decodeAtom(v)
		u, isUUID := a.(UUID)
		if err != nil || !isUUID {
			return r, fmt.Errorf("insert result uuid is %s, want [\"uuid\", ...]", jsonText(v))
		}
		r.UUID = u
	case "update", "mutate", "delete":
		allowed["count"] = true
		v, ok := obj["count"]
		if !ok {
			return r, fmt.Errorf("%s result has no count", op)
		}
		a, err := decodeAtom(v)
		n, isInt := a.(int64)
		if err != nil || !isInt || n < 0 {
			return r, fmt.Errorf("count is %s, want a non-negative integer", jsonText(v))
		}
		r.Count = n
	case "select":
		allowed["rows"] = true
		v, ok := obj["rows"]
		if !ok {
			return r, errors.New("select result has no rows")
		}
		rows, ok := v.([]any)
		if !ok {
			return r, fmt.Errorf("rows is %s, want an array", jsonKind(v))
		}
		r.Rows = make([]Row, 0, len(rows))
		for j, raw := range rows {
			row, err := decodeRow(raw)
			if err != nil {
				return r, fmt.Errorf("row %d: %w", j, err)
			}
			r.Rows = append(r.Rows, row)
		}
	}
	for k := range obj {
		if !allowed[k] && k != "error" {
			return r, fmt.Errorf("unexpected member %q", k)
		}
	}
	return r, nil
}

// RowUpdate is one row's change in a monitor update (RFC 7047 4.1.6): Old
// is nil for an insert, New nil for a delete.
type RowUpdate struct {
	// Old holds the changed columns' previous values (all columns on
	// delete).
	Old Row
	// New holds the row's monitored columns after the change.
	New Row
}

// TableUpdates maps table name to row UUID to the row's update.
type TableUpdates map[string]map[UUID]RowUpdate

// parseTableUpdates decodes the <table-updates> object of a monitor reply
// or update notification.
func parseTableUpdates(v any) (TableUpdates, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, protoErr("table updates is %s, want an object", jsonKind(v))
	}
	out := make(TableUpdates, len(obj))
	for table, tv := range obj {
		rows, ok := tv.(map[string]any)
		if !ok {
			return nil, protoErr("table %q update is %s, want an object", table, jsonKind(tv))
		}
		tu := make(map[UUID]RowUpdate, len(rows))
		for id, rv := range rows {
			if !uuidRE.MatchString(id) {
				return nil, protoErr("table %q: row key %q is not a UUID", table, id)
			}
			ru, ok := rv.(map[string]any)
			if !ok {
				return nil, protoErr("table %q row %s: update is %s, want an object", table, id, jsonKind(rv))
			}
			var u RowUpdate
			for k, val := range ru {
				row, err := decodeRow(val)
				if err != nil {
					return nil, protoErr("table %q row %s %s: %v", table, id, k, err)
				}
				switch k {
				case "old":
					u.Old = row
				case "new":
					u.New = row
				default:
					return nil, protoErr("table %q row %s: unknown member %q", table, id, k)
				}
			}
			if u.Old == nil && u.New == nil {
				return nil, protoErr("table %q row %s: update has neither old nor new", table, id)
			}
			tu[UUID(id)] = u
		}
		out[table] = tu
	}
	return out, nil
}
