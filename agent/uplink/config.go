package uplink

import (
	"log/slog"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/wire"
)

// IdentityConfigFrom returns the identity part of tetherd's configuration.
func IdentityConfigFrom(c *config.Config) IdentityConfig {
	return IdentityConfig{
		KeyFile:    c.Identity.KeyFile,
		Counters:   c.Identity.Counters,
		SwitchKeys: c.Identity.SwitchKeys,
		CID:        wire.OUI(c.CID),
	}
}

// ConfigFrom returns the Config of the uplink on ifname from tetherd's
// validated configuration. Listen is left to the caller (nil:
// rawsock.Listen).
func ConfigFrom(c *config.Config, ifname string, store *inventory.Store, id *Identity, log *slog.Logger) Config {
	cfg := Config{
		Interface:     ifname,
		Store:         store,
		Signer:        id.Signer,
		Verifier:      id.Verifier,
		RequireSigned: c.RequireSigned,
		CID:           wire.OUI(c.CID),
		EVB: evb.Config{RR: true, R: uint8(c.EVB.R), RTE: uint8(c.EVB.RTE),
			RWD: uint8(c.EVB.RWD), RKA: uint8(c.EVB.RKA)},
		ETS:         etsOf(c.DCBX.ETS),
		PFC:         pfcOf(c.DCBX.PFC),
		TypeID:      uint32(c.VDP.TypeID),
		TypeVersion: uint8(c.VDP.TypeVersion),
		PostMove:    c.Migration.Mode == config.MigrationPostMove,
		Logger:      log,
	}
	// Validated: 1 to 16 bytes without NUL.
	cfg.Manager, _ = wire.ManagerIDFromString(c.VDP.ManagerID)
	return cfg
}

// tsaOf maps the configuration's algorithm names.
var tsaOf = map[string]wire.TSA{
	"strict": wire.TSAStrict,
	"cbs":    wire.TSACreditBased,
	"ets":    wire.TSAETS,
	"vendor": wire.TSAVendor,
}

// etsOf converts dcbx.ets (validated) to the ETS Configuration TLV.
func etsOf(e *config.ETS) *wire.ETSConfiguration {
	if e == nil {
		return nil
	}
	t := &wire.ETSConfiguration{Willing: e.Willing, MaxTCs: uint8(e.MaxTCs % 8)} // 8 is sent as 0
	for i := range 8 {
		t.PriorityTC[i] = uint8(e.PriorityTC[i])
		t.Bandwidth[i] = uint8(e.Bandwidth[i])
		t.TSA[i] = tsaOf[e.TSA[i]]
	}
	return t
}

// pfcOf converts dcbx.pfc (validated) to the PFC Configuration TLV.
func pfcOf(p *config.PFC) *wire.PFC {
	if p == nil {
		return nil
	}
	t := &wire.PFC{Willing: p.Willing, Cap: uint8(p.Cap)}
	for _, prio := range p.Enable {
		t.Enable |= 1 << uint(prio)
	}
	return t
}
