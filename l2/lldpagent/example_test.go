package lldpagent_test

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// An EVB station's agent on an uplink: it advertises the EVB and CDCP
// TLVs that package evb computes from the bridge's last TLVs, re-negotiates
// whenever the bridge's LLDPDU changes, and signs every LLDPDU.
func Example_station() {
	ctx := context.Background()
	conn, err := rawsock.Listen("eth2", wire.EtherTypeLLDP, rawsock.Options{})
	if err != nil {
		slog.Error("open uplink", "err", err)
		return
	}
	defer conn.Close()
	key, _ := identity.LoadPrivateKey("/var/lib/tether/host.key")
	signer, _ := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{})

	mac := conn.Interface().MAC
	var mu sync.Mutex
	var bridgeEVB *wire.EVB
	var bridgeCDCP *wire.CDCP
	cdcpReq, _ := evb.StationRequest(evb.CDCPStationConfig{ChnCap: 8, SCIDs: []uint16{2, 3}})
	build := func() (wire.LLDPDU, error) {
		mu.Lock()
		defer mu.Unlock()
		_, evbTLV, _ := evb.Station(evb.DefaultConfig(), bridgeEVB)
		if _, err := evb.StationResult(cdcpReq, bridgeCDCP); err != nil {
			slog.Warn("bridge's CDCP answer refused", "err", err)
		}
		info := lldpagent.LocalInfo{
			ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: net.HardwareAddr(mac[:])},
			PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("eth2")},
			SystemName: "hv-12",
			EVB:        &evbTLV,
			CDCP:       &cdcpReq,
			Tether:     &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleHostAgent, KeyID: signer.KeyID()},
		}
		return info.LLDPDU()
	}
	var agent *lldpagent.Agent
	agent, err = lldpagent.New(conn, lldpagent.Config{
		Build: build,
		Dest:  wire.NearestCustomerBridge,
		Sign:  lldpagent.SignWith(signer, "eth2"),
		OnEvent: func(ev lldpagent.Event) {
			mu.Lock()
			bridgeEVB, bridgeCDCP = ev.Neighbor.EVB(), ev.Neighbor.CDCP()
			if ev.Kind == lldpagent.NeighborExpired || ev.Kind == lldpagent.NeighborShutdown {
				bridgeEVB, bridgeCDCP = nil, nil
			}
			mu.Unlock()
			agent.Update() // fast transmission if our TLVs changed
		},
	})
	if err != nil {
		slog.Error("LLDP agent", "err", err)
		return
	}
	_ = agent.Run(ctx) // sends a shutdown LLDPDU when ctx ends
}
