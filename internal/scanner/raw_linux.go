//go:build linux

package scanner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// QuietPeriod is how long SYNScan keeps listening after its last probe and
// the last reply, before it returns.
const QuietPeriod = 500 * time.Millisecond

// synRecvBuf is the receive buffer SYNScan asks for, so a burst of replies
// to thousands of probes is not dropped before it is read.
const synRecvBuf = 4 << 20

// RawProbe sends one TCP segment with the given flags (SYN, FIN, NULL, XMAS,
// any combination) from src to dst's dstPort through a raw socket, with a
// random source port and sequence number and no options. When src is the zero
// Addr the kernel's choice of source towards dst is used; else src must be a
// local address of dst's family. It only sends: any reply goes to the kernel,
// which resets unexpected SYN-ACKs as usual.
func RawProbe(ctx context.Context, src, dst netip.Addr, dstPort uint16, flags uint8) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	src, dst, err := rawEndpoints(src, dst)
	if err != nil {
		return err
	}
	c, err := dialRaw(src, dst)
	if err != nil {
		return err
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })()

	var ack uint32
	if flags&ACK != 0 {
		ack = rand.Uint32()
	}
	seg := appendSegment(make([]byte, 0, tcpHeaderLen), src, dst, randomPort(), dstPort, rand.Uint32(), ack, flags)
	if _, err := c.Write(seg); err != nil {
		return fmt.Errorf("scanner: send tcp flags %#02x to %s: %w", flags, netip.AddrPortFrom(dst, dstPort), err)
	}
	return nil
}

// UDPProbe sends one small datagram to each of ports on dst from src (any
// local address when src is the zero Addr), from one socket. It ignores
// answers, including ICMP port unreachable, and stops with ctx.Err() when ctx
// ends.
func UDPProbe(ctx context.Context, src, dst netip.Addr, ports []uint16) error {
	src, dst, err := checkAddrs(src, dst)
	if err != nil {
		return err
	}
	network := "udp6"
	if dst.Is4() {
		network = "udp4"
	}
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return fmt.Errorf("scanner: udp probe socket: %w", err)
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })()

	payload := []byte("sentry-nflog probe")
	for _, port := range ports {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := c.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, port)); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("scanner: udp probe to %s: %w", netip.AddrPortFrom(dst, port), err)
		}
	}
	return nil
}

// Replies is what a SYN scan learned.
type Replies struct {
	// Sent counts the SYNs sent.
	Sent int
	// Open lists the ports that answered SYN-ACK, ascending, each once.
	Open []uint16
	// Closed lists the ports that answered with a reset, ascending, each once.
	Closed []uint16
	// SynAcks and Resets count the reply segments, retransmissions included.
	SynAcks, Resets int
	// Answers holds every SYN-ACK or reset from a scanned port, in arrival
	// order, timed from the first send: how fast the scanner learned.
	Answers []Answer
	// Sending is the time from the first send to the last.
	Sending time.Duration
}

// Answer is one reply segment to a SYN scan.
type Answer struct {
	Port  uint16
	Flags uint8
	At    time.Duration
}

// SYNScan is a stateless SYN scanner like nmap -sS. It sends one raw SYN to
// each of ports on dst, all from one random source port, paced at rate
// packets per second (0: as fast as the socket takes them), and meanwhile
// reads the replies from dst to that port on the same raw socket. It returns
// when QuietPeriod has passed after the last send and the last reply, or when
// ctx ends. src is as for RawProbe.
//
// When ctx ends before every SYN is sent, SYNScan returns what it learned and
// ctx.Err(); when it ends while listening, it returns nil. The attacker's
// kernel resets the SYN-ACKs it gets, as it does for nmap.
func SYNScan(ctx context.Context, src, dst netip.Addr, ports []uint16, rate int) (Replies, error) {
	if rate < 0 {
		return Replies{}, fmt.Errorf("scanner: syn scan: negative rate %d", rate)
	}
	if err := ctx.Err(); err != nil {
		return Replies{}, err
	}
	src, dst, err := rawEndpoints(src, dst)
	if err != nil {
		return Replies{}, err
	}
	c, err := dialRaw(src, dst)
	if err != nil {
		return Replies{}, err
	}
	defer c.Close()
	if err := setRecvBuf(c, synRecvBuf); err != nil {
		return Replies{}, err
	}

	s := &synScan{c: c, sport: randomPort(), start: time.Now(), sent: make(chan struct{})}
	for _, p := range ports {
		s.want.set(p)
	}
	recvDone := make(chan error, 1)
	var r Replies
	go func() { recvDone <- s.receive(ctx, &r) }()

	sent, sendErr := s.send(ctx, src, dst, ports, rate)
	close(s.sent)
	recvErr := <-recvDone

	r.Sent = sent
	if sent > 0 {
		r.Sending = time.Duration(s.lastSend.Load())
	}
	slices.Sort(r.Open)
	slices.Sort(r.Closed)
	return r, errors.Join(sendErr, recvErr)
}

type synScan struct {
	c     *net.IPConn
	sport uint16
	start time.Time
	want  portSet
	// lastSend is the time of the last send since start, in nanoseconds;
	// it is final once sent is closed.
	lastSend atomic.Int64
	sent     chan struct{}
}

func (s *synScan) send(ctx context.Context, src, dst netip.Addr, ports []uint16, rate int) (int, error) {
	seq := rand.Uint32()
	buf := make([]byte, 0, tcpHeaderLen)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i, port := range ports {
		if rate > 0 {
			due := s.start.Add(time.Duration(int64(i) * int64(time.Second) / int64(rate)))
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return i, ctx.Err()
				case <-timer.C:
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return i, err
		}
		buf = appendSegment(buf[:0], src, dst, s.sport, port, seq+uint32(port), 0, SYN)
		if _, err := s.c.Write(buf); err != nil {
			return i, fmt.Errorf("scanner: send syn to %s: %w", netip.AddrPortFrom(dst, port), err)
		}
		s.lastSend.Store(int64(time.Since(s.start)))
	}
	return len(ports), nil
}

// receive reads replies into r until ctx ends or, once sending is over, the
// socket has been quiet for QuietPeriod.
func (s *synScan) receive(ctx context.Context, r *Replies) error {
	var open, closed portSet
	var lastReply time.Duration
	buf := make([]byte, 1500)
	for {
		s.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		// ReadFrom, unlike Read, strips the IPv4 header.
		n, _, err := s.c.ReadFrom(buf)
		switch {
		case err == nil:
			if a, ok := s.answer(buf[:n]); ok {
				lastReply = a.At
				r.Answers = append(r.Answers, a)
				switch {
				case a.Flags&(SYN|ACK) == SYN|ACK:
					r.SynAcks++
					if !open.has(a.Port) {
						open.set(a.Port)
						r.Open = append(r.Open, a.Port)
					}
				case a.Flags&RST != 0:
					r.Resets++
					if !closed.has(a.Port) {
						closed.set(a.Port)
						r.Closed = append(r.Closed, a.Port)
					}
				}
			}
		case errors.Is(err, syscall.EINTR), isTimeout(err):
		default:
			return fmt.Errorf("scanner: read replies: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-s.sent:
			last := max(time.Duration(s.lastSend.Load()), lastReply)
			if time.Since(s.start)-last >= QuietPeriod {
				return nil
			}
		default:
		}
	}
}

// answer decodes seg as a SYN-ACK or reset to a probe. The socket is bound to
// the source and connected to dst, so the kernel already filtered addresses.
func (s *synScan) answer(seg []byte) (Answer, bool) {
	h, ok := parseTCP(seg)
	if !ok || h.dstPort != s.sport || !s.want.has(h.srcPort) {
		return Answer{}, false
	}
	if h.flags&RST == 0 && h.flags&(SYN|ACK) != SYN|ACK {
		return Answer{}, false
	}
	return Answer{Port: h.srcPort, Flags: h.flags, At: time.Since(s.start)}, true
}

// portSet is a set of TCP ports.
type portSet [65536 / 64]uint64

func (p *portSet) set(port uint16)      { p[port/64] |= 1 << (port % 64) }
func (p *portSet) has(port uint16) bool { return p[port/64]&(1<<(port%64)) != 0 }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawEndpoints checks the addresses and, when src is the zero Addr, finds the
// source the kernel would use towards dst: raw segments carry a checksum over
// both addresses.
func rawEndpoints(src, dst netip.Addr) (netip.Addr, netip.Addr, error) {
	src, dst, err := checkAddrs(src, dst)
	if err != nil || src.IsValid() {
		return src, dst, err
	}
	network := "udp6"
	if dst.Is4() {
		network = "udp4"
	}
	// Connecting a UDP socket routes it and sends nothing.
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return src, dst, fmt.Errorf("scanner: no source address towards %s: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), dst, nil
}

// dialRaw opens a raw TCP socket bound to src and connected to dst: it sends
// TCP segments without an IP header and receives only dst's TCP segments to
// src. Read it with ReadFrom, which strips the IPv4 header.
func dialRaw(src, dst netip.Addr) (*net.IPConn, error) {
	network := "ip6:tcp"
	if dst.Is4() {
		network = "ip4:tcp"
	}
	c, err := net.DialIP(network, &net.IPAddr{IP: src.AsSlice()}, &net.IPAddr{IP: dst.AsSlice()})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("scanner: raw socket needs CAP_NET_RAW: %w", err)
		}
		return nil, fmt.Errorf("scanner: raw socket %s -> %s: %w", src, dst, err)
	}
	return c, nil
}

// setRecvBuf sets the socket's receive buffer to size, past the rmem_max
// limit when allowed (SO_RCVBUFFORCE needs CAP_NET_ADMIN).
func setRecvBuf(c *net.IPConn, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("scanner: receive buffer: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("scanner: receive buffer: %w", err)
	}
	return nil
}

// randomPort returns a source port for raw probes, in 40000-59999, away from
// well-known services. No socket owns it, so replies to it are the
// kernel's to reset.
func randomPort() uint16 { return uint16(40000 + rand.N(20000)) }
