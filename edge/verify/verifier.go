package verify

import (
	"context"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/ratelog"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// Defaults of the zero fields of Config.
const (
	// DefaultVMTimeout bounds one VM manager question. It is well below
	// VDP's resource wait delay (about 10 s with lldpad's RWD 20), so the
	// bridge answers "unable to contact VSI manager" itself rather than
	// timing out.
	DefaultVMTimeout = time.Second
	// DefaultMaxParallel bounds the channels CheckBatch works on at once.
	DefaultMaxParallel = 256
	// DefaultLogBurst is how many refusal lines a port may log at once.
	DefaultLogBurst = 10
	// DefaultLogInterval is how often a port regains one refusal line.
	DefaultLogInterval = time.Second
	// DefaultMaxLogPorts is how many ports get a log budget of their own;
	// the others share one.
	DefaultMaxLogPorts = 4096
)

// Config configures a Verifier. Switch, Keys, Replay, Neighbours and
// VMManager are required.
type Config struct {
	// Switch is this switch's name in the Locations table.
	Switch string
	// Keys is the key enrolment (host and public key per key ID).
	Keys Keys
	// Replay persists the replay high-water marks of the signature
	// check; it must return from Store only once the mark is durable.
	// Use a GroupCommitStore (concurrent Stores share one write, on one
	// core too); identity.FileCounterStore works with the same file. It
	// must not be shared with a Signer.
	Replay identity.CounterStore
	// CID is the Company ID of tether's TLVs; zero means wire.DefaultCID.
	CID wire.OUI
	// Neighbours says which LLDP neighbour each port sees.
	Neighbours Neighbours
	// VMManager confirms VMs, hosts and MACs.
	VMManager VMManager
	// Locations is the table of live MACs; nil means a new
	// MemoryLocations (one switch only).
	Locations Locations
	// STags is the S-Tag table; nil means a new MemorySTags.
	STags STags
	// VMTimeout bounds each VM manager question (DefaultVMTimeout).
	VMTimeout time.Duration
	// MaxParallel bounds the channels CheckBatch works on at once
	// (DefaultMaxParallel).
	MaxParallel int
	// LogBurst and LogInterval rate-limit the refusal lines of each port:
	// LogBurst lines at once, then one per LogInterval (DefaultLogBurst,
	// DefaultLogInterval). Lines held back are counted in
	// Stats.LogsSuppressed and reported with the port's next line.
	LogBurst    int
	LogInterval time.Duration
	// MaxLogPorts bounds the ports with a log budget of their own
	// (DefaultMaxLogPorts).
	MaxLogPorts int
	// Logger receives the logs (default slog.Default()); they carry
	// component=edge/verify.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Claim is one VSI request as the switch received it.
type Claim struct {
	// Port is the switch port name ("swp3").
	Port string
	// Channel is the replay scope of the signature: the port and
	// S-channel, as identity's channels are named ("swp3/svid=5").
	Channel string
	// Frame is the whole signed ECPDU Ethernet frame the VSI came in.
	// Claims of one frame passed to CheckBatch together share one
	// signature check when their Frame slices share the same bytes
	// (same array and length).
	Frame []byte
	// VSI is the VSI TLV, decoded from Frame; it must be one of the
	// frame's VSI TLVs, byte for byte.
	VSI wire.VSI
	// STag is the S-Tag of the vNIC on the port (its S-channel's SVID);
	// 0 when the vNIC has none.
	STag uint16
}

// Result is the outcome of one claim of CheckBatch.
type Result struct {
	// Decision is the verdict.
	Decision Decision
	// Err is an internal failure (Decision.Reason is then
	// ReasonInternal), nil for every accepted or refused claim.
	Err error
}

// Stats are a Verifier's counters.
type Stats struct {
	// Accepted counts accepted claims.
	Accepted uint64 `json:"accepted"`
	// Migrations counts ASSOCIATEs that took over a MAC under a
	// confirmed migration.
	Migrations uint64 `json:"migrations"`
	// Refused counts refusals by reason.
	Refused map[Reason]uint64 `json:"refused"`
	// LogsSuppressed counts refusal log lines held back by the per-port
	// rate limit.
	LogsSuppressed uint64 `json:"logs_suppressed"`
}

// assocKey names one association: a VM on a port.
type assocKey struct {
	port string
	vm   UUID
}

// assoc is what an accepted ASSOCIATE holds.
type assoc struct {
	macs []MAC
	stag uint16
	gen  uint64 // distinguishes successive associations of one key
}

// Verifier is tether-switchd's closed-loop verifier: it decides whether a
// VSI claim (a VDP request) may make a VM's MACs live on a switch port.
// See the package documentation for the checks. It is safe for
// concurrent use.
type Verifier struct {
	sw        string
	keys      Keys
	sig       *identity.Verifier
	cid       wire.OUI
	nbrs      Neighbours
	vmm       VMManager
	locs      Locations
	stags     STags
	vmTimeout time.Duration
	maxPar    int
	log       *slog.Logger
	logLim    *ratelog.Limiter
	now       func() time.Time

	accepted, migrations, suppressed atomic.Uint64
	refused                          [numReasons]atomic.Uint64

	// stripes serialize the decisions and releases of one VM on one
	// port (location and S-Tag updates and the association index).
	seed    maphash.Seed
	stripes [64]sync.Mutex

	mu     sync.Mutex
	gen    uint64
	assocs map[assocKey]assoc
}

// New returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	switch {
	case cfg.Switch == "":
		return nil, errors.New("verify: Config.Switch is required")
	case cfg.Keys == nil:
		return nil, errors.New("verify: Config.Keys is required")
	case cfg.Replay == nil:
		return nil, errors.New("verify: Config.Replay is required")
	case cfg.Neighbours == nil:
		return nil, errors.New("verify: Config.Neighbours is required")
	case cfg.VMManager == nil:
		return nil, errors.New("verify: Config.VMManager is required")
	}
	sig, err := identity.NewVerifier(keyStore{cfg.Keys}, cfg.Replay, identity.VerifierOptions{CID: cfg.CID})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	v := &Verifier{
		sw:        cfg.Switch,
		keys:      cfg.Keys,
		sig:       sig,
		cid:       cfg.CID,
		nbrs:      cfg.Neighbours,
		vmm:       cfg.VMManager,
		locs:      cfg.Locations,
		stags:     cfg.STags,
		vmTimeout: cfg.VMTimeout,
		maxPar:    cfg.MaxParallel,
		log:       cfg.Logger,
		now:       cfg.Now,
		seed:      maphash.MakeSeed(),
		assocs:    make(map[assocKey]assoc),
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.locs == nil {
		v.locs = NewMemoryLocations(v.now)
	}
	if v.stags == nil {
		v.stags = NewMemorySTags()
	}
	if v.vmTimeout <= 0 {
		v.vmTimeout = DefaultVMTimeout
	}
	if v.maxPar <= 0 {
		v.maxPar = DefaultMaxParallel
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	v.log = v.log.With("component", "edge/verify", "switch", cfg.Switch)
	burst, interval, maxPorts := cfg.LogBurst, cfg.LogInterval, cfg.MaxLogPorts
	if burst <= 0 {
		burst = DefaultLogBurst
	}
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	if maxPorts <= 0 {
		maxPorts = DefaultMaxLogPorts
	}
	v.logLim = ratelog.New(burst, interval, maxPorts)
	return v, nil
}

// Signatures returns the signature checker, for a VDP bridge that checks
// frames itself (vdp.IdentityVerifier) and then asks CheckVerified: the
// two paths must share one replay window per channel.
func (v *Verifier) Signatures() *identity.Verifier { return v.sig }

// Stats returns the counters.
func (v *Verifier) Stats() Stats {
	s := Stats{
		Accepted:       v.accepted.Load(),
		Migrations:     v.migrations.Load(),
		LogsSuppressed: v.suppressed.Load(),
		Refused:        make(map[Reason]uint64),
	}
	for r := ReasonNone + 1; r < numReasons; r++ {
		if n := v.refused[r].Load(); n > 0 {
			s.Refused[r] = n
		}
	}
	return s
}

// Refused returns the number of refusals for reason r.
func (v *Verifier) Refused(r Reason) uint64 {
	if r >= numReasons {
		return 0
	}
	return v.refused[r].Load()
}

// Check decides on one claim: the frame's signature and replay counter,
// then the claim (see the package documentation). A refusal is a Decision
// with Accepted false and a nil error; a non-nil error is an internal
// failure (the Decision then says ReasonInternal). Each call checks the
// frame's signature, so two claims of one frame must go through
// CheckBatch together (the second Check would be a replay).
func (v *Verifier) Check(ctx context.Context, c Claim) (Decision, error) {
	fr := v.verifyFrame(ctx, c.Channel, c.Frame)
	d, err := v.decideFrame(ctx, &c, &fr)
	return v.record(ctx, &c, d, err)
}

// CheckBatch decides on many claims and returns one Result per claim, in
// order. Claims of one channel are decided in order, one after the other;
// different channels run concurrently (at most Config.MaxParallel at
// once), so their replay marks reach the counter store together and share
// its writes (GroupCommitStore), and no decision is returned before its
// mark is durable.
// Consecutive claims of one channel whose Frame slices share their bytes
// are one frame: its signature is checked once.
func (v *Verifier) CheckBatch(ctx context.Context, claims []Claim) []Result {
	out := make([]Result, len(claims))
	byChannel := make(map[string][]int)
	var order []string
	for i := range claims {
		ch := claims[i].Channel
		if _, ok := byChannel[ch]; !ok {
			order = append(order, ch)
		}
		byChannel[ch] = append(byChannel[ch], i)
	}
	if len(order) == 1 {
		v.runChannel(ctx, claims, byChannel[order[0]], out)
		return out
	}
	sem := make(chan struct{}, v.maxPar)
	var wg sync.WaitGroup
	for _, ch := range order {
		idx := byChannel[ch]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v.runChannel(ctx, claims, idx, out)
		}()
	}
	wg.Wait()
	return out
}

// runChannel decides the claims idx of one channel, in order.
func (v *Verifier) runChannel(ctx context.Context, claims []Claim, idx []int, out []Result) {
	var fr frameResult
	var last []byte
	for k, i := range idx {
		c := &claims[i]
		if k == 0 || !sameFrame(c.Frame, last) {
			fr = v.verifyFrame(ctx, c.Channel, c.Frame)
			last = c.Frame
		}
		d, err := v.decideFrame(ctx, c, &fr)
		out[i].Decision, out[i].Err = v.record(ctx, c, d, err)
	}
}

// sameFrame reports whether a and b are the same bytes in memory.
func sameFrame(a, b []byte) bool {
	return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0]
}

// CheckVerified decides on a claim whose frame a VDP bridge has already
// checked with Signatures (signature and replay counter): peer is what
// that check returned, nil for an unsigned frame (refused). c.Frame is not
// used.
func (v *Verifier) CheckVerified(ctx context.Context, c Claim, peer *identity.Verified) (Decision, error) {
	d := Decision{Mode: c.VSI.Mode, VM: UUID(c.VSI.VSIID)}
	var err error
	if peer == nil {
		d = refuse(d, ReasonUnsigned, "the frame carries no tether signature; unsigned claims are never accepted")
	} else {
		d.Signed, d.Key, d.Counter = true, peer.Key, peer.Counter
		d, err = v.decideVerified(ctx, &c, d)
	}
	return v.record(ctx, &c, d, err)
}

// frameResult is what the signature check of one frame found.
type frameResult struct {
	ok     bool
	ver    identity.Verified
	reason Reason
	msg    string
	err    error
	vsis   []*wire.VSI
}

// verifyFrame checks checks 1 and 2 (signature, replay counter) of a
// frame and decodes its VSI TLVs.
func (v *Verifier) verifyFrame(ctx context.Context, channel string, frame []byte) frameResult {
	var h wire.EthernetHeader
	pdu, err := h.Parse(frame)
	if err != nil {
		return frameResult{reason: ReasonMalformed, msg: "not an Ethernet frame: " + err.Error()}
	}
	if h.EtherType != wire.EtherTypeECP {
		return frameResult{reason: ReasonMalformed, msg: fmt.Sprintf("EtherType %#04x is not ECP", h.EtherType)}
	}
	ver, err := v.sig.Verify(ctx, channel, frame)
	if err != nil {
		r := sigReason(err)
		fr := frameResult{reason: r, msg: err.Error()}
		if r == ReasonInternal {
			fr.err = fmt.Errorf("verify: check signature on channel %q: %w", channel, err)
		}
		return fr
	}
	var p wire.ECPDU
	p.TetherCID = v.cid
	if err := p.UnmarshalBinary(pdu); err != nil {
		return frameResult{reason: ReasonMalformed, msg: "signed ECPDU does not decode: " + err.Error(), ver: ver}
	}
	if p.Op != wire.ECPRequest || p.Subtype != wire.ECPSubtypeVDP || p.VDP == nil {
		return frameResult{reason: ReasonMalformed, msg: "signed ECPDU is not a VDP request", ver: ver}
	}
	return frameResult{ok: true, ver: ver, vsis: p.VDP.VSIs()}
}

// sigReason maps an identity.Verifier error to a reason.
func sigReason(err error) Reason {
	var we *wire.Error
	switch {
	case errors.Is(err, identity.ErrUnsigned):
		return ReasonUnsigned
	case errors.Is(err, identity.ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, identity.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, identity.ErrReplay), errors.Is(err, identity.ErrCounterExhausted):
		return ReasonReplay
	case errors.As(err, &we):
		return ReasonMalformed
	}
	return ReasonInternal
}

// refuse returns d refused for reason r with message msg.
func refuse(d Decision, r Reason, msg string) Decision {
	d.Accepted = false
	d.Reason = r
	d.Message = msg
	return d
}

// decideFrame decides on c given its frame's signature check.
func (v *Verifier) decideFrame(ctx context.Context, c *Claim, fr *frameResult) (Decision, error) {
	d := Decision{Mode: c.VSI.Mode, VM: UUID(c.VSI.VSIID)}
	if fr.ver.Key != (identity.KeyID{}) {
		d.Signed, d.Key, d.Counter = true, fr.ver.Key, fr.ver.Counter
	}
	if !fr.ok {
		return refuse(d, fr.reason, fr.msg), fr.err
	}
	if !containsVSI(fr.vsis, &c.VSI) {
		return refuse(d, ReasonMalformed, "the claimed VSI is not one of the signed frame's VSI TLVs"), nil
	}
	return v.decideVerified(ctx, c, d)
}

// containsVSI reports whether vsis holds a TLV equal to want.
func containsVSI(vsis []*wire.VSI, want *wire.VSI) bool {
	for _, g := range vsis {
		if g.Mode == want.Mode && g.Status == want.Status && g.VSITypeID == want.VSITypeID &&
			g.VSITypeVersion == want.VSITypeVersion && g.VSIIDFormat == want.VSIIDFormat &&
			g.VSIID == want.VSIID && g.FilterFormat == want.FilterFormat && slices.Equal(g.Filters, want.Filters) {
			return true
		}
	}
	return false
}

// requestMACs checks that v is a request naming a VM by UUID and returns
// the distinct MACs of its filters, or a reason to refuse it as malformed.
func requestMACs(v *wire.VSI) ([]MAC, string) {
	switch {
	case v.IsResponse():
		return nil, "the VSI TLV is a response, not a request"
	case v.VSIIDFormat != wire.VSIIDUUID:
		return nil, fmt.Sprintf("VSIID format %s does not name a VM; tether needs a UUID", v.VSIIDFormat)
	}
	return macsOf(v)
}

// macsOf returns the distinct MACs of v's filters, or a reason to refuse.
func macsOf(v *wire.VSI) ([]MAC, string) {
	if v.FilterFormat != wire.FilterMACVID && v.FilterFormat != wire.FilterGroupMACVID {
		return nil, fmt.Sprintf("filter format %s carries no MAC; tether needs the vNIC's MAC", v.FilterFormat)
	}
	if len(v.Filters) == 0 {
		return nil, "no filter entry"
	}
	macs := make([]MAC, 0, 1)
	for _, f := range v.Filters {
		m := MAC(f.MAC)
		if m == (MAC{}) || m[0]&1 != 0 {
			return nil, fmt.Sprintf("MAC %s is not a unicast address", m)
		}
		if !slices.Contains(macs, m) {
			macs = append(macs, m)
		}
	}
	return macs, ""
}

// stripe returns the lock of (port, vm).
func (v *Verifier) stripe(port string, vm UUID) *sync.Mutex {
	var h maphash.Hash
	h.SetSeed(v.seed)
	h.WriteString(port)
	h.Write(vm[:])
	return &v.stripes[h.Sum64()%uint64(len(v.stripes))]
}

// decideVerified runs checks 3 to 7 on a claim whose signature and counter
// passed, and commits an accepted ASSOCIATE.
func (v *Verifier) decideVerified(ctx context.Context, c *Claim, d Decision) (Decision, error) {
	vsi := &c.VSI
	macs, why := requestMACs(vsi)
	if why != "" {
		return refuse(d, ReasonMalformed, why), nil
	}

	// 3. The key is enrolled for the host on this port.
	en, err := v.keys.Enrolment(ctx, d.Key)
	if err != nil {
		if errors.Is(err, identity.ErrUnknownKey) {
			return refuse(d, ReasonUnknownKey, fmt.Sprintf("key %s is no longer enrolled", d.Key)), nil
		}
		return refuse(d, ReasonInternal, "key enrolment lookup failed"), fmt.Errorf("verify: look key %s up: %w", d.Key, err)
	}
	d.Host = en.Host
	nb, ok := v.nbrs.Neighbour(c.Port)
	switch {
	case en.Host == "":
		return refuse(d, ReasonKeyNotEnrolledForHost, fmt.Sprintf("key %s is not enrolled for any host", d.Key)), nil
	case !ok || nb.Host == "":
		return refuse(d, ReasonNoNeighbour,
			fmt.Sprintf("no single LLDP neighbour on port %s names its host, so key %s (host %q) cannot be matched to it", c.Port, d.Key, en.Host)), nil
	case nb.Host != en.Host:
		return refuse(d, ReasonKeyNotEnrolledForHost,
			fmt.Sprintf("key %s is enrolled for host %q, but port %s is connected to host %q", d.Key, en.Host, c.Port, nb.Host)), nil
	}

	// 4. The same key signed the LLDP neighbour on this port.
	switch {
	case !nb.Signed:
		return refuse(d, ReasonNeighbourKeyMismatch,
			fmt.Sprintf("the LLDP neighbour %q on port %s is not signed; the claim is signed by key %s", nb.Host, c.Port, d.Key)), nil
	case nb.Key != d.Key:
		return refuse(d, ReasonNeighbourKeyMismatch,
			fmt.Sprintf("the LLDP neighbour %q on port %s was signed by key %s, the claim by key %s", nb.Host, c.Port, nb.Key, d.Key)), nil
	}

	return v.decideOnHost(ctx, c, d, en.Host, macs)
}

// decideOnHost runs checks 5 to 7 on a claim whose host is known (from
// its key and the port's LLDP neighbour, or in interop mode from the
// neighbour alone), and commits an accepted ASSOCIATE.
func (v *Verifier) decideOnHost(ctx context.Context, c *Claim, d Decision, host string, macs []MAC) (Decision, error) {
	vsi := &c.VSI
	var err error
	mu := v.stripe(c.Port, d.VM)
	mu.Lock()
	defer mu.Unlock()
	if vsi.Mode == wire.VSIDeAssociate {
		if r, msg := v.stagMismatch(c, d.VM); r != ReasonNone {
			return refuse(d, r, msg), nil
		}
		if err := v.releaseLocked(ctx, c.Port, d.VM, 0); err != nil {
			return refuse(d, ReasonInternal, "release failed"), err
		}
		d.Accepted = true
		return d, nil
	}

	// 5. The VM manager confirms the VM on this host with these MACs.
	state, d, ok := v.confirm(ctx, host, macs, d)
	if !ok {
		return d, nil
	}

	// 6. No MAC is live elsewhere, unless this is a confirmed migration.
	plans := make([]macPlan, 0, len(macs))
	for _, m := range macs {
		var p macPlan
		p, d, err = v.planMAC(ctx, c, m, state, d)
		if err != nil || d.Reason != ReasonNone {
			return d, err
		}
		plans = append(plans, p)
	}

	// 7. The S-Tag is not bound to another vNIC on this port, and the
	// VM's vNIC is not bound to another S-Tag here (a frame of one
	// S-channel replayed on another: the signature does not cover the
	// S-VID, and each channel has its own replay window).
	if r, msg := v.stagMismatch(c, d.VM); r != ReasonNone {
		return refuse(d, r, msg), nil
	}
	vnic := VNIC{VM: d.VM, MAC: macs[0]}
	commit := vsi.Mode == wire.VSIAssociate
	tag, holder, err := v.bindSTag(ctx, c, vnic, commit)
	if err != nil {
		return refuse(d, ReasonInternal, "S-Tag table failed"), fmt.Errorf("verify: S-Tag %d on port %s: %w", c.STag, c.Port, err)
	}
	if holder != nil {
		return refuse(d, ReasonSTagBoundElsewhere,
			fmt.Sprintf("S-Tag %d on port %s is bound to %s", c.STag, c.Port, holder)), nil
	}
	if !commit {
		d.Accepted = true
		return d, nil
	}

	// Commit: the MACs become live here, each with a compare-and-swap
	// against the entry checked above; a lost race undoes everything.
	loc := Location{Switch: v.sw, Port: c.Port, VM: d.VM, Host: host}
	for i := range plans {
		p := &plans[i]
		got, err := v.locs.Claim(ctx, p.mac, loc, p.prev.Rev)
		if err != nil {
			v.undo(ctx, c, plans[:i], loc, vnic, tag)
			if errors.Is(err, ErrConflict) {
				return refuse(d, ReasonMACLiveElsewhere,
					fmt.Sprintf("MAC %s changed location while being checked (now %s)", p.mac, got)), nil
			}
			return refuse(d, ReasonInternal, "location table failed"), fmt.Errorf("verify: claim MAC %s: %w", p.mac, err)
		}
		p.rev = got.Rev
		if p.move {
			d.Released = append(d.Released, Released{MAC: p.mac, From: p.prev})
		}
	}
	v.rebind(ctx, c.Port, d.VM, assoc{macs: macs, stag: c.STag})
	d.Accepted = true
	return d, nil
}

// stagMismatch refuses a claim for vm on c's port when vm is associated
// there under another S-Tag; the stripe of (port, vm) is held.
func (v *Verifier) stagMismatch(c *Claim, vm UUID) (Reason, string) {
	v.mu.Lock()
	a, ok := v.assocs[assocKey{c.Port, vm}]
	v.mu.Unlock()
	if !ok || a.stag == c.STag {
		return ReasonNone, ""
	}
	return ReasonSTagBoundElsewhere, fmt.Sprintf("VM %s is associated on port %s with S-Tag %d, not %d: de-associate it there first",
		vm, c.Port, a.stag, c.STag)
}

// confirm runs check 5 for every MAC and returns the VM's state; ok is
// false when d is now a refusal.
func (v *Verifier) confirm(ctx context.Context, host string, macs []MAC, d Decision) (state VMState, _ Decision, ok bool) {
	for i, m := range macs {
		c, err := v.ask(ctx, host, d.VM, m)
		if err != nil {
			return 0, refuse(d, ReasonVMManagerUnavailable,
				fmt.Sprintf("the VM manager could not confirm VM %s on host %q: %v", d.VM, host, err)), false
		}
		if !c.Confirmed {
			msg := fmt.Sprintf("the VM manager does not confirm VM %s on host %q with MAC %s (state %s)", d.VM, host, m, c.State)
			if c.Reason != "" {
				msg += ": " + c.Reason
			}
			return 0, refuse(d, ReasonVMManagerDenies, msg), false
		}
		if i == 0 {
			state = c.State
		}
	}
	return state, d, true
}

// ask asks the VM manager, within VMTimeout.
func (v *Verifier) ask(ctx context.Context, host string, vm UUID, mac MAC) (Confirmation, error) {
	ctx, cancel := context.WithTimeout(ctx, v.vmTimeout)
	defer cancel()
	return v.vmm.Confirm(ctx, host, vm, mac)
}

// macPlan is check 6's verdict on one MAC.
type macPlan struct {
	mac  MAC
	prev Location // the current entry; Rev 0 when none
	move bool     // a confirmed migration takes it over
	rev  uint64   // the entry's revision after the commit
}

// planMAC runs check 6 for one MAC: d comes back refused, or marked as a
// migration, or unchanged.
func (v *Verifier) planMAC(ctx context.Context, c *Claim, m MAC, state VMState, d Decision) (macPlan, Decision, error) {
	p := macPlan{mac: m}
	cur, had, err := v.locs.Lookup(ctx, m)
	if err != nil {
		return p, refuse(d, ReasonInternal, "location table failed"), fmt.Errorf("verify: look MAC %s up: %w", m, err)
	}
	if !had {
		return p, d, nil
	}
	p.prev = cur
	if cur.Switch == v.sw && cur.Port == c.Port && cur.VM == d.VM {
		return p, d, nil // a refresh of this association
	}
	if cur.VM != d.VM {
		return p, refuse(d, ReasonMACLiveElsewhere, fmt.Sprintf("MAC %s is live at %s, for another VM", m, cur)), nil
	}
	ok, why, err := v.migrationConfirmed(ctx, d.Host, d.VM, m, state, cur)
	if err != nil {
		return p, refuse(d, ReasonVMManagerUnavailable,
			fmt.Sprintf("MAC %s is live at %s and the VM manager could not tell whether the VM left: %v", m, cur, err)), nil
	}
	if !ok {
		return p, refuse(d, ReasonMACLiveElsewhere,
			fmt.Sprintf("MAC %s is live at %s and this is not a confirmed migration: %s", m, cur, why)), nil
	}
	p.move = true
	d.Migration = true
	if d.Message == "" {
		d.Message = "confirmed migration: " + why
	}
	return p, d, nil
}

// migrationConfirmed decides whether VM vm, confirmed on host in state,
// may take MAC m over from cur (the same VM on another port). It may: when
// the VM manager says the VM is migrating or has migrated into host; when
// cur is on the same host (the vNIC moved to another uplink); or when the
// VM manager, asked afresh, says the VM has left cur's host (gone, shut
// off, or migrating out).
func (v *Verifier) migrationConfirmed(ctx context.Context, host string, vm UUID, m MAC, state VMState, cur Location) (bool, string, error) {
	switch {
	case state == VMMigratingIn || state == VMMigratedIn:
		return true, fmt.Sprintf("the VM manager reports VM %s %s on host %q", vm, state, host), nil
	case cur.Host == host:
		return true, fmt.Sprintf("VM %s stays on host %q and moves from port %s/%s", vm, host, cur.Switch, cur.Port), nil
	}
	if f, ok := v.vmm.(Forgetter); ok {
		f.Forget(cur.Host, vm)
	}
	old, err := v.ask(ctx, cur.Host, vm, m)
	if err != nil {
		return false, "", err
	}
	if !old.Confirmed || old.State == VMMigratingOut {
		return true, fmt.Sprintf("VM %s has left host %q (%s there)", vm, cur.Host, old.State), nil
	}
	return false, fmt.Sprintf("VM %s is still %s on host %q", vm, old.State, cur.Host), nil
}

// tagChange is what a claim did to the S-Tag table, to undo it.
type tagChange struct {
	fresh    bool  // it bound the S-Tag
	replaced *VNIC // the binding of the same VM it replaced
}

// bindSTag runs check 7's binding: with commit it binds c's S-Tag to
// vnic, otherwise it only looks. holder is the other VM's vNIC that holds
// the S-Tag, if any. A binding of the same VM with another MAC (its
// filters changed) is replaced. The stripe of (port, VM) is held.
func (v *Verifier) bindSTag(ctx context.Context, c *Claim, vnic VNIC, commit bool) (tag tagChange, holder *VNIC, err error) {
	if c.STag == 0 {
		return tag, nil, nil
	}
	if !commit {
		h, bound, err := v.stags.Lookup(ctx, c.Port, c.STag)
		if err != nil || !bound || h.VM == vnic.VM {
			return tag, nil, err
		}
		return tag, &h, nil
	}
	tag.fresh, err = v.stags.Bind(ctx, c.Port, c.STag, vnic)
	var be *STagBoundError
	if !errors.As(err, &be) {
		return tag, nil, err
	}
	if be.Holder.VM != vnic.VM {
		return tag, &be.Holder, nil
	}
	old := be.Holder
	if err := v.stags.Release(ctx, c.Port, c.STag, old); err != nil {
		return tag, nil, err
	}
	tag.replaced = &old
	tag.fresh, err = v.stags.Bind(ctx, c.Port, c.STag, vnic)
	if errors.As(err, &be) {
		// Taken in between by another VM (only possible with a table
		// shared beyond this verifier).
		if _, rerr := v.stags.Bind(ctx, c.Port, c.STag, old); rerr != nil {
			v.log.Error("restore of an S-Tag binding failed", "port", c.Port, "stag", c.STag, "err", rerr)
		}
		return tagChange{}, &be.Holder, nil
	}
	return tag, nil, err
}

// undo reverts the commits of plans and a fresh S-Tag binding after a
// failed commit.
func (v *Verifier) undo(ctx context.Context, c *Claim, plans []macPlan, loc Location, vnic VNIC, tag tagChange) {
	ctx = context.WithoutCancel(ctx)
	for _, p := range plans {
		var err error
		switch {
		case p.prev.Rev == 0:
			err = v.locs.Release(ctx, p.mac, loc)
		case p.move:
			_, err = v.locs.Claim(ctx, p.mac, p.prev, p.rev)
		}
		if err != nil {
			v.log.Error("undo of a MAC claim failed", "port", c.Port, "mac", p.mac.String(), "err", err)
		}
	}
	if tag.fresh {
		if err := v.stags.Release(ctx, c.Port, c.STag, vnic); err != nil {
			v.log.Error("undo of an S-Tag binding failed", "port", c.Port, "stag", c.STag, "err", err)
		}
	}
	if tag.replaced != nil {
		if _, err := v.stags.Bind(ctx, c.Port, c.STag, *tag.replaced); err != nil {
			v.log.Error("undo of an S-Tag re-binding failed", "port", c.Port, "stag", c.STag, "err", err)
		}
	}
}

// rebind records the association of vm on port as a, and releases the
// MACs an earlier association of it held that a does not (its S-Tag is
// the same: stagMismatch); the stripe of (port, vm) is held.
func (v *Verifier) rebind(ctx context.Context, port string, vm UUID, a assoc) {
	k := assocKey{port, vm}
	v.mu.Lock()
	old, had := v.assocs[k]
	v.gen++
	a.gen = v.gen
	v.assocs[k] = a
	v.mu.Unlock()
	if !had {
		return
	}
	loc := Location{Switch: v.sw, Port: port, VM: vm}
	for _, m := range old.macs {
		if !slices.Contains(a.macs, m) {
			if err := v.locs.Release(ctx, m, loc); err != nil {
				v.log.Error("release of a MAC no longer claimed failed", "port", port, "mac", m.String(), "err", err)
			}
		}
	}
}

// Release ends the association of VM vm on port: its MACs stop being live
// there (unless they have moved on) and its S-Tag is unbound. Call it when
// the VSI is de-associated, by the station or the bridge, or its
// keep-alives stop. Releasing what is not associated does nothing.
func (v *Verifier) Release(ctx context.Context, port string, vm UUID) error {
	return v.releaseGen(ctx, port, vm, 0)
}

// releaseGen releases the association of vm on port if its generation is
// gen (0: any).
func (v *Verifier) releaseGen(ctx context.Context, port string, vm UUID, gen uint64) error {
	mu := v.stripe(port, vm)
	mu.Lock()
	defer mu.Unlock()
	return v.releaseLocked(ctx, port, vm, gen)
}

// assocGen returns the generation of the association of vm on port, 0 when
// there is none.
func (v *Verifier) assocGen(port string, vm UUID) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.assocs[assocKey{port, vm}].gen
}

// releaseLocked is releaseGen with the stripe held.
func (v *Verifier) releaseLocked(ctx context.Context, port string, vm UUID, gen uint64) error {
	k := assocKey{port, vm}
	v.mu.Lock()
	a, ok := v.assocs[k]
	if ok && gen != 0 && a.gen != gen {
		ok = false
	}
	if ok {
		delete(v.assocs, k)
	}
	v.mu.Unlock()
	if !ok {
		return nil
	}
	var errs []error
	loc := Location{Switch: v.sw, Port: port, VM: vm}
	for _, m := range a.macs {
		if err := v.locs.Release(ctx, m, loc); err != nil {
			errs = append(errs, fmt.Errorf("verify: release MAC %s at port %s: %w", m, port, err))
		}
	}
	if a.stag != 0 {
		if err := v.stags.Release(ctx, port, a.stag, VNIC{VM: vm, MAC: a.macs[0]}); err != nil {
			errs = append(errs, fmt.Errorf("verify: release S-Tag %d on port %s: %w", a.stag, port, err))
		}
	}
	return errors.Join(errs...)
}

// record counts and logs a decision and returns it.
func (v *Verifier) record(ctx context.Context, c *Claim, d Decision, err error) (Decision, error) {
	if d.Accepted {
		v.accepted.Add(1)
		if len(d.Released) > 0 {
			v.migrations.Add(1)
			v.log.LogAttrs(ctx, slog.LevelInfo, "MAC taken over by a confirmed migration",
				slog.String("port", c.Port), slog.String("vm", d.VM.String()), slog.String("host", d.Host),
				slog.String("from", d.Released[0].From.String()), slog.String("why", d.Message))
		}
		return d, nil
	}
	if err != nil && d.Reason == ReasonNone {
		d = refuse(d, ReasonInternal, err.Error())
	}
	v.refused[d.Reason].Add(1)
	ok, suppressed := v.logLim.Allow(c.Port, v.now())
	if !ok {
		v.suppressed.Add(1)
		return d, err
	}
	attrs := []slog.Attr{
		slog.String("port", c.Port),
		slog.String("channel", c.Channel),
		slog.String("reason", d.Reason.String()),
		slog.String("mode", d.Mode.String()),
		slog.String("vm", d.VM.String()),
		slog.String("msg", d.Message),
	}
	if d.Signed {
		attrs = append(attrs, slog.String("key", d.Key.String()), slog.Uint64("counter", d.Counter))
	}
	if c.STag != 0 {
		attrs = append(attrs, slog.Int("stag", int(c.STag)))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	level := slog.LevelWarn
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	v.log.LogAttrs(ctx, level, "claim refused", attrs...)
	return d, err
}
