package agente2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/tests/libvirtlab"
)

// waitLong bounds every wait for tetherd to follow libvirt: far above what
// it takes (tens of milliseconds), so only a real miss fails.
const waitLong = 20 * time.Second

// iface is one row of `virsh -q domiflist`: the tap device and the MAC.
type iface struct{ dev, mac string }

// domiflist lists the interfaces of domain name as libvirt shows them.
func domiflist(ctx context.Context, lab *libvirtlab.Daemon, name string) ([]iface, error) {
	out, err := lab.RunVirsh(ctx, "domiflist", name)
	if err != nil {
		return nil, err
	}
	var rows []iface
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("domiflist row %q: want 5 fields", l)
		}
		rows = append(rows, iface{dev: f[0], mac: f[4]})
	}
	return rows, nil
}

// matchLibvirt compares what `tetherctl vms` and `tetherctl vifs` (the
// built binary) say about the domain with what libvirt says: its state
// (running or shutoff) from `virsh domstate`; when it runs, its VIFs that
// are not gone are exactly the MACs of `virsh domiflist`, each pending, of
// kind tap, on the tap device domiflist names; when it is shut off, its
// VIFs are all gone, and each of macs (the vNICs it had when it last ran;
// nil if it never ran) is there, gone.
func matchLibvirt(lab *libvirtlab.Daemon, env *Env, name, uuid string, macs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	state, err := lab.RunVirsh(ctx, "domstate", name)
	if err != nil {
		return err
	}
	running := strings.TrimSpace(state) == "running"
	var rows []iface
	if running {
		if rows, err = domiflist(ctx, lab, name); err != nil {
			return err
		}
	}
	var vms []api.VM
	if err := env.Ctl(ctx, &vms, "vms"); err != nil {
		return err
	}
	var vifs []api.VIF
	if err := env.Ctl(ctx, &vifs, "vifs"); err != nil {
		return err
	}
	i := slices.IndexFunc(vms, func(vm api.VM) bool { return vm.UUID == uuid })
	if i < 0 {
		return fmt.Errorf("tetherctl vms lacks %s (%s): %+v", name, uuid, vms)
	}
	wantState := "shutoff"
	if running {
		wantState = "running"
	}
	if vms[i].Name != name || vms[i].State != wantState {
		return fmt.Errorf("tetherctl vms: %s is %q in state %s; libvirt says %q in state %s", uuid, vms[i].Name, vms[i].State, name, wantState)
	}
	var errs []error
	byMAC := map[string]api.VIF{}
	for _, v := range vifs {
		if v.VM == uuid {
			byMAC[v.MAC] = v
		}
	}
	if running {
		want := map[string]bool{}
		for _, r := range rows {
			want[r.mac] = true
			v, ok := byMAC[r.mac]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("tetherctl vifs lacks %s (domiflist: %s on %s)", r.mac, name, r.dev))
			case v.State != "pending" || v.Device != r.dev || v.Kind != "tap" || v.VMName != name:
				errs = append(errs, fmt.Errorf("VIF %s: state %s, device %q, kind %s, VM %q; want pending, %q, tap, %q",
					r.mac, v.State, v.Device, v.Kind, v.VMName, r.dev, name))
			}
		}
		for m, v := range byMAC {
			if !want[m] && v.State != "gone" {
				errs = append(errs, fmt.Errorf("VIF %s is %s but domiflist does not list it", m, v.State))
			}
		}
	} else {
		for _, m := range macs {
			if v, ok := byMAC[m]; !ok || v.State != "gone" {
				errs = append(errs, fmt.Errorf("VIF %s of shut-off %s: %+v (listed: %v), want gone", m, name, v, ok))
			}
		}
		for m, v := range byMAC {
			if v.State != "gone" {
				errs = append(errs, fmt.Errorf("VIF %s of shut-off %s is %s, want gone", m, name, v.State))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w\ndomiflist: %+v", errors.Join(errs...), rows)
	}
	return nil
}

// hookEvents returns the events counter of tetherd's "hooks" source.
func hookEvents(env *Env) (uint64, error) {
	st, err := env.Status(context.Background())
	if err != nil {
		return 0, err
	}
	src, ok := Source(st, "hooks")
	if !ok {
		return 0, fmt.Errorf("status lists no hooks source: %+v", st.Sources)
	}
	return src.Events, nil
}

// waitHooks waits until tetherd's hooks source has counted want events,
// then checks that it did not count more (each libvirt operation runs a
// known number of hooks; more would mean some event came twice).
func waitHooks(t *testing.T, env *Env, want uint64, what string) {
	t.Helper()
	var got uint64
	Eventually(t, waitLong, "hook events after "+what, func() error {
		var err error
		if got, err = hookEvents(env); err != nil {
			return err
		}
		if got < want {
			return fmt.Errorf("hooks source counted %d events, want %d", got, want)
		}
		return nil
	})
	if got != want {
		t.Errorf("after %s the hooks source counted %d events, want exactly %d", what, got, want)
	}
}

// checkSpool fails t unless the spool holds exactly want events and no
// corrupt ones.
func checkSpool(t *testing.T, env *Env, want int, what string) {
	t.Helper()
	events, bad, err := env.SpoolFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != want || len(bad) != 0 {
		t.Errorf("after %s the spool holds %d events (%v) and %d bad files (%v); want %d and 0", what, len(events), events, len(bad), bad, want)
	}
}

// TestTetherdFollowsRealLibvirtd runs tetherd against a real libvirtd with
// tether's hook scripts (running the built tether-hook) and a TCG domain
// with two NICs on a Linux bridge, and checks at every step that
// `tetherctl vms` and `tetherctl vifs` match `virsh domstate` and
// `virsh domiflist`:
//
//   - start: VM running, both VIFs pending on their taps; the hooks prepare,
//     start and started (3) reached tetherd, nothing was spooled;
//   - destroy: VM shutoff, VIFs gone; stopped and release (2) reached it;
//   - start again, then restart libvirtd with the domain running: the
//     libvirt source logs the lost connection, reconnects (connected, no
//     last error, one more full reconcile), and the "reconnect" hook (1)
//     reached tetherd; the VIFs are unchanged; a destroy after the restart
//     is followed (events flow on the new connection);
//   - tetherd killed (SIGKILL) during a start, once the start's first
//     hook reached it, then destroy and start: the hook events it missed
//     (the rest of the start's, then 2 and 3) go to the spool; a new
//     tetherd replays them (its log and its hooks source count them),
//     leaves the spool empty and matches libvirt again;
//   - a last destroy, and tetherd stops cleanly on SIGTERM.
func TestTetherdFollowsRealLibvirtd(t *testing.T) {
	bins := Build(t)
	// The test directory is made before the daemon so that its removal
	// comes after the daemon's stop at cleanup (hooks write to the spool
	// until then). Hooks run in the daemon's mount namespace, which
	// replaces /run and /var.
	dir := t.TempDir()
	if strings.HasPrefix(dir, "/run/") || strings.HasPrefix(dir, "/var/") {
		t.Fatalf("test directory %s is under /run or /var, which libvirtd's hooks do not see: set TMPDIR elsewhere", dir)
	}
	lab := libvirtlab.Start(t, libvirtlab.Options{})
	const (
		bridge = "br-e2e0"
		name   = "e2e1"
		uuid   = "e2e0c0de-0001-4000-8000-00000000e2e1"
	)
	nics := []libvirtlab.NIC{{MAC: "52:54:00:e2:e0:01", Bridge: bridge}, {MAC: "52:54:00:e2:e0:02", Bridge: bridge}}
	macs := []string{nics[0].MAC, nics[1].MAC}
	lab.AddBridge(t, bridge)

	env := NewEnv(t, bins, dir, lab.URI())
	for _, drv := range []libvirthooks.Driver{libvirthooks.DriverQEMU, libvirthooks.DriverNetwork} {
		script, err := env.HookScript(drv)
		if err != nil {
			t.Fatal(err)
		}
		lab.InstallHook(t, string(drv), "50-tether", script)
		t.Logf("installed %s.d/50-tether:\n%s", drv, script)
	}
	xmlPath := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(xmlPath, []byte(libvirtlab.TinyDomainXML(name, uuid, nics)), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Virsh(t, "define", xmlPath)
	// Whatever happens, leave no domain running: libvirtd's stop at
	// cleanup would otherwise wait for it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = lab.RunVirsh(ctx, "destroy", name)
	})

	td := env.Start(t)
	st := td.WaitReady(t, waitLong)
	if lv, ok := Source(st, "libvirt"); !ok || !lv.Connected {
		t.Fatalf("libvirt source at ready: %+v (listed: %v)", lv, ok)
	}
	var ranWith []string // the MACs the domain had when it last ran
	last := time.Now()
	match := func(what string) {
		t.Helper()
		Eventually(t, waitLong, "inventory matches libvirt after "+what, func() error {
			return matchLibvirt(lab, env, name, uuid, ranWith)
		})
		ranWith = macs
		t.Logf("inventory matches libvirt after %s (%v since the last match)", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	match("tetherd start (domain defined, shut off)")
	hooks := uint64(0)
	waitHooks(t, env, hooks, "tetherd start")

	lab.Virsh(t, "start", name)
	match("start")
	hooks += 3 // prepare begin, start begin, started begin
	waitHooks(t, env, hooks, "start")
	checkSpool(t, env, 0, "start")

	lab.Virsh(t, "destroy", name)
	match("destroy")
	hooks += 2 // stopped end, release end
	waitHooks(t, env, hooks, "destroy")

	lab.Virsh(t, "start", name)
	match("second start")
	hooks += 3
	waitHooks(t, env, hooks, "second start")

	// libvirtd restarts with the domain running.
	recs, err := td.Records()
	if err != nil {
		t.Fatal(err)
	}
	reconciles := len(Find(recs, "full reconcile"))
	lab.Restart(t)
	hooks++ // reconnect begin
	waitHooks(t, env, hooks, "libvirtd restart")
	Eventually(t, waitLong, "libvirt source reconnected", func() error {
		st, err := env.Status(context.Background())
		if err != nil {
			return err
		}
		lv, _ := Source(st, "libvirt")
		recs, err := td.Records()
		if err != nil {
			return err
		}
		lost := len(Find(recs, "libvirt connection lost or failed; reconnecting"))
		n := len(Find(recs, "full reconcile"))
		if !lv.Connected || lv.LastError != "" || lost == 0 || n <= reconciles {
			return fmt.Errorf("libvirt source %+v; log: %d connection losses, %d full reconciles (%d before the restart)", lv, lost, n, reconciles)
		}
		return nil
	})
	match("libvirtd restart")
	lab.Virsh(t, "destroy", name)
	match("destroy after the libvirtd restart")
	hooks += 2
	waitHooks(t, env, hooks, "destroy after the libvirtd restart")
	checkSpool(t, env, 0, "destroy after the libvirtd restart")

	// tetherd dies while the domain starts, once the start's first hook
	// reached it; libvirt goes on and the other hooks spool.
	startDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := lab.RunVirsh(ctx, "start", name)
		startDone <- err
	}()
	Eventually(t, waitLong, "first hook of the start delivered", func() error {
		n, err := hookEvents(env)
		if err == nil && n <= hooks {
			err = fmt.Errorf("hooks source at %d", n)
		}
		return err
	})
	td.Kill(t)
	if err := <-startDone; err != nil {
		t.Fatalf("start with tetherd killed during it: %v", err)
	}
	events, _, err := env.SpoolFiles()
	if err != nil {
		t.Fatal(err)
	}
	// At most two: prepare was delivered. Fewer if start and started got
	// through before the kill; an event whose answer the kill cut off is
	// spooled although tetherd applied it (delivery is at least once).
	spooled := len(events)
	if spooled > 2 {
		t.Errorf("%d hook events of the start spooled, but the first one was delivered", spooled)
	}
	t.Logf("tetherd killed during the start: %d of its 3 hook events spooled", spooled)
	lab.Virsh(t, "destroy", name)
	checkSpool(t, env, spooled+2, "destroy with tetherd down")
	lab.Virsh(t, "start", name)
	spooled += 5
	checkSpool(t, env, spooled, "start with tetherd down")

	td = env.Start(t)
	td.WaitReady(t, waitLong)
	Eventually(t, waitLong, "spool drained", func() error {
		events, bad, err := env.SpoolFiles()
		if err == nil && (len(events) > 0 || len(bad) > 0) {
			err = fmt.Errorf("spool holds %v, bad/ %v", events, bad)
		}
		return err
	})
	hooks = uint64(spooled)
	waitHooks(t, env, hooks, "tetherd restart (spool replay)")
	match("tetherd restart")
	recs, err = td.Records()
	if err != nil {
		t.Fatal(err)
	}
	replayed := 0.0
	for _, r := range Find(recs, "replayed spooled hook events") {
		n, _ := r.Num("count")
		replayed += n
	}
	if int(replayed) != spooled {
		t.Errorf("tetherd logged %v replayed spooled hook events, want %d", replayed, spooled)
	}
	for _, r := range recs {
		if r.Level() == "ERROR" || r.Msg() == "dropping spooled hook event" {
			t.Errorf("tetherd logged: %v", r)
		}
	}

	lab.Virsh(t, "destroy", name)
	match("final destroy")
	hooks += 2
	waitHooks(t, env, hooks, "final destroy")
	td.Stop(t)
}
