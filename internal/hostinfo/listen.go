package hostinfo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Socket states as /proc/net/{tcp,udp}[6] print them (the kernel's TCP_*
// numbers, which UDP sockets reuse).
const (
	// stateListen is TCP_LISTEN: a TCP socket accepting connections.
	stateListen = 0x0A
	// stateClose is TCP_CLOSE, which an unconnected UDP socket reports: it
	// receives datagrams from anyone. A connected UDP socket reports
	// TCP_ESTABLISHED and only receives from its peer.
	stateClose = 0x07
)

// Listener is one socket that receives new traffic: a listening TCP socket
// or an unconnected UDP socket.
type Listener struct {
	// Addr is the local address the socket is bound to; the unspecified
	// address (0.0.0.0 or ::) for a wildcard bind. The IPv4-mapped address
	// of a dual-stack IPv6 socket (::ffff:127.0.0.1) is unmapped, so
	// IsLoopback and IsUnspecified mean what they say.
	Addr netip.Addr
	// Port is the local port.
	Port uint16
}

// Reachable reports whether traffic from another host can reach the
// socket: it is bound to a wildcard or to a non-loopback address.
func (l Listener) Reachable() bool {
	return !l.Addr.IsLoopback()
}

// ParseProcNet parses the contents of /proc/net/tcp, tcp6, udp or udp6 and
// returns the sockets that receive new traffic: for TCP (udp false) those in
// state LISTEN, for UDP those in state 07 (unconnected). Established,
// closing and connected sockets are skipped. Both the IPv4 and the IPv6
// address formats are accepted in either file. It fails on a line it cannot
// read, naming the line; blank lines and the header are skipped.
//
// The kernel prints addresses as 32-bit words in the host's byte order;
// ParseProcNet decodes them in this machine's byte order, so data must come
// from the kernel it runs on.
func ParseProcNet(data []byte, udp bool) ([]Listener, error) {
	want := byte(stateListen)
	if udp {
		want = stateClose
	}
	var out []Listener
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		sl, rest := nextField(line)
		if len(sl) == 0 || bytes.Equal(sl, []byte("sl")) {
			continue // blank or header
		}
		local, rest := nextField(rest)
		_, rest = nextField(rest) // remote address
		st, _ := nextField(rest)
		if sl[len(sl)-1] != ':' || len(st) == 0 {
			return nil, fmt.Errorf("line %d: want \"N: local remote state ...\", got %q", n, trimLine(line))
		}
		state, ok := parseHex(st)
		if !ok || state > 0xff {
			return nil, fmt.Errorf("line %d: state %q is not a hex byte", n, st)
		}
		if byte(state) != want {
			continue
		}
		l, err := parseLocal(local)
		if err != nil {
			return nil, fmt.Errorf("line %d: local address %q: %w", n, local, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// nextField returns the first space-separated field of b and what follows.
func nextField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}

func trimLine(b []byte) []byte {
	const max = 80
	b = bytes.TrimSpace(b)
	if len(b) > max {
		b = b[:max]
	}
	return b
}

// parseLocal reads "0100007F:0016" (IPv4) or 32 hex digits and a port
// (IPv6).
func parseLocal(f []byte) (Listener, error) {
	addr, port, ok := bytes.Cut(f, []byte{':'})
	if !ok {
		return Listener{}, errors.New("no port")
	}
	p, ok := parseHex(port)
	if !ok || len(port) != 4 {
		return Listener{}, errors.New("port is not 4 hex digits")
	}
	var a netip.Addr
	switch len(addr) {
	case 8:
		w, ok := parseHex(addr)
		if !ok {
			return Listener{}, errors.New("address is not hex")
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], w)
		a = netip.AddrFrom4(b)
	case 32:
		var b [16]byte
		for i := range 4 {
			w, ok := parseHex(addr[8*i : 8*i+8])
			if !ok {
				return Listener{}, errors.New("address is not hex")
			}
			binary.NativeEndian.PutUint32(b[4*i:], w)
		}
		a = netip.AddrFrom16(b).Unmap()
	default:
		return Listener{}, errors.New("address is neither 8 nor 32 hex digits")
	}
	return Listener{Addr: a, Port: uint16(p)}, nil
}

// parseHex parses up to 8 hex digits without allocating.
func parseHex(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}

// Listening returns the TCP and UDP ports, sorted and each once, on which at
// least one socket receives new traffic from other hosts (see
// Listener.Reachable): a service bound only to 127.0.0.1 or ::1 does not
// count, since nothing outside can reach it. It reads Proc/net/tcp, tcp6,
// udp and udp6; the IPv6 files may be missing (IPv6 disabled).
//
// The files show the sockets of one network namespace: for "/proc" that of
// the process's main thread (/proc/net is /proc/self/net), whichever thread
// reads. A thread switched into another namespace with setns must read
// "/proc/thread-self" instead, or "/proc/PID" of a process in it.
//
// A port counts for both address families: the files do not say whether an
// IPv6 socket also accepts IPv4 (IPV6_V6ONLY), and a port served over one
// family is not treated as probed over the other.
func (p Paths) Listening() (tcp, udp []uint16, err error) {
	if tcp, err = p.listening(false, "net/tcp", "net/tcp6"); err != nil {
		return nil, nil, err
	}
	if udp, err = p.listening(true, "net/udp", "net/udp6"); err != nil {
		return nil, nil, err
	}
	return tcp, udp, nil
}

func (p Paths) listening(udp bool, v4, v6 string) ([]uint16, error) {
	var ports []uint16
	for _, name := range []string{v4, v6} {
		path := filepath.Join(p.Proc, name)
		data, err := os.ReadFile(path)
		if err != nil {
			if name == v6 && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("hostinfo: %w", err)
		}
		ls, err := ParseProcNet(data, udp)
		if err != nil {
			return nil, fmt.Errorf("hostinfo: %s: %w", path, err)
		}
		for _, l := range ls {
			if l.Reachable() {
				ports = append(ports, l.Port)
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}
