package libvirthooks

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// endless is a reader that never ends and counts what it handed out.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '<'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestReadXML(t *testing.T) {
	full := readTestdata(t, "domain-4nics.xml")
	got, err := ReadXML(bytes.NewReader(full), 0)
	if err != nil || !bytes.Equal(got, full) {
		t.Fatalf("ReadXML = %d bytes, %v", len(got), err)
	}
	// Exactly at the limit is fine, one byte over is not.
	if _, err := ReadXML(bytes.NewReader(full), int64(len(full))); err != nil {
		t.Fatalf("at limit: %v", err)
	}
	_, err = ReadXML(bytes.NewReader(full), int64(len(full)-1))
	var oe *OversizeError
	if !errors.As(err, &oe) || ExitCode(err) != ExitOversize {
		t.Fatalf("one over: %v", err)
	}
	if want := "hook input exceeds the limit of " + strconv.Itoa(len(full)-1) + " bytes"; err.Error() != want {
		t.Errorf("error %q", err)
	}

	// An endless stream stops at the default limit + 1 byte read.
	src := &endless{}
	_, err = ReadXML(src, 0)
	if !errors.As(err, &oe) || oe.Limit != DefaultXMLLimit {
		t.Fatalf("endless: %v", err)
	}
	if err.Error() != "hook input exceeds the limit of 4194304 bytes" {
		t.Errorf("error %q", err)
	}
	if src.n > DefaultXMLLimit+64<<10 {
		t.Errorf("read %d bytes from an endless stream, limit %d", src.n, DefaultXMLLimit)
	}

	// Read errors are wrapped, not mistaken for oversize.
	_, err = ReadXML(io.MultiReader(strings.NewReader("<dom"), errReader{}), 0)
	if err == nil || ExitCode(err) != ExitInternal || err.Error() != "read hook input: stdin broke" {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("stdin broke") }

func TestParseNetworkHook(t *testing.T) {
	got, err := ParseNetworkHook(readTestdata(t, "network-port-created.xml"))
	if err != nil {
		t.Fatal(err)
	}
	qbg := &VirtualPort{Type: "802.1Qbg", ManagerID: ptr[uint8](11), TypeID: ptr[uint32](1193047), TypeIDVersion: ptr[uint8](2)}
	want := NetworkHookData{
		Network: Network{
			Name: "vepa-net", UUID: "afca425a-2c3a-420c-b2fb-dd7b4950d722",
			ForwardMode: "vepa", ForwardDev: "ens1f0", PortGroups: []string{"web", "db"}, VirtualPort: qbg,
		},
		Port: &NetworkPort{
			UUID: "0e5b7c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e", OwnerName: "web-01", OwnerUUID: "4d1f5b2e-93c7-4b0a-9e61-0c5a7f3d2b18",
			VIF: VIF{
				Type: "direct", Kind: KindMacvtap, MAC: "52:54:00:a1:00:03",
				Network: "vepa-net", PortID: "0e5b7c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
				LinkDev: "ens1f0", DirectMode: "vepa", LibvirtPortGroup: "web", PortGroup: "web",
				CVID: 42, VLANTags: []VLANTag{{ID: 42}},
				VirtualPort: &VirtualPort{Type: "802.1Qbg", ManagerID: ptr[uint8](11), TypeID: ptr[uint32](1193047),
					TypeIDVersion: ptr[uint8](2), InstanceID: "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\n     %+v\nwant %+v\n     %+v", got.Network, got.Port, want.Network, want.Port)
	}

	got, err = ParseNetworkHook(readTestdata(t, "network-port-hostdev.xml"))
	if err != nil {
		t.Fatal(err)
	}
	wantVIF := VIF{Type: "hostdev-pci", Kind: KindSRIOVVF, MAC: "52:54:00:a1:00:04", Network: "sriov-pool",
		PortID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", PCIAddress: "0000:3b:10.2", CVID: 100, VLANTags: []VLANTag{{ID: 100}}}
	if got.Port == nil || !reflect.DeepEqual(got.Port.VIF, wantVIF) || got.Network.ForwardMode != "hostdev" {
		t.Errorf("hostdev port: got %+v", got.Port)
	}

	got, err = ParseNetworkHook(readTestdata(t, "network-started.xml"))
	if err != nil {
		t.Fatal(err)
	}
	wantNet := Network{Name: "default", UUID: "3e3fce45-4f53-4fa7-bb32-11f34168b82b", Bridge: "virbr0", ForwardMode: "nat"}
	if !reflect.DeepEqual(got, NetworkHookData{Network: wantNet}) {
		t.Errorf("started: got %+v", got)
	}
}

func TestParseNetworkHookErrors(t *testing.T) {
	net := `<network><name>n</name><uuid>afca425a-2c3a-420c-b2fb-dd7b4950d722</uuid></network>`
	for _, tc := range []struct {
		name, xml string
		kind      error
		wantErr   string
	}{
		{"garbage", "\xff\xfe", ErrMalformedXML, "network hook data XML: malformed XML: XML syntax error on line 1: invalid UTF-8"},
		{"domain", string(readTestdata(t, "domain-4nics.xml")), ErrMalformedXML, "network hook data XML: malformed XML: expected element type <hookData> but have <domain>"},
		{"bare network", net, ErrMalformedXML, "network hook data XML: malformed XML: expected element type <hookData> but have <network>"},
		{"no network", `<hookData/>`, ErrMalformedXML, "network hook data XML: <hookData>: malformed XML: no <network>"},
		{"no name", `<hookData><network><uuid>afca425a-2c3a-420c-b2fb-dd7b4950d722</uuid></network></hookData>`, ErrMissingName, "network hook data XML: <network>: missing <name>"},
		{"no uuid", `<hookData><network><name>n</name></network></hookData>`, ErrMissingUUID, "network hook data XML: <network>: missing <uuid>"},
		{"port no uuid", `<hookData>` + net + `<networkport><mac address='52:54:00:00:00:01'/></networkport></hookData>`, ErrMissingUUID, "network hook data XML: <networkport>: missing <uuid>"},
		{"port no mac", `<hookData>` + net + `<networkport><uuid>0e5b7c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e</uuid></networkport></hookData>`, ErrInvalidMAC,
			"network hook data XML: <networkport><mac address>: invalid MAC address: missing"},
		{"port bad mac", `<hookData>` + net + `<networkport><uuid>0e5b7c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e</uuid><mac address='xx'/></networkport></hookData>`, ErrInvalidMAC,
			`network hook data XML: <networkport><mac address>: invalid MAC address "xx": address xx: invalid MAC address`},
		{"port bad owner uuid", `<hookData>` + net + `<networkport><uuid>0e5b7c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e</uuid><owner><name>vm</name><uuid>123</uuid></owner><mac address='52:54:00:00:00:01'/></networkport></hookData>`, ErrInvalidUUID,
			`network hook data XML: <networkport><owner><uuid>: invalid <uuid> "123": want 32 hex digits`},
		{"truncated", `<hookData>` + net + `<networkport><uuid>0e5b7c9d`, ErrMalformedXML, "network hook data XML: malformed XML: XML syntax error on line 1: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNetworkHook([]byte(tc.xml))
			if err == nil || !errors.Is(err, tc.kind) || ExitCode(err) != ExitBadXML {
				t.Fatalf("err = %v, want kind %v", err, tc.kind)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.wantErr)
			}
		})
	}
}

func TestParseInput(t *testing.T) {
	dom := readTestdata(t, "domain-4nics.xml")
	in, err := ParseInput(Event{DriverQEMU, "web-01", OpStarted, SubBegin, "-"}, dom)
	if err != nil || in.Domain == nil || len(in.Domain.VIFs) != 4 || in.Network != nil {
		t.Fatalf("qemu: %+v, %v", in, err)
	}
	_, err = ParseInput(Event{DriverQEMU, "web-02", OpStarted, SubBegin, "-"}, dom)
	if !errors.Is(err, ErrNameMismatch) || err.Error() != `domain XML: <name>: name does not match the hook object "web-01": hook object is "web-02"` {
		t.Errorf("mismatch: %v", err)
	}
	port := readTestdata(t, "network-port-created.xml")
	in, err = ParseInput(Event{DriverNetwork, "vepa-net", OpPortCreated, SubBegin, "-"}, port)
	if err != nil || in.Network == nil || in.Network.Port == nil {
		t.Fatalf("network: %+v, %v", in, err)
	}
	_, err = ParseInput(Event{DriverNetwork, "default", OpPortDeleted, SubBegin, "-"}, readTestdata(t, "network-started.xml"))
	if !errors.Is(err, ErrMalformedXML) || err.Error() != "network hook data XML: <hookData>: malformed XML: no <networkport> for port-deleted" {
		t.Errorf("port missing: %v", err)
	}
	_, err = ParseInput(Event{DriverNetwork, "other", OpStarted, SubBegin, "-"}, readTestdata(t, "network-started.xml"))
	if !errors.Is(err, ErrNameMismatch) {
		t.Errorf("network mismatch: %v", err)
	}
	_, err = ParseInput(Event{Driver: "lxc"}, dom)
	if ExitCode(err) != ExitUsage {
		t.Errorf("lxc: %v", err)
	}
}
