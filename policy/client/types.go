// Package client is tether-policyd's HTTP API: its paths, the JSON shapes
// of its answers, and the typed client tetherctl uses.
//
// Every path starts with the version. Each kind of object (policy.Kind)
// has a collection and its members:
//
//	GET    /v1/{kind}         list: a List
//	POST   /v1/{kind}         create: 201 with the stored object, 409 if it exists
//	GET    /v1/{kind}/{key}   one object; ETag: "REVISION"
//	PUT    /v1/{kind}/{key}   replace (If-Match: REVISION -> 412 when changed since)
//	DELETE /v1/{kind}/{key}   delete (If-Match honoured too); 204
//	GET    /v1/healthz        200 {"status":"ok"} once the store answers (no credentials needed)
//
// where kind is profiles, groups, hosts or placements and key the object's
// name (the VM UUID for placements). Request bodies are the object itself
// (policy.Profile, ...), decoded strictly; answers other than 2xx carry an
// ErrorBody naming the field at fault.
package client

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tether-net/tether/policy"
)

// Paths of the v1 API.
const (
	// PathPrefix starts every path.
	PathPrefix = "/v1/"
	// PathHealthz answers GET with a Health once the store answers.
	PathHealthz = "/v1/healthz"
)

// DefaultServer is where tetherctl looks for tether-policyd when neither
// --server nor TETHER_POLICY_SERVER says otherwise.
const DefaultServer = "http://127.0.0.1:7480"

// KindPath returns the collection path of kind ("/v1/profiles").
func KindPath(k policy.Kind) string { return PathPrefix + string(k) }

// ObjectPath returns the path of one object ("/v1/profiles/web").
func ObjectPath(k policy.Kind, key string) string { return KindPath(k) + "/" + key }

// ErrorBody is the body of every answer other than 2xx.
type ErrorBody struct {
	// Error says what was wrong.
	Error string `json:"error"`
	// Field is the JSON name of the request field at fault ("vid",
	// "match.uuids[2]"), empty when no one field is.
	Field string `json:"field,omitempty"`
}

// Item is one stored object with its revision, as a List holds it.
type Item struct {
	// Revision is the etcd modification revision of the object; pass it
	// back in If-Match to replace only this version.
	Revision int64 `json:"revision"`
	// Object is the object's JSON (policy.Profile, ...).
	Object json.RawMessage `json:"object"`
}

// List is the answer to GET /v1/{kind}.
type List struct {
	// Kind is the listed kind.
	Kind policy.Kind `json:"kind"`
	// Items are the objects in key order.
	Items []Item `json:"items"`
}

// Health is the answer to GET /v1/healthz.
type Health struct {
	// Status is "ok".
	Status string `json:"status"`
	// Version is the daemon's version.
	Version string `json:"version,omitempty"`
}

// ETag returns the ETag value of revision rev: the decimal in quotes.
func ETag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// ParseRevision parses an ETag or If-Match value: a decimal revision,
// quoted or not (a W/ prefix is accepted and ignored). ok is false when v
// is not one.
func ParseRevision(v string) (rev int64, ok bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
