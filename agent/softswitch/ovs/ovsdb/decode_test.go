package ovsdb

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDecodeValue(t *testing.T) {
	const u = "0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11"
	cases := []struct {
		in   string
		want any
	}{
		{`"br0"`, "br0"},
		{`42`, int64(42)},
		{`-1`, int64(-1)},
		{`1.5`, 1.5},
		{`true`, true},
		{`["uuid","` + u + `"]`, UUID(u)},
		{`["named-uuid","row_1"]`, NamedUUID("row_1")},
		{`["set",[]]`, Set{}},
		{`["set",[10,20]]`, Set{int64(10), int64(20)}},
		{`["map",[["tether-vif","52:54:00:00:00:01"]]]`, Map{"tether-vif": "52:54:00:00:00:01"}},
	}
	for _, c := range cases {
		got, err := DecodeValue([]byte(c.in))
		if err != nil {
			t.Errorf("DecodeValue(%s): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("DecodeValue(%s) = %#v, want %#v", c.in, got, c.want)
		}
		// Round trip through EncodeValue.
		b, err := EncodeValue(got)
		if err != nil {
			t.Errorf("EncodeValue(%#v): %v", got, err)
			continue
		}
		again, err := DecodeValue(b)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %s: %s -> %#v, %v", c.in, b, again, err)
		}
	}
}

// TestDecodeValueMalformed lists malformed values with the exact error.
func TestDecodeValueMalformed(t *testing.T) {
	cases := []struct{ in, err string }{
		{``, `ovsdb: value: EOF`},
		{`null`, `null is not an atom`},
		{`{}`, `an object is not an atom`},
		{`[1,2,3]`, `ovsdb: value: array of 3 elements, want a 2-element tagged form`},
		{`[1,2]`, `ovsdb: value: array tag is a number, want a string`},
		{`["list",[]]`, `ovsdb: value: unknown tag "list"`},
		{`["uuid","nope"]`, `malformed uuid "nope"`},
		{`["uuid",7]`, `malformed uuid 7`},
		{`["named-uuid","1abc"]`, `malformed named-uuid "1abc"`},
		{`["set",{}]`, `ovsdb: value: set body is an object, want an array`},
		{`["set",[[1]]]`, `ovsdb: value: set element 0: array of 1 elements is not an atom`},
		{`["set",[["set",[]]]]`, `ovsdb: value: set element 0: array tagged "set" is not an atom`},
		{`["map","x"]`, `ovsdb: value: map body is a string, want an array`},
		{`["map",[["a"]]]`, `ovsdb: value: map entry 0 is not a [key, value] pair`},
		{`["map",[[null,"b"]]]`, `ovsdb: value: map entry 0 key: null is not an atom`},
		{`["map",[["a",{}]]]`, `ovsdb: value: map entry 0 value: an object is not an atom`},
		{`["map",[["a","b"],["a","c"]]]`, `ovsdb: value: map entry 1 repeats key a`},
		{`1e999`, `number 1e999 out of range`},
		{`"a" "b"`, `ovsdb: value: trailing data after the value`},
	}
	for _, c := range cases {
		_, err := DecodeValue([]byte(c.in))
		if err == nil {
			t.Errorf("DecodeValue(%s): no error, want %q", c.in, c.err)
			continue
		}
		if err.Error() != c.err {
			t.Errorf("DecodeValue(%s) = %q, want %q", c.in, err, c.err)
		}
	}
}

// TestParseMessageMalformed lists malformed JSON-RPC messages with the exact
// error; every one wraps ErrProtocol.
func TestParseMessageMalformed(t *testing.T) {
	cases := []struct{ in, err string }{
		{`[]`, `ovsdb: protocol error: message is not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage`},
		{`null`, `ovsdb: protocol error: message is null`},
		{`{"id":1,"result":[],"error":null,"extra":1}`, `ovsdb: protocol error: unknown member "extra"`},
		{`{"result":[],"error":null}`, `ovsdb: protocol error: message has no id`},
		{`{"id":1,"method":"echo","params":[],"result":1}`, `ovsdb: protocol error: request carries a result`},
		{`{"id":1,"method":"echo","params":[],"error":1}`, `ovsdb: protocol error: request carries an error`},
		{`{"id":1,"method":"","params":[]}`, `ovsdb: protocol error: method is not a non-empty string`},
		{`{"id":1,"method":7,"params":[]}`, `ovsdb: protocol error: method is not a non-empty string`},
		{`{"id":1,"method":"echo"}`, `ovsdb: protocol error: request "echo" has no params`},
		{`{"id":null,"method":"update","params":{}}`, `ovsdb: protocol error: params of "update" is an object, want an array`},
		{`{"id":1,"params":[],"result":1,"error":null}`, `ovsdb: protocol error: response carries params`},
		{`{"id":null,"result":1,"error":null}`, `ovsdb: protocol error: response has a null id`},
		{`{"id":1}`, `ovsdb: protocol error: response has neither result nor error`},
		{`{"id":1,"error":null}`, `ovsdb: protocol error: response has neither result nor error`},
		{`{"id":1,"result":null,"error":null}`, `ovsdb: protocol error: response has neither result nor error`},
		{`{"id":1,"result":1,"error":"x"}`, `ovsdb: protocol error: response has both result and error`},
		{`{"id":1,"result":null,"error":{"details":"d"}}`, `ovsdb: protocol error: error object has no string member "error"`},
		{`{"id":1,"result":null,"error":{"error":"e","details":5}}`, `ovsdb: protocol error: error details is a number, want a string`},
		{`{"id":1,"result":null,"error":7}`, `ovsdb: protocol error: error is a number, want an object or a string`},
	}
	for _, c := range cases {
		_, err := parseMessage([]byte(c.in))
		if err == nil {
			t.Errorf("parseMessage(%s): no error, want %q", c.in, c.err)
			continue
		}
		if err.Error() != c.err {
			t.Errorf("parseMessage(%s)\n got %q\nwant %q", c.in, err, c.err)
		}
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("parseMessage(%s): %v does not wrap ErrProtocol", c.in, err)
		}
	}
}

// TestParseTransactResultMalformed checks replies to a transaction of an
// insert then a select.
func TestParseTransactResultMalformed(t *testing.T) {
	ops := []Operation{{Op: "insert", Table: "Bridge"}, {Op: "select", Table: "Bridge"}}
	const u = `["uuid","0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11"]`
	cases := []struct{ in, err string }{
		{`{}`, `ovsdb: protocol error: transact result is an object, want an array`},
		{`[{"uuid":` + u + `}]`, `ovsdb: protocol error: transact result has 1 elements for 2 operations`},
		{`[{"uuid":` + u + `},{"rows":[]},{},{}]`, `ovsdb: protocol error: transact result has 4 elements for 2 operations`},
		{`[{},{"rows":[]}]`, `ovsdb: protocol error: result 0 (insert): insert result has no uuid`},
		{`[{"uuid":"x"},{"rows":[]}]`, `ovsdb: protocol error: result 0 (insert): insert result uuid is "x", want ["uuid", ...]`},
		{`[{"uuid":` + u + `,"count":1},{"rows":[]}]`, `ovsdb: protocol error: result 0 (insert): unexpected member "count"`},
		{`[{"uuid":` + u + `},{}]`, `ovsdb: protocol error: result 1 (select): select result has no rows`},
		{`[{"uuid":` + u + `},{"rows":{}}]`, `ovsdb: protocol error: result 1 (select): rows is an object, want an array`},
		{`[{"uuid":` + u + `},{"rows":[5]}]`, `ovsdb: protocol error: result 1 (select): row 0: row is a number, want an object`},
		{`[{"uuid":` + u + `},{"rows":[{"tag":["set",[{}]]}]}]`, `ovsdb: protocol error: result 1 (select): row 0: column "tag": ovsdb: value: set element 0: an object is not an atom`},
		{`[{"uuid":` + u + `},7]`, `ovsdb: protocol error: result 1 (select) is a number, want an object`},
		{`[{"uuid":` + u + `},null]`, `ovsdb: protocol error: result 1 (select) is null without an earlier error`},
		{`[{"uuid":` + u + `},{"rows":[]},{}]`, `ovsdb: protocol error: result 2 follows the last operation but is no error`},
		{`[{"error":5},null]`, `ovsdb: protocol error: result 0 (insert): error is a number, want a string`},
		{`[{"error":"constraint violation","details":"no row"},null]`, `ovsdb: transact: operation 0 (insert): constraint violation: no row`},
		{`[{"uuid":` + u + `},{"rows":[]},{"error":"timed out"}]`, `ovsdb: transact: operation 2 (commit): timed out`},
	}
	for _, c := range cases {
		res, err := decodeGeneric([]byte(c.in))
		if err != nil {
			t.Fatalf("bad case %s: %v", c.in, err)
		}
		_, err = parseTransactResult(ops, res)
		if err == nil {
			t.Errorf("parseTransactResult(%s): no error, want %q", c.in, c.err)
			continue
		}
		if err.Error() != c.err {
			t.Errorf("parseTransactResult(%s)\n got %q\nwant %q", c.in, err, c.err)
		}
	}
}

func TestParseTableUpdatesMalformed(t *testing.T) {
	const id = "0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11"
	cases := []struct{ in, err string }{
		{`[]`, `ovsdb: protocol error: table updates is an array, want an object`},
		{`{"Port":[]}`, `ovsdb: protocol error: table "Port" update is an array, want an object`},
		{`{"Port":{"x":{}}}`, `ovsdb: protocol error: table "Port": row key "x" is not a UUID`},
		{`{"Port":{"` + id + `":1}}`, `ovsdb: protocol error: table "Port" row ` + id + `: update is a number, want an object`},
		{`{"Port":{"` + id + `":{}}}`, `ovsdb: protocol error: table "Port" row ` + id + `: update has neither old nor new`},
		{`{"Port":{"` + id + `":{"mid":{}}}}`, `ovsdb: protocol error: table "Port" row ` + id + `: unknown member "mid"`},
		{`{"Port":{"` + id + `":{"new":[]}}}`, `ovsdb: protocol error: table "Port" row ` + id + ` new: row is an array, want an object`},
	}
	for _, c := range cases {
		v, err := decodeGeneric([]byte(c.in))
		if err != nil {
			t.Fatalf("bad case %s: %v", c.in, err)
		}
		_, err = parseTableUpdates(v)
		if err == nil || err.Error() != c.err {
			t.Errorf("parseTableUpdates(%s)\n got %v\nwant %q", c.in, err, c.err)
		}
	}
}

func TestParseSchemaMalformed(t *testing.T) {
	cases := []struct{ in, err string }{
		{`[]`, `ovsdb: protocol error: schema is an array, want an object`},
		{`{"version":"1"}`, `ovsdb: protocol error: schema has no name`},
		{`{"name":"X"}`, `ovsdb: protocol error: schema X has no version`},
		{`{"name":"X","version":"1"}`, `ovsdb: protocol error: schema X has no tables object`},
		{`{"name":"X","version":"1","tables":{"T":[]}}`, `ovsdb: protocol error: schema X table "T" is an array, want an object`},
		{`{"name":"X","version":"1","tables":{"T":{}}}`, `ovsdb: protocol error: schema X table "T" has no columns object`},
	}
	for _, c := range cases {
		v, err := decodeGeneric([]byte(c.in))
		if err != nil {
			t.Fatalf("bad case %s: %v", c.in, err)
		}
		if _, err := parseSchema(v); err == nil || err.Error() != c.err {
			t.Errorf("parseSchema(%s)\n got %v\nwant %q", c.in, err, c.err)
		}
	}
	s, err := parseSchema(map[string]any{"name": "X", "version": "1.0", "tables": map[string]any{"T": map[string]any{"columns": map[string]any{"c": map[string]any{}}}}})
	if err != nil || !s.HasColumn("T", "c") || s.HasColumn("T", "d") {
		t.Errorf("parseSchema = %+v, %v", s, err)
	}
}

func TestOperationEncoding(t *testing.T) {
	timeout := 0
	cases := []struct {
		op   Operation
		want string
	}{
		{Operation{Op: "insert", Table: "Port", UUIDName: "p", Row: map[string]any{"name": "vm1", "tag": 10, "trunks": Set{}}},
			`{"op":"insert","row":{"name":"vm1","tag":10,"trunks":["set",[]]},"table":"Port","uuid-name":"p"}`},
		{Operation{Op: "select", Table: "Bridge", Where: []Condition{Eq("name", "br0")}, Columns: []string{"_uuid"}},
			`{"columns":["_uuid"],"op":"select","table":"Bridge","where":[["name","==","br0"]]}`},
		{Operation{Op: "mutate", Table: "Bridge", Mutations: []Mutation{{"ports", "insert", Set{NamedUUID("p")}}}},
			`{"mutations":[["ports","insert",["set",[["named-uuid","p"]]]]],"op":"mutate","table":"Bridge","where":[]}`},
		{Operation{Op: "wait", Table: "Interface", Where: []Condition{Eq("name", "x")}, Columns: []string{"ofport"}, Until: "!=", Rows: []map[string]any{{"ofport": Set{}}}, Timeout: &timeout},
			`{"columns":["ofport"],"op":"wait","rows":[{"ofport":["set",[]]}],"table":"Interface","timeout":0,"until":"!=","where":[["name","==","x"]]}`},
		{Operation{Op: "update", Table: "Port", Row: map[string]any{"external_ids": map[string]string{"b": "2", "a": "1"}}},
			`{"op":"update","row":{"external_ids":["map",[["a","1"],["b","2"]]]},"table":"Port","where":[]}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.op)
		if err != nil {
			t.Errorf("%s: %v", c.op.Op, err)
			continue
		}
		if string(b) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.op.Op, b, c.want)
		}
	}
	bad := []struct {
		op  Operation
		err string
	}{
		{Operation{Op: "explode"}, `ovsdb: operation "explode" not supported`},
		{Operation{Op: "insert", Table: "Port", Row: map[string]any{"x": struct{}{}}}, `ovsdb: insert into Port: column "x": ovsdb: encode value: unsupported atom type struct {}`},
		{Operation{Op: "insert", Table: "Port", Row: map[string]any{"x": UUID("nope")}}, `ovsdb: insert into Port: column "x": ovsdb: encode value: uuid "nope" is malformed`},
	}
	for _, c := range bad {
		_, err := c.op.MarshalJSON()
		if err == nil || err.Error() != c.err {
			t.Errorf("%+v: got %v, want %q", c.op, err, c.err)
		}
	}
}

// FuzzParseMessage feeds arbitrary bytes to the message, transact-result,
// table-updates and value decoders: none may panic, and every accepted
// value re-encodes and decodes to the same value.
func FuzzParseMessage(f *testing.F) {
	seeds := []string{
		`{"id":1,"result":[{"uuid":["uuid","0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11"]},{"rows":[{"name":"br0","tag":["set",[]]}]}],"error":null}`,
		`{"id":"echo","method":"echo","params":[]}`,
		`{"id":null,"method":"update","params":["m",{"Port":{"0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11":{"new":{"tag":10}}}}]}`,
		`{"id":2,"result":null,"error":{"error":"unknown database","details":"x"}}`,
		`["map",[["a",["uuid","0b8a3ad0-6f43-4c27-9a4b-5b5b3e1b9c11"]]]]`,
		`["set",[1,2.5,true,"x"]]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	ops := []Operation{{Op: "insert"}, {Op: "select"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseMessage(b); err == nil {
			if m.kind == kindResponse && m.err == nil {
				parseTransactResult(ops, m.result)
			}
			if m.kind == kindNotification && len(m.params) == 2 {
				parseTableUpdates(m.params[1])
			}
			if m.kind == kindResponse && m.err == nil {
				parseSchema(m.result)
				parseTableUpdates(m.result)
			}
		}
		v, err := DecodeValue(b)
		if err != nil {
			return
		}
		enc, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		again, err := DecodeValue(enc)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("round trip %s -> %#v -> %s -> %#v, %v", b, v, enc, again, err)
		}
	})
}
