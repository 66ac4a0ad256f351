// Package apiserver serves tetherd's local API (package api's v1 paths) from
// the inventory store, the event sources' health and the hook sink.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// HookSink takes the hook events tether-hook forwards. An error whose
// HTTPStatus method returns 4xx is the event's fault (tether-hook reports it
// and does not spool); any other error is answered 503 and the hook spools.
type HookSink interface {
	Hook(ctx context.Context, ev api.HookEvent) error
}

// SourceStatus reports the health of one event source.
type SourceStatus interface {
	Status() api.SourceStatus
}

// Server holds what the handlers read.
type Server struct {
	// Store is the inventory.
	Store *inventory.Store
	// Hooks receives POST /v1/hook; nil answers 503.
	Hooks HookSink
	// Sources are listed in GET /v1/status.
	Sources []SourceStatus
	// Ready reports whether the first full reconcile has finished.
	Ready func() bool
	// KeyID is the host key's ID, reported in GET /v1/status.
	KeyID string
	// Version is the daemon's version; Started its start time.
	Version string
	Started time.Time
	// Logger gets request errors.
	Logger *slog.Logger
}

// Handler returns the HTTP handler with every v1 path.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, s.status)
	mux.HandleFunc("GET "+api.PathVMs, s.vms)
	mux.HandleFunc("GET "+api.PathVIFs, s.vifs)
	mux.HandleFunc("GET "+api.PathVIFs+"/{mac}", s.vif)
	mux.HandleFunc("GET "+api.PathEvents, s.events)
	mux.HandleFunc("POST "+api.PathHook, s.hook)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s %s is not part of this tetherd's API (v1); is tetherctl newer than tetherd?", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log().Error("api request failed", "component", "api", "what", what, "err", err)
	api.WriteError(w, http.StatusInternalServerError, "internal", what+": "+err.Error())
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	// Readiness first: a "ready" answer must carry the inventory as of the
	// first full reconcile or later, never an older snapshot.
	ready := s.Ready == nil || s.Ready()
	snap, err := s.Store.Snapshot(r.Context())
	if err != nil {
		s.internal(w, "read inventory", err)
		return
	}
	host, _ := os.Hostname()
	out := api.Status{
		Version: s.Version, Hostname: host, Started: s.Started, Ready: ready,
		VMs: len(snap.VMs), VIFs: len(snap.VIFs), Generation: snap.Generation, KeyID: s.KeyID,
	}
	for _, src := range s.Sources {
		out.Sources = append(out.Sources, src.Status())
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) vms(w http.ResponseWriter, r *http.Request) {
	snap, err := s.Store.Snapshot(r.Context())
	if err != nil {
		s.internal(w, "read inventory", err)
		return
	}
	byVM := make(map[inventory.UUID][]string, len(snap.VMs))
	for _, v := range snap.VIFs {
		byVM[v.VM] = append(byVM[v.VM], v.MAC.String())
	}
	out := make([]api.VM, 0, len(snap.VMs))
	for _, vm := range snap.VMs {
		out = append(out, api.VM{UUID: vm.UUID.String(), Name: vm.Name, State: vm.State.String(), VIFs: byVM[vm.UUID]})
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) vifs(w http.ResponseWriter, r *http.Request) {
	snap, err := s.Store.Snapshot(r.Context())
	if err != nil {
		s.internal(w, "read inventory", err)
		return
	}
	names := make(map[inventory.UUID]string, len(snap.VMs))
	for _, vm := range snap.VMs {
		names[vm.UUID] = vm.Name
	}
	out := make([]api.VIF, 0, len(snap.VIFs))
	for _, v := range snap.VIFs {
		out = append(out, VIFToAPI(v, names[v.VM]))
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) vif(w http.ResponseWriter, r *http.Request) {
	mac, err := inventory.ParseMAC(r.PathValue("mac"))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	v, err := s.Store.VIF(mac)
	if errors.Is(err, inventory.ErrNotFound) {
		api.WriteError(w, http.StatusNotFound, "not_found", "no VIF with MAC "+mac.String()+" in the inventory")
		return
	}
	if err != nil {
		s.internal(w, "read VIF", err)
		return
	}
	name := ""
	if vm, err := s.Store.VM(v.VM); err == nil {
		name = vm.Name
	}
	api.WriteJSON(w, http.StatusOK, VIFToAPI(v, name))
}

// VIFToAPI maps an inventory VIF to its API form.
func VIFToAPI(v inventory.VIF, vmName string) api.VIF {
	out := api.VIF{
		MAC: v.MAC.String(), Vendor: v.Vendor().String(), VM: v.VM.String(), VMName: vmName,
		Device: v.HostDev, Kind: v.Kind.String(), STag: v.STag, CVID: v.CVID, PortGroup: v.PortGroup,
		State: v.State.String(), Reason: v.Last.Reason, Since: v.Last.At,
	}
	if vp := v.VirtualPort; vp.Type != inventory.VirtualPortNone {
		out.VirtualPort = map[string]string{"type": vp.Type.String()}
		add := func(k, val string, set bool) {
			if set {
				out.VirtualPort[k] = val
			}
		}
		add("managerid", strconv.Itoa(int(vp.ManagerID)), vp.ManagerID != 0)
		add("typeid", strconv.Itoa(int(vp.TypeID)), vp.TypeID != 0)
		add("typeidversion", strconv.Itoa(int(vp.TypeIDVersion)), vp.TypeIDVersion != 0)
		add("instanceid", vp.InstanceID.String(), !vp.InstanceID.IsZero())
		add("profileid", vp.ProfileID, vp.ProfileID != "")
		add("interfaceid", vp.InterfaceID.String(), !vp.InterfaceID.IsZero())
	}
	return out
}

// EventToAPI maps an inventory event to its API form.
func EventToAPI(ev inventory.Event, at time.Time) api.Event {
	out := api.Event{Generation: ev.Generation, Time: at}
	switch ev.Type {
	case inventory.EventVMUpserted, inventory.EventVMRemoved:
		out.Kind, out.Key = "vm", ev.VM.UUID.String()
	default:
		out.Kind, out.Key = "vif", ev.VIF.MAC.String()
	}
	switch ev.Type {
	case inventory.EventVMUpserted, inventory.EventVIFUpserted:
		out.Op = "upsert"
	case inventory.EventVMRemoved, inventory.EventVIFRemoved:
		out.Op = "remove"
	case inventory.EventVIFState:
		out.Op = "transition"
	}
	if tr := ev.Transition; tr.To != inventory.StateNone {
		out.From, out.To, out.Reason = tr.From.String(), tr.To.String(), tr.Reason
		if !tr.At.IsZero() {
			out.Time = tr.At
		}
	}
	return out
}

// events streams live inventory events as JSON lines. since is validated;
// the daemon keeps no history, so only events committed after the request
// arrive (a client that needs the state first reads /v1/vifs, then follows).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if v := r.URL.Query().Get("since"); v != "" {
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			api.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("since=%q is not a generation number", v))
			return
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		s.internal(w, "stream events", errors.New("response writer cannot flush"))
		return
	}
	sub := s.Store.Subscribe(1024)
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.Events():
			if !ok {
				return
			}
			if err := enc.Encode(EventToAPI(ev, time.Now().UTC())); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// httpStatuser is an error that carries the HTTP status to answer with.
type httpStatuser interface{ HTTPStatus() int }

func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	var ev api.HookEvent
	if st, err := api.DecodeJSON(w, r, 0, &ev); err != nil {
		api.WriteError(w, st, "bad_request", err.Error())
		return
	}
	if s.Hooks == nil {
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "tetherd takes no hook events yet (starting up)")
		return
	}
	if err := s.Hooks.Hook(r.Context(), ev); err != nil {
		var hs httpStatuser
		if errors.As(err, &hs) && hs.HTTPStatus()/100 == 4 {
			api.WriteError(w, hs.HTTPStatus(), "bad_request", err.Error())
			return
		}
		s.log().Warn("hook event not applied", "component", "api", "event", ev.Driver+" "+ev.Object+" "+ev.Operation, "err", err)
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
