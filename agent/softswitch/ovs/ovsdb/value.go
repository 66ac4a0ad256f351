package ovsdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
)

// The OVSDB data notation (RFC 7047 5.1): an atom is a JSON string, number
// or boolean, or a two-element array ["uuid", id] or ["named-uuid", name];
// a set is an atom (one element) or ["set", [atoms]]; a map is
// ["map", [[key, value], ...]].
//
// Decoded values use these Go types: string, int64 (a JSON number without
// fraction or exponent), float64 (any other number), bool, UUID, NamedUUID,
// Set and Map. Encoding accepts the same types plus int, uint16, uint32 and
// []string / map[string]string for convenience.

// UUID is a row's UUID, encoded ["uuid", "<36 characters>"].
type UUID string

// NamedUUID names a row inserted earlier in the same transaction, encoded
// ["named-uuid", "<id>"] (RFC 7047 5.1).
type NamedUUID string

// Set is an OVSDB set: atoms of one type. The empty Set is the empty value
// of an optional column (e.g. a Port's tag when unset).
type Set []any

// Map is an OVSDB map: keys and values are atoms. Keys are string, int64,
// float64, bool or UUID.
type Map map[any]any

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// idRE is RFC 7047's <id>: a letter or underscore, then letters, digits
// and underscores.
var idRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// MarshalJSON encodes u as ["uuid", u].
func (u UUID) MarshalJSON() ([]byte, error) {
	b, err := encodeAtom(u)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: encode: %w", err)
	}
	return b, nil
}

// MarshalJSON encodes n as ["named-uuid", n].
func (n NamedUUID) MarshalJSON() ([]byte, error) {
	b, err := encodeAtom(n)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: encode: %w", err)
	}
	return b, nil
}

// MarshalJSON encodes s as ["set", [...]].
func (s Set) MarshalJSON() ([]byte, error) {
	elems := make([]json.RawMessage, 0, len(s))
	for _, v := range s {
		b, err := encodeAtom(v)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: encode set element: %w", err)
		}
		elems = append(elems, b)
	}
	return json.Marshal([]any{"set", elems})
}

// MarshalJSON encodes m as ["map", [[k, v], ...]], keys sorted by their
// encoding so the output is stable.
func (m Map) MarshalJSON() ([]byte, error) {
	pairs := make([][2]json.RawMessage, 0, len(m))
	for k, v := range m {
		kb, err := encodeAtom(k)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: encode map key: %w", err)
		}
		vb, err := encodeAtom(v)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: encode map value for key %s: %w", kb, err)
		}
		pairs = append(pairs, [2]json.RawMessage{kb, vb})
	}
	sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i][0], pairs[j][0]) < 0 })
	return json.Marshal([]any{"map", pairs})
}

// encodeAtom encodes one atom of a supported Go type.
func encodeAtom(v any) ([]byte, error) {
	switch x := v.(type) {
	case string, bool, int64, int, uint16, uint32:
		return json.Marshal(x)
	case UUID:
		if !uuidRE.MatchString(string(x)) {
			return nil, fmt.Errorf("uuid %q is malformed", string(x))
		}
		return json.Marshal([]string{"uuid", string(x)})
	case NamedUUID:
		if !idRE.MatchString(string(x)) {
			return nil, fmt.Errorf("named-uuid %q is not an <id>", string(x))
		}
		return json.Marshal([]string{"named-uuid", string(x)})
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("real %v is not representable", x)
		}
		// A real always carries a fraction or exponent, so it decodes as a
		// real again rather than as an integer.
		b := strconv.AppendFloat(nil, x, 'g', -1, 64)
		if !bytes.ContainsAny(b, ".e") {
			b = append(b, ".0"...)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unsupported atom type %T", v)
	}
}

// EncodeValue encodes v (an atom, Set, Map, []string or map[string]string)
// in the OVSDB notation.
func EncodeValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case Set:
		return x.MarshalJSON()
	case Map:
		return x.MarshalJSON()
	case []string:
		s := make(Set, len(x))
		for i, e := range x {
			s[i] = e
		}
		return s.MarshalJSON()
	case map[string]string:
		m := make(Map, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m.MarshalJSON()
	default:
		b, err := encodeAtom(v)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: encode value: %w", err)
		}
		return b, nil
	}
}

// DecodeValue decodes one value (atom, set or map) from its OVSDB notation.
// It is strict: arrays must be one of the tagged forms, UUIDs must be
// well-formed, set elements must be atoms, map entries pairs of atoms, and
// a map may not repeat a key.
func DecodeValue(b []byte) (any, error) {
	var raw any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("ovsdb: value: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("ovsdb: value: trailing data after the value")
	}
	return decodeValue(raw)
}

// decodeValue converts a generic JSON value (decoded with UseNumber) into
// the OVSDB Go types.
func decodeValue(raw any) (any, error) {
	arr, ok := raw.([]any)
	if !ok {
		return decodeAtom(raw)
	}
	if len(arr) != 2 {
		return nil, fmt.Errorf("ovsdb: value: array of %d elements, want a 2-element tagged form", len(arr))
	}
	tag, ok := arr[0].(string)
	if !ok {
		return nil, fmt.Errorf("ovsdb: value: array tag is %s, want a string", jsonKind(arr[0]))
	}
	switch tag {
	case "uuid", "named-uuid":
		return decodeAtom(raw)
	case "set":
		elems, ok := arr[1].([]any)
		if !ok {
			return nil, fmt.Errorf("ovsdb: value: set body is %s, want an array", jsonKind(arr[1]))
		}
		s := make(Set, 0, len(elems))
		for i, e := range elems {
			a, err := decodeAtom(e)
			if err != nil {
				return nil, fmt.Errorf("ovsdb: value: set element %d: %w", i, err)
			}
			s = append(s, a)
		}
		return s, nil
	case "map":
		pairs, ok := arr[1].([]any)
		if !ok {
			return nil, fmt.Errorf("ovsdb: value: map body is %s, want an array", jsonKind(arr[1]))
		}
		m := make(Map, len(pairs))
		for i, p := range pairs {
			kv, ok := p.([]any)
			if !ok || len(kv) != 2 {
				return nil, fmt.Errorf("ovsdb: value: map entry %d is not a [key, value] pair", i)
			}
			k, err := decodeAtom(kv[0])
			if err != nil {
				return nil, fmt.Errorf("ovsdb: value: map entry %d key: %w", i, err)
			}
			v, err := decodeAtom(kv[1])
			if err != nil {
				return nil, fmt.Errorf("ovsdb: value: map entry %d value: %w", i, err)
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("ovsdb: value: map entry %d repeats key %v", i, k)
			}
			m[k] = v
		}
		return m, nil
	default:
		return nil, fmt.Errorf("ovsdb: value: unknown tag %q", tag)
	}
}

// decodeAtom converts one generic JSON atom.
func decodeAtom(raw any) (any, error) {
	switch x := raw.(type) {
	case string, bool:
		return x, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s out of range", x)
		}
		return f, nil
	case []any:
		if len(x) != 2 {
			return nil, fmt.Errorf("array of %d elements is not an atom", len(x))
		}
		tag, _ := x[0].(string)
		id, ok := x[1].(string)
		switch {
		case tag == "uuid" && ok && uuidRE.MatchString(id):
			return UUID(id), nil
		case tag == "named-uuid" && ok && idRE.MatchString(id):
			return NamedUUID(id), nil
		case tag == "uuid" || tag == "named-uuid":
			return nil, fmt.Errorf("malformed %s %s", tag, jsonText(x[1]))
		default:
			return nil, fmt.Errorf("array tagged %s is not an atom", jsonText(x[0]))
		}
	default:
		return nil, fmt.Errorf("%s is not an atom", jsonKind(raw))
	}
}

// jsonKind names the JSON type of a generic value for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// jsonText renders a small generic value for error messages.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 64 {
		return jsonKind(v)
	}
	return string(b)
}

// Row is one table row: column name to decoded value. The "_uuid" and
// "_version" columns hold UUIDs.
type Row map[string]any

// decodeRow decodes a JSON object of column values.
func decodeRow(raw any) (Row, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("row is %s, want an object", jsonKind(raw))
	}
	r := make(Row, len(obj))
	for col, v := range obj {
		dv, err := decodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", col, err)
		}
		r[col] = dv
	}
	return r, nil
}

// UUID returns the row's _uuid, or "" when the row has none.
func (r Row) UUID() UUID {
	u, _ := r["_uuid"].(UUID)
	return u
}

// Strings returns column col as a slice: the elements of a set (or the one
// atom a single-element set is sent as) that are strings.
func (r Row) Strings(col string) []string { return elems[string](r, col) }

// Ints returns column col's integer elements (set or single atom).
func (r Row) Ints(col string) []int64 { return elems[int64](r, col) }

// UUIDs returns column col's UUID elements (set or single atom).
func (r Row) UUIDs(col string) []UUID { return elems[UUID](r, col) }

// elems returns the elements of column col (set or single atom) that are
// of type T, in order; nil when there are none.
func elems[T any](r Row, col string) []T {
	var out []T
	for _, v := range r.set(col) {
		if x, ok := v.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// String returns column col as a string: the atom, or the one element of a
// set; "" otherwise.
func (r Row) String(col string) string {
	s := r.Strings(col)
	if len(s) == 1 {
		return s[0]
	}
	return ""
}

// Int returns column col as an integer and whether it held exactly one.
func (r Row) Int(col string) (int64, bool) {
	i := r.Ints(col)
	if len(i) == 1 {
		return i[0], true
	}
	return 0, false
}

// StringMap returns column col's string-to-string entries; other entries
// are left out. nil when the column is absent.
func (r Row) StringMap(col string) map[string]string {
	m, ok := r[col].(Map)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		ks, ok1 := k.(string)
		vs, ok2 := v.(string)
		if ok1 && ok2 {
			out[ks] = vs
		}
	}
	return out
}

// set returns a column as a set: a Set as is, a single atom as a
// one-element set, nothing for an absent column.
func (r Row) set(col string) Set {
	switch v := r[col].(type) {
	case nil:
		return nil
	case Set:
		return v
	case Map:
		return nil
	default:
		return Set{v}
	}
}
