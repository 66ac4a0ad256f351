package ovsdb

import (
	"encoding/json"
	"fmt"
)

// Condition is one clause of a where (RFC 7047 5.1): [column, function,
// value], e.g. {"name", "==", "br0"}.
type Condition struct {
	// Column is the column's name.
	Column string
	// Function is one of <, <=, ==, !=, >=, >, includes, excludes.
	Function string
	// Value is compared with the column (atom, Set, Map, ...).
	Value any
}

// MarshalJSON encodes the condition as a 3-element array.
func (c Condition) MarshalJSON() ([]byte, error) {
	v, err := EncodeValue(c.Value)
	if err != nil {
		return nil, fmt.Errorf("condition on %q: %w", c.Column, err)
	}
	return json.Marshal([]any{c.Column, c.Function, json.RawMessage(v)})
}

// Mutation is one mutation (RFC 7047 5.1): [column, mutator, value], e.g.
// {"ports", "insert", Set{NamedUUID("p")}}.
type Mutation struct {
	// Column is the column's name.
	Column string
	// Mutator is one of +=, -=, *=, /=, %=, insert, delete.
	Mutator string
	// Value is the operand.
	Value any
}

// MarshalJSON encodes the mutation as a 3-element array.
func (m Mutation) MarshalJSON() ([]byte, error) {
	v, err := EncodeValue(m.Value)
	if err != nil {
		return nil, fmt.Errorf("mutation of %q: %w", m.Column, err)
	}
	return json.Marshal([]any{m.Column, m.Mutator, json.RawMessage(v)})
}

// Operation is one operation of a transact (RFC 7047 5.2). Only the fields
// its Op uses are encoded; Where is always sent for the operations that
// take one (an empty where matches every row).
type Operation struct {
	// Op is insert, select, update, mutate, delete, wait, commit, abort,
	// comment or assert.
	Op string
	// Table is the table operated on.
	Table string
	// Row holds column values for insert and update (and the rows of
	// wait, see Rows).
	Row map[string]any
	// Rows are the rows wait compares against.
	Rows []map[string]any
	// Where selects rows for select, update, mutate, delete and wait.
	Where []Condition
	// Columns limits select's and wait's columns.
	Columns []string
	// Mutations are mutate's changes.
	Mutations []Mutation
	// UUIDName names an inserted row for later operations (NamedUUID).
	UUIDName string
	// Timeout is wait's timeout in milliseconds; nil waits forever.
	Timeout *int
	// Until is wait's "==" or "!=".
	Until string
	// Comment is comment's text.
	Comment string
}

// encodeRow encodes a column-to-value map.
func encodeRow(r map[string]any) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(r))
	for col, v := range r {
		b, err := EncodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", col, err)
		}
		out[col] = b
	}
	return out, nil
}

// MarshalJSON encodes the operation as the object RFC 7047 gives for its op.
func (o Operation) MarshalJSON() ([]byte, error) {
	obj := map[string]any{"op": o.Op}
	where := o.Where
	if where == nil {
		where = []Condition{}
	}
	switch o.Op {
	case "insert", "update":
		row, err := encodeRow(o.Row)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: %s into %s: %w", o.Op, o.Table, err)
		}
		obj["table"], obj["row"] = o.Table, row
		if o.Op == "insert" && o.UUIDName != "" {
			obj["uuid-name"] = o.UUIDName
		}
		if o.Op == "update" {
			obj["where"] = where
		}
	case "select":
		obj["table"], obj["where"] = o.Table, where
		if o.Columns != nil {
			obj["columns"] = o.Columns
		}
	case "mutate":
		obj["table"], obj["where"], obj["mutations"] = o.Table, where, o.Mutations
	case "delete":
		obj["table"], obj["where"] = o.Table, where
	case "wait":
		rows := make([]map[string]json.RawMessage, 0, len(o.Rows))
		for _, r := range o.Rows {
			er, err := encodeRow(r)
			if err != nil {
				return nil, fmt.Errorf("ovsdb: wait on %s: %w", o.Table, err)
			}
			rows = append(rows, er)
		}
		cols := o.Columns
		if cols == nil {
			cols = []string{}
		}
		obj["table"], obj["where"], obj["columns"], obj["until"], obj["rows"] = o.Table, where, cols, o.Until, rows
		if o.Timeout != nil {
			obj["timeout"] = *o.Timeout
		}
	case "comment":
		obj["comment"] = o.Comment
	case "commit":
		obj["durable"] = false
	case "abort":
	default:
		return nil, fmt.Errorf("ovsdb: operation %q not supported", o.Op)
	}
	return json.Marshal(obj)
}

// Eq is the condition column == value.
func Eq(column string, value any) Condition {
	return Condition{Column: column, Function: "==", Value: value}
}

// Includes is the condition "column includes value".
func Includes(column string, value any) Condition {
	return Condition{Column: column, Function: "includes", Value: value}
}
