package ovsdb_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/softswitch/ovs/ovsdb"
	"github.com/tether-net/tether/internal/ovstest"
)

const db = "Open_vSwitch"

// TestClientAgainstOVSDBServer runs every call against a real
// ovsdb-server on the Open_vSwitch schema.
func TestClientAgainstOVSDBServer(t *testing.T) {
	ovstest.Require(t)
	o := ovstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, o.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if err := c.Echo(ctx); err != nil {
		t.Fatalf("echo: %v", err)
	}
	dbs, err := c.ListDBs(ctx)
	if err != nil || !slices.Contains(dbs, db) {
		t.Fatalf("list_dbs = %v, %v; want %s among them", dbs, err, db)
	}
	s, err := c.GetSchema(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"Port", "vlan_mode"}, {"Port", "cvlans"}, {"Port", "trunks"}, {"Interface", "ingress_policing_rate"}, {"Bridge", "datapath_type"}} {
		if !s.HasColumn(tc[0], tc[1]) {
			t.Errorf("schema %s %s lacks %s.%s", s.Name, s.Version, tc[0], tc[1])
		}
	}
	var rpcErr *ovsdb.RPCError
	if _, err := c.GetSchema(ctx, "NoSuchDB"); !errors.As(err, &rpcErr) || rpcErr.Err != "unknown database" {
		t.Errorf("get_schema of an unknown database: %v, want RPCError \"unknown database\"", err)
	}

	// A monitor on Bridge names sees the insert, the update and the delete.
	updates := make(chan ovsdb.TableUpdates, 16)
	initial, err := c.Monitor(ctx, db, "bridges", map[string]ovsdb.MonitorRequest{"Bridge": {Columns: []string{"name", "external_ids"}}},
		func(tu ovsdb.TableUpdates) { updates <- tu })
	if err != nil {
		t.Fatal(err)
	}
	if len(initial["Bridge"]) != 0 {
		t.Fatalf("initial contents of a fresh database: %v", initial)
	}
	next := func(what string) ovsdb.TableUpdates {
		t.Helper()
		select {
		case tu := <-updates:
			return tu
		case <-ctx.Done():
			t.Fatalf("no monitor update for %s", what)
			return nil
		}
	}

	res, err := c.Transact(ctx, db,
		ovsdb.Operation{Op: "insert", Table: "Open_vSwitch", Row: map[string]any{"bridges": ovsdb.Set{ovsdb.NamedUUID("br")}}},
		ovsdb.Operation{Op: "insert", Table: "Bridge", UUIDName: "br", Row: map[string]any{
			"name": "tbr0", "datapath_type": "netdev", "external_ids": map[string]string{"tether": "yes"}}},
		ovsdb.Operation{Op: "comment", Comment: "tether client test"},
	)
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	br := res[1].UUID
	if br == "" {
		t.Fatalf("insert returned no uuid: %+v", res)
	}
	if u := next("insert")["Bridge"][br]; u.New.String("name") != "tbr0" || u.Old != nil {
		t.Errorf("insert update = %+v", u)
	}

	res, err = c.Transact(ctx, db, ovsdb.Operation{Op: "select", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("name", "tbr0")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Rows) != 1 || res[0].Rows[0].UUID() != br || res[0].Rows[0].String("datapath_type") != "netdev" ||
		res[0].Rows[0].StringMap("external_ids")["tether"] != "yes" {
		t.Errorf("select = %+v", res[0].Rows)
	}

	res, err = c.Transact(ctx, db,
		ovsdb.Operation{Op: "update", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br)}, Row: map[string]any{"stp_enable": true}},
		ovsdb.Operation{Op: "mutate", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br)},
			Mutations: []ovsdb.Mutation{{Column: "external_ids", Mutator: "insert", Value: map[string]string{"k": "v"}}}},
	)
	if err != nil || res[0].Count != 1 || res[1].Count != 1 {
		t.Fatalf("update, mutate = %+v, %v", res, err)
	}
	if u := next("mutate")["Bridge"][br]; u.New.StringMap("external_ids")["k"] != "v" || u.Old.StringMap("external_ids")["k"] != "" {
		t.Errorf("mutate update = %+v", u)
	}

	// wait: satisfied at once, and one that cannot be satisfied with a
	// zero timeout fails as an operation error.
	zero := 0
	if _, err := c.Transact(ctx, db, ovsdb.Operation{Op: "wait", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br)},
		Columns: []string{"name"}, Until: "==", Rows: []map[string]any{{"name": "tbr0"}}, Timeout: &zero}); err != nil {
		t.Errorf("wait ==: %v", err)
	}
	var opErr *ovsdb.OpError
	_, err = c.Transact(ctx, db, ovsdb.Operation{Op: "wait", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br)},
		Columns: []string{"name"}, Until: "==", Rows: []map[string]any{{"name": "other"}}, Timeout: &zero})
	if !errors.As(err, &opErr) || opErr.Index != 0 || opErr.Err != "timed out" {
		t.Errorf("unsatisfiable wait: %v, want OpError timed out at 0", err)
	}
	// A constraint the server enforces: a second bridge with the same
	// name violates the index.
	_, err = c.Transact(ctx, db,
		ovsdb.Operation{Op: "insert", Table: "Bridge", UUIDName: "dup", Row: map[string]any{"name": "tbr0"}},
		ovsdb.Operation{Op: "mutate", Table: "Open_vSwitch", Mutations: []ovsdb.Mutation{{Column: "bridges", Mutator: "insert", Value: ovsdb.Set{ovsdb.NamedUUID("dup")}}}})
	if !errors.As(err, &opErr) || opErr.Op != "commit" || opErr.Err != "constraint violation" {
		t.Errorf("duplicate bridge name: %v, want a commit constraint violation", err)
	}

	res, err = c.Transact(ctx, db,
		ovsdb.Operation{Op: "mutate", Table: "Open_vSwitch", Mutations: []ovsdb.Mutation{{Column: "bridges", Mutator: "delete", Value: ovsdb.Set{br}}}},
		ovsdb.Operation{Op: "delete", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br)}})
	if err != nil || res[1].Count != 1 {
		t.Fatalf("delete = %+v, %v", res, err)
	}
	if u := next("delete")["Bridge"][br]; u.New != nil || u.Old.String("name") != "tbr0" {
		t.Errorf("delete update = %+v", u)
	}
	if err := c.MonitorCancel(ctx, "bridges"); err != nil {
		t.Errorf("monitor_cancel: %v", err)
	}

	// A call given up before its answer (a wait the server holds for
	// 300 ms, a context of 50 ms) does not break the connection when the
	// late answer comes.
	hold := 300
	short, cancelShort := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancelShort)
	_, err = c.Transact(short, db, ovsdb.Operation{Op: "wait", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("name", "never")},
		Columns: []string{"name"}, Until: "!=", Rows: []map[string]any{}, Timeout: &hold})
	cancelShort()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("held wait cancelled after 50 ms: %v, want context.Canceled", err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.Echo(ctx); err != nil {
		t.Errorf("echo after a late answer: %v", err)
	}
}

// TestClientRejectsMalformedServer: a server that answers with a reply
// breaking JSON-RPC fails the pending call with ErrProtocol and the
// connection is closed; an echo request from the server is answered.
func TestClientRejectsMalformedServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ name, reply, want string }{
		{"both members", `{"id":1,"result":[],"error":"x"}`, "ovsdb: protocol error: response has both result and error"},
		{"unknown id", `{"id":99,"result":[],"error":null}`, "ovsdb: protocol error: response id 99 was never sent"},
		{"not json", `{"id":`, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, srv := net.Pipe()
			c := ovsdb.NewClient(cl, nil)
			defer c.Close()
			go func() {
				buf := make([]byte, 4096)
				srv.Write([]byte(`{"id":"e1","method":"echo","params":["hi"]}`))
				n, _ := srv.Read(buf) // the echo reply or the request
				first := string(buf[:n])
				n2, _ := srv.Read(buf)
				second := string(buf[:n2])
				if !strings.Contains(first+second, `"id":"e1"`) || !strings.Contains(first+second, `"result":["hi"]`) {
					srv.Write([]byte(`{"id":1,"result":null,"error":"echo not answered"}`))
				}
				srv.Write([]byte(tc.reply))
				srv.Close()
			}()
			_, err := c.ListDBs(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ListDBs = %v, want an error containing %q", err, tc.want)
			}
			<-c.Done()
			if !errors.Is(c.Err(), ovsdb.ErrClosed) {
				t.Errorf("Err = %v, want ErrClosed", c.Err())
			}
		})
	}
}
