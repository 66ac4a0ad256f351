// Package inspect turns Ethernet frames carrying tether's protocols (LLDP
// with the IEEE 802.1 EVB, CDCP and DCBX TLVs and tether's own TLVs; ECP
// with VDP) into a readable tree: one node per TLV, each with named,
// ordered fields. The same tree renders as text (WriteText) and as JSON
// (encoding/json on Frame), so both outputs always carry the same fields.
//
// JSON field names are lower_snake_case and stable: scripts may rely on
// them. Text output is for people and may change.
package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Protocol names as they appear in Frame.Protocol.
const (
	// ProtocolLLDP is an LLDPDU (EtherType 0x88cc).
	ProtocolLLDP = "lldp"
	// ProtocolECP is an ECPDU (EtherType 0x8940), usually carrying VDP.
	ProtocolECP = "ecp"
)

// Frame is one decoded Ethernet frame.
type Frame struct {
	// Number is the frame's 1-based position in its capture.
	Number int `json:"number"`
	// Time is the capture timestamp.
	Time time.Time `json:"time"`
	// Length is the number of captured bytes.
	Length int `json:"length"`
	// Src is the source MAC address, as "52:54:00:aa:00:01".
	Src string `json:"src"`
	// Dst is the destination MAC address.
	Dst string `json:"dst"`
	// DstName names a well-known LLDP destination: "nearest-bridge",
	// "nearest-non-tpmr-bridge" or "nearest-customer-bridge"; empty
	// otherwise.
	DstName string `json:"dst_name,omitempty"`
	// Tags lists the 802.1ad S-Tag and 802.1Q C-Tags, outermost first.
	Tags []Tag `json:"tags,omitempty"`
	// EtherType is the payload's EtherType, as "0x88cc".
	EtherType string `json:"ethertype"`
	// Protocol is ProtocolLLDP or ProtocolECP.
	Protocol string `json:"protocol"`
	// TLVs are the decoded headers and TLVs, in wire order. For ECP the
	// first node is the ECP header.
	TLVs []TLV `json:"tlvs"`
	// Error is why the frame did not decode, or empty. TLVs then holds
	// what was decoded before the error, if anything.
	Error string `json:"error,omitempty"`
}

// Tag is one VLAN tag of a frame.
type Tag struct {
	// TPID is "0x88a8" (S-Tag) or "0x8100" (C-Tag).
	TPID string `json:"tpid"`
	// Kind is "s-tag" or "c-tag".
	Kind string `json:"kind"`
	// VID is the 12-bit VLAN ID.
	VID uint16 `json:"vid"`
	// PCP is the 3-bit priority code point.
	PCP uint8 `json:"pcp"`
	// DEI is the drop eligible indicator.
	DEI bool `json:"dei"`
}

// TLV is one decoded TLV (or protocol header): its kind, a human name and
// its fields in wire order. In JSON it is an object whose "tlv" member is
// Kind followed by the fields.
type TLV struct {
	// Kind is the stable lower_snake_case identifier, e.g. "evb" or
	// "vdp_associate".
	Kind string
	// Name is the human-readable name, e.g. "EVB" or "VDP ASSOCIATE".
	Name string
	// Fields are the decoded fields in wire order.
	Fields Fields
}

// MarshalJSON implements json.Marshaler: {"tlv": Kind, "tlv_name": Name,
// fields...}. A field may not be called "tlv" or "tlv_name".
func (t TLV) MarshalJSON() ([]byte, error) {
	all := make(Fields, 0, 2+len(t.Fields))
	all = append(all, Field{Key: "tlv", Value: t.Kind}, Field{Key: "tlv_name", Value: t.Name})
	b, err := append(all, t.Fields...).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("TLV %s: %w", t.Kind, err)
	}
	return b, nil
}

// Field is one named value. Value is one of: string, bool, an integer
// type, []string, []int, Fields (a nested object) or []Fields (a list of
// objects, shown as indented lines in text). Byte strings are given as hex
// strings, so that JSON does not turn them into base64.
type Field struct {
	// Key is the field's lower_snake_case name.
	Key string
	// Value is the field's value.
	Value any
}

// Fields is an ordered set of fields; in JSON an object whose members keep
// this order.
type Fields []Field

// MarshalJSON implements json.Marshaler, keeping the order of the fields.
// Two fields with the same key are an error.
func (fs Fields) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		for _, g := range fs[:i] {
			if g.Key == f.Key {
				return nil, fmt.Errorf("duplicate field %q", f.Key)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, fmt.Errorf("field key %q: %w", f.Key, err)
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// add appends a field.
func (fs *Fields) add(key string, value any) { *fs = append(*fs, Field{Key: key, Value: value}) }

// Summary counts what a decode run saw.
type Summary struct {
	// Frames is the number of records in the capture.
	Frames int `json:"frames"`
	// LLDP is the number of LLDP frames.
	LLDP int `json:"lldp"`
	// ECP is the number of ECP frames.
	ECP int `json:"ecp"`
	// Skipped is the number of frames of other EtherTypes (not shown).
	Skipped int `json:"skipped"`
	// Errors is the number of LLDP or ECP frames that failed to decode.
	Errors int `json:"errors"`
}

// Add counts one decoded frame; f is nil for a skipped frame.
func (s *Summary) Add(f *Frame) {
	s.Frames++
	switch {
	case f == nil:
		s.Skipped++
		return
	case f.Protocol == ProtocolLLDP:
		s.LLDP++
	case f.Protocol == ProtocolECP:
		s.ECP++
	}
	if f.Error != "" {
		s.Errors++
	}
}

// String formats the summary as one line.
func (s Summary) String() string {
	return fmt.Sprintf("%d frames: %d LLDP, %d ECP, %d other (skipped), %d with errors",
		s.Frames, s.LLDP, s.ECP, s.Skipped, s.Errors)
}
