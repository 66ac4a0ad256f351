package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve runs h on a fresh unix socket and returns a client for it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &Client{Socket: sock}
}

func TestClientDaemonDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	c := &Client{Socket: sock}
	_, err := c.Status(context.Background())
	var dd *DaemonDownError
	if !errors.As(err, &dd) {
		t.Fatalf("err = %v (%T), want *DaemonDownError", err, err)
	}
	want := "tetherd is not running (no one listens on " + sock + "); start it with 'systemctl start tetherd', or point --socket at the right path"
	if err.Error() != want {
		t.Fatalf("err = %q\nwant  %q", err, want)
	}
}

func TestClientStaleSocketRefused(t *testing.T) {
	// A socket file with no listener (a crashed daemon) must read as "not running".
	sock := filepath.Join(t.TempDir(), "stale.sock")
	l, err := Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	// Closing a unix listener removes the file; recreate a dead one.
	l.Close()
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = (&Client{Socket: sock}).VMs(context.Background())
	var dd *DaemonDownError
	if !errors.As(err, &dd) {
		t.Fatalf("err = %v, want *DaemonDownError", err)
	}
}

func TestListenRefusesLiveDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(sock, ""); err == nil || !strings.Contains(err.Error(), "another daemon is already listening") {
		t.Fatalf("second Listen: %v", err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want 0660", fi.Mode().Perm())
	}
}

func TestClientRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, Status{Version: "t", VMs: 2, VIFs: 5, Generation: 9})
	})
	mux.HandleFunc("GET "+PathVIFs+"/{mac}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("mac") != "52:54:00:00:00:01" {
			WriteError(w, 404, "not_found", "no VIF with MAC "+r.PathValue("mac"))
			return
		}
		WriteJSON(w, 200, VIF{MAC: r.PathValue("mac"), State: "verified"})
	})
	mux.HandleFunc("POST "+PathHook, func(w http.ResponseWriter, r *http.Request) {
		var ev HookEvent
		if st, err := DecodeJSON(w, r, 1024, &ev); err != nil {
			WriteError(w, st, "bad_request", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := serve(t, mux)
	ctx := context.Background()

	s, err := c.Status(ctx)
	if err != nil || s.VIFs != 5 || s.Generation != 9 {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	v, err := c.VIF(ctx, "52:54:00:00:00:01")
	if err != nil || v.State != "verified" {
		t.Fatalf("VIF = %+v, %v", v, err)
	}
	_, err = c.VIF(ctx, "52:54:00:00:00:02")
	var se *StatusError
	if !errors.As(err, &se) || se.HTTPStatus != 404 || err.Error() != "no VIF with MAC 52:54:00:00:00:02" {
		t.Fatalf("missing VIF: %v", err)
	}
	if err := c.PostHook(ctx, HookEvent{Driver: "qemu", Object: "vm1", Operation: "started", SubOperation: "begin"}); err != nil {
		t.Fatal(err)
	}
	// Oversize body: the server's limit answers 413 with a clear message.
	err = c.PostHook(ctx, HookEvent{Driver: "qemu", XML: strings.Repeat("x", 2048)})
	if !errors.As(err, &se) || se.HTTPStatus != 413 || err.Error() != "request body over 1024 bytes" {
		t.Fatalf("oversize: %v", err)
	}
}

func TestDecodeJSONMalformed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /x", func(w http.ResponseWriter, r *http.Request) {
		var ev HookEvent
		if st, err := DecodeJSON(w, r, 1024, &ev); err != nil {
			WriteError(w, st, "bad_request", err.Error())
			return
		}
		WriteJSON(w, 200, ev)
	})
	c := serve(t, mux)
	cases := []struct {
		body   string
		status int
		msg    string
	}{
		{``, 400, "empty request body"},
		{`{"driver":1}`, 400, "bad request body: json: cannot unmarshal number into Go struct field HookEvent.driver of type string"},
		{`{"bogus":"x"}`, 400, `bad request body: json: unknown field "bogus"`},
		{`{"driver":"qemu"}{}`, 400, "bad request body: more than one JSON value"},
		{`{"driver":`, 400, "bad request body: unexpected EOF"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("POST", "http://tetherd/x", strings.NewReader(tc.body))
		resp, err := c.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || e.Message != tc.msg {
			t.Errorf("body %q: got %d %q, want %d %q", tc.body, resp.StatusCode, e.Message, tc.status, tc.msg)
		}
	}
}

func TestClientEventsStream(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathEvents, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") != "3" {
			WriteError(w, 400, "bad_request", "since")
			return
		}
		for g := uint64(4); g < 7; g++ {
			fmt.Fprintf(w, `{"generation":%d,"kind":"vif","op":"upsert","key":"k"}`+"\n", g)
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	})
	c := serve(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []uint64
	stop := errors.New("enough")
	err := c.Events(ctx, 3, func(ev Event) error {
		got = append(got, ev.Generation)
		if len(got) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || fmt.Sprint(got) != "[4 5 6]" {
		t.Fatalf("Events = %v, %v", got, err)
	}
}
