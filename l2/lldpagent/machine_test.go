package lldpagent

import (
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testMachine(t *testing.T, c Config) *machine {
	t.Helper()
	c.Build = func() (wire.LLDPDU, error) { return wire.LLDPDU{}, nil }
	c, err := c.normalize()
	if err != nil {
		t.Fatal(err)
	}
	m := newMachine(c)
	m.start(t0)
	return m
}

// run advances m one second at a time from t0 through end seconds,
// calling at[s] first when set, and returns the seconds at which it
// transmitted.
func run(m *machine, end int, at map[int]func(time.Time)) []int {
	var tx []int
	for s := 0; s <= end; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if f := at[s]; f != nil {
			f(now)
		}
		for m.advance(now) {
			tx = append(tx, s)
		}
	}
	return tx
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTxSchedule(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		end  int
		at   map[int]func(m *machine, now time.Time)
		want []int
	}{{
		name: "regular every msgTxInterval from an immediate first LLDPDU",
		end:  100,
		want: []int{0, 30, 60, 90},
	}, {
		name: "new neighbour: txFastInit LLDPDUs msgFastTx apart, then msgTxInterval",
		end:  100,
		at:   map[int]func(*machine, time.Time){45: (*machine).fastStart},
		want: []int{0, 30, 45, 46, 47, 48, 78},
	}, {
		name: "local change also starts fast transmission (issue 4)",
		end:  40,
		at:   map[int]func(*machine, time.Time){10: (*machine).localChange},
		want: []int{0, 10, 11, 12, 13},
	}, {
		name: "a second new neighbour during fast transmission sends at once and keeps the count",
		end:  50,
		at: map[int]func(*machine, time.Time){
			5: (*machine).fastStart,
			6: (*machine).fastStart,
		},
		// 5: txFast 4->3 and send. 6: the new neighbour comes before the
		// timer: txFast 3->2, send, timer reset to 7. 7: ->1, 8: ->0,
		// then msgTxInterval: four fast LLDPDUs in all.
		want: []int{0, 5, 6, 7, 8, 38},
	}, {
		name: "custom timers: interval 10, fast 2 s x 2",
		cfg:  Config{TxInterval: 10 * time.Second, FastTx: 2 * time.Second, TxFastInit: 2},
		end:  30,
		at:   map[int]func(*machine, time.Time){3: (*machine).fastStart},
		want: []int{0, 3, 5, 15, 25},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMachine(t, tt.cfg)
			at := map[int]func(time.Time){}
			for s, f := range tt.at {
				at[s] = func(now time.Time) { f(m, now) }
			}
			if got := run(m, tt.end, at); !equalInts(got, tt.want) {
				t.Fatalf("transmitted at %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTxCredit(t *testing.T) {
	m := testMachine(t, Config{})
	// Ten local changes in one instant at t0+10: the credit (5, full after
	// 10 idle seconds) allows five LLDPDUs, the rest waits for ticks.
	now := t0
	if !m.advance(now) {
		t.Fatal("no first LLDPDU")
	}
	now = t0.Add(10 * time.Second)
	sent := 0
	for i := 0; i < 10; i++ {
		m.localChange(now)
		if m.advance(now) {
			sent++
		}
	}
	if sent != 5 {
		t.Fatalf("sent %d LLDPDUs in one instant, want txCreditMax = 5", sent)
	}
	if !m.txNow {
		t.Fatal("the sixth transmission is not pending")
	}
	if w := m.nextWake(); !w.Equal(now.Add(time.Second)) {
		t.Fatalf("next wake %v, want the next credit at +1s", w.Sub(now))
	}
	// Half a second later: still no credit.
	if m.advance(now.Add(500 * time.Millisecond)) {
		t.Fatal("sent without credit")
	}
	if !m.advance(now.Add(time.Second)) {
		t.Fatal("no LLDPDU with the credit of the next tick")
	}
	// Credit never exceeds txCreditMax however long the agent idles.
	m.tick(now.Add(time.Hour))
	if m.txCredit != 5 {
		t.Fatalf("credit %d after an hour, want 5", m.txCredit)
	}
}

func TestTTL(t *testing.T) {
	for _, tt := range []struct {
		interval time.Duration
		hold     int
		want     uint16
	}{
		{0, 0, 121},
		{30 * time.Second, 4, 121},
		{time.Second, 1, 2},
		{3600 * time.Second, 100, 65535},
		{655 * time.Second, 100, 65501},
	} {
		c, err := Config{Build: func() (wire.LLDPDU, error) { return wire.LLDPDU{}, nil }, TxInterval: tt.interval, TxHold: tt.hold}.normalize()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ttl(); got != tt.want {
			t.Errorf("interval %v hold %d: TTL %d, want %d", tt.interval, tt.hold, got, tt.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	build := func() (wire.LLDPDU, error) { return wire.LLDPDU{}, nil }
	for _, c := range []Config{
		{},
		{Build: build, TxInterval: 500 * time.Millisecond},
		{Build: build, TxInterval: 1500 * time.Millisecond},
		{Build: build, TxInterval: 3601 * time.Second},
		{Build: build, TxHold: 101},
		{Build: build, TxHold: -1},
		{Build: build, TxFastInit: 9},
		{Build: build, TxCreditMax: 11},
		{Build: build, FastTx: time.Hour + time.Second},
		{Build: build, Dest: [6]byte{2, 0, 0, 0, 0, 1}},
		{Build: build, MaxNeighbors: -3},
	} {
		if _, err := c.normalize(); err == nil {
			t.Errorf("normalize(%+v) succeeded", c)
		}
	}
}

func testPDU(chassis, port, name string, ttl uint16) wire.LLDPDU {
	du := wire.LLDPDU{
		ChassisID: wire.ChassisID{Subtype: lldp.ChassisIDSubtypeLocallyAssigned, ID: []byte(chassis)},
		PortID:    wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(port)},
		TTL:       ttl,
	}
	if name != "" {
		du.TLVs = append(du.TLVs, wire.SystemName(name))
	}
	return du
}

func TestNeighborTable(t *testing.T) {
	m := testMachine(t, Config{MaxNeighbors: 2})
	m.advance(t0) // first LLDPDU: the TX timer moves to t0+30s
	src := [6]byte{2, 0, 0, 0, 0, 1}
	apply := func(now time.Time, du wire.LLDPDU) ([]Event, bool) {
		return m.apply(now, "p0", nil, src, du, CheckResult{})
	}
	kinds := func(evs []Event) []EventKind {
		var k []EventKind
		for _, e := range evs {
			k = append(k, e.Kind)
		}
		return k
	}

	evs, isNew := apply(t0, testPDU("c1", "p1", "one", 10))
	if len(evs) != 1 || evs[0].Kind != NeighborAdded || !isNew || evs[0].Neighbor.SystemName() != "one" {
		t.Fatalf("first LLDPDU: %v new=%v", kinds(evs), isNew)
	}
	// Same content later: a refresh, no event, expiry moves.
	if evs, isNew = apply(t0.Add(5*time.Second), testPDU("c1", "p1", "one", 10)); len(evs) != 0 || isNew {
		t.Fatalf("refresh: %v new=%v", kinds(evs), isNew)
	}
	// A different TTL alone is not a change either.
	if evs, _ = apply(t0.Add(6*time.Second), testPDU("c1", "p1", "one", 20)); len(evs) != 0 {
		t.Fatalf("TTL change: %v", kinds(evs))
	}
	if n := m.neighbors()[0]; !n.ExpiresAt.Equal(t0.Add(26*time.Second)) || !n.FirstSeen.Equal(t0) || n.TTL != 20 {
		t.Fatalf("after refresh: first %v expires %v ttl %d", n.FirstSeen, n.ExpiresAt, n.TTL)
	}
	// New system name: updated.
	if evs, _ = apply(t0.Add(7*time.Second), testPDU("c1", "p1", "uno", 20)); len(kinds(evs)) != 1 || evs[0].Kind != NeighborUpdated || evs[0].Neighbor.SystemName() != "uno" {
		t.Fatalf("name change: %v", kinds(evs))
	}
	// Same chassis, other port: a second neighbour; a third is refused.
	if evs, _ = apply(t0.Add(8*time.Second), testPDU("c1", "p2", "", 5)); len(evs) != 1 || evs[0].Kind != NeighborAdded {
		t.Fatalf("second neighbour: %v", kinds(evs))
	}
	if evs, isNew = apply(t0.Add(8*time.Second), testPDU("c3", "p1", "", 5)); len(evs) != 0 || isNew || m.tooMany != 1 || !m.full {
		t.Fatalf("third neighbour with MaxNeighbors 2: %v new=%v tooMany=%d", kinds(evs), isNew, m.tooMany)
	}
	// Expiry: c1/p2 at t0+13, c1/p1 at t0+27.
	if w := m.nextWake(); !w.Equal(t0.Add(13 * time.Second)) {
		t.Fatalf("next wake %v, want t0+13s", w.Sub(t0))
	}
	if evs = m.ageOut(t0.Add(12*time.Second), "p0"); len(evs) != 0 {
		t.Fatalf("early ageout: %v", kinds(evs))
	}
	if evs = m.ageOut(t0.Add(13*time.Second), "p0"); len(evs) != 1 || evs[0].Kind != NeighborExpired || string(evs[0].Neighbor.PortID.ID) != "p2" {
		t.Fatalf("ageout at +13: %v", kinds(evs))
	}
	if m.full {
		t.Fatal("table still marked full after an ageout")
	}
	// Shutdown of an unknown neighbour: nothing; of a known one: removed.
	if evs, _ = apply(t0.Add(14*time.Second), testPDU("c9", "p9", "", 0)); len(evs) != 0 {
		t.Fatalf("unknown shutdown: %v", kinds(evs))
	}
	if evs, _ = apply(t0.Add(14*time.Second), testPDU("c1", "p1", "", 0)); len(evs) != 1 || evs[0].Kind != NeighborShutdown || evs[0].Neighbor.SystemName() != "uno" {
		t.Fatalf("shutdown: %v", kinds(evs))
	}
	if len(m.table) != 0 || len(m.cmp) != 0 {
		t.Fatalf("table not empty: %d %d", len(m.table), len(m.cmp))
	}
	want := counters{framesIn: 8, tooMany: 1, ageouts: 1, inserts: 2, deletes: 2}
	if m.counters != want {
		t.Fatalf("counters %+v, want %+v", m.counters, want)
	}
}

func TestMSAPKeyNoCollision(t *testing.T) {
	a := testPDU("ab", "c", "", 1)
	b := testPDU("a", "bc", "", 1)
	if msapKey(&a) == msapKey(&b) {
		t.Fatal("(ab, c) and (a, bc) share a key")
	}
}

func TestCompareIgnoresSignature(t *testing.T) {
	a := testPDU("c", "p", "n", 10)
	b := testPDU("c", "p", "n", 99)
	b.TLVs = append(b.TLVs, &wire.TetherSignature{Counter: 7})
	if string(compareBytes(&a)) != string(compareBytes(&b)) {
		t.Fatal("TTL or signature counted as a change")
	}
}
