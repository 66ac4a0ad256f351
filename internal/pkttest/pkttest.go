// Package pkttest is the AF_PACKET socket tests send and capture Ethernet
// frames with (soft switch labs, kernel VM tests): bound to one interface,
// every protocol, with PACKET_AUXDATA so that a VLAN tag the kernel took
// out of the frame (receive offload, or a bridge's accelerated tag) is put
// back where it was on the wire, as libpcap does. Open it inside the
// network namespace of the interface (netnstest's NS.Do).
package pkttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is Recv's error when no frame came in time.
var ErrTimeout = errors.New("pkttest: receive timeout")

// Sock is one AF_PACKET socket bound to an interface.
type Sock struct {
	fd      int
	oob     []byte
	timeout time.Duration // SO_RCVTIMEO in force
}

// Open opens the socket on ifname in the current network namespace, with
// a 4 MiB receive buffer.
func Open(ifname string) (*Sock, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("pkttest: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("pkttest: packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pkttest: bind %s: %w", ifname, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pkttest: PACKET_AUXDATA: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return &Sock{fd: fd, oob: make([]byte, 256)}, nil
}

// Close closes the socket.
func (s *Sock) Close() error { return unix.Close(s.fd) }

// Send writes one frame as it is.
func (s *Sock) Send(frame []byte) error {
	_, err := unix.Write(s.fd, frame)
	return err
}

// Recv returns the next incoming frame (the socket's own outgoing copies
// skipped), read into buf, with any offloaded tag reinserted (the result
// then no longer aliases buf), or ErrTimeout after timeout.
func (s *Sock) Recv(buf []byte, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, ErrTimeout
		}
		if left != s.timeout {
			tv := unix.NsecToTimeval(left.Nanoseconds())
			if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return nil, fmt.Errorf("pkttest: SO_RCVTIMEO: %w", err)
			}
			s.timeout = left
		}
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, s.oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pkttest: receive: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return RestoreTag(buf[:n], s.oob[:oobn])
	}
}

// RestoreTag puts back into frame the VLAN tag that the control messages
// oob (PACKET_AUXDATA, struct tpacket_auxdata) say the kernel took out.
// Without TP_STATUS_VLAN_TPID_VALID the TPID is unknown and written as 0,
// which no test takes for a real tag.
func RestoreTag(frame, oob []byte) ([]byte, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("pkttest: control messages: %w", err)
	}
	for _, m := range msgs {
		// struct tpacket_auxdata: status, len, snaplen (u32), mac, net,
		// vlan_tci, vlan_tpid (u16), host byte order.
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:4])
		if status&unix.TP_STATUS_VLAN_VALID == 0 || len(frame) < 12 {
			continue
		}
		var tpid uint16
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = binary.NativeEndian.Uint16(m.Data[18:20])
		}
		tci := binary.NativeEndian.Uint16(m.Data[16:18])
		tagged := make([]byte, 0, len(frame)+4)
		tagged = append(tagged, frame[:12]...)
		tagged = binary.BigEndian.AppendUint16(tagged, tpid)
		tagged = binary.BigEndian.AppendUint16(tagged, tci)
		frame = append(tagged, frame[12:]...)
	}
	return frame, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
