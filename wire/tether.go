package wire

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/mdlayher/lldp"
)

// tether's organizationally specific TLVs.
//
// DESIGN.md "Wire decisions": LLDP to the nearest customer bridge carries
// tether's capability TLV and an inventory digest, and a signature TLV comes
// last before End; per-vNIC VDP carries one org-defined TLV with the
// signature; the switch answers ASSOCIATE with a signed profile TLV; a
// signed VDP frame of an S-channel also carries a channel binding TLV with
// the channel's S-VID in its signed region. All of them live under one
// Company ID (DefaultCID unless configured otherwise)
// and are told apart by the subtype octet that follows the CID
// (IEEE 802.1AB-2016 8.6, 802.1Qbg-2012 41.2.9).
//
// Every layout is fixed per subtype. A later revision of the protocol that
// needs more fields defines a new subtype rather than lengthening an old
// one, which is why the decoders check exact lengths and why a subtype this
// package does not know decodes to a RawOrgTLV (see newTetherTLV).

// Subtypes of tether's organizationally specific TLVs, the octet after the
// CID.
const (
	// TetherSubtypeCapability identifies TetherCapability.
	TetherSubtypeCapability uint8 = 1
	// TetherSubtypeInventory identifies TetherInventory.
	TetherSubtypeInventory uint8 = 2
	// TetherSubtypeProfile identifies TetherProfile.
	TetherSubtypeProfile uint8 = 3
	// TetherSubtypeSignature identifies TetherSignature.
	TetherSubtypeSignature uint8 = 4
	// TetherSubtypeChannelBinding identifies TetherChannelBinding.
	TetherSubtypeChannelBinding uint8 = 5
)

// TetherProtocolVersion is the protocol version this package speaks,
// advertised in TetherCapability.Version.
const TetherProtocolVersion uint8 = 1

// Information string sizes of the fixed-size tether TLVs (the bytes after
// CID and subtype).
const (
	// TetherCapabilityLen is the size of TetherCapability's information
	// string.
	TetherCapabilityLen = 11
	// TetherInventoryLen is the size of TetherInventory's information
	// string.
	TetherInventoryLen = 45
	// SignatureInfoLen is the size of TetherSignature's information string:
	// key ID (8), counter (8) and Ed25519 signature (64).
	SignatureInfoLen = 80
	// TetherChannelBindingLen is the size of TetherChannelBinding's
	// information string.
	TetherChannelBindingLen = 2
)

// newTetherTLV returns an empty tether TLV of subtype sub, or nil when the
// subtype is not one this package decodes. decodeOrgTLV then keeps the TLV
// as a RawOrgTLV: a newer peer may send subtypes this build does not know,
// and failing the whole LLDPDU or VDPDU over them would break mixed-version
// deployments; the raw form also re-encodes byte for byte, so a relay or a
// signed region is not altered.
func newTetherTLV(sub uint8) OrgTLV {
	switch sub {
	case TetherSubtypeCapability:
		return new(TetherCapability)
	case TetherSubtypeInventory:
		return new(TetherInventory)
	case TetherSubtypeProfile:
		return new(TetherProfile)
	case TetherSubtypeSignature:
		return new(TetherSignature)
	case TetherSubtypeChannelBinding:
		return new(TetherChannelBinding)
	}
	return nil
}

// tetherCheckLen reports an information string whose size is not exactly
// want bytes.
func tetherCheckLen(name string, b []byte, off, want int) error {
	if len(b) != want {
		return newError(name, off, ErrLength, "information string is %d bytes, want %d", len(b), want)
	}
	return nil
}

// tetherMarshal encodes t as a complete TLV under DefaultCID.
func tetherMarshal(t OrgTLV) ([]byte, error) {
	return appendOrgTLV(make([]byte, 0, 64), t, DefaultCID)
}

// tetherUnmarshal decodes a complete TLV (header, CID, subtype and
// information string) into t, which must be the tether type of subtype sub.
// Offsets in errors are relative to b.
func tetherUnmarshal(b []byte, t OrgTLV, sub uint8) error {
	name := t.tlvName()
	if len(b) < tlvHeaderLen+4 {
		return errTruncated(name, 0, tlvHeaderLen+4, len(b))
	}
	typ, length := parseTLVHeader(b)
	if typ != uint8(lldp.TLVTypeOrganizationSpecific) {
		return newError(name, 0, ErrInvalid, "TLV type %d, want 127", typ)
	}
	if tlvHeaderLen+length != len(b) {
		return newError(name, 0, ErrLength, "TLV length %d, but %d bytes follow the header", length, len(b)-tlvHeaderLen)
	}
	if oui := (OUI{b[2], b[3], b[4]}); oui != DefaultCID {
		return newError(name, 2, ErrInvalid, "CID %s is not tether's %s", oui, DefaultCID)
	}
	if b[5] != sub {
		return newError(name, 5, ErrUnknownSubtype, "subtype %d, want %d", b[5], sub)
	}
	return t.decodeInfo(b[6:], 6)
}

// TetherRoles is the roles bitmap of TetherCapability.
type TetherRoles uint8

// Roles a tether speaker can hold. Bits not defined here are reserved: they
// are sent as zero and carried through unchanged when received.
const (
	// TetherRoleHostAgent marks tetherd on a hypervisor.
	TetherRoleHostAgent TetherRoles = 1 << 0
	// TetherRoleSwitchAgent marks tether-switchd on an edge switch.
	TetherRoleSwitchAgent TetherRoles = 1 << 1
	// TetherRolePolicy marks a speaker that also serves tether-policyd.
	TetherRolePolicy TetherRoles = 1 << 2
)

// TetherFlags is the flags octet of TetherCapability.
type TetherFlags uint8

// Capability flags. Undefined bits are reserved, sent as zero and carried
// through unchanged when received.
const (
	// TetherFlagRequiresSignature says the sender refuses unsigned tether
	// and VDP frames from its peer (no interop mode).
	TetherFlagRequiresSignature TetherFlags = 1 << 0
)

// TetherCapability announces that the sender speaks tether, in which roles
// and with which key (DESIGN.md "Wire decisions": the LLDP capability TLV
// with key ID and protocol version). A peer that does not send it is treated
// as plain standard LLDP/VDP (interop mode).
//
// Information string, 11 bytes:
//
//	0     protocol version (1; 0 is reserved)
//	1     roles bitmap (TetherRoles)
//	2-9   key ID: the first 8 bytes of SHA-256 over the Ed25519 public key
//	10    flags (TetherFlags)
type TetherCapability struct {
	// Version is the protocol version; TetherProtocolVersion for this
	// package. Zero is invalid.
	Version uint8
	// Roles is the set of roles the sender holds.
	Roles TetherRoles
	// KeyID identifies the sender's signing key.
	KeyID [8]byte
	// Flags holds the capability flags.
	Flags TetherFlags
}

var _ OrgTLV = (*TetherCapability)(nil)

func (t *TetherCapability) tlvName() string { return "tether Capability" }
func (t *TetherCapability) orgID(cid OUI) (OUI, uint8) {
	return cid, TetherSubtypeCapability
}
func (t *TetherCapability) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

func (t *TetherCapability) appendInfo(b []byte) ([]byte, error) {
	if t.Version == 0 {
		return b, newError(t.tlvName(), len(b), ErrInvalid, "protocol version 0 is reserved")
	}
	b = append(b, t.Version, uint8(t.Roles))
	b = append(b, t.KeyID[:]...)
	return append(b, uint8(t.Flags)), nil
}

func (t *TetherCapability) decodeInfo(b []byte, off int) error {
	if err := tetherCheckLen(t.tlvName(), b, off, TetherCapabilityLen); err != nil {
		return err
	}
	if b[0] == 0 {
		return newError(t.tlvName(), off, ErrInvalid, "protocol version 0 is reserved")
	}
	t.Version = b[0]
	t.Roles = TetherRoles(b[1])
	copy(t.KeyID[:], b[2:10])
	t.Flags = TetherFlags(b[10])
	return nil
}

// AppendBinary appends the complete TLV under DefaultCID to b; it does not
// allocate when b has room.
func (t *TetherCapability) AppendBinary(b []byte) ([]byte, error) {
	return appendOrgTLV(b, t, DefaultCID)
}

// MarshalBinary encodes the complete TLV under DefaultCID. Frames with a
// configured CID encode their TLVs through the frame's codec instead.
func (t *TetherCapability) MarshalBinary() ([]byte, error) { return tetherMarshal(t) }

// UnmarshalBinary decodes a complete TLV under DefaultCID.
func (t *TetherCapability) UnmarshalBinary(b []byte) error {
	return tetherUnmarshal(b, t, TetherSubtypeCapability)
}

// TetherDigestAlg names the hash of TetherInventory.
type TetherDigestAlg uint8

// TetherDigestSHA256 is SHA-256, full 32 bytes, over the inventory's
// canonical encoding (defined by agent/inventory). Other nonzero values are
// carried through so a newer agent's digest still signals changes.
const TetherDigestSHA256 TetherDigestAlg = 1

// TetherInventory summarizes the host's vNIC inventory (DESIGN.md "Wire
// decisions": the inventory digest in LLDP). It changes whenever the
// inventory does, so the switch knows when to re-check the host's VIFs
// without the LLDPDU carrying them.
//
// Information string, 45 bytes:
//
//	0      digest algorithm (TetherDigestAlg; 0 is reserved)
//	1-32   digest
//	33-36  number of VIFs (big-endian uint32)
//	37-44  inventory generation (big-endian uint64), bumped on every change
type TetherInventory struct {
	// Alg is the digest algorithm. Zero is invalid.
	Alg TetherDigestAlg
	// Digest is the inventory digest.
	Digest [32]byte
	// VIFs is the number of VIFs in the inventory.
	VIFs uint32
	// Generation increases with every inventory change.
	Generation uint64
}

var _ OrgTLV = (*TetherInventory)(nil)

func (t *TetherInventory) tlvName() string { return "tether Inventory Digest" }
func (t *TetherInventory) orgID(cid OUI) (OUI, uint8) {
	return cid, TetherSubtypeInventory
}
func (t *TetherInventory) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

func (t *TetherInventory) appendInfo(b []byte) ([]byte, error) {
	if t.Alg == 0 {
		return b, newError(t.tlvName(), len(b), ErrInvalid, "digest algorithm 0 is reserved")
	}
	b = append(b, uint8(t.Alg))
	b = append(b, t.Digest[:]...)
	b = binary.BigEndian.AppendUint32(b, t.VIFs)
	return binary.BigEndian.AppendUint64(b, t.Generation), nil
}

func (t *TetherInventory) decodeInfo(b []byte, off int) error {
	if err := tetherCheckLen(t.tlvName(), b, off, TetherInventoryLen); err != nil {
		return err
	}
	if b[0] == 0 {
		return newError(t.tlvName(), off, ErrInvalid, "digest algorithm 0 is reserved")
	}
	t.Alg = TetherDigestAlg(b[0])
	copy(t.Digest[:], b[1:33])
	t.VIFs = binary.BigEndian.Uint32(b[33:37])
	t.Generation = binary.BigEndian.Uint64(b[37:45])
	return nil
}

// AppendBinary appends the complete TLV under DefaultCID to b; it does not
// allocate when b has room.
func (t *TetherInventory) AppendBinary(b []byte) ([]byte, error) {
	return appendOrgTLV(b, t, DefaultCID)
}

// MarshalBinary encodes the complete TLV under DefaultCID.
func (t *TetherInventory) MarshalBinary() ([]byte, error) { return tetherMarshal(t) }

// UnmarshalBinary decodes a complete TLV under DefaultCID.
func (t *TetherInventory) UnmarshalBinary(b []byte) error {
	return tetherUnmarshal(b, t, TetherSubtypeInventory)
}

// TetherSTagMode is how the datapath treats a vNIC's S-Tag (DESIGN.md
// "Datapath modes").
type TetherSTagMode uint8

// S-Tag handling modes.
const (
	// TetherSTagSwitch: the S-Tag identifies the vNIC on the wire and the
	// edge switch strips it on ingress.
	TetherSTagSwitch TetherSTagMode = 1
	// TetherSTagIOExtender: the S-Tag is carried through to the network.
	TetherSTagIOExtender TetherSTagMode = 2
)

// Limits of TetherProfile.
const (
	// MaxTetherName is the longest profile name and ACL name, in bytes.
	MaxTetherName = 64
	// MaxTetherEtherTypes is the most EtherTypes a profile can always list:
	// what fits in MaxOrgInfo next to two names of MaxTetherName bytes.
	// With shorter names up to 255 (the count octet's limit) fit; the
	// encoder checks the information string's total size.
	MaxTetherEtherTypes = (MaxOrgInfo - tetherProfileFixedLen - 2*MaxTetherName) / 2
	// tetherProfileFixedLen is the profile's size without EtherTypes and names:
	// VID (2), mode (1), rate (4), priority (1), EtherType count (1), ACL
	// name length (1), profile name length (1).
	tetherProfileFixedLen = 11
	// tetherMaxVID is the largest VLAN ID; 4095 is reserved (802.1Q-2018 9.6).
	tetherMaxVID = 4094
	// tetherMinEtherType is the smallest Type value; below it the field is an
	// IEEE 802.3 length (802.3-2018 3.2.6).
	tetherMinEtherType = 0x0600
)

// TetherProfile is the network profile the switch grants a vNIC, sent in its
// answer to a VDP ASSOCIATE (DESIGN.md "The flow of one VM start": the switch
// answers with status, VID and a signed profile TLV) and given by the host
// agent to its soft switch, so both ends enforce the same VID, rate and
// filters.
//
// Information string, 12 to MaxOrgInfo bytes:
//
//	0-1    4 reserved bits (zero) and 12-bit VID (0 = untagged, 4095 invalid)
//	2      S-Tag mode (TetherSTagMode)
//	3-6    rate limit in kbit/s (big-endian uint32, 0 = unlimited)
//	7      5 reserved bits (zero) and 3-bit priority (PCP)
//	8      number of EtherTypes n
//	9      n big-endian uint16 EtherTypes, each >= 0x0600
//	...    ACL name length a (0-64), then a bytes of UTF-8
//	...    profile name length p (1-64), then p bytes of UTF-8
type TetherProfile struct {
	// VID is the VLAN ID, 0-4094; 0 leaves the vNIC untagged.
	VID uint16
	// Mode is the S-Tag handling mode.
	Mode TetherSTagMode
	// RateKbps is the rate limit in kbit/s; 0 means unlimited.
	RateKbps uint32
	// Priority is the 802.1Q priority code point, 0-7.
	Priority uint8
	// EtherTypes lists the EtherTypes the vNIC may send; empty means the
	// profile does not filter by EtherType.
	EtherTypes []uint16
	// ACL names the access list the switch applies, empty for none. At most
	// MaxTetherName bytes of UTF-8.
	ACL string
	// Name is the profile's name: 1 to MaxTetherName bytes of UTF-8.
	Name string
}

var _ OrgTLV = (*TetherProfile)(nil)

func (t *TetherProfile) tlvName() string { return "tether Profile" }
func (t *TetherProfile) orgID(cid OUI) (OUI, uint8) {
	return cid, TetherSubtypeProfile
}
func (t *TetherProfile) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

// checkName validates an ACL or profile name.
func (t *TetherProfile) checkName(field, s string, off int, required bool) error {
	switch {
	case required && s == "":
		return newError(t.tlvName(), off, ErrInvalid, "%s is empty", field)
	case len(s) > MaxTetherName:
		return newError(t.tlvName(), off, ErrOversize, "%s is %d bytes, at most %d allowed", field, len(s), MaxTetherName)
	case !utf8.ValidString(s):
		return newError(t.tlvName(), off, ErrInvalid, "%s is not valid UTF-8", field)
	}
	return nil
}

func (t *TetherProfile) appendInfo(b []byte) ([]byte, error) {
	start := len(b)
	name := t.tlvName()
	switch {
	case t.VID > tetherMaxVID:
		return b, newError(name, start, ErrInvalid, "VID %d out of range 0-%d", t.VID, tetherMaxVID)
	case t.Mode != TetherSTagSwitch && t.Mode != TetherSTagIOExtender:
		return b, newError(name, start+2, ErrInvalid, "S-Tag mode %d, want 1 (switch) or 2 (I/O extender)", t.Mode)
	case t.Priority > 7:
		return b, newError(name, start+7, ErrInvalid, "priority %d out of range 0-7", t.Priority)
	case len(t.EtherTypes) > 255:
		return b, newError(name, start+8, ErrOversize, "%d EtherTypes, at most 255 fit in the count octet", len(t.EtherTypes))
	}
	for i, et := range t.EtherTypes {
		if et < tetherMinEtherType {
			return b, newError(name, start+9+2*i, ErrInvalid, "EtherType %#04x is below 0x0600", et)
		}
	}
	aclOff := start + 9 + 2*len(t.EtherTypes)
	if err := t.checkName("ACL name", t.ACL, aclOff, false); err != nil {
		return b, err
	}
	if err := t.checkName("profile name", t.Name, aclOff+1+len(t.ACL), true); err != nil {
		return b, err
	}
	if n := tetherProfileFixedLen + 2*len(t.EtherTypes) + len(t.ACL) + len(t.Name); n > MaxOrgInfo {
		return b, newError(name, start, ErrOversize, "information string would be %d bytes, at most %d allowed", n, MaxOrgInfo)
	}
	b = binary.BigEndian.AppendUint16(b, t.VID)
	b = append(b, uint8(t.Mode))
	b = binary.BigEndian.AppendUint32(b, t.RateKbps)
	b = append(b, t.Priority, uint8(len(t.EtherTypes)))
	for _, et := range t.EtherTypes {
		b = binary.BigEndian.AppendUint16(b, et)
	}
	b = append(b, uint8(len(t.ACL)))
	b = append(b, t.ACL...)
	b = append(b, uint8(len(t.Name)))
	return append(b, t.Name...), nil
}

func (t *TetherProfile) decodeInfo(b []byte, off int) error {
	name := t.tlvName()
	if len(b) < tetherProfileFixedLen+1 {
		return newError(name, off, ErrLength, "information string is %d bytes, need at least %d", len(b), tetherProfileFixedLen+1)
	}
	vid := binary.BigEndian.Uint16(b[0:2])
	switch {
	case vid>>12 != 0:
		return newError(name, off, ErrInvalid, "reserved bits %#x above the VID are set", vid>>12)
	case vid > tetherMaxVID:
		return newError(name, off, ErrInvalid, "VID %d out of range 0-%d", vid, tetherMaxVID)
	}
	mode := TetherSTagMode(b[2])
	if mode != TetherSTagSwitch && mode != TetherSTagIOExtender {
		return newError(name, off+2, ErrInvalid, "S-Tag mode %d, want 1 (switch) or 2 (I/O extender)", mode)
	}
	if b[7] > 7 {
		return newError(name, off+7, ErrInvalid, "reserved bits %#x above the priority are set", b[7]>>3)
	}
	n := int(b[8])
	i := 9
	// Each step checks that the field and the length octets still to come
	// fit: EtherTypes, then ACL length, then profile name length.
	if len(b) < i+2*n+2 {
		return newError(name, off+8, ErrLength, "%d EtherTypes do not fit in the %d bytes left", n, len(b)-i)
	}
	var ets []uint16
	if n > 0 {
		ets = make([]uint16, n)
		for k := range ets {
			et := binary.BigEndian.Uint16(b[i:])
			if et < tetherMinEtherType {
				return newError(name, off+i, ErrInvalid, "EtherType %#04x is below 0x0600", et)
			}
			ets[k] = et
			i += 2
		}
	}
	acl, i, err := t.decodeName(b, i, off, "ACL name", false)
	if err != nil {
		return err
	}
	pname, i, err := t.decodeName(b, i, off, "profile name", true)
	if err != nil {
		return err
	}
	if i != len(b) {
		return newError(name, off+i, ErrLength, "%d bytes after the profile name", len(b)-i)
	}
	*t = TetherProfile{
		VID:        vid,
		Mode:       mode,
		RateKbps:   binary.BigEndian.Uint32(b[3:7]),
		Priority:   b[7],
		EtherTypes: ets,
		ACL:        acl,
		Name:       pname,
	}
	return nil
}

// decodeName reads a length-prefixed name at b[i]; the caller has checked
// that b[i] exists. It returns the name and the index after it.
func (t *TetherProfile) decodeName(b []byte, i, off int, field string, required bool) (string, int, error) {
	n := int(b[i])
	if n > MaxTetherName {
		return "", 0, newError(t.tlvName(), off+i, ErrOversize, "%s is %d bytes, at most %d allowed", field, n, MaxTetherName)
	}
	switch left := len(b) - i - 1; {
	case n > left:
		return "", 0, newError(t.tlvName(), off+i, ErrLength, "%s of %d bytes does not fit in the %d bytes left", field, n, left)
	case !required && n == left:
		// The ACL name is followed by at least the profile name's length.
		return "", 0, newError(t.tlvName(), off+i, ErrLength, "ACL name of %d bytes leaves no room for the profile name", n)
	}
	s := string(b[i+1 : i+1+n])
	if err := t.checkName(field, s, off+i, required); err != nil {
		return "", 0, err
	}
	return s, i + 1 + n, nil
}

// AppendBinary appends the complete TLV under DefaultCID to b; it does not
// allocate when b has room.
func (t *TetherProfile) AppendBinary(b []byte) ([]byte, error) {
	return appendOrgTLV(b, t, DefaultCID)
}

// MarshalBinary encodes the complete TLV under DefaultCID.
func (t *TetherProfile) MarshalBinary() ([]byte, error) { return tetherMarshal(t) }

// UnmarshalBinary decodes a complete TLV under DefaultCID.
func (t *TetherProfile) UnmarshalBinary(b []byte) error {
	return tetherUnmarshal(b, t, TetherSubtypeProfile)
}

// SignatureSize is the size of an Ed25519 signature (RFC 8032 5.1.6).
const SignatureSize = 64

// TetherSignature signs the frame it ends (DESIGN.md "Wire decisions":
// signature TLV with key ID, counter and Ed25519 signature over destination
// MAC, source MAC, EtherType and every byte before it). It is the last TLV
// before End in an LLDPDU and the last VDP TLV of an ECPDU; see sign.go for
// exactly which bytes it covers.
//
// Information string, exactly 80 bytes:
//
//	0-7    key ID: the first 8 bytes of SHA-256 over the Ed25519 public key
//	8-15   counter (big-endian uint64), strictly increasing per key and
//	       channel, persisted across restarts
//	16-79  Ed25519 signature
type TetherSignature struct {
	// KeyID identifies the signing key.
	KeyID [8]byte
	// Counter is the replay counter.
	Counter uint64
	// Sig is the Ed25519 signature.
	Sig [SignatureSize]byte
}

var _ OrgTLV = (*TetherSignature)(nil)

func (t *TetherSignature) tlvName() string { return sigTLVName }
func (t *TetherSignature) orgID(cid OUI) (OUI, uint8) {
	return cid, TetherSubtypeSignature
}
func (t *TetherSignature) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

func (t *TetherSignature) appendInfo(b []byte) ([]byte, error) {
	b = append(b, t.KeyID[:]...)
	b = binary.BigEndian.AppendUint64(b, t.Counter)
	return append(b, t.Sig[:]...), nil
}

func (t *TetherSignature) decodeInfo(b []byte, off int) error {
	if err := tetherCheckLen(t.tlvName(), b, off, SignatureInfoLen); err != nil {
		return err
	}
	copy(t.KeyID[:], b[0:8])
	t.Counter = binary.BigEndian.Uint64(b[8:16])
	copy(t.Sig[:], b[16:80])
	return nil
}

// AppendBinary appends the complete TLV under DefaultCID to b; it does not
// allocate when b has room.
func (t *TetherSignature) AppendBinary(b []byte) ([]byte, error) {
	return appendOrgTLV(b, t, DefaultCID)
}

// MarshalBinary encodes the complete TLV under DefaultCID.
func (t *TetherSignature) MarshalBinary() ([]byte, error) { return tetherMarshal(t) }

// UnmarshalBinary decodes a complete TLV under DefaultCID.
func (t *TetherSignature) UnmarshalBinary(b []byte) error {
	return tetherUnmarshal(b, t, TetherSubtypeSignature)
}

// TetherChannelBinding binds a signed VDP frame to the S-channel it is sent
// on. An S-channel's frames travel in an 802.1ad S-Tag that the receiving
// kernel strips before any socket reads them, and the signature does not
// cover tags (see sign.go), so without it a frame signed for one S-channel
// would verify on another. The binding goes before the signature, inside
// the signed region; the receiver refuses a signed frame whose binding is
// missing or names another S-channel (l2/vdp's BindingSigner and
// BindingVerifier). Frames of the default S-channel (no S-Tag) carry none.
//
// Information string, exactly 2 bytes:
//
//	0-1    4 reserved bits (zero) and 12-bit S-VID of the S-channel
//	       (1-4094; 0 and 4095 are invalid)
type TetherChannelBinding struct {
	// SVID is the S-VLAN ID of the S-channel, 1-4094.
	SVID uint16
}

var _ OrgTLV = (*TetherChannelBinding)(nil)

func (t *TetherChannelBinding) tlvName() string { return bindingTLVName }
func (t *TetherChannelBinding) orgID(cid OUI) (OUI, uint8) {
	return cid, TetherSubtypeChannelBinding
}
func (t *TetherChannelBinding) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

// bindingTLVName is TetherChannelBinding's name in errors.
const bindingTLVName = "tether Channel Binding"

// checkSVID reports an S-VID that names no S-channel.
func (t *TetherChannelBinding) checkSVID(svid uint16, off int) error {
	if svid == 0 || svid > tetherMaxVID {
		return newError(t.tlvName(), off, ErrInvalid, "S-VID %d out of range 1-%d", svid, tetherMaxVID)
	}
	return nil
}

func (t *TetherChannelBinding) appendInfo(b []byte) ([]byte, error) {
	if err := t.checkSVID(t.SVID, len(b)); err != nil {
		return b, err
	}
	return binary.BigEndian.AppendUint16(b, t.SVID), nil
}

func (t *TetherChannelBinding) decodeInfo(b []byte, off int) error {
	if err := tetherCheckLen(t.tlvName(), b, off, TetherChannelBindingLen); err != nil {
		return err
	}
	v := binary.BigEndian.Uint16(b)
	if v>>12 != 0 {
		return newError(t.tlvName(), off, ErrInvalid, "reserved bits %#x above the S-VID are set", v>>12)
	}
	if err := t.checkSVID(v, off); err != nil {
		return err
	}
	t.SVID = v
	return nil
}

// AppendBinary appends the complete TLV under DefaultCID to b; it does not
// allocate when b has room.
func (t *TetherChannelBinding) AppendBinary(b []byte) ([]byte, error) {
	return appendOrgTLV(b, t, DefaultCID)
}

// MarshalBinary encodes the complete TLV under DefaultCID.
func (t *TetherChannelBinding) MarshalBinary() ([]byte, error) { return tetherMarshal(t) }

// UnmarshalBinary decodes a complete TLV under DefaultCID.
func (t *TetherChannelBinding) UnmarshalBinary(b []byte) error {
	return tetherUnmarshal(b, t, TetherSubtypeChannelBinding)
}
