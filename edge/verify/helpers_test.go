package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/edge/vmmanager"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// testSwitch is the verifier's switch name.
const testSwitch = "tor1"

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a log
// handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logger returns a debug-level text logger writing to s.
func (s *syncBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the log lines that contain every one of subs.
func (s *syncBuffer) lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// dom is one libvirt test-driver domain.
type dom struct {
	name    string
	uuid    verify.UUID
	running bool
	macs    []verify.MAC
}

// nodeXML returns a test-driver node file holding doms (runstate 5 is
// VIR_DOMAIN_SHUTOFF; the default is running).
func nodeXML(doms []dom) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	for _, d := range doms {
		fmt.Fprintf(&b, "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n<name>%s</name><uuid>%s</uuid>\n", d.name, d.uuid)
		b.WriteString("<memory>1024</memory><os><type>hvm</type></os>\n<devices>\n")
		for _, m := range d.macs {
			fmt.Fprintf(&b, "<interface type='bridge'><mac address='%s'/><source bridge='br0'/></interface>\n", m)
		}
		b.WriteString("</devices>\n")
		if !d.running {
			b.WriteString("<test:runstate>5</test:runstate>\n")
		}
		b.WriteString("</domain>\n")
	}
	b.WriteString("</node>\n")
	return b.String()
}

// writeNode writes doms to a node file in dir and returns its test:///
// URI.
func writeNode(tb testing.TB, dir, host string, doms []dom) string {
	tb.Helper()
	p := filepath.Join(dir, host+".xml")
	if err := os.WriteFile(p, []byte(nodeXML(doms)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return "test://" + p
}

// uuidN returns a test VM UUID.
func uuidN(n int) verify.UUID {
	u, err := verify.ParseUUID(fmt.Sprintf("7e7e0000-0000-4000-8000-%012x", n))
	if err != nil {
		panic(err)
	}
	return u
}

// macN returns a test vNIC MAC in QEMU's pool.
func macN(n int) verify.MAC {
	return verify.MAC{0x52, 0x54, 0x00, byte(n >> 16), byte(n >> 8), byte(n)}
}

// station is one host's signing side.
type station struct {
	name   string
	key    *identity.PrivateKey
	signer *identity.Signer
	mac    [6]byte
	seq    uint16
}

func newStation(tb testing.TB, name string, n byte) *station {
	tb.Helper()
	seed := bytes.Repeat([]byte{n}, 32)
	k, err := identity.GenerateKey(bytes.NewReader(seed))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := identity.NewSigner(k, new(identity.MemoryCounterStore), identity.SignerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return &station{name: name, key: k, signer: s, mac: [6]byte{0x02, 0, 0, 0, 0, n}}
}

// unsignedFrame encodes an ECP VDP request carrying vsis.
func (s *station) unsignedFrame(tb testing.TB, vsis ...wire.VSI) []byte {
	tb.Helper()
	mgr, err := wire.ManagerIDFromString("tether")
	if err != nil {
		tb.Fatal(err)
	}
	tlvs := []wire.TLV{&mgr}
	for i := range vsis {
		tlvs = append(tlvs, &vsis[i])
	}
	s.seq++
	p := wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: s.seq, VDP: &wire.VDPDU{TLVs: tlvs}}
	h := wire.EthernetHeader{Dst: wire.NearestCustomerBridge, Src: s.mac, EtherType: wire.EtherTypeECP}
	b := h.Append(make([]byte, 0, 512))
	b, err = p.AppendBinary(b)
	if err != nil {
		tb.Fatal(err)
	}
	return wire.AppendEnd(b)
}

// frame returns a signed ECP VDP request carrying vsis, for channel.
func (s *station) frame(tb testing.TB, channel string, vsis ...wire.VSI) []byte {
	tb.Helper()
	f, err := s.signer.Sign(context.Background(), channel, s.unsignedFrame(tb, vsis...))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// assocVSI is an ASSOCIATE request for vm with one MAC/VID filter.
func assocVSI(mode wire.VSIMode, vm verify.UUID, vid uint16, macs ...verify.MAC) wire.VSI {
	v := wire.VSI{Mode: mode, VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: vm,
		FilterFormat: wire.FilterMACVID}
	for _, m := range macs {
		v.Filters = append(v.Filters, wire.Filter{MAC: m, VID: vid})
	}
	return v
}

// world is a switch with two ports, swp1 to host A and swp2 to host B,
// each host's libvirt a test-driver node file, and a file-backed replay
// store.
type world struct {
	tb    testing.TB
	v     *verify.Verifier
	keys  *verify.StaticKeys
	nbrs  *verify.NeighbourTable
	locs  *verify.MemoryLocations
	stags *verify.MemorySTags
	vmm   *vmmanager.Manager
	log   *syncBuffer

	a, b     *station // hosts A and B
	a2       *station // a second key enrolled for host A
	sw       *station // a switch key (enrolled, no host)
	stranger *station // a key nobody enrolled
}

// World's VMs.
var (
	vmA1   = uuidN(0xa1) // runs on A with macA1
	vmA3   = uuidN(0xa3) // runs on A with macA3
	vmB2   = uuidN(0xb2) // runs on B with macB2
	vmDup  = uuidN(0xdd) // runs on B with macA1 (a cloned MAC)
	vmMig  = uuidN(0x33) // migrated from A (shut off there) to B (running)
	vmBoth = uuidN(0x44) // runs on A and on B (split brain)
	vmOff  = uuidN(0x55) // defined on A, shut off

	macA1   = macN(0xa1)
	macA3   = macN(0xa3)
	macB2   = macN(0xb2)
	macMig  = macN(0x33)
	macBoth = macN(0x44)
	macOff  = macN(0x55)
)

// worldOptions tunes newWorld.
type worldOptions struct {
	vmm   verify.VMManager // replaces the libvirt manager when set
	extra map[string]string
	// quiet discards the logs and lifts the log rate limit, so that the
	// verifier's behaviour does not depend on time (fuzzing).
	quiet bool
}

func newWorld(tb testing.TB, opt worldOptions) *world {
	tb.Helper()
	dir := tb.TempDir()
	w := &world{
		tb:       tb,
		log:      new(syncBuffer),
		a:        newStation(tb, "hostA", 1),
		b:        newStation(tb, "hostB", 2),
		a2:       newStation(tb, "hostA", 3),
		sw:       newStation(tb, "", 4),
		stranger: newStation(tb, "hostZ", 5),
	}
	var err error
	w.keys, err = verify.NewStaticKeys(
		verify.Enrolment{Host: "hostA", Public: w.a.key.Public()},
		verify.Enrolment{Host: "hostB", Public: w.b.key.Public()},
		verify.Enrolment{Host: "hostA", Public: w.a2.key.Public()},
		verify.Enrolment{Host: "", Public: w.sw.key.Public()},
	)
	if err != nil {
		tb.Fatal(err)
	}
	w.nbrs = verify.NewNeighbourTable()
	w.nbrs.Set("swp1", verify.Neighbour{Host: "hostA", Signed: true, Key: w.a.key.ID()})
	w.nbrs.Set("swp2", verify.Neighbour{Host: "hostB", Signed: true, Key: w.b.key.ID()})
	hosts := map[string]string{
		"hostA": writeNode(tb, dir, "hostA", []dom{
			{"a1", vmA1, true, []verify.MAC{macA1}},
			{"a3", vmA3, true, []verify.MAC{macA3}},
			{"mig", vmMig, false, []verify.MAC{macMig}},
			{"both", vmBoth, true, []verify.MAC{macBoth}},
			{"off", vmOff, false, []verify.MAC{macOff}},
		}),
		"hostB": writeNode(tb, dir, "hostB", []dom{
			{"b2", vmB2, true, []verify.MAC{macB2}},
			{"dup", vmDup, true, []verify.MAC{macA1}},
			{"mig", vmMig, true, []verify.MAC{macMig}},
			{"both", vmBoth, true, []verify.MAC{macBoth}},
		}),
	}
	for h, uri := range opt.extra {
		hosts[h] = uri
	}
	logger := w.log.logger()
	burst := 0
	if opt.quiet {
		logger = slog.New(slog.DiscardHandler)
		burst = 1 << 30
	}
	w.vmm, err = vmmanager.New(vmmanager.Config{Hosts: hosts, Logger: logger, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.vmm.Close() })
	store, err := identity.OpenFileCounterStore(filepath.Join(dir, "replay"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	w.locs = verify.NewMemoryLocations(nil)
	w.stags = verify.NewMemorySTags()
	var vmm verify.VMManager = w.vmm
	if opt.vmm != nil {
		vmm = opt.vmm
	}
	w.v, err = verify.New(verify.Config{
		Switch: testSwitch, Keys: w.keys, Replay: store, Neighbours: w.nbrs, VMManager: vmm,
		Locations: w.locs, STags: w.stags, Logger: logger, VMTimeout: 2 * time.Second, LogBurst: burst,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// claim builds the claim of vsi from s on port (channel port/svid=stag or
// port), signed by s.
func (w *world) claim(s *station, port string, stag uint16, vsi wire.VSI) verify.Claim {
	ch := port
	if stag != 0 {
		ch = fmt.Sprintf("%s/svid=%d", port, stag)
	}
	return verify.Claim{Port: port, Channel: ch, Frame: s.frame(w.tb, ch, vsi), VSI: vsi, STag: stag}
}

// mustAccept checks c and fails unless it is accepted.
func (w *world) mustAccept(c verify.Claim) verify.Decision {
	w.tb.Helper()
	d, err := w.v.Check(context.Background(), c)
	if err != nil || !d.Accepted {
		w.tb.Fatalf("claim of VM %s on %s refused: %v (%v)", c.VSI.VSIIDString(), c.Port, d.Err(), err)
	}
	return d
}

// tables is a snapshot of the location and S-Tag tables.
type tables struct {
	locs  map[verify.MAC]verify.Location
	stags int
}

func (w *world) tables() tables {
	return tables{locs: w.locs.All(), stags: w.stags.Len()}
}

// peerOf is what a bridge's signature check reports for a frame of s.
func peerOf(s *station) *identity.Verified {
	return &identity.Verified{Key: s.key.ID(), Counter: 1, Kind: wire.PDUKindECP}
}
