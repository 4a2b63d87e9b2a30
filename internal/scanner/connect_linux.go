//go:build linux

package scanner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// State is what a connect attempt learned about a port.
type State uint8

// Outcomes of a connect attempt.
const (
	// Open: the handshake completed (SYN-ACK).
	Open State = iota
	// Refused: the port answered with a reset, or an ICMP port unreachable.
	Refused
	// Filtered: no answer within the timeout (dropped).
	Filtered
	// Unreachable: another error, kept in Probe.Err, such as EHOSTUNREACH
	// from an ICMP reject or EPERM from a local firewall.
	Unreachable
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case Refused:
		return "refused"
	case Filtered:
		return "filtered"
	case Unreachable:
		return "unreachable"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Probe is the outcome of one connect attempt.
type Probe struct {
	Port  uint16
	State State
	// Err is the socket error of an Unreachable probe, nil otherwise.
	Err error
	// Elapsed runs from the connect call to the outcome (the timeout for
	// Filtered).
	Elapsed time.Duration
}

// Result is the outcome of a connect scan.
type Result struct {
	// Probes holds one entry per finished attempt, in the order of the
	// ports given.
	Probes []Probe
}

// Ports returns the ports whose attempts ended in state s, in scan order.
func (r Result) Ports(s State) []uint16 {
	var ports []uint16
	for _, p := range r.Probes {
		if p.State == s {
			ports = append(ports, p.Port)
		}
	}
	return ports
}

// maxInFlight bounds the connect attempts open at once (and so the file
// descriptors ConnectScan holds).
const maxInFlight = 256

// pollSlice bounds one poll, so a cancelled context is seen quickly.
const pollSlice = 50 * time.Millisecond

// ConnectScan makes one TCP connect attempt to each of ports on dst, up to
// 256 at a time, from src (any local address when src is the zero Addr;
// else it must be of dst's family and local). An attempt unanswered after
// timeout is Filtered; the kernel retransmits the SYN after one second, so a
// timeout above that sends two. Open connections are closed with a reset
// (SO_LINGER 0), so scans leave no TIME_WAIT behind; the victim's accept
// queue still receives them.
//
// When ctx ends, ConnectScan returns the attempts finished so far and
// ctx.Err(). Local failures (no socket, no free local port) end the scan with
// an error too.
func ConnectScan(ctx context.Context, src, dst netip.Addr, ports []uint16, timeout time.Duration) (Result, error) {
	if timeout <= 0 {
		return Result{}, fmt.Errorf("scanner: connect scan: timeout %v is not positive", timeout)
	}
	src, dst, err := checkAddrs(src, dst)
	if err != nil {
		return Result{}, err
	}
	s := connectScan{src: src, dst: dst, timeout: timeout, probes: make([]Probe, len(ports)), done: make([]bool, len(ports))}
	defer s.closeAll()
	err = s.run(ctx, ports)
	res := Result{Probes: make([]Probe, 0, len(ports))}
	for i, p := range s.probes {
		if s.done[i] {
			res.Probes = append(res.Probes, p)
		}
	}
	return res, err
}

type flight struct {
	fd    int
	i     int // index into ports
	start time.Time
}

type connectScan struct {
	src, dst netip.Addr
	timeout  time.Duration
	probes   []Probe
	done     []bool
	inflight []flight
	pfds     []unix.PollFd
}

func (s *connectScan) run(ctx context.Context, ports []uint16) error {
	next := 0
	for next < len(ports) || len(s.inflight) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		for len(s.inflight) < maxInFlight && next < len(ports) {
			i := next
			next++
			s.probes[i].Port = ports[i]
			fd, start, err := s.connect(ports[i])
			switch {
			case errors.Is(err, unix.EINPROGRESS):
				s.inflight = append(s.inflight, flight{fd: fd, i: i, start: start})
			case fd < 0 || isLocalFailure(err):
				if fd >= 0 {
					unix.Close(fd)
				}
				return fmt.Errorf("scanner: connect to %s: %w", netip.AddrPortFrom(s.dst, ports[i]), err)
			default: // finished at once, connected or failed
				s.finish(i, fd, start, err)
			}
		}
		if len(s.inflight) == 0 {
			continue
		}

		wait := pollSlice
		for _, f := range s.inflight {
			wait = min(wait, time.Until(f.start.Add(s.timeout)))
		}
		s.pfds = s.pfds[:0]
		for _, f := range s.inflight {
			s.pfds = append(s.pfds, unix.PollFd{Fd: int32(f.fd), Events: unix.POLLOUT})
		}
		ms := 0
		if wait > 0 {
			ms = int((wait + time.Millisecond - 1) / time.Millisecond)
		}
		if _, err := unix.Poll(s.pfds, ms); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("scanner: poll: %w", err)
		}

		now := time.Now()
		keep := s.inflight[:0]
		for j, f := range s.inflight {
			switch {
			case s.pfds[j].Revents != 0:
				soerr, err := unix.GetsockoptInt(f.fd, unix.SOL_SOCKET, unix.SO_ERROR)
				if err == nil && soerr != 0 {
					err = unix.Errno(soerr)
				}
				s.finish(f.i, f.fd, f.start, err)
			case now.Sub(f.start) >= s.timeout:
				s.finish(f.i, f.fd, f.start, unix.ETIMEDOUT)
			default:
				keep = append(keep, f)
			}
		}
		s.inflight = keep
	}
	return nil
}

// connect starts a non-blocking connect to port; fd is -1 if no socket was
// made, else the caller owns it.
func (s *connectScan) connect(port uint16) (fd int, start time.Time, err error) {
	family := unix.AF_INET6
	if s.dst.Is4() {
		family = unix.AF_INET
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, time.Time{}, fmt.Errorf("socket: %w", err)
	}
	if s.src.IsValid() {
		// Pick the local port at connect time, by the whole 4-tuple,
		// rather than reserving one per socket at bind.
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, sockaddr(s.src, 0)); err != nil {
			unix.Close(fd)
			return -1, time.Time{}, fmt.Errorf("bind %s: %w", s.src, err)
		}
	}
	start = time.Now()
	return fd, start, unix.Connect(fd, sockaddr(s.dst, port))
}

// finish records the outcome of attempt i and closes fd.
func (s *connectScan) finish(i, fd int, start time.Time, err error) {
	p := &s.probes[i]
	p.Elapsed = time.Since(start)
	switch {
	case err == nil:
		p.State = Open
		// Reset instead of FIN: no TIME_WAIT on either side.
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	case errors.Is(err, unix.ECONNREFUSED):
		p.State = Refused
	case errors.Is(err, unix.ETIMEDOUT):
		p.State = Filtered
		p.Elapsed = s.timeout
	default:
		p.State = Unreachable
		p.Err = err
	}
	unix.Close(fd)
	s.done[i] = true
}

func (s *connectScan) closeAll() {
	for _, f := range s.inflight {
		unix.Close(f.fd)
	}
	s.inflight = nil
}

// isLocalFailure tells errors of this host (out of ports, descriptors or
// memory), which end a scan, from answers of the network.
func isLocalFailure(err error) bool {
	for _, e := range []unix.Errno{unix.EADDRNOTAVAIL, unix.EAGAIN, unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func sockaddr(a netip.Addr, port uint16) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
}

// checkAddrs unmaps src and dst and checks that dst is valid and src, when
// given, is of the same family.
func checkAddrs(src, dst netip.Addr) (netip.Addr, netip.Addr, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !dst.IsValid() {
		return src, dst, errors.New("scanner: no destination address")
	}
	if src.IsValid() && src.Is4() != dst.Is4() {
		return src, dst, fmt.Errorf("scanner: source %s and destination %s are of different families", src, dst)
	}
	return src, dst, nil
}
