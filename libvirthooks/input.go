package libvirthooks

import (
	"fmt"
	"io"
)

// DefaultXMLLimit is the default bound on hook input: a large domain XML is
// tens of kilobytes.
const DefaultXMLLimit int64 = 4 << 20

// ReadXML reads the hook's stdin, at most limit bytes (DefaultXMLLimit if
// limit <= 0). It never buffers more than limit+1 bytes: larger input fails
// with *OversizeError and the rest is left unread.
//
// ReadXML blocks until r is at EOF. libvirt writes the whole XML and closes
// the pipe, but the caller should still bound the wait (for os.Stdin, a pipe,
// with SetReadDeadline) so a hook run by hand cannot hang libvirtd.
func ReadXML(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultXMLLimit
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read hook input: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, &OversizeError{Limit: limit}
	}
	return data, nil
}

// Input is a hook's parsed stdin: Domain for qemu, Network for network.
type Input struct {
	Domain  *Domain
	Network *NetworkHookData
}

// ParseInput parses data as the stdin of ev (ParseDomain for qemu,
// ParseNetworkHook for network) and checks that it names ev.Object and, for
// port-created and port-deleted, that it carries a <networkport>. Errors
// are *XMLError.
func ParseInput(ev Event, data []byte) (Input, error) {
	switch ev.Driver {
	case DriverQEMU:
		d, err := ParseDomain(data)
		if err != nil {
			return Input{}, err
		}
		if d.Name != ev.Object {
			return Input{}, &XMLError{Doc: "domain", Where: "<name>", Kind: ErrNameMismatch, Value: d.Name,
				Err: fmt.Errorf("hook object is %q", ev.Object)}
		}
		return Input{Domain: &d}, nil
	case DriverNetwork:
		n, err := ParseNetworkHook(data)
		if err != nil {
			return Input{}, err
		}
		if n.Network.Name != ev.Object {
			return Input{}, &XMLError{Doc: "network hook data", Where: "<network><name>", Kind: ErrNameMismatch, Value: n.Network.Name,
				Err: fmt.Errorf("hook object is %q", ev.Object)}
		}
		if ev.HasPort() && n.Port == nil {
			return Input{}, &XMLError{Doc: "network hook data", Where: "<hookData>", Kind: ErrMalformedXML,
				Err: fmt.Errorf("no <networkport> for %s", ev.Operation)}
		}
		return Input{Network: &n}, nil
	}
	return Input{}, &UnknownDriverError{Driver: string(ev.Driver)}
}
